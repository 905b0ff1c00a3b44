"""Recovery side by side: for one compressed variant, what each method regains, at what size and cost.

Run by hand, never from the tests:

    .venv/bin/python benchmarks/recovery.py [--model smollm2-135m] [--compressor magnitude] [--ratio 0.3]
        [--methods prompt,idp,lora] [--steps 100] [--held-out 32] [--seqlen 256] [--cache .kick]

Prints held-out C4 loss and perplexity for dense, compressed and compressed + each method (windows from
documents recovery never trains on), the share of the dense-compressed loss gap each method closes, its
extra parameters (count and ratio to LoRA's), training seconds, and its latency overhead against the
compressed model without recovery: seconds per held-out window scored (one forward pass) and per
generated prompt (greedy, through the engine). Trained parameters are cached under --cache, so a rerun
measures without training (training seconds are then those of the run that trained).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path


def timed(fn, repeats: int):
    """(result of the last call, median seconds of ``repeats`` calls)."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return result, sorted(times)[len(times) // 2]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--compressor", default="magnitude")
    parser.add_argument("--ratio", default="0.3")
    parser.add_argument("--methods", default="prompt,idp,lora")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=None, help="one learning rate for every method")
    parser.add_argument("--held-out", type=int, default=32, help="held-out windows")
    parser.add_argument("--seqlen", type=int, default=256)
    parser.add_argument("--prompts", type=int, default=8, help="prompts generated for the latency figure")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path(".kick"))
    args = parser.parse_args(argv)

    import torch

    from pytest_kick.compress import info, pipeline
    from pytest_kick.compress.base import DenseWeights
    from pytest_kick.compress.calibration import calibration_ids
    from pytest_kick.compress.spec import parse
    from pytest_kick.engines.local import LocalEngine as Engine
    from pytest_kick.models import registry
    from pytest_kick.models.loading import load
    from pytest_kick.recover import RecoverySpec, parameter_count, recover
    from pytest_kick.recover.data import load_corpus, windows
    from pytest_kick.recover.train import held_out_loss
    from pytest_kick.requests import GenerationRequest

    loaded = load(registry.resolve(args.model), args.cache, "cpu", "float32")
    model, tokenizer = loaded.model.eval(), loaded.tokenizer
    corpus = load_corpus()
    held = windows(tokenizer, corpus.held_out, args.held_out, args.seqlen, 0, "held-out")
    texts = [t[:300] for t in corpus.held_out[: args.prompts]]
    requests = [GenerationRequest(prompt=t, max_new_tokens=args.new_tokens) for t in texts]
    engine = Engine(model, tokenizer, "cpu", batch_size=args.prompts)

    def measure():
        loss, score_s = timed(lambda: held_out_loss(model, held), args.repeats)
        _, gen_s = timed(lambda: engine.generate(requests), args.repeats)
        return loss, score_s / len(held), gen_s / len(requests)

    dense_loss, _, _ = measure()
    calibration = None
    if info(args.compressor).calibrated:
        calibration, _, _ = calibration_ids(tokenizer, 128, 512, 0)
    report = pipeline.compress(
        model, args.compressor, parse(args.ratio), DenseWeights(model, loaded.weights_dir), calibration
    )
    print(report.summary(), file=sys.stderr)
    base_loss, base_score, base_gen = measure()
    key = {"model": loaded.identity, "compressor": args.compressor, "ratio": args.ratio, "calibration": "128x512/0"}
    lora_count = parameter_count(model, RecoverySpec("lora"))

    rows = [
        ("dense", dense_loss, None, None, None, None, None, None),
        (f"{args.compressor}@{args.ratio}", base_loss, 0.0, 0, None, None, 0.0, 0.0),
    ]
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        spec = RecoverySpec(method, steps=args.steps, lr=args.lr, seqlen=args.seqlen)
        last = [time.perf_counter()]

        def progress(step, steps):
            if step % 5 == 0 or step == steps:
                now = time.perf_counter()
                print(f"  {method} step {step}/{steps} ({now - last[0]:.1f} s)", file=sys.stderr, flush=True)
                last[0] = now

        recovery = recover(
            model,
            tokenizer,
            spec,
            corpus,
            cache_dir=args.cache,
            key=key,
            progress=progress,
            notify=lambda text: print(text, file=sys.stderr),
        )
        with recovery.applied(model):
            loss, score_s, gen_s = measure()
        gap = (base_loss - loss) / (base_loss - dense_loss) if base_loss != dense_loss else float("nan")
        extra = f" (prompt usage {recovery.usage})" if recovery.usage else ""
        print(f"{spec.describe()}: loss {recovery.losses[0]:.3f} -> {recovery.losses[-1]:.3f}{extra}", file=sys.stderr)
        rows.append(
            (
                method,
                loss,
                gap,
                recovery.extra_parameters,
                recovery.extra_parameters / lora_count,
                recovery.training_seconds,
                score_s / base_score - 1,
                gen_s / base_gen - 1,
            )
        )
        print(
            f"{method}: held-out loss {base_loss:.4f} compressed -> {loss:.4f} recovered (dense {dense_loss:.4f}),"
            f" gap closed {gap:.1%}",
            file=sys.stderr,
            flush=True,
        )

    print(
        f"\n{args.model} {args.compressor}@{args.ratio}: held-out C4 ({len(held)} windows x {args.seqlen} tokens), "
        f"{args.steps} training steps x 4 windows, torch threads {torch.get_num_threads()}"
    )
    print(
        f"{'':<16}{'loss':>8}{'ppl':>9}{'gap closed':>12}{'extra params':>14}{'/ LoRA':>8}{'train s':>9}"
        f"{'score +%':>10}{'generate +%':>13}"
    )
    for name, loss, gap, extra, ratio, train_s, score, gen in rows:
        cells = [
            f"{loss:8.4f}",
            f"{math.exp(loss):9.2f}",
            f"{'':>12}" if gap is None else f"{gap:12.1%}",
            f"{'':>14}" if extra is None else f"{extra:14,d}",
            f"{'':>8}" if ratio is None else f"{ratio:8.3f}",
            f"{'':>9}" if train_s is None else f"{train_s:9.0f}",
            f"{'':>10}" if score is None else f"{score:+10.1%}",
            f"{'':>13}" if gen is None else f"{gen:+13.1%}",
        ]
        print(f"{name:<16}" + "".join(cells))
    print(
        f"compressed without recovery: {base_score * 1000:.1f} ms per window scored, "
        f"{base_gen * 1000:.1f} ms per prompt generated ({args.new_tokens} new tokens)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
