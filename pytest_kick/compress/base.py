"""What every compressor shares: which weights it may touch, the report of what it achieved, and
putting the dense weights back.

LLM-KICK compresses only the linear layers inside the decoder blocks; embeddings and lm_head stay dense.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pytest_kick.errors import KickError


@dataclass
class CompressionReport:
    compressor: str
    ratio: float  # asked sparsity
    achieved: float  # zeros / weights over every compressed matrix
    per_layer: dict = field(default_factory=dict)  # module name -> achieved sparsity
    seconds: float = 0.0

    def summary(self) -> str:
        lo = min(self.per_layer.values(), default=0.0)
        hi = max(self.per_layer.values(), default=0.0)
        return (f"{self.compressor}@{self.ratio:g}: achieved sparsity {self.achieved:.4f} over "
                f"{len(self.per_layer)} matrices (per matrix {lo:.4f}..{hi:.4f}), {self.seconds:.1f} s")


def decoder_layers(model):
    """The decoder blocks of a causal LM (LLaMA, Gemma, Mistral, Qwen ... keep them in ``model.model.layers``)."""
    import torch

    inner = model.get_decoder() if hasattr(model, "get_decoder") else getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if isinstance(layers, torch.nn.ModuleList) and len(layers) > 0:
        return layers
    count = getattr(model.config, "num_hidden_layers", None)
    for _, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return module
    raise KickError(f"cannot find the decoder blocks of {type(model).__name__}; only decoder-only LMs are supported")


def compressible_linears(model) -> dict:
    """{qualified name: nn.Linear} for every linear layer inside a decoder block."""
    import torch

    layers = decoder_layers(model)
    prefix = next(name for name, module in model.named_modules() if module is layers)
    found = {}
    for index, block in enumerate(layers):
        for name, module in block.named_modules():
            if isinstance(module, torch.nn.Linear):
                found[f"{prefix}.{index}.{name}"] = module
    if not found:
        raise KickError(f"no linear layers found in the decoder blocks of {type(model).__name__}")
    return found


def sparsity(weight) -> float:
    return float((weight == 0).sum().item()) / weight.numel()


def check_achieved(report: CompressionReport, sizes: dict, zeros_before: dict) -> None:
    """Fail loudly when a matrix's sparsity misses what was asked by more than rounding to whole weights.

    What can be asked of a matrix is max(ratio, the share of zeros it already had): dequantized GGUF
    weights hold exact zeros (gemma3-270m: up to 10.9 % in one matrix), which no pruner can undo.
    """
    for name, achieved in report.per_layer.items():
        expected = max(report.ratio, zeros_before[name])
        if abs(achieved - expected) > 1.0 / sizes[name] + 1e-9:
            raise KickError(
                f"{report.compressor}@{report.ratio:g}: {name} reached sparsity {achieved:.6f}, not the expected "
                f"{expected:.6f} (asked {report.ratio:g}, dense already {zeros_before[name]:.6f})"
            )


class DenseBackup:
    """The dense values of every weight a compressor may change, copied once, put back on request.

    Memory: one copy of the decoder-block linear weights (on CPU). Only these are ever touched, so
    restoring them gives back the dense model bit for bit.
    """

    def __init__(self, model):
        self.linears = compressible_linears(model)
        self.saved = {name: m.weight.detach().to("cpu", copy=True) for name, m in self.linears.items()}

    def restore(self) -> None:
        import torch

        with torch.no_grad():
            for name, module in self.linears.items():
                module.weight.copy_(self.saved[name].to(module.weight.device))
