"""lm-eval output directories written as lm-eval 0.4.13 writes them (``--output_path OUT --log_samples``): the
layout, file names and fields below were read from that release's real output (a multiple-choice task and a
``generate_until`` task on SmolLM2-135M): ``OUT/<model name sanitized>/results_<time>.json`` and
``samples_<task>_<time>.jsonl``; a sample's ``arguments`` is ``{"gen_args_<i>": {"arg_0": ..., "arg_1": ...}}``,
its log-likelihood replies are ``[["-4.5", "False"]]`` (text), a multiple-choice target the correct index as
text, and the document, prompt and target hashes are sha256 hex digests of their JSON or text."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

STAMP = "2026-12-06T15-40-21.045534"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def choice_sample(doc_id: int, question: str, choices: list[str], label: int, picked: int) -> dict:
    """A multiple-choice document the model answered with choice ``picked`` (acc 1 when it is ``label``)."""
    doc = {"question": question, "choices": choices, "label": label}
    prompt = f"Question: {question}\nAnswer:"
    replies = [[[f"{-1.0 if k == picked else -5.0 - k}", "False"]] for k in range(len(choices))]
    return {
        "doc_id": doc_id,
        "doc": doc,
        "target": str(label),
        "arguments": {f"gen_args_{k}": {"arg_0": prompt, "arg_1": f" {c}"} for k, c in enumerate(choices)},
        "resps": replies,
        "filtered_resps": [r[0] for r in replies],
        "filter": "none",
        "metrics": ["acc", "acc_norm"],
        "doc_hash": sha(json.dumps(doc, indent=2, ensure_ascii=False)),
        "prompt_hash": sha(prompt),
        "target_hash": sha(str(label)),
        "acc": float(picked == label),
        "acc_norm": float(picked == label),
    }


def generation_sample(doc_id: int, question: str, answer: str, reply: str) -> dict:
    doc = {"question": question, "answer": answer}
    prompt = f"Q: {question}\nA:"
    return {
        "doc_id": doc_id,
        "doc": doc,
        "target": answer,
        "arguments": {"gen_args_0": {"arg_0": prompt, "arg_1": {"until": ["\n"], "max_gen_toks": 8}}},
        "resps": [[reply]],
        "filtered_resps": [reply],
        "filter": "none",
        "metrics": ["exact_match"],
        "doc_hash": sha(json.dumps(doc, indent=2, ensure_ascii=False)),
        "prompt_hash": sha(prompt),
        "target_hash": sha(answer),
        "exact_match": float(reply.strip() == answer),
    }


def write_run(out: Path, model: str, tasks: dict, versions: dict | None = None, shots: dict | None = None, limit=None):
    """``tasks``: {task: [sample, ...]}. Returns the model folder lm-eval writes under ``out``."""
    folder = out / model.replace("/", "__")
    folder.mkdir(parents=True, exist_ok=True)
    higher = {t: {m: True for m in samples[0]["metrics"]} for t, samples in tasks.items()}
    results = {
        "results": {t: {"alias": t} for t in tasks},
        "configs": {
            t: {"task": t, "output_type": "multiple_choice" if "acc" in s[0] else "generate_until"}
            for t, s in tasks.items()
        },
        "versions": {t: (versions or {}).get(t, 1.0) for t in tasks},
        "n-shot": {t: (shots or {}).get(t, 0) for t in tasks},
        "higher_is_better": higher,
        "n-samples": {t: {"original": len(s), "effective": len(s)} for t, s in tasks.items()},
        "config": {"model": "hf", "model_args": f"pretrained={model}", "limit": limit},
        "model_name": model,
        "model_name_sanitized": model.replace("/", "__"),
    }
    (folder / f"results_{STAMP}.json").write_text(json.dumps(results, indent=2))
    for task, samples in tasks.items():
        text = "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples)
        (folder / f"samples_{task}_{STAMP}.jsonl").write_text(text)
    return folder


CHOICES = ["red", "green", "blue", "black"]


def quiz(n: int, right: int, wrong_from: int = 0) -> list[dict]:
    """``n`` four-choice documents; the first ``right`` answered correctly, the rest with the next choice."""
    found = []
    for k in range(n):
        label = k % 4
        picked = label if k < right else (label + 1) % 4
        found.append(choice_sample(k, f"Which colour is number {k}?", CHOICES, label, picked))
    return found


def capitals(n: int, right: int) -> list[dict]:
    """``n`` short-answer documents, the first ``right`` answered exactly."""
    return [
        generation_sample(k, f"Capital number {k}?", f"City{k}", f"City{k}" if k < right else "Nowhere")
        for k in range(n)
    ]
