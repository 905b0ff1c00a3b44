"""An estimate, not a measurement: how long Vicuna-7B's full LLM-KICK suite would take on one GPU, from the items
per second measured here on a small model, scaled by FLOPs.

Run by hand, never from the tests (a few minutes at the default --limit):
    .venv/bin/python benchmarks/suite_estimate.py [--model smollm2-135m] [--limit 16] [--threads T]
        [--gpu-tflops 312] [--gpu-tbps 2.0] [--variants 4]

What it measures, on this machine: the dense ``--model`` answers ``--limit`` items of every task of the suite
(protocol ``kick``, through the task's own ``evaluate`` and the local engine, as a case does; no judge), timed
per task, with the tokens fed to the model and the tokens it generated counted; and this CPU's float32 matrix
product rate (a 2048 x 2048 x 2048 ``torch.mm``, best of 5), at the same thread count.

How it scales, stated so every step can be checked:
- FLOPs per token of a model: 2 x (weights of its matrix products, the output layer included) plus the attention
  scores and sums, 4 x layers x width x (mean position), the position taken from the tokens counted per item.
- The engine's efficiency on a task: (FLOPs it did per second) / (this CPU's matrix product rate).
- The large model on one GPU: the same efficiency of the GPU's dense bf16 peak (``--gpu-tflops``; 312 for an
  A100, NVIDIA's data sheet), with a floor for generation, which on a GPU is bound by reading the weights:
  each decode step reads them once (2 bytes a weight in bf16) at ``--gpu-tbps``, for a batch of BATCH rows.
- Items in the full suite: LLM-KICK's own counts (FULL_ITEMS, with where each comes from); tokens per item as
  measured here (the small model's tokenizer and its own answer lengths, not Vicuna's).
- ``--variants``: model evaluations of a gate run (the default grid: dense and magnitude at 0.1, 0.3, 0.5).
  Compression and the judge are not counted: magnitude pruning is a sort of the weights, and LLM-KICK's judge
  is GPT-4, served elsewhere.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

# Items of LLM-KICK's full runs (VITA-Group/llm-kick): factoid_qa/main_freebase.py --num_examples 1000 (FreebaseQA
# train); MMLU's test split (14,042 questions, 5-shot); GPTQ_experiment/vicuna_inference_trivia.py, the first
# 2,000 TriviaQA rc validation questions, closed and open book; in-context_summarization/selected_stories, 30
# stories each of small, medium, large; the 80 conversation questions (mt_conversation/table/question.jsonl),
# and MT-Bench's 80 two-turn questions as this suite adds them. Perplexity: the whole WikiText-2 test text.
FULL_ITEMS = {
    "factoid_qa": 1000,
    "mmlu": 14042,
    "icrqa:closed": 2000,
    "icrqa:open": 2000,
    "summarization:small": 30,
    "summarization:medium": 30,
    "summarization:large": 30,
    "instruction:vicuna": 80,
    "instruction:mtbench": 80,
    "perplexity": None,  # the whole text: its windows are counted from the tokenized corpus
}
VICUNA_7B = {
    "matmul_weights": 6.607e9,
    "layers": 32,
    "width": 4096,
}  # LLaMA-7B: 32 x (4·4096² + 3·4096·11008) + 32000·4096
BATCH = 16  # rows decoded together (the engine's default --kick-batch-size)


class Counting:
    """The local engine, counting the tokens fed to the model and the tokens it generated."""

    def __init__(self, engine):
        self.engine, self.fed, self.generated = engine, 0, 0
        self.name, self.max_length = engine.name, engine.max_length

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def generate(self, requests, progress=None):
        out = self.engine.generate(requests, progress)
        self.fed += sum(len(self.engine.prompt_ids(r)) for r in requests)
        self.generated += sum(len(self.engine.tokenize(o) or []) for o in out)
        return out

    def loglikelihood(self, requests, progress=None):
        out = self.engine.loglikelihood(requests, progress)
        contexts = {r.context for r in requests}  # the engine computes a shared context once
        self.fed += sum(len(self.engine.tokenize(c)) for c in contexts)
        self.fed += sum(
            len(self.engine.tokenize(r.context + r.continuation)) - len(self.engine.tokenize(r.context))
            for r in requests
        )
        return out

    def loglikelihood_rolling(self, requests, progress=None):
        out = self.engine.loglikelihood_rolling(requests, progress)
        self.fed += sum(len(r.ids) or len(self.engine.tokenize(r.text)) for r in requests)
        return out


def matmul_rate(threads: int) -> float:
    """This CPU's float32 matrix product rate (FLOP/s), best of 5."""
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * 2048**3 / best


def shape(model) -> dict:
    """Weights of the matrix products (output layer included, tied or not), layers and width of a loaded model."""
    import torch

    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    config = model.config
    return {"matmul_weights": weights, "layers": config.num_hidden_layers, "width": config.hidden_size}


