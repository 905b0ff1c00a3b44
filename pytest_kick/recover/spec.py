"""What a recovery run is: the method, its size, and the training settings (no torch here).

Sizes are chosen so the methods compare by parameter count: ``prompt`` (n virtual tokens) and ``idp``
(m prompts of L tokens) train the same number of parameters by default (20 token embeddings each), and
``lora`` uses peft's defaults for LLaMA-style models (rank 8 on ``q_proj`` and ``v_proj``), so its
count is the reference the other two are reported against.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from pytest_kick.errors import KickError

METHODS = ("prompt", "idp", "lora")
# Learning rates by method (AdamW): soft prompts take large steps (peft's prompt-tuning examples use
# 3e-2), LoRA small ones.
DEFAULT_LR = {"prompt": 3e-2, "idp": 3e-2, "lora": 1e-3}
SIZES = {  # the size settings each method reads, with their defaults
    "prompt": {"tokens": 20},
    "idp": {"prompts": 4, "tokens": 5},
    "lora": {"rank": 8, "alpha": 16, "targets": "q_proj,v_proj"},
}


@dataclass(frozen=True)
class RecoverySpec:
    """One recovery method and everything that changes what it trains."""

    method: str
    steps: int = 100
    lr: float | None = None  # None: DEFAULT_LR[method]
    seed: int = 0
    batch: int = 4  # training windows per step
    seqlen: int = 256  # tokens per training window
    sizes: dict = field(default_factory=dict)  # overrides of SIZES[method]

    def __post_init__(self):
        if self.method not in METHODS:
            raise KickError(f"unknown recovery method {self.method!r}; choose from none, {', '.join(METHODS)}")
        unknown = sorted(set(self.sizes) - set(SIZES[self.method]))
        if unknown:
            raise KickError(f"recovery method {self.method} has no size setting {', '.join(unknown)}; "
                            f"it takes {', '.join(SIZES[self.method])}")
        for name, value in (("steps", self.steps), ("batch", self.batch), ("seqlen", self.seqlen)):
            if not isinstance(value, int) or value < 1:
                raise KickError(f"recovery {name} must be a positive integer, got {value!r}")
        if self.lr is not None and not self.lr > 0:
            raise KickError(f"recovery learning rate must be positive, got {self.lr!r}")
        for name, value in self.size.items():
            if name in ("tokens", "prompts", "rank", "alpha") and (not isinstance(value, int) or value < 1):
                raise KickError(f"recovery {self.method} {name} must be a positive integer, got {value!r}")

    @property
    def learning_rate(self) -> float:
        return DEFAULT_LR[self.method] if self.lr is None else self.lr

    @property
    def size(self) -> dict:
        """The method's size settings, defaults filled in."""
        return {**SIZES[self.method], **self.sizes}

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
    methods: list[str | None] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part == "none":
            method = None
        elif part in METHODS:
            method = part
        else:
            raise KickError(f"--kick-recover: unknown method {part!r}; choose from none, {', '.join(METHODS)}")
        if method not in methods:
            methods.append(method)
    if not methods:
        raise KickError("--kick-recover needs at least one of none, " + ", ".join(METHODS))
    return methods


def parse_sizes(text: str) -> dict:
    """``"prompt.tokens=40,lora.rank=4,lora.targets=q_proj+v_proj"`` -> {method: {setting: value}}."""
    sizes: dict = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, eq, value = part.partition("=")
        method, dot, setting = name.strip().partition(".")
        if not eq or not dot or method not in SIZES or setting not in SIZES[method]:
            known = ", ".join(f"{m}.{s}" for m in METHODS for s in SIZES[m])
            raise KickError(f"--kick-recover-size: cannot read {part!r}; write SETTING=VALUE with SETTING one of {known}")
        value = value.strip()
        if setting == "targets":
            parsed = ",".join(t for t in value.replace("+", ",").split(",") if t)
        else:
            try:
                parsed = int(value)
            except ValueError:
                raise KickError(f"--kick-recover-size: {name} must be an integer, got {value!r}") from None
        sizes.setdefault(method, {})[setting] = parsed
    return sizes
