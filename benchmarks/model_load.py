"""Model load time: transformers' GGUF loader (the reference) vs pytest-kick's cached safetensors.

Run by hand, never from the tests:  .venv/bin/python benchmarks/model_load.py [smollm2-135m|gemma3-270m]
Prints, side by side on this machine: the reference GGUF load, our first load (GGUF conversion + cache
write + load) into an empty cache, and our later loads from the cache (best of 3).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def main(name: str = "smollm2-135m") -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pytest_kick.models.loading import gguf_path, load
    from pytest_kick.models.registry import resolve

    source = resolve(name)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        path = gguf_path(source, cache)

        def reference():
            AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            return AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)

        ref_s, _ = timed(reference)
        first_s, _ = timed(lambda: load(source, cache, "cpu", "float32"))
        warm = [timed(lambda: load(source, cache, "cpu", "float32"))[0] for _ in range(3)]

    print(
        f"model: {name} ({path.name}, {path.stat().st_size / 2**20:.0f} MiB GGUF), "
        f"torch threads {torch.get_num_threads()}"
    )
    print(f"{'what':<52}{'seconds':>10}")
    print(f"{'reference: transformers from_pretrained(gguf_file=...)':<52}{ref_s:>10.2f}")
    print(f"{'pytest-kick first load (convert + write cache + load)':<52}{first_s:>10.2f}")
    print(f"{'pytest-kick cached load (best of 3)':<52}{min(warm):>10.2f}")
    print(f"speed-up of a cached load over the reference: {ref_s / min(warm):.0f}x")


if __name__ == "__main__":
    main(*sys.argv[1:])
