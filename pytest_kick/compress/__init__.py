"""Compressors by name, what each accepts as ``--kick-ratio``, and their defaults.

Names are listed here without importing torch, so the config module can validate them cheaply; a
compressor's module is imported when it is first used (see ``pipeline.compress``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_kick.compress.spec import Spec


@dataclass(frozen=True)
class Compressor:
    name: str
    kinds: tuple[str, ...]  # Spec kinds it accepts: "sparsity", "nm", "quant"
    defaults: tuple[str, ...]  # --kick-ratio when none is given
    what: str  # one line for help and errors
    calibrated: bool = True  # needs calibration activations
    act_bits: int | None = None  # quant: the activation bits it requires (int8: 8), None = weight-only

    def accepts(self, spec: Spec) -> bool:
        if spec.kind not in self.kinds:
            return False
        return spec.kind != "quant" or spec.act_bits == self.act_bits


PRUNING = ("sparsity", "nm")
SPARSITIES = ("0.1", "0.3", "0.5")
COMPRESSORS = {c.name: c for c in (
    Compressor("magnitude", PRUNING, SPARSITIES, "magnitude pruning (per matrix)", calibrated=False),
    Compressor("wanda", PRUNING, SPARSITIES, "Wanda: |W| x input norm, per output row"),
    Compressor("sparsegpt", PRUNING, SPARSITIES, "SparseGPT: OBS pruning with weight updates"),
    Compressor("gptq", ("quant",), ("w8", "w4g128"), "GPTQ weight quantization"),
    Compressor("rtn", ("quant",), ("w8", "w4g128"), "round-to-nearest weight quantization", calibrated=False),
    Compressor("awq", ("quant",), ("w4g128",), "AWQ: activation-aware scales, then RTN"),
    Compressor("int8", ("quant",), ("w8a8",), "LLM.int8(): int8 weights and activations, fp outliers",
               calibrated=False, act_bits=8),
    Compressor("checkpoint", ("checkpoint",), ("as-given",), "a compressed checkpoint (--kick-compressed)",
               calibrated=False),
)}


def names() -> list[str]:
    return list(COMPRESSORS)


def info(name: str) -> Compressor:
    return COMPRESSORS[name]