def flops_per_token(model: dict, position: float) -> float:
    return 2 * model["matmul_weights"] + 4 * model["layers"] * model["width"] * position


def measure(args):
    import torch

    from pytest_kick import tasks
    from pytest_kick.engines.base import Runner
    from pytest_kick.engines.local import LocalEngine
    from pytest_kick.models import registry
    from pytest_kick.models.loading import load
    from pytest_kick.tasks.base import Settings

    torch.set_num_threads(args.threads)
    cache = Path(args.cache_dir) if args.cache_dir else Path(__file__).resolve().parents[1] / ".kick-test"
    cache.mkdir(exist_ok=True)
    loaded = load(registry.resolve(args.model), cache, "cpu", "float32")
    engine = LocalEngine(loaded.model, loaded.tokenizer, "cpu")
    found = {}
    for name in FULL_ITEMS:
        task = tasks.get(name)
        settings = Settings(protocol="kick", limit=args.limit)
        shots, items = task.split(task.load(settings), settings)
        counting = Counting(engine)
        start = time.perf_counter()
        task.evaluate(items, shots, settings, Runner(counting))
        seconds = time.perf_counter() - start
        found[name] = {"items": len(items), "seconds": seconds, "fed": counting.fed, "generated": counting.generated}
        print(f"  measured {name}: {len(items)} items in {seconds:.1f} s", flush=True)
    corpus = len(loaded.tokenizer("\n\n".join(r["text"] for r in _wikitext_rows()))["input_ids"])
    return shape(loaded.model), found, corpus


def _wikitext_rows():
    from pytest_kick.tasks import perplexity
    from pytest_kick.tasks.data import bundled_dir, read_jsonl

    return read_jsonl(bundled_dir() / perplexity.BUNDLED)


def days(seconds: float) -> str:
    """A duration, in the unit that reads best."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gpu-tflops", type=float, default=312.0, help="the GPU's dense bf16 peak (A100: 312)")
    parser.add_argument("--gpu-tbps", type=float, default=2.0, help="the GPU's memory bandwidth (A100 80GB: 2.0)")
    parser.add_argument("--variants", type=int, default=4, help="model evaluations of a gate run")
    parser.add_argument("--cache-dir", default=None, help="converted-model cache (default: <repo>/.kick-test)")
    args = parser.parse_args()

    small, found, corpus = measure(args)
    cpu = matmul_rate(args.threads)
    print(
        f"\nESTIMATE (not a measurement). Measured here: {args.model} dense, --limit {args.limit}, protocol kick, "
        f"torch threads {args.threads}; this CPU's float32 matrix product: {cpu / 1e9:.0f} GFLOP/s. Scaled by FLOPs to "
        f"Vicuna-7B ({VICUNA_7B['matmul_weights'] / 1e9:.2f}e9 matrix weights) on one GPU at {args.gpu_tflops:g} "
        f"TFLOP/s bf16 and {args.gpu_tbps:g} TB/s. FLOP/s ÷ matmul rate above 100%: a shared prompt prefix (MMLU's "
        f"shots) is counted per question but computed once.\n"
    )
    head = (
        "task",
        "items/s here",
        "tok/item in+out",
        "FLOP/s ÷ matmul rate",
        "full items",
        "7B items/s (GPU)",
        "7B one eval",
    )
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    total = compute_total = 0.0
    for name, f in found.items():
        per_item_tokens = (f["fed"] + f["generated"]) / f["items"]
        position = per_item_tokens / 2
        small_flops = (f["fed"] + f["generated"]) * flops_per_token(small, position)
        efficiency = small_flops / f["seconds"] / cpu
        full = FULL_ITEMS[name] or max(1, int(corpus // per_item_tokens))
        compute = full * per_item_tokens * flops_per_token(VICUNA_7B, position) / (efficiency * args.gpu_tflops * 1e12)
        steps = full * (f["generated"] / f["items"]) / BATCH  # decode steps, BATCH rows a step
        memory = steps * VICUNA_7B["matmul_weights"] * 2 / (args.gpu_tbps * 1e12)
        seconds = max(compute, memory)
        total += seconds
        compute_total += compute
        tokens = f"{f['fed'] / f['items']:.0f}+{f['generated'] / f['items']:.0f}"
        print(
            f"| {name} | {f['items'] / f['seconds']:.2f} | {tokens} "
            f"| {efficiency:.1%} | {full} | {full / seconds:.1f} | {days(seconds)} "
            f"({'weights read' if memory > compute else 'FLOPs'}) |"
        )
    print(
        f"\nVicuna-7B, one evaluation of the whole suite: {days(total)}; the default grid ({args.variants} "
        f"evaluations): {days(total * args.variants)} on one GPU (ESTIMATE). On this CPU the same FLOPs would take "
        f"{days(compute_total * args.gpu_tflops * 1e12 / cpu * args.variants)}."
    )


if __name__ == "__main__":
    main()
