"""LLM.int8()-style W8A8 linears (Dettmers et al. 2022, "LLM.int8(): 8-bit Matrix Multiplication for
Transformers at Scale"), simulated in torch on CPU.

What: ``Int8Linear`` replaces an ``nn.Linear`` and computes ``y = x W^T + b`` as
- vector-wise int8 quantization of the weights: one absmax scale per output row,
  ``W_i8 = round(127 * W / absmax_row)`` (stored as int8 once);
- mixed-precision decomposition: an input feature (column of x) is an *outlier* when any of its values
  in the current input has ``|x| > threshold`` (6.0, the paper's and bitsandbytes' default). Outlier
  columns are multiplied in floating point with the original (unquantized) weight columns;
- vector-wise int8 quantization of the remaining activations: one absmax scale per token row over the
  non-outlier features, ``X_i8 = round(127 * X / absmax_token)``;
- the int8 x int8 product is exact integer arithmetic (done in float64, exact for any sum below 2**53;
  int8 products summed over <= 2**38 inputs), then rescaled by ``absmax_token * absmax_row / 127**2``.

Why: it is the ``w8a8`` point of LLM-KICK's quantization comparison; simulating it (instead of calling
bitsandbytes kernels) keeps it CPU-only and deterministic while doing the same integer math.

``replace_linears`` swaps modules in place and returns an undo that puts the very same ``nn.Linear``
objects back: their weights are never written, so restoring is exact.
"""

from __future__ import annotations

import torch

THRESHOLD = 6.0  # LLM.int8() outlier threshold (paper, Section 3.2; bitsandbytes' llm_int8_threshold)


class Int8Linear(torch.nn.Module):
    def __init__(self, linear: torch.nn.Linear, threshold: float = THRESHOLD):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.threshold = float(threshold)
        weight = linear.weight.detach()
        absmax = weight.float().abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny)
        self.register_buffer("weight_int8", torch.round(weight.float() * (127.0 / absmax[:, None])).to(torch.int8))
        self.register_buffer("weight_absmax", absmax)
        # the original weights, shared (not copied): outlier columns are computed with them
        self.register_buffer("weight_fp", weight, persistent=False)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach(), persistent=False)
        self.calls = 0
        self.outlier_columns = 0  # sum over calls of the number of outlier features
        self.columns = 0  # sum over calls of in_features
        self.ever_outlier = torch.zeros(self.in_features, dtype=torch.bool)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, threshold={self.threshold}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, self.in_features).float()
        outliers = (flat.abs() > self.threshold).any(dim=0)
        regular = flat.masked_fill(outliers[None, :], 0.0)
        absmax = regular.abs().amax(dim=1)
        absmax = torch.where(absmax > 0, absmax, torch.ones_like(absmax))
        x_int8 = torch.round(regular * (127.0 / absmax[:, None])).clamp(-127, 127).to(torch.int8)
        exact = x_int8.double() @ self.weight_int8.double().t()  # exact integer sums
        out = (exact * (absmax.double()[:, None] * self.weight_absmax.double()[None, :] / 127.0**2)).float()
        if bool(outliers.any()):
            columns = outliers.nonzero().flatten()
            out = out + flat[:, columns] @ self.weight_fp[:, columns].float().t()
        if self.bias is not None:
            out = out + self.bias.float()
        self.calls += 1
        self.outlier_columns += int(outliers.sum())
        self.columns += self.in_features
        self.ever_outlier |= outliers.to(self.ever_outlier.device)
        return out.to(x.dtype).reshape(*shape[:-1], self.out_features)

    def stats(self) -> dict:
        return {
            "calls": self.calls,
            "outlier_fraction": self.outlier_columns / self.columns if self.columns else 0.0,
            "ever_outlier_fraction": float(self.ever_outlier.float().mean()),
        }


class Undo:
    """Calling it puts the original ``nn.Linear`` objects back (idempotent); ``stats()`` summarises the
    outlier features seen while the int8 modules were in place."""

    def __init__(self, swaps: list, threshold: float):
        self.swaps = swaps  # [(name, parent, attribute, original Linear, Int8Linear)]
        self.threshold = threshold
        self.modules = {name: new for name, _, _, _, new in swaps}

    def __call__(self) -> None:
        for _, parent, attribute, original, new in self.swaps:
            if getattr(parent, attribute) is new:
                setattr(parent, attribute, original)

    def stats(self) -> dict:
        per_module = {name: module.stats() for name, module in self.modules.items()}
        outliers = sum(m.outlier_columns for m in self.modules.values())
        columns = sum(m.columns for m in self.modules.values())
        ever = sum(int(m.ever_outlier.sum()) for m in self.modules.values())
        features = sum(m.in_features for m in self.modules.values())
        return {
            "threshold": self.threshold,
            "outlier_fraction": outliers / columns if columns else 0.0,  # per call, averaged over all calls
            "ever_outlier_fraction": ever / features if features else 0.0,  # flagged at least once
            "per_module": per_module,
        }


def replace_linears(linears: dict, root: torch.nn.Module, threshold: float = THRESHOLD) -> Undo:
    """Swap every ``{qualified name (relative to root): nn.Linear}`` for an :class:`Int8Linear`, in place."""
    swaps = []
    try:
        for name, linear in linears.items():
            parent_name, _, attribute = name.rpartition(".")
            parent = root.get_submodule(parent_name) if parent_name else root
            if getattr(parent, attribute) is not linear:
                raise ValueError(f"{name} is not the given module under {type(root).__name__}")
            new = Int8Linear(linear, threshold)
            setattr(parent, attribute, new)
            swaps.append((name, parent, attribute, linear, new))
    except BaseException:
        Undo(swaps, threshold)()
        raise
    return Undo(swaps, threshold)
