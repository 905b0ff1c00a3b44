"""vLLM in the loop, for real (``make vllm-check``): serve the dense model and --kick-export variants with vLLM on
this CPU, gate the served pair, and compare served with local item by item.

    .venv/bin/python benchmarks/served_vllm.py [--model smollm2-135m] [--limit 20] [--venv .kick/vllm-venv]
        [--formats dense,magnitude:2:4,rtn:w8,rtn:w4g128] [--out .kick/vllm-check]

1. installs vLLM's CPU build into a side environment, once (benchmarks/_vllm_server.py);
2. compresses ``--model`` in this process (the local engine), evaluates MMLU (``--limit`` questions, 5-shot,
   strict) on dense and on each variant, and writes each variant with --kick-export: pruned ones as dense
   safetensors with a compressed-tensors sparsity config, rtn ones as compressed-tensors pack-quantized;
3. serves each format with vLLM (``--dtype bfloat16``) and, where it loads, evaluates the same questions
   through ``--kick-engine openai-completions``' engine: the per-item agreement of predicted letters with
   the local engine (float32), and the wall time of both;
4. on the dense server, MMLU the old way (one request per choice, echo + prompt_logprobs) and the new way
   (one request per question, verified first), interleaved twice: requests and seconds per question;
5. gates each served variant against the served dense model with pytest (``--kick-engine
   openai-completions --kick-base-url ... --kick-compressed-url ...``) and prints its verdict line.
Every server is stopped before the script ends. Timings are of one run on whatever else the machine runs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--limit", type=int, default=20, help="MMLU questions")
    parser.add_argument("--formats", default="dense,magnitude:2:4,rtn:w8,rtn:w4g128")
    parser.add_argument("--venv", default=str(ROOT / ".kick" / "vllm-venv"))
    parser.add_argument("--cache-dir", default=str(ROOT / ".kick"))
    parser.add_argument("--out", default=str(ROOT / ".kick" / "vllm-check"))
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of before/after (0: none)")
    args = parser.parse_args()

    from _vllm_server import Server, install

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    python = install(Path(args.venv))
    print(f"vLLM side environment: {args.venv} ({time.perf_counter() - started:.0f} s)", flush=True)

    local = LocalRuns(args, out / "exported")
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    rows, timings, gates = [], [], []
    dense_dir = local.directory("dense")
    with Server(python, dense_dir, args.model, out / "logs" / "dense.log") as dense:
        if not dense.loaded:
            sys.exit(f"vLLM could not serve the dense model {dense_dir}: {dense.reason} (log {dense.log})")
        print(f"dense served in {dense.seconds:.0f} s at {dense.base_url}", flush=True)
        timings = requests_before_after(local, dense.base_url, args.rounds)
        for form in formats:
            directory = local.directory(form)
            if form == "dense":
                rows.append(compare(local, form, dense, directory))
                continue
            name = f"{args.model}-{form.replace(':', '-')}"
            with Server(python, directory, name, out / "logs" / f"{name}.log") as served:
                rows.append(compare(local, form, served, directory))
                if served.loaded:
                    gates.append((form, gate(args, dense.base_url, served.base_url, out)))
    print_tables(rows, timings, gates)


class LocalRuns:
    """The model in this process: its variants compressed, exported and evaluated by the local engine."""

    def __init__(self, args, export_dir: Path):
        from pytest_kick.config import OPTIONS, build
        from pytest_kick.runtime import Runtime

        values = {o.name: None for o in OPTIONS}
        values.update(
            model=args.model,
            tasks="mmlu",
            limit=str(args.limit),
            export=str(export_dir),
            compressor="magnitude,rtn",
            ratio="2:4,w8,w4g128",
        )
        values["cache-dir"] = args.cache_dir
        self.config = build(values, ROOT)
        self.runtime = Runtime(self.config)
        self.model = args.model
        self.export_dir = export_dir
        self.results: dict = {}

    def evaluate(self, form: str):
        """(predicted letters, seconds per question) of the local engine on ``form``."""
        from pytest_kick.cases import KickCase

        compressor, _, ratio = form.partition(":")
        case = KickCase("mmlu", self.model) if form == "dense" else KickCase("mmlu", self.model, compressor, ratio)
        started = time.perf_counter()
        result = self.runtime.evaluate(case)
        return result.outputs, (time.perf_counter() - started) / len(result.outputs)

    def directory(self, form: str) -> Path:
        """What vLLM serves for ``form``: the converted model, or the --kick-export variant (written when the local
        engine evaluates it)."""
        from pytest_kick.compress.export import variant_dir

        if form not in self.results:
            self.results[form] = self.evaluate(form)
        if form == "dense":
            return Path(self.runtime.model(self.model).weights_dir)
        compressor, _, ratio = form.partition(":")
        return variant_dir(self.export_dir, self.model, compressor, ratio)

    def served(self, base_url: str, one_request: bool | None = None):
        """(predicted letters, seconds per question, requests sent) of the same questions through vLLM."""
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
        return outputs, seconds / len(items), engine.client.posts, engine.choice_check


def compare(local: LocalRuns, form: str, server, directory: Path) -> dict:
    """Served against local on the same questions: agreement and seconds per question."""
    row = {"format": form, "directory": directory.name, "loads": server.loaded, "reason": server.reason}
    if not server.loaded:
        print(f"{form}: vLLM did not load {directory}: {server.reason}", flush=True)
        return row
    here, local_seconds = local.results[form]
    outputs, served_seconds, posts, _ = local.served(server.base_url)
    row.update(
        agree=sum(a == b for a, b in zip(here, outputs)),
        n=len(here),
        local=local_seconds,
        served=served_seconds,
        requests=posts / len(here),
    )
    print(f"{form}: {row['agree']}/{row['n']} letters as the local engine's", flush=True)
    return row


def requests_before_after(local: LocalRuns, base_url: str, rounds: int) -> list[dict]:
    """MMLU on the dense server one request per choice (before) and one per question (after), interleaved."""
    found = []
    for round_ in range(1, rounds + 1):
        for how, flag in (("per choice (before)", False), ("per question (after)", None)):
            outputs, seconds, posts, check = local.served(base_url, one_request=flag)
            found.append({"round": round_, "how": how, "seconds": seconds, "requests": posts, "outputs": outputs})
            if check:
                found[-1]["check"] = check
            print(f"round {round_}, {how}: {posts} requests, {seconds:.2f} s per question", flush=True)
    return found


def gate(args, dense_url: str, compressed_url: str, out: Path) -> str:
    """The served pair gated by pytest through the served engine: its verdict line."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--kick-model",
        args.model,
        "--kick-tasks",
        "mmlu",
        "--kick-limit",
        str(args.limit),
        "--kick-engine",
        "openai-completions",
        "--kick-base-url",
        dense_url,
        "--kick-compressed-url",
        compressed_url,
        "--kick-cache-dir",
        str(out / "served-cache"),
        "-p",
        "no:cacheprovider",
        "-rs",
        "-q",
    ]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in run.stdout.splitlines() if "mmlu" in line and ("served" in line or "dense" in line)]
    return f"pytest exit {run.returncode}: " + (" | ".join(lines[-3:]) or run.stdout.strip().splitlines()[-1])


