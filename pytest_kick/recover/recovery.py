"""Train (or load) one recovery method for the compressed model in memory, and apply it around evaluation.

    recovery = recover(model, tokenizer, RecoverySpec("lora"), cache_dir=..., key=variant_key)
    with recovery.applied(model):
        results = engine.loglikelihood(requests)    # the engine needs to know nothing about recovery
    # here the model is the compressed model again, module for module and bit for bit

``key`` is the caller's description of the compressed variant (model identity, compressor and its
settings, ratio, calibration data and seed); the cache key adds the recovery spec, the training data's
digest, a fingerprint of the compressed weights themselves, dtype and package versions.
"""

from __future__ import annotations

import importlib.metadata
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from pytest_kick import extensions
from pytest_kick.errors import KickError
from pytest_kick.hashing import text_hash
from pytest_kick.recover import cache, data, train
from pytest_kick.recover.spec import RecoverySpec


def method_class(name: str):
    """The class of a recovery method, from its registry entry (``method``: "module:object")."""
    return extensions.resolve(extensions.recovery.get(name).method, f"recovery method {name}")


def method_for(spec: RecoverySpec):
    """The method ``spec`` names, built from its registry entry: ``initial``, ``attach``, ``parameter_count``."""
    return method_class(spec.method)(spec)


def parameter_count(model, spec: RecoverySpec) -> int:
    """Extra parameters ``spec`` adds to ``model``, from shapes alone (no training)."""
    return method_for(spec).parameter_count(model)


def weights_fingerprint(model, stride: int = 997) -> str:
    """A cheap content hash of every parameter: shape, dtype and every ``stride``-th element. Two compressed
    variants differ in far more elements than it skips, so it tells them apart without hashing the model."""
    import torch

    parts = []
    for name, p in model.named_parameters():
        flat = p.detach().reshape(-1)[::stride].to("cpu", torch.float32)
        parts.append(f"{name}:{tuple(p.shape)}:{p.dtype}:{text_hash(flat.numpy().tobytes().hex())}")
    return text_hash(*parts)


def _versions() -> dict:
    found = {}
    for package in ("torch", "transformers", "peft"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


@dataclass
class Recovery:
    """Trained recovery parameters for one compressed model, ready to apply around evaluation."""

    spec: RecoverySpec
    params: dict  # name -> tensor (on the model's device, no gradient)
    extra_parameters: int
    training_seconds: float  # of the run that trained them (also when loaded from the cache)
    cached: bool  # loaded from the cache: nothing was trained now
    losses: list = field(default_factory=list)  # training loss per step
    usage: list = field(default_factory=list)  # IDP: how many training inputs chose each prompt
    evaluation_usage: list = field(default_factory=list)  # IDP: choices of the inputs of the last applied()

    @property
    def method(self) -> str:
        return self.spec.method

    @property
    def input_dependent(self) -> bool:
        """True when the added computation depends on the whole input (IDP): an engine must then not reuse
        a shared prefix's KV cache, which would fix the choice from the prefix alone."""
        return bool(method_class(self.spec.method).input_dependent)

    @contextmanager
    def applied(self, model):
        """The model with the recovery on; exactly the model it was on exit (even on error)."""
        attached = method_for(self.spec).attach(model, self.params)
        try:
            yield model
        finally:
            attached.remove()
            self.evaluation_usage = list(getattr(attached, "usage", []))

    def record(self, lora_parameters: int | None = None) -> dict:
        """What a report keeps of it."""
        return {
            "method": self.method,
            "spec": self.spec.key(),
            "extra_parameters": self.extra_parameters,
            "ratio_to_lora": (self.extra_parameters / lora_parameters) if lora_parameters else None,
            "training_seconds": self.training_seconds,
            "cached": self.cached,
            "first_loss": self.losses[0] if self.losses else None,
            "last_loss": self.losses[-1] if self.losses else None,
            **({"prompt_usage": {"training": self.usage, "evaluation": self.evaluation_usage}} if self.usage else {}),
        }


def recover(
    model,
    tokenizer,
    spec: RecoverySpec,
    corpus=None,
    cache_dir=None,
    key: dict | None = None,
    progress=None,
    notify=None,
) -> Recovery:
    """Train ``spec`` on the compressed ``model`` (frozen), or load what an earlier run trained under the
    same key. ``corpus``: :class:`pytest_kick.recover.data.Corpus` (default: the bundled C4 sample).
    ``progress(step, steps)`` while training; ``notify(text)`` for one-line messages."""
    import torch

    if corpus is None:
        corpus = data.load_corpus(notify=notify)
    device = model.get_input_embeddings().weight.device
    full_key = {
        "variant": key or {},
        "recovery": spec.key(),
        "data": {"source": corpus.source, "sha256": corpus.digest, "held_out_every": data.HELD_OUT_EVERY},
        "weights": weights_fingerprint(model),
        "dtype": str(model.get_input_embeddings().weight.dtype),
        "versions": _versions(),
    }
    count = parameter_count(model, spec)
    method = method_for(spec)
    directory = cache.entry_dir(cache_dir, spec.method, full_key) if cache_dir is not None else None
    with cache.locked(directory) if directory is not None else _nothing():
        found = cache.load(directory, full_key) if directory is not None else None
        if found is not None:
            params, meta = found
            return Recovery(
                spec,
                {k: v.to(device) for k, v in params.items()},
                count,
                meta["seconds"],
                True,
                meta.get("losses", []),
                meta.get("usage", []),
            )
        if notify:
            notify(f"recovery: training {spec.describe()} on {corpus.source}")
        started = time.perf_counter()
        windows = data.windows(tokenizer, corpus.train, spec.steps * spec.batch, spec.seqlen, spec.seed)
        initial = method.initial(model, spec.seed)
        if sum(v.numel() for v in initial.values()) != count:
            raise KickError(
                f"recovery {spec.method}: {sum(v.numel() for v in initial.values())} parameters "
                f"initialised, {count} expected"
            )
        params, stats = train.train(
            model, method, initial, windows, spec.steps, spec.batch, spec.learning_rate, progress
        )
        seconds = time.perf_counter() - started
        if not all(torch.isfinite(v).all() for v in params.values()):
            raise KickError(f"recovery {spec.describe()} diverged (non-finite parameters); lower --kick-recover-lr")
        if directory is not None:
            cache.save(
                directory,
                full_key,
                params,
                {"seconds": seconds, "losses": stats["losses"], "usage": stats["usage"], "parameters": count},
            )
        return Recovery(spec, params, count, seconds, False, stats["losses"], stats["usage"])


@contextmanager
def _nothing():
    yield
