"""The MMLU passes of benchmarks/served_vllm.py: the model in this process (local engine) and the same questions
through a vLLM server (served engine), each pass timed alone.

A local pass is ``Runtime.evaluate`` of the case with its variant already in place: the task's requests answered by
the local engine, nothing else. The first evaluation of a variant also loads the model (dense) or compresses and
exports it; that is timed apart (``build_seconds``) and never counted as the engine's time per question.
"""

from __future__ import annotations

import json
import time
from pathlib import Path


class LocalRuns:
    """The model in this process: its variants compressed, exported and evaluated by the local engine."""

    def __init__(self, model: str, limit: int, formats: list[str], cache_dir: str, export_dir: Path, root: Path):
        from pytest_kick.config import OPTIONS, build
        from pytest_kick.runtime import Runtime

        compressed = [f.partition(":") for f in formats if f != "dense"]
        values = {o.name: None for o in OPTIONS}
        values.update(
            model=model,
            tasks="mmlu",
            limit=str(limit),
            export=str(export_dir),
            compressor=",".join(dict.fromkeys(c for c, _, _ in compressed)) or None,
            ratio=",".join(dict.fromkeys(r for _, _, r in compressed)) or None,
            dtype="float32",
        )
        values["cache-dir"] = cache_dir
        self.config = build(values, root)
        self.runtime = Runtime(self.config)
        self.model = model
        self.export_dir = export_dir
        self.built: dict[str, float] = {}  # form -> seconds of its first evaluation (load or compress + export)
        self.first: dict[str, list] = {}  # form -> the letters of that first evaluation

    def case(self, form: str):
        from pytest_kick.cases import KickCase

        if form == "dense":
            return KickCase("mmlu", self.model)
        compressor, _, ratio = form.partition(":")
        return KickCase("mmlu", self.model, compressor, ratio)

    def directory(self, form: str) -> Path:
        """What vLLM serves for ``form``: the converted model, or the --kick-export variant, built (and evaluated
        once, so the export is the gated model) on first use."""
        from pytest_kick.compress.export import variant_dir

        if form not in self.built:
            started = time.perf_counter()
            self.first[form] = self.runtime.evaluate(self.case(form)).outputs
            self.built[form] = time.perf_counter() - started
        if form == "dense":
            return Path(self.runtime.model(self.model).weights_dir)
        compressor, _, ratio = form.partition(":")
        return variant_dir(self.export_dir, self.model, compressor, ratio)

    def local(self, form: str) -> tuple[list, float]:
        """(predicted letters, seconds per question) of one local pass over the questions, the variant in place."""
        case = self.case(form)
        self.runtime.use_variant(case.model, case.compressor, case.ratio)  # a no-op when it is already in place
        started = time.perf_counter()
        result = self.runtime.evaluate(case)
        return result.outputs, (time.perf_counter() - started) / len(result.outputs)

    def served(self, base_url: str, one_request: bool | None = None) -> dict:
        """One pass of the same questions through vLLM: letters, seconds per question, requests sent, and what the
        one-request path's verification found (a new engine: it verifies again)."""
        from pytest_kick.engines.base import Runner
        from pytest_kick.engines.http import Client
        from pytest_kick.engines.served import ServedEngine

        tokenizer = self.runtime.model(self.model).tokenizer
        engine = ServedEngine(Client(base_url, timeout=600), tokenizer, concurrency=min(self.config.batch_size, 16))
        if one_request is False:
            engine.one_request = False
        _, shots, items = self.runtime.data("mmlu")
        started = time.perf_counter()
        _, outputs = self.runtime.task("mmlu").evaluate(items, shots, self.runtime.settings, Runner(engine))
        seconds = time.perf_counter() - started
        return {
            "outputs": outputs,
            "seconds": seconds / len(items),
            "requests": engine.client.posts,
            "one_request": engine.one_request,
            "check": engine.choice_check,
        }


def written_as(directory: Path) -> str:
    """How an export stores its weights (its kick-compression.json's ``format``); the converted model: plain."""
    report = directory / "kick-compression.json"
    if not report.is_file():
        return "safetensors (the converted model)"
    return str(json.loads(report.read_text()).get("format", "?"))
