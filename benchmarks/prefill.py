"""Our local engine's prefill speed against plain matmuls, and the peak memory of a log-likelihood batch.

Run by hand, never from the tests (our venv is enough; no lm-eval):
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/prefill.py [--sections prefill,memory] [--model smollm2-135m]
        [--threads 2] [--repeats 3] [--batch 8] [--length 512] [--mem-batch 8] [--mem-length 256]

prefill: ``--batch`` log-likelihood requests of ``--length`` tokens each (distinct windows of the bundled
C4 sample, so no prefix is shared, one-token continuations) through ``engine.loglikelihood``, against the
chain of ``torch.matmul`` calls of the same shapes: for every decoder block, the activations
[batch x length, hidden] times each linear weight (q, k, v, o, gate, up, down) in turn. Two counts of
the engine's FLOPs, both printed:
- linear: 2 x (parameters of the decoder's linear layers) x tokens, the chain's own count, so the attention
  is pure overhead in it;
- model: linear plus the attention's two matmuls over the causal part (a query at position p meets p keys:
  2 x 2 x p x heads x head_dim per layer): the count of PaLM's model FLOPs utilisation (Chowdhery et al.
  2022, appendix B: 6N + 12 x layers x heads x head_dim x length per token, for training) taken for the
  forward pass alone (a third of it) and over the causal half of the attention.
  This is the work a prefill cannot avoid; the target (>= 80 % of the matmul rate) is judged on it.
The embedding lookup and the vocabulary head (which a good engine applies at the scored positions only) are
counted in neither. Interleaved (engine, matmul, engine, matmul ...), medians over ``--repeats``.

memory: the peak resident memory of one log-likelihood batch, each setting in a fresh subprocess: a
LLaMA of the model's shapes with random weights and vocabulary V, ``--mem-batch`` requests of T tokens,
settings (V, T), (4V, T) and (V, 4T). Method: Linux resets a process's resident high-water mark when
"5" is written to /proc/self/clear_refs; the figure is VmHWM (from /proc/self/status) after the call
minus VmRSS before it, i.e. what the call added at its peak (tracemalloc does not see torch's
allocator). Where /proc is missing (macOS) it falls back to the growth of ``resource.getrusage`` maxrss,
which only shows a peak higher than the model load's. For scale, the table gives the size of a float32
[batch, length, vocab] logits tensor: an engine that builds it grows with V x T, one that applies the
head at the scored positions only grows with T (the activations), not with V.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vs_lmeval import load_model, machine_line, make_engine  # noqa: E402

LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def linear_shapes(model) -> list[tuple[int, int]]:
    """(in, out) of every linear layer inside the decoder blocks, in execution order."""
    shapes = []
    for layer in model.model.layers:
        for name, module in layer.named_modules():
            if name.rsplit(".", 1)[-1] in LINEARS:
                shapes.append((module.in_features, module.out_features))
    return shapes


def c4_requests(tokenizer, batch: int, length: int):
    """``batch`` distinct windows of ``length`` tokens of the bundled C4 sample, each a context with a
    one-token continuation (decoded back to text, re-encoded by the engine: lengths may move by a token)."""
    from pytest_kick.compress.calibration import c4_documents
    from pytest_kick.requests import LoglikelihoodRequest

    need, ids = batch * (length + 1), []
    for text in c4_documents()[0]:
        ids += tokenizer(text + "\n\n", add_special_tokens=False)["input_ids"]
        if len(ids) >= need:
            break
    requests = []
    for b in range(batch):
        window = ids[b * (length + 1) : (b + 1) * (length + 1)]
        requests.append(LoglikelihoodRequest(tokenizer.decode(window[:-1]), tokenizer.decode(window[-1:])))
    return requests


def prefill(args) -> dict:
    import torch

    loaded = load_model(args.model, "float32", args.cache_dir)
    engine = make_engine(loaded, args.batch)
    shapes = linear_shapes(loaded.model)
    params = sum(i * o for i, o in shapes)
    requests = c4_requests(loaded.tokenizer, args.batch, args.length)
    lengths = [
        len(loaded.tokenizer(r.context + r.continuation, add_special_tokens=False)["input_ids"]) for r in requests
    ]
    tokens = sum(lengths)
    flops = 2 * params * tokens
    attention = attention_flops(loaded.model.config, lengths)
    inputs = {i: torch.randn(tokens, i) for i, _ in shapes}  # [tokens, hidden] and [tokens, intermediate]
    weights = [torch.randn(i, o) / i**0.5 for i, o in shapes]

    def chain():
        with torch.inference_mode():
            for w in weights:  # [tokens, in] @ [in, out], in the model's order; only the shapes matter
                torch.matmul(inputs[w.shape[0]], w)

    times = {"engine": [], "matmul": []}
    engine.loglikelihood(requests[:1])  # warm-up
    chain()
    for repeat in range(args.repeats):
        for side, fn in (("engine", lambda: engine.loglikelihood(requests)), ("matmul", chain)):
            started = time.perf_counter()
            fn()
            times[side].append(time.perf_counter() - started)
            print(f"  [prefill {repeat + 1}/{args.repeats}] {side}: {times[side][-1]:.2f} s", flush=True)
    median = {side: statistics.median(t) for side, t in times.items()}
    rate = {
        "engine (linear)": flops / median["engine"] / 1e9,
        "engine (model)": (flops + attention) / median["engine"] / 1e9,
        "matmul": flops / median["matmul"] / 1e9,
    }
    print(
        f"\nprefill: {args.batch} x {args.length} tokens ({tokens} in all), {params / 1e6:.1f} M linear parameters "
        f"in {len(shapes)} matrices: {flops / 1e9:.1f} GFLOP linear + {attention / 1e9:.1f} GFLOP causal attention "
        f"per pass"
    )
    print(f"  {'side':<44}{'GFLOP/s':>9}{'median s':>10}")
    print(f"  {'engine.loglikelihood, linear FLOPs':<44}{rate['engine (linear)']:>9.1f}{median['engine']:>10.2f}")
    print(f"  {'engine.loglikelihood, model FLOPs':<44}{rate['engine (model)']:>9.1f}{median['engine']:>10.2f}")
    print(f"  {'torch.matmul chain (linear FLOPs)':<44}{rate['matmul']:>9.1f}{median['matmul']:>10.2f}")
    linear, model = (rate[k] / rate["matmul"] for k in ("engine (linear)", "engine (model)"))
    verdict = "met" if model >= 0.8 else "MISSED"
    print(
        f"  engine / matmul: {100 * model:.0f}% on model FLOPs (target >= 80%: {verdict}); "
        f"{100 * linear:.0f}% on linear FLOPs alone"
    )
    return {
        "tokens": tokens,
        "params": params,
        "attention_flops": attention,
        "gflop_s": rate,
        "seconds": times,
        "share": model,
        "share_linear": linear,
    }


def attention_flops(config, lengths: list[int]) -> int:
    """FLOPs of the attention's two matmuls (q.k and weights.v) over the causal part of each row: at position p
    (1-based) a query meets p keys, 2 x p x heads x head_dim FLOPs for each of the two, in every layer."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    width = config.num_attention_heads * head_dim
    return sum(config.num_hidden_layers * 2 * 2 * width * n * (n + 1) // 2 for n in lengths)


# --- memory, one setting per fresh subprocess ----------------------------------------------------


def _rss_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def memory_child(args) -> None:
    """In a fresh process: one log-likelihood batch on a random model of vocabulary ``--vocab``; prints JSON."""
    import resource

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from pytest_kick.models.loading import LoadedModel

    torch.set_num_threads(args.threads)
    weights_dir = load_model(args.model, "float32", args.cache_dir).weights_dir  # only its config and tokenizer
    gc.collect()
    config = AutoConfig.from_pretrained(weights_dir)
    config.vocab_size = args.vocab
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    tokenizer = AutoTokenizer.from_pretrained(weights_dir)  # its ids are < any --vocab used here
    engine = make_engine(LoadedModel(model, tokenizer, {}, "cpu", "float32"), args.mem_batch)
    requests = c4_requests(tokenizer, args.mem_batch, args.mem_length)
    engine.loglikelihood(requests[:1])  # warm-up: one-time allocations are not the batch's
    before_rss = _rss_kib("VmRSS")
    before_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    method = "VmHWM after - VmRSS before (/proc/self/clear_refs 5)"
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        method = "ru_maxrss growth (no /proc)"
    engine.loglikelihood(requests)
    peak = _rss_kib("VmHWM")
    if peak is not None and before_rss is not None and method.startswith("VmHWM"):
        added = peak - before_rss
    else:
        added = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_max
    print(
        json.dumps(
            {
                "vocab": args.vocab,
                "length": args.mem_length,
                "batch": args.mem_batch,
                "added_mib": added / 1024,
                "method": method,
            }
        )
    )


def memory(args) -> list[dict]:

    from transformers import AutoConfig

    weights_dir = load_model(args.model, "float32", args.cache_dir).weights_dir
    vocab = AutoConfig.from_pretrained(weights_dir).vocab_size
    settings = [(vocab, args.mem_length), (4 * vocab, args.mem_length), (vocab, 4 * args.mem_length)]
    rows = []
    for v, t in settings:
        cmd = [
            sys.executable,
            __file__,
            "--memory-child",
            "--vocab",
            str(v),
            "--mem-length",
            str(t),
            "--mem-batch",
            str(args.mem_batch),
            "--threads",
            str(args.threads),
            "--model",
            args.model,
        ]
        if args.cache_dir:
            cmd += ["--cache-dir", args.cache_dir]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"memory child failed:\n{out.stderr[-2000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"  [memory] V {v} T {t}: +{rows[-1]['added_mib']:.0f} MiB", flush=True)
    b = args.mem_batch
    print(
        f"\nlog-likelihood batch peak memory ({b} requests; {rows[0]['method']}; float32; torch threads {args.threads})"
    )
    print(f"  {'vocab V':>8}{'length T':>10}{'V x T (M)':>11}{'[B,T,V] logits MiB':>20}{'peak added MiB':>16}")
    for r in rows:
        logits = b * r["length"] * r["vocab"] * 4 / 2**20
        print(
            f"  {r['vocab']:>8}{r['length']:>10}{r['vocab'] * r['length'] / 1e6:>11.1f}{logits:>20.0f}"
            f"{r['added_mib']:>16.0f}"
        )
    base, wide, long = (r["added_mib"] for r in rows)
    print(
        f"  4x vocabulary: {wide - base:+.0f} MiB; 4x length: {long - base:+.0f} MiB (vocab-independent if the "
        f"first is ~0, where a logits-bound engine adds 3x the first row's logits for both; a ratio would "
        f"divide by a base that can be 0)"
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="prefill,memory")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8, help="prefill: requests in the batch")
    parser.add_argument("--length", type=int, default=512, help="prefill: tokens per request")
    parser.add_argument("--mem-batch", type=int, default=8)
    parser.add_argument("--mem-length", type=int, default=256)
    parser.add_argument("--cache-dir", default=None, help="converted-model cache (default: <repo>/.kick-test)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--vocab", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args)
        return
    print(machine_line(torch.get_num_threads()))
    results = {}
    if "prefill" in args.sections:
        results["prefill"] = prefill(args)
    if "memory" in args.sections:
        results["memory"] = memory(args)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": machine_line(args.threads), "args": vars(args), "results": results}, indent=1)
        )


if __name__ == "__main__":
    main()
