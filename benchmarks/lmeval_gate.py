"""Gating lm-eval runs a team already has (--kick-from-lmeval), next to pytest-kick's own gate of the same questions.

    .venv/bin/python benchmarks/lmeval_gate.py [--model qwen2.5-coder-0.5b] [--compressor magnitude --ratio 0.5]
        [--subjects computer_security,high_school_computer_science,us_foreign_policy] [--per-subject 34]
        [--venv .kick/lmeval-venv] [--out .kick/lmeval-check]

1. installs lm-evaluation-harness 0.4.13 into a side environment, once (``torch==2.13.0`` pinned: the CPU wheel);
2. writes the subjects' MMLU questions from the bundled MMLU (examples/mmlu_subjects.py) and gates them with
   pytest-kick's own engine (dense vs ``--compressor`` at ``--ratio``), exporting the variant (--kick-export);
3. runs lm-eval (``--model hf``, 5-shot, ``--log_samples``) on the dense model's directory and on the export,
   one lm-eval task per subject written here (lm-eval's own MMLU prompt: the subject line, "A. ..." choices,
   "Answer:", the choices scored as " A" ... " D"; its task files need the hub, these read the same questions
   from local files);
4. gates the two lm-eval runs with ``pytest --kick-from-lmeval`` and prints both gates' verdicts side by side.
lm-eval runs on ``--model hf`` in float32 on CPU, as pytest-kick's local engine does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import _side_venv as side_venv

ROOT = Path(__file__).resolve().parents[1]
PINS = ("lm_eval==0.4.13", "torch==2.13.0", "accelerate")
TASK = """task: kick_{subject}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {test}
    dev: {dev}
test_split: test
fewshot_split: dev
fewshot_config:
  sampler: first_n
output_type: multiple_choice
description: "The following are multiple choice questions (with answers) about {title}.\\n\\n"
doc_to_text: "{text}"
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: answer_index
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""
TEXT = (
    "{{question.strip()}}\\nA. {{choices[0]}}\\nB. {{choices[1]}}\\nC. {{choices[2]}}\\nD. {{choices[3]}}"
    "\\nAnswer:"
)  # lm-eval's MMLU prompt (jinja; YAML-escaped newlines)


def install(venv: Path) -> Path:
    return side_venv.install(venv, PINS, name="lmeval")


