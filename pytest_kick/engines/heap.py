"""Hand freed memory back to the operating system after a large transient (a decode batch's prompt pass).

glibc's allocator raises its mmap threshold each time a large block is freed, so after a few prompt passes their
activations come from the heap and, once freed, stay in the process: SmolLM2-135M's long-summarization case peaked
at 2,564 MiB, 1,972 MiB with a fixed threshold (MALLOC_MMAP_THRESHOLD_=131072; benchmarks/decode_memory.py).
``release()`` asks glibc to return the free pages (``malloc_trim(0)``; after every prompt pass: 2,385 MiB); elsewhere
it does nothing. No torch here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_trim = None
if sys.platform.startswith("linux"):
    try:
        _trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        _trim = None


def release() -> None:
    """Return the allocator's free pages to the operating system (glibc only)."""
    if _trim is not None:
        _trim(0)
