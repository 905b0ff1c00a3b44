"""What a compressor is asked for: a sparsity, an N:M pattern or a quantization grid. No torch here, so
the config module can validate ``--kick-ratio`` cheaply.

Spellings (``--kick-ratio``):
- ``0.5``: unstructured sparsity, a fraction of weights set to zero, in [0, 1).
- ``2:4``, ``4:8``: N:M sparsity as LLM-KICK counts it: N zeros in every group of M consecutive inputs
  of a weight row (so ``2:4`` is 50 % sparse).
- ``w4g128``, ``w3g128``, ``w8``: weight-only quantization to that many bits, with one (scale, zero)
  per group of that many inputs (``w8`` without ``g``: one per output row).
- ``w8a8``: LLM.int8()-style int8 weights and activations (compressor ``int8``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pytest_kick.errors import KickError

QUANT_BITS = (2, 3, 4, 8)
_QUANT = re.compile(r"w(\d+)(?:g(\d+))?(?:a(\d+))?")
CHECKPOINT = "as-given"  # the "ratio" of a user's compressed checkpoint: whatever it holds
_NM = re.compile(r"(\d+):(\d+)")


@dataclass(frozen=True)
class Spec:
    text: str  # canonical spelling, used in test ids, reports and cache keys
    kind: str  # "sparsity", "nm", "quant" or "checkpoint" (a compressed model given as is)
    sparsity: float | None = None  # fraction of zeros asked (sparsity and nm)
    n: int | None = None  # nm: zeros per group
    m: int | None = None  # nm: group size
    bits: int | None = None  # quant: weight bits
    group: int | None = None  # quant: inputs per (scale, zero); None = one per output row
    act_bits: int | None = None  # quant: activation bits (w8a8), None = weight-only

    @property
    def is_pruning(self) -> bool:
        return self.kind in ("sparsity", "nm")

    def __str__(self) -> str:
        return self.text


def parse(text: str) -> Spec:
    """A Spec from its spelling; KickError with the accepted spellings otherwise."""
    raw = str(text).strip().lower()
    if raw == CHECKPOINT:
        return Spec(CHECKPOINT, "checkpoint")
    nm = _NM.fullmatch(raw)
    if nm:
        n, m = int(nm.group(1)), int(nm.group(2))
        if not 0 < n < m:
            raise KickError(f"{text!r}: an N:M pattern needs 0 < N < M (N zeros in every M weights), e.g. 2:4")
        return Spec(f"{n}:{m}", "nm", sparsity=n / m, n=n, m=m)
    quant = _QUANT.fullmatch(raw)
    if quant:
        bits = int(quant.group(1))
        group = int(quant.group(2)) if quant.group(2) else None
        act = int(quant.group(3)) if quant.group(3) else None
        if bits not in QUANT_BITS:
            raise KickError(f"{text!r}: weight bits must be one of {', '.join(map(str, QUANT_BITS))}")
        if group is not None and group < 1:
            raise KickError(f"{text!r}: the group size must be a positive number of inputs, e.g. w4g128")
        if act is not None and (act != 8 or bits != 8 or group is not None):
            raise KickError(f"{text!r}: the only weight+activation spec is w8a8 (LLM.int8())")
        canonical = f"w{bits}" + (f"g{group}" if group else "") + (f"a{act}" if act else "")
        return Spec(canonical, "quant", bits=bits, group=group, act_bits=act)
    try:
        value = float(raw)
    except ValueError:
        raise KickError(
            f"{text!r} is not a compression ratio; give a sparsity in [0, 1) such as 0.5, an N:M pattern "
            f"such as 2:4, or a quantization spec such as w4g128, w8 or w8a8"
        ) from None
    if not 0 <= value < 1:
        raise KickError(f"{raw} is outside [0, 1); a sparsity is the fraction of weights set to zero")
    short = f"{value:g}"  # 0.5, not 0.50; the full repr when :g would round (0.1234567 stays itself)
    return Spec(short if float(short) == value else repr(value), "sparsity", sparsity=value)