def write_tasks(data: Path, subjects: list[str], folder: Path) -> list[str]:
    """One lm-eval task per subject over the questions examples/mmlu_subjects.py wrote."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for split in ("test", "dev"):
        rows = [json.loads(line) for line in (data / "mmlu" / f"mmlu_{split}.jsonl").read_text().splitlines() if line]
        for subject in subjects:
            picked = [r for r in rows if r["subject"] == subject]
            (folder / f"{subject}_{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in picked))
    for subject in subjects:
        text = TASK.format(
            subject=subject,
            text=TEXT,
            title=subject.replace("_", " "),
            test=folder / f"{subject}_test.jsonl",
            dev=folder / f"{subject}_dev.jsonl",
        )
        (folder / f"kick_{subject}.yaml").write_text(text)
        names.append(f"kick_{subject}")
    return names


def run(command: list, what: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.perf_counter()
    done = subprocess.run([str(c) for c in command], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    print(f"{what}: exit {done.returncode} in {seconds:.0f} s", flush=True)
    return done, seconds


def lm_eval(python: Path, model_dir: Path, tasks: list[str], include: Path, out: Path, shots: int):
    done, seconds = run(
        [
            python,
            "-m",
            "lm_eval",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={model_dir},dtype=float32",
            "--include_path",
            include,
            "--tasks",
            ",".join(tasks),
            "--num_fewshot",
            str(shots),
            "--batch_size",
            "8",
            "--output_path",
            out,
            "--log_samples",
        ],
        f"lm-eval on {model_dir.name}",
    )
    if done.returncode != 0:
        sys.exit(f"lm-eval failed on {model_dir}:\n{done.stderr[-3000:]}")
    return seconds


def verdicts(report: Path) -> dict:
    cases = json.loads(report.read_text())["cases"]
    return {c["task"]: c for c in cases if c["compressor"] != "dense"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--compressor", default="magnitude")
    parser.add_argument("--ratio", default="0.5")
    parser.add_argument("--subjects", default="computer_security,high_school_computer_science,us_foreign_policy")
    parser.add_argument("--per-subject", type=int, default=34)
    parser.add_argument("--venv", default=str(ROOT / ".kick" / "lmeval-venv"))
    parser.add_argument("--cache-dir", default=str(ROOT / ".kick"))
    parser.add_argument("--out", default=str(ROOT / ".kick" / "lmeval-check"))
    args = parser.parse_args()
    out, cache = Path(args.out), Path(args.cache_dir)
    subjects = [s.strip() for s in args.subjects.split(",") if s.strip()]
    python = install(Path(args.venv))
    data = out / "data"
    run([sys.executable, "examples/mmlu_subjects.py", data, *subjects, "--per-subject", args.per_subject], "data")
    own, own_seconds = run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--kick-model",
            args.model,
            "--kick-tasks",
            "mmlu",
            "--kick-data-dir",
            data,
            "--kick-compressor",
            args.compressor,
            "--kick-ratio",
            args.ratio,
            "--kick-export",
            out / "exported",
            "--kick-cache-dir",
            cache,
            "--kick-report",
            out / "own.json",
            "-p",
            "no:cacheprovider",
            "-q",
        ],
        "pytest-kick's own gate (local engine)",
    )
    from pytest_kick.compress.export import variant_dir

    exported = variant_dir(out / "exported", args.model, args.compressor, args.ratio)
    dense_dir = max((cache / "models").glob(f"{args.model}-*-v2"), key=lambda p: p.stat().st_mtime)
    tasks = write_tasks(data, subjects, out / "tasks")
    seconds = {
        "dense": lm_eval(python, dense_dir, tasks, out / "tasks", out / "lm" / "dense", 5),
        "compressed": lm_eval(python, exported, tasks, out / "tasks", out / "lm" / "compressed", 5),
    }
    gated, gate_seconds = run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--kick-from-lmeval",
            f"{out / 'lm' / 'dense'},{out / 'lm' / 'compressed'}",
            "--kick-cache-dir",
            out / "lmeval-cache",
            "--kick-report",
            out / "lmeval.json",
            "-p",
            "no:cacheprovider",
            "-q",
        ],
        "pytest --kick-from-lmeval",
    )
    print(f"\n## {args.model}, {args.compressor}@{args.ratio}, MMLU 5-shot: {', '.join(subjects)}\n")
    print("| gate | task | n | dense | compressed | drop | McNemar p | verdict |")
    print("|---|---|---|---|---|---|---|---|")
    for source, report in (("pytest-kick engine", out / "own.json"), ("lm-eval runs", out / "lmeval.json")):
        for task, c in verdicts(report).items():
            drop = "" if c["drop"] is None else f"{c['drop']:.1%}"
            p = "" if c["p_value"] is None else f"{c['p_value']:.3g}"
            compressed = "" if c["compressed"] is None else f"{c['compressed']:.3f}"
            print(f"| {source} | {task} | {c['n']} | {c['dense']:.3f} | {compressed} | {drop} | {p} | {c['verdict']} |")
    print(
        f"\nseconds: pytest-kick's own gate {own_seconds:.0f} (dense + compressed, compression included), lm-eval "
        f"dense {seconds['dense']:.0f} + compressed {seconds['compressed']:.0f}, --kick-from-lmeval {gate_seconds:.0f}"
    )
    print(f"pytest exits: own {own.returncode}, --kick-from-lmeval {gated.returncode} (1: a case is not matching)")


if __name__ == "__main__":
    main()
