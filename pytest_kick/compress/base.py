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
    ratio: str  # the asked spec: "0.5", "2:4", "w4g128", ...
    achieved: float  # sparsity: zeros / weights over every compressed matrix
    per_layer: dict = field(default_factory=dict)  # module name -> achieved sparsity
    seconds: float = 0.0
    bits: int | None = None  # quantizers: the widest grid measured, ceil(log2(max levels in a group))
    stats: dict = field(default_factory=dict)  # seconds per phase and per layer, calibration, ragged groups ...
    undo: object = None  # a callable putting replaced modules back (int8), else None

    def summary(self) -> str:
        lo = min(self.per_layer.values(), default=0.0)
        hi = max(self.per_layer.values(), default=0.0)
        head = f"{self.compressor}@{self.ratio}: "
        if self.bits is not None:
            head += f"at most {self.bits}-bit levels per group, "
        return (
            head + f"achieved sparsity {self.achieved:.4f} over {len(self.per_layer)} matrices "
            f"(per matrix {lo:.4f}..{hi:.4f}), {self.seconds:.1f} s"
        )

    def as_record(self) -> dict:
        """What the JSON report keeps of it."""
        return {
            "compressor": self.compressor,
            "ratio": self.ratio,
            "sparsity": self.achieved,
            "bits": self.bits,
            "seconds": self.seconds,
            **{k: v for k, v in self.stats.items() if k != "per_layer_seconds"},
        }


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


def token_rows(inp, columns: int, device):
    """A linear layer's input ``[..., columns]`` as float32 rows ``[tokens, columns]`` on ``device``."""
    import torch

    if inp.shape[-1] != columns:
        raise ValueError(f"input has {inp.shape[-1]} features, the layer {columns}")
    return inp.detach().reshape(-1, columns).to(device=device, dtype=torch.float32)


def accumulate_hessian(H, tokens: int, x) -> int:
    """Fold rows ``x`` into ``H = 2/n sum_t x_t x_t^T`` (a running average over the n tokens seen, in
    place, float32; SparseGPT's and GPTQ's layer Hessian). Returns the new token count."""
    import math

    total = tokens + x.shape[0]
    if x.shape[0]:
        H.mul_(tokens / total)
        x = x * math.sqrt(2.0 / total)
        H.addmm_(x.t(), x)
    return total


def sparsity(weight) -> float:
    return float((weight == 0).sum().item()) / weight.numel()


def check_sparsity(report: CompressionReport, expected: dict) -> None:
    """Fail loudly when a matrix's zero count is not what the pruner's counting rule gives (masks.py):
    the asked share, or the zeros the dense matrix already had when those are more (dequantized GGUF
    weights hold exact zeros: gemma3-270m up to 10.9 % in one matrix)."""
    for name, (zeros, want, size) in expected.items():
        if zeros != want:
            raise KickError(
                f"{report.compressor}@{report.ratio}: {name} has {zeros} zeros ({zeros / size:.6f}), not the "
                f"{want} ({want / size:.6f}) its ratio asks"
            )


def check_bits(report: CompressionReport, levels: dict, bits: int) -> None:
    """Fail loudly when some (row, group) of a quantized matrix holds more than 2^bits distinct values."""
    for name, most in levels.items():
        if most > 2**bits:
            raise KickError(
                f"{report.compressor}@{report.ratio}: {name} has {most} distinct values in one group, "
                f"more than the {2**bits} of a {bits}-bit grid"
            )


class DenseWeights:
    """Puts back the dense values of the parameters a compressor changed, and only those.

    When the model was loaded from safetensors files that hold every such parameter under its name
    (converted GGUF models, local directories), the dense values are read back from those files, so
    any number of compressed variants cost one model in memory plus one tensor. Otherwise (a random
    test model, a hub checkpoint with other names), each parameter is copied to CPU the first time a
    compressor is about to change it.
    """

    def __init__(self, model, weights_dir=None):
        self.params = dict(model.named_parameters())
        self.files: dict = {}
        self.saved: dict = {}
        if weights_dir is not None:
            self.files = _safetensors_index(weights_dir)
        self.dirty: set = set()

    def remember(self, names) -> None:
        """Call before changing ``names``: keeps their dense values (memory mode) and marks them dirty."""
        for name in names:
            if name not in self.params:
                raise KickError(f"no parameter {name} in the model")
            if name not in self.files and name not in self.saved:
                self.saved[name] = self.params[name].detach().to("cpu", copy=True)
            self.dirty.add(name)

    def restore(self) -> None:
        import torch
        from safetensors import safe_open

        by_file: dict = {}
        for name in sorted(self.dirty):
            if name in self.saved:
                with torch.no_grad():
                    self.params[name].copy_(self.saved[name].to(self.params[name].device))
            else:
                by_file.setdefault(self.files[name], []).append(name)
        for path, names in by_file.items():
            with safe_open(str(path), framework="pt") as handle, torch.no_grad():
                for name in names:
                    self.params[name].copy_(handle.get_tensor(name).to(self.params[name].device))
        self.dirty.clear()

    @property
    def mode(self) -> str:
        return "disk" if self.files else "memory"


def _safetensors_index(directory) -> dict:
    """{parameter name: safetensors file} for every tensor in a model directory."""
    import json
    from pathlib import Path

    from safetensors import safe_open

    directory = Path(directory)
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        mapping = json.loads(index.read_text())["weight_map"]
        return {name: directory / file for name, file in mapping.items()}
    found = {}
    for path in sorted(directory.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            found.update({name: path for name in handle.keys()})
    return found
