"""What a recovery run is: the method, its size, and the training settings (no torch here).

Sizes are chosen so the methods compare by parameter count: ``prompt`` (n virtual tokens) and ``idp``
(m prompts of L tokens) train the same number of parameters by default (20 token embeddings each), and
``lora`` uses peft's defaults for LLaMA-style models (rank 8 on ``q_proj`` and ``v_proj``), so its
count is the reference the other two are reported against.

The methods are the registry's (``extensions.recovery``): ``BUNDLED`` below, plus those installed packages
register under the ``pytest_kick.recovery`` entry-point group. Each names its class as ``"module:object"``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from pytest_kick import extensions
from pytest_kick.errors import KickError


@dataclass(frozen=True)
class Method:
    """A recovery method in the registry (extensions.RecoveryEntry documents each field)."""

    name: str
    what: str
    method: str  # "module:object": object(spec) with initial(model, seed), attach(model, params), input_dependent
    sizes: dict  # the size settings it reads, with their defaults (a str default: a comma list, e.g. targets)
    lr: float  # its default learning rate (AdamW)
    reference: bool = False  # the method the others' parameter counts are reported against


# Soft prompts take large steps (peft's prompt-tuning examples use 3e-2), LoRA small ones.
BUNDLED = (
    Method(
        "prompt",
        "soft-prompt tuning: n virtual tokens in front of every input",
        "pytest_kick.recover.prompt:PromptTuning",
        {"tokens": 20},
        3e-2,
    ),
    Method(
        "idp",
        "inference-time dynamic prompting: a pool of soft prompts, one chosen per input",
        "pytest_kick.recover.idp:DynamicPrompting",
        {"prompts": 4, "tokens": 5},
        3e-2,
    ),
    Method(
        "lora",
        "low-rank adapters on decoder-block linears (peft)",
        "pytest_kick.recover.lora:LoRA",
        {"rank": 8, "alpha": 16, "targets": "q_proj,v_proj"},
        1e-3,
        reference=True,
    ),
)


def methods() -> list[str]:
    """Every recovery method's name (bundled and registered)."""
    return extensions.recovery.names()


def sizes(method: str) -> dict:
    """The size settings ``method`` reads, with their defaults."""
    return dict(extensions.recovery.get(method).sizes)


def reference() -> str:
    """The method the others' parameter counts are reported against (LoRA)."""
    return next(
        (m.name for m in extensions.recovery.entries().values() if getattr(m, "reference", False)), methods()[-1]
    )


@dataclass(frozen=True)
class RecoverySpec:
    """One recovery method and everything that changes what it trains."""

    method: str
    steps: int = 100
    lr: float | None = None  # None: the method's default
    seed: int = 0
    batch: int = 4  # training windows per step
    seqlen: int = 256  # tokens per training window
    sizes: dict = field(default_factory=dict)  # overrides of the method's sizes

    def __post_init__(self):
        if self.method not in extensions.recovery:
            raise KickError(f"unknown recovery method {self.method!r}; choose from none, {', '.join(methods())}")
        unknown = sorted(set(self.sizes) - set(sizes(self.method)))
        if unknown:
            raise KickError(
                f"recovery method {self.method} has no size setting {', '.join(unknown)}; "
                f"it takes {', '.join(sizes(self.method))}"
            )
        for name, value in (("steps", self.steps), ("batch", self.batch), ("seqlen", self.seqlen)):
            if not isinstance(value, int) or value < 1:
                raise KickError(f"recovery {name} must be a positive integer, got {value!r}")
        if self.lr is not None and not self.lr > 0:
            raise KickError(f"recovery learning rate must be positive, got {self.lr!r}")
        for name, value in self.size.items():
            if isinstance(sizes(self.method)[name], int) and (not isinstance(value, int) or value < 1):
                raise KickError(f"recovery {self.method} {name} must be a positive integer, got {value!r}")

    @property
    def learning_rate(self) -> float:
        return extensions.recovery.get(self.method).lr if self.lr is None else self.lr

    @property
    def size(self) -> dict:
        """The method's size settings, defaults filled in."""
        return {**sizes(self.method), **self.sizes}

    @property
    def label(self) -> str:
        """``prompt``, ``idp``, ``lora``: the suffix of a recovered case's id (``...-wanda-0.5+lora``)."""
        return self.method

    def describe(self) -> str:
        size = ", ".join(f"{k} {v}" for k, v in self.size.items())
        return f"{self.method} ({size}; {self.steps} steps, lr {self.learning_rate:g}, seed {self.seed})"

    def key(self) -> dict:
        """Everything of the spec that changes the trained parameters (a part of the cache key)."""
        return {**asdict(self), "lr": self.learning_rate, "sizes": self.size}

    def with_size(self, **sizes) -> "RecoverySpec":
        return replace(self, sizes={**self.sizes, **sizes})


def parse_methods(text: str) -> list[str | None]:
    """``"none,prompt,lora"`` -> ``[None, "prompt", "lora"]`` (None: the compressed model as is)."""
    chosen: list[str | None] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part == "none":
            method = None
        elif part in extensions.recovery:
            method = part
        else:
            raise KickError(f"--kick-recover: unknown method {part!r}; choose from none, {', '.join(methods())}")
        if method not in chosen:
            chosen.append(method)
    if not chosen:
        raise KickError("--kick-recover needs at least one of none, " + ", ".join(methods()))
    return chosen


def parse_sizes(text: str) -> dict:
    """``"prompt.tokens=40,lora.rank=4,lora.targets=q_proj+v_proj"`` -> {method: {setting: value}}."""
    found: dict = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, eq, value = part.partition("=")
        method, dot, setting = name.strip().partition(".")
        if not eq or not dot or method not in extensions.recovery or setting not in sizes(method):
            known = ", ".join(f"{m}.{s}" for m in methods() for s in sizes(m))
            raise KickError(
                f"--kick-recover-size: cannot read {part!r}; write SETTING=VALUE with SETTING one of {known}"
            )
        value = value.strip()
        if isinstance(sizes(method)[setting], str):  # a comma list (lora.targets=q_proj+v_proj)
            parsed = ",".join(t for t in value.replace("+", ",").split(",") if t)
        else:
            try:
                parsed = int(value)
            except ValueError:
                raise KickError(f"--kick-recover-size: {name} must be an integer, got {value!r}") from None
        found.setdefault(method, {})[setting] = parsed
    return found
