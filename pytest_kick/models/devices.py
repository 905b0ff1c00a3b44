"""Which device a (possibly xdist) worker runs on, and which dtype.

Pure functions of their inputs, so the pinning logic is tested without a GPU.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping

from pytest_kick.errors import KickError


def worker_index(worker_id: str | None) -> int | None:
    """0 for xdist worker "gw0", 3 for "gw3"; None outside xdist."""
    if not worker_id:
        return None
    match = re.fullmatch(r"gw(\d+)", worker_id)
    return int(match.group(1)) if match else None


def pick_device(
    requested: str,
    worker_id: str | None,
    env: Mapping[str, str],
    cuda_count: Callable[[], int],
    mps_available: Callable[[], bool] = lambda: False,
) -> str:
    """The torch device string this process should use.

    ``cuda`` without an index means "one GPU per xdist worker": worker gwN takes visible GPU
    N mod k. When CUDA_VISIBLE_DEVICES lists k devices, torch numbers them 0..k-1, so gwN runs on
    cuda:(N mod k), i.e. the (N mod k)-th entry of that list. An explicit ``cuda:I`` is kept as given.
    """
    if requested == "auto":
        if cuda_count() > 0:
            requested = "cuda"
        elif mps_available():
            return "mps"
        else:
            return "cpu"
    if requested == "mps" and not mps_available():
        raise KickError("--kick-device mps: MPS is not available on this machine; use --kick-device cpu")
    if requested.startswith("cuda:"):
        index, count = int(requested.split(":")[1]), cuda_count()
        if index >= count:
            raise KickError(f"--kick-device {requested}: this machine has {count} visible CUDA device(s)")
    if requested != "cuda":
        return requested
    visible = [v.strip() for v in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    count = len(visible) if "CUDA_VISIBLE_DEVICES" in env else cuda_count()
    if count == 0:
        raise KickError("--kick-device cuda: no CUDA device is visible; use --kick-device cpu")
    index = worker_index(worker_id)
    return f"cuda:{(index or 0) % count}"


def pick_dtype(requested: str, device: str) -> str:
    """auto: float32 on CPU (half precision is slow and lossy there), float16 on accelerators as LLM-KICK ran."""
    if requested != "auto":
        return requested
    return "float32" if device == "cpu" else "float16"
