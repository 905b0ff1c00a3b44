"""Recovery inside a kick session: which recovery a recovered case uses, applied around its evaluation, and
what its report says.

One ``Recoveries`` per process (held by the Runtime). A recovery is trained (or loaded from the cache) once
per (model, compressor, ratio, method) and kept in memory, so every task of a variant shares it. While a
recovery is applied, an input-dependent one (IDP) turns the engine's shared-prefix KV reuse off: the prompt
it chooses depends on the whole input, not on a prefix shared with other inputs.
"""

from __future__ import annotations

from contextlib import contextmanager

from pytest_kick import tasks
from pytest_kick.recover.data import load_corpus
from pytest_kick.recover.outcome import outcome
from pytest_kick.recover.recovery import parameter_count, recover
from pytest_kick.recover.spec import RecoverySpec, reference


class Recoveries:
    def __init__(self, config, ui):
        self.config = config
        self.ui = ui
        self._corpus = None
        self._trained: dict = {}  # (model, compressor, ratio, method) -> Recovery

    def spec(self, method: str) -> RecoverySpec:
        c = self.config
        return RecoverySpec(
            method,
            steps=c.recover_steps,
            lr=c.recover_lr,
            seed=c.seed,
            seqlen=c.recover_seqlen,
            sizes=dict(c.recover_sizes.get(method, {})),
        )

    def corpus(self):
        if self._corpus is None:
            self._corpus = load_corpus(self.config.recover_data, self.config.data_dir, self.ui.message)
        return self._corpus

    def variant_key(self, case, loaded) -> dict:
        """What the caller knows of the compressed variant (the cache adds a fingerprint of its weights)."""
        c = self.config
        return {
            "model": loaded.identity,
            "compressor": case.compressor,
            "ratio": case.ratio,
            "calibration": {
                "samples": c.calib_samples,
                "seqlen": c.calib_seqlen,
                "seed": c.seed,
                "data_dir": None if c.data_dir is None else str(c.data_dir),
            },
            "checkpoint": None if c.compressed is None else str(c.compressed),
        }

    def get(self, case, loaded):
        """The case's recovery, for the compressed model ``loaded`` is in now: trained once per variant."""
        memo = (case.model, case.compressor, case.ratio, case.recovery)
        if memo not in self._trained:
            spec = self.spec(case.recovery)
            with self.ui.progress(f"recover {case.model_name} {case.label} ({spec.steps} steps)") as advance:
                self._trained[memo] = recover(
                    loaded.model,
                    loaded.tokenizer,
                    spec,
                    self.corpus(),
                    cache_dir=self.config.cache_dir,
                    key=self.variant_key(case, loaded),
                    progress=advance,
                    notify=self.ui.message,
                )
            rec = self._trained[memo]
            if rec.cached:
                self.ui.message(
                    f"recovery {spec.describe()}: loaded from the cache (trained in {rec.training_seconds:.0f} s)"
                )
            elif rec.losses:
                self.ui.message(
                    f"recovery {spec.describe()}: trained in {rec.training_seconds:.0f} s, "
                    f"loss {rec.losses[0]:.3f} -> {rec.losses[-1]:.3f}"
                )
        return self._trained[memo]

    @contextmanager
    def applied(self, case, loaded, engine):
        """The engine of the case's model with its recovery on (nothing for an unrecovered case); the model is
        the compressed model again afterwards, bit for bit."""
        if case.recovery is None:
            yield engine
            return
        rec = self.get(case, loaded)
        reuse = getattr(engine, "reuse_prefix", None)
        if rec.input_dependent and reuse:
            engine.reuse_prefix = False
        try:
            with rec.applied(loaded.model):
                yield engine
        finally:
            if reuse is not None:
                engine.reuse_prefix = reuse

    def record(self, case, loaded, task, dense, compressed, recovered, seconds: tuple) -> dict:
        """What a recovered case reports beside its verdict (see recover/outcome.py)."""
        rec = self.get(case, loaded)
        lora = parameter_count(loaded.model, self.spec(reference()))  # the count the others are reported against
        figures = tuple(tasks.figure(task, r.scores) for r in (dense, compressed, recovered))
        result = outcome(dense.scores, compressed.scores, recovered.scores, figures, task.higher_is_better, seconds)
        return {
            **rec.record(lora),
            **result.as_record(),
            "compressed": figures[1],
            "recovered": figures[2],
            "lora_parameters": lora,
            "seconds_per_item": {"compressed": seconds[0], "recovered": seconds[1]},
            "reading": result.reading(),
        }
