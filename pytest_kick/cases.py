"""The suite's cases: one (task, model[, compressor, ratio[, recovery]]) each, with its test id and xdist group."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_kick.compress import spec as ratio_spec
from pytest_kick.models import registry


@dataclass(frozen=True)
class KickCase:
    """One collected item: a task on one model, dense or one (compressor, ratio), maybe after a recovery."""

    task: str
    model: str  # as the user typed it (alias, hub id or directory)
    compressor: str | None = None
    ratio: str | None = None  # canonical spec: "0.5", "2:4", "w4g128", "w8a8", "as-given"
    recovery: str | None = None  # recovery method applied to the compressed model (prompt, idp, lora)

    @property
    def is_dense(self) -> bool:
        return self.compressor is None

    @property
    def model_name(self) -> str:
        return registry.resolve(self.model).name

    @property
    def label(self) -> str:
        if self.is_dense:
            return "dense"
        label = self.compressor if self.ratio == ratio_spec.CHECKPOINT else f"{self.compressor}@{self.ratio}"
        return label + (f"+{self.recovery}" if self.recovery else "")

    @property
    def id(self) -> str:
        """Test id: ``[variant-]model-dense`` or ``[variant-]model-compressor-ratio[+recovery]``."""
        variant = self.task.split(":", 1)[1] + "-" if ":" in self.task else ""
        if self.is_dense:
            return f"{variant}{self.model_name}-dense"
        recovery = f"+{self.recovery}" if self.recovery else ""
        if self.ratio == ratio_spec.CHECKPOINT:
            return f"{variant}{self.model_name}-{self.compressor}{recovery}"
        return f"{variant}{self.model_name}-{self.compressor}-{self.ratio}{recovery}"

    @property
    def variant(self) -> tuple:
        return (self.model, self.compressor, self.ratio)

    @property
    def group(self) -> str:
        """xdist group: every item of one (model, compressor, ratio) runs on one worker, whatever the task."""
        return KickCase("", self.model, self.compressor, self.ratio).id


def cases_for(task: str, config) -> list[KickCase]:
    found = []
    for model in config.models:
        found.append(KickCase(task, model))
        for c, r in config.variants:
            found.append(KickCase(task, model, c, r))
            found.extend(KickCase(task, model, c, r, method) for method in config.recover)
    return found
