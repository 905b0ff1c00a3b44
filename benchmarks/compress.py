"""Compression cost per compressor: seconds per decoder block and in total, the share of the solver
(computing new weights) against the calibration forward passes, and peak memory against the dense model.

Run by hand, never from the tests:

    .venv/bin/python benchmarks/compress.py [--model smollm2-135m] [--calib 128x512,16x256]
        [--compressors magnitude,wanda,sparsegpt,gptq,rtn,awq,int8] [--blocks K]

Each (compressor, calibration size) runs in a fresh process, so peak memory is its own: the kernel's
high-water mark of resident memory (VmHWM) is reset after the model is loaded and read after
compression; "peak / model" is (that peak - resident memory before loading) / the model's parameter
bytes, i.e. the whole process growth from loading the model on, in units of the model. ``--blocks K``
compresses only the first K decoder blocks (the rest are dropped from the model): seconds per block are
unaffected, the total is for K blocks and says so.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

RATIO = {
    "magnitude": "0.5",
    "wanda": "0.5",
    "sparsegpt": "0.5",
    "gptq": "w4g128",
    "rtn": "w4g128",
    "awq": "w4g128",
    "int8": "w8a8",
}


def _status(key: str) -> int:
    """A /proc/self/status figure in bytes (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def child(model_name: str, compressor: str, samples: int, seqlen: int, blocks: int | None) -> dict:
    import time

    import torch
    import transformers.models.llama.modeling_llama  # noqa: F401  (library code is not the model's memory)

    from pytest_kick.compress import info, pipeline
    from pytest_kick.compress.base import DenseWeights
    from pytest_kick.compress.calibration import calibration_ids
    from pytest_kick.compress.spec import parse
    from pytest_kick.models import registry
    from pytest_kick.models.loading import load

    before_load = _status("VmRSS")
    loaded = load(registry.resolve(model_name), Path(".kick"), "cpu", "float32")
    model = loaded.model
    total_blocks = len(model.model.layers)
    if blocks:
        model.model.layers = model.model.layers[:blocks]
        model.config.num_hidden_layers = blocks
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    calibration = None
    if info(compressor).calibrated:
        calibration, _, _ = calibration_ids(loaded.tokenizer, samples, seqlen, 0)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM: the load's own peak is not compression's
    started = time.perf_counter()
    report = pipeline.compress(
        model, compressor, parse(RATIO[compressor]), DenseWeights(model, loaded.weights_dir), calibration
    )
    seconds = time.perf_counter() - started
    peak = _status("VmHWM")
    stats = report.stats
    return {
        "compressor": compressor,
        "ratio": RATIO[compressor],
        "calibration": f"{samples}x{seqlen}" if calibration is not None else "-",
        "blocks": len(model.model.layers),
        "of_blocks": total_blocks,
        "seconds": seconds,
        "per_block": seconds / len(model.model.layers),
        "solver": stats.get("solver_seconds", 0.0),
        "forward": stats.get("forward_seconds", 0.0) + stats.get("capture_seconds", 0.0),
        "model_mib": model_bytes / 2**20,
        "peak_over_model": (peak - before_load) / model_bytes,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--calib", default="128x512,16x256", help="samples x seqlen, comma list")
    parser.add_argument("--compressors", default=",".join(RATIO))
    parser.add_argument("--blocks", type=int, default=None, help="compress only the first K decoder blocks")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        compressor, samples, seqlen = args.child.split(":")
        print(json.dumps(child(args.model, compressor, int(samples), int(seqlen), args.blocks)))
        return
    sizes = [tuple(int(x) for x in size.split("x")) for size in args.calib.split(",")]
    rows = []
    for compressor in args.compressors.split(","):
        from pytest_kick.compress import info

        for samples, seqlen in sizes if info(compressor).calibrated else sizes[:1]:
            command = [sys.executable, __file__, "--model", args.model, "--child", f"{compressor}:{samples}:{seqlen}"]
            if args.blocks:
                command += ["--blocks", str(args.blocks)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode:
                print(f"{compressor} {samples}x{seqlen} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(_line(rows[-1]) if len(rows) > 1 else _header() + "\n" + _line(rows[-1]), flush=True)


def _header() -> str:
    return (
        f"{'compressor':<10}{'ratio':>8}{'calib':>9}{'blocks':>8}{'s/block':>9}{'total s':>9}"
        f"{'solver %':>10}{'forward %':>11}{'peak/model':>12}"
    )


def _line(r: dict) -> str:
    share = (lambda x: f"{100 * x / r['seconds']:.0f}%") if r["seconds"] else (lambda x: "-")
    blocks = f"{r['blocks']}/{r['of_blocks']}"
    return (
        f"{r['compressor']:<10}{r['ratio']:>8}{r['calibration']:>9}{blocks:>8}{r['per_block']:>9.2f}"
        f"{r['seconds']:>9.1f}{share(r['solver']):>10}{share(r['forward']):>11}{r['peak_over_model']:>12.2f}"
    )


if __name__ == "__main__":
    main()
