"""Compressors by name, what each accepts as ``--kick-ratio``, their defaults and where their solver is.

The bundled compressors are ``BUNDLED``; the registry (``pytest_kick.extensions.compressors``) adds the ones
installed packages register under the ``pytest_kick.compressors`` entry-point group. Names and kinds are
known without importing torch, so the config module validates them cheaply; a solver is named as a
``"module:object"`` string and imported when it first runs (``pipeline.compress``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_kick import extensions
from pytest_kick.compress.spec import Spec

SCOPES = ("linear", "block", "linears", "load")  # how the pipeline calls the solver (extensions.CompressorEntry)


@dataclass(frozen=True)
class Compressor:
    name: str
    kinds: tuple[str, ...]  # Spec kinds it accepts: "sparsity", "nm", "quant", "checkpoint"
    defaults: tuple[str, ...]  # --kick-ratio when none is given
    what: str  # one line for help and errors
    calibrated: bool = True  # needs calibration activations
    act_bits: int | None = None  # quant: the activation bits it requires (int8: 8), None = weight-only
    solver: str = ""  # "module:object", called per ``scope`` (see extensions.CompressorEntry)
    scope: str = "linear"  # linear | block | linears | load
    check: str | None = None  # load: "module:object", check(directory, flag) while options are read

    def accepts(self, spec: Spec) -> bool:
        if spec.kind not in self.kinds:
            return False
        return spec.kind != "quant" or spec.act_bits == self.act_bits

    @property
    def quantizer(self) -> bool:
        """Its level is a bit width, not a sparsity."""
        return "quant" in self.kinds and "sparsity" not in self.kinds

    @property
    def searchable(self) -> bool:
        """--kick-search has a level to search: a sparsity, or the bits of a weight-only quantizer (int8 has
        one setting, w8a8, and a checkpoint is what it is)."""
        return "sparsity" in self.kinds or (self.quantizer and self.act_bits is None)


PRUNING = ("sparsity", "nm")
SPARSITIES = ("0.1", "0.3", "0.5")
_C = "pytest_kick.compress."
BUNDLED = (
    Compressor(
        "magnitude",
        PRUNING,
        SPARSITIES,
        "magnitude pruning (per matrix)",
        calibrated=False,
        solver=_C + "magnitude:MagnitudeSolver",
    ),
    Compressor(
        "wanda", PRUNING, SPARSITIES, "Wanda: |W| x input norm, per output row", solver=_C + "wanda:WandaSolver"
    ),
    Compressor(
        "sparsegpt",
        PRUNING,
        SPARSITIES,
        "SparseGPT: OBS pruning with weight updates",
        solver=_C + "sparsegpt:SparseGPTSolver",
    ),
    Compressor("gptq", ("quant",), ("w8", "w4g128"), "GPTQ weight quantization", solver=_C + "gptq:GPTQSolver"),
    Compressor(
        "rtn",
        ("quant",),
        ("w8", "w4g128"),
        "round-to-nearest weight quantization",
        calibrated=False,
        solver=_C + "rtn:RTNSolver",
    ),
    Compressor(
        "awq",
        ("quant",),
        ("w4g128",),
        "AWQ: activation-aware scales, then RTN",
        solver=_C + "awq:awq_block",
        scope="block",
    ),
    Compressor(
        "int8",
        ("quant",),
        ("w8a8",),
        "LLM.int8(): int8 weights and activations, fp outliers",
        calibrated=False,
        act_bits=8,
        solver=_C + "int8:replace_linears",
        scope="linears",
    ),
    Compressor(
        "checkpoint",
        ("checkpoint",),
        ("as-given",),
        "a compressed checkpoint (--kick-compressed)",
        calibrated=False,
        solver=_C + "checkpoint:load_into",
        scope="load",
        check=_C + "checkpoint_header:check_checkpoint",
    ),
)


def names() -> list[str]:
    return extensions.compressors.names()


def info(name: str) -> Compressor:
    return extensions.compressors.get(name)