def print_tables(rows: list[dict], timings: list[dict], gates: list) -> None:
    print("\n## Export formats served by vLLM 0.32.0 (CPU, bfloat16) against the local engine (float32)\n")
    print("| format | loads | letters equal to local | local s/question | served s/question | requests/question |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if not r["loads"]:
            print(f"| {r['format']} | no: {r['reason'][:120]} | | | | |")
            continue
        print(
            f"| {r['format']} | yes | {r['agree']}/{r['n']} | {r['local']:.2f} | {r['served']:.2f} | "
            f"{r['requests']:.2f} |"
        )
    print("\n## MMLU on the dense vLLM server: one request per choice (before) vs per question (after)\n")
    print("| round | path | requests | requests/question | s/question | letters equal to 'before' round 1 |")
    print("|---|---|---|---|---|---|")
    reference = timings[0]["outputs"] if timings else []
    for t in timings:
        n = len(t["outputs"])
        same = sum(a == b for a, b in zip(reference, t["outputs"]))
        print(
            f"| {t['round']} | {t['how']} | {t['requests']} | {t['requests'] / n:.2f} | {t['seconds']:.2f} | "
            f"{same}/{n} |"
        )
    checks = [t["check"] for t in timings if t.get("check")]
    if checks:
        print(f"\nverification of the one-request path (first question asked both ways): {checks[0]}")
    print("\n## The served pair gated with --kick-engine openai-completions\n")
    for form, line in gates:
        print(f"- {form}: {line}")


if __name__ == "__main__":
    main()
