"""Freed memory goes back to the system after a decode batch's prompt pass (engines/heap.py), in a fresh process
so nothing else in it has shaped the heap."""

import subprocess
import sys

import pytest

from pytest_kick.engines import heap

SCRIPT = """
from pathlib import Path
from pytest_kick.engines import heap

def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) >> 10

big = bytearray(16 << 20)
del big  # freeing a large block raises glibc's mmap threshold: what follows comes from the heap
blocks = [bytearray(1 << 20) for _ in range(300)]
pin = bytearray(4096)  # a live block above them, so the heap's top cannot shrink by itself
for block in blocks:
    block[::4096] = bytes(len(block[::4096]))
del blocks
kept = rss()
heap.release()
print(kept, rss())
"""


@pytest.mark.skipif(heap._trim is None, reason="malloc_trim is glibc's; elsewhere release() does nothing")
def test_release_returns_freed_heap_memory_to_the_system():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    kept, after = map(int, done.stdout.split())
    assert kept - after > 200  # MiB: the 300 freed blocks were still resident, and are no more
