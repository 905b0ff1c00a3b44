"""The models of a kick session in this process, and the variant each one is in.

A model is loaded once per process and its weights and one forward pass are checked. Compressed variants
are derived from it in place and undone by copying back the dense weights, so any number of (compressor,
ratio) cases cost one model in memory plus one copy of what the compressors changed; the calibration data
is drawn once per model and shared by every calibrated variant; the weights are checked again after each
compression. The --kick-engine entry says whether the weights load here at all: a server's model
(``local_weights`` false) is its entry's ``loader`` (the served engine loads a tokenizer only).
"""

from __future__ import annotations

import os
from pathlib import Path

from pytest_kick import extensions
from pytest_kick.compress import info, pipeline
from pytest_kick.compress import spec as ratio_spec
from pytest_kick.compress.base import DenseWeights
from pytest_kick.compress.calibration import calibration_ids
from pytest_kick.compress.export import export
from pytest_kick.errors import KickError
from pytest_kick.finite import check_forward, check_weights
from pytest_kick.models import registry
from pytest_kick.models.devices import pick_device, pick_dtype
from pytest_kick.models.loading import load


def share_cpu(torch, environ) -> None:
    """Under xdist on CPU, give each worker its share of the cores: N workers with torch's default of one
    thread per core oversubscribe the machine, and spinning intra-op threads then run many times slower."""
    workers = int(environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


class ModelPool:
    def __init__(self, config, ui, worker_id: str | None = None):
        self.config = config
        self.ui = ui
        self.worker_id = worker_id
        self.engine = extensions.engines.get(config.engine)
        self._models: dict = {}  # spec -> loaded model, or the KickError its load raised
        self.backups: dict = {}  # spec -> DenseWeights
        self._undo: dict = {}  # spec -> undo of replaced modules (int8), or None
        self._calibration: dict = {}  # spec -> calibration token ids
        self._variant: dict = {}  # spec -> (compressor, ratio) currently applied, or None for dense
        self.compression: dict = {}  # (spec, compressor, ratio) -> CompressionReport

    def model(self, spec: str):
        """The loaded model; a load that failed fails every later call the same way, without retrying."""
        if isinstance(self._models.get(spec), KickError):
            raise self._models[spec]
        if spec not in self._models:
            try:
                self._models[spec] = self._load(spec) if self.engine.local_weights else self._load_remote(spec)
            except KickError as err:
                self._models[spec] = err
                raise
            except Exception as err:  # e.g. torch refusing the device or dtype: one line, and no retry per item
                first = (str(err).strip().splitlines() or [type(err).__name__])[0]
                self._models[spec] = KickError(f"cannot load {spec} on --kick-device {self.config.device}: {first}")
                raise self._models[spec] from None
            self._variant[spec] = None
        return self._models[spec]

    def _load_remote(self, spec: str):
        """A model whose weights stay elsewhere (a server's): what its engine entry's loader gives."""
        loader = getattr(self.engine, "loader", None)
        if not loader:
            raise KickError(f"--kick-engine {self.engine.name} loads no weights here and names no loader")
        return extensions.resolve(loader, f"engine {self.engine.name}'s loader")(self.config, spec)

    def _load(self, spec: str):
        import torch

        device = pick_device(
            self.config.device,
            self.worker_id,
            os.environ,
            torch.cuda.device_count,
            lambda: bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available(),
        )
        dtype = pick_dtype(self.config.dtype, device)
        if device == "cpu":
            share_cpu(torch, os.environ)
        loaded = load(registry.resolve(spec), self.config.cache_dir, device, dtype, notify=self.ui.message)
        check_weights(
            loaded.model,
            f"model {spec} ({loaded.weights_dir or loaded.identity.get('source')})",
            rebuild_hint(loaded.weights_dir, self.config.cache_dir),
        )
        check_forward(loaded.model, loaded.tokenizer, loaded.device, f"model {spec} on {device} ({dtype})")
        return loaded

    def use_variant(self, spec: str, compressor: str | None, ratio: str | None):
        """Put model ``spec`` into the asked state (dense, or compressed by compressor at ratio)."""
        loaded = self.model(spec)
        wanted = None if compressor is None else (compressor, ratio)
        if self._variant[spec] == wanted:
            return loaded
        if self._variant[spec] is not None:
            self.restore(spec)
        if wanted is not None:
            if spec not in self.backups:
                self.backups[spec] = DenseWeights(loaded.model, loaded.weights_dir)
            name = registry.resolve(spec).name
            self.ui.message(f"compressing {name} with {compressor} at {ratio}")
            try:
                report = self._compress(spec, loaded, compressor, ratio, f"{compressor} {ratio} {name}")
                check_weights(loaded.model, f"{name} after {compressor} at {ratio}")  # a solver's NaN (a singular
                # Hessian, a checkpoint's damaged tensor) ends here, not as a verdict
            except BaseException:
                self.restore(spec)  # a half-compressed model must never pass for dense
                raise
            self.compression[(spec, compressor, ratio)] = report
            self._undo[spec] = report.undo
            self._variant[spec] = wanted
            self.ui.message(report.summary())
            if self.config.export is not None:  # --kick-export: the variant as a checkpoint a server loads
                self.ui.message(export(loaded, name, report, self.config.export))
        return loaded

    def restore(self, spec: str) -> None:
        """Model ``spec`` dense again: replaced modules put back, changed weights copied back."""
        if self._undo.get(spec) is not None:
            self._undo.pop(spec)()
        if spec in self.backups:
            self.backups[spec].restore()
        self._variant[spec] = None

    def _compress(self, model: str, loaded, compressor: str, ratio: str, label: str):
        calibration = None
        if info(compressor).calibrated:
            calibration = self.calibration(model, loaded)
        with self.ui.progress(f"compress {label}") as advance:
            return pipeline.compress(
                loaded.model,
                compressor,
                ratio_spec.parse(ratio),
                self.backups[model],
                calibration,
                progress=advance,
                source=self.config.compressed,
            )

    def calibration(self, model: str, loaded):
        """The calibration token ids of a model: drawn once, shared by every calibrated variant."""
        if model not in self._calibration:
            c = self.config
            self._calibration[model], _, _ = calibration_ids(
                loaded.tokenizer, c.calib_samples, c.calib_seqlen, c.seed, c.data_dir, self.ui.message
            )
        return self._calibration[model]


def rebuild_hint(weights_dir, cache_dir) -> str:
    """What to do about damaged weights: a converted copy in the cache can be converted again."""
    if weights_dir is not None and Path(weights_dir).resolve().is_relative_to(Path(cache_dir).resolve() / "models"):
        return f"delete {weights_dir} to convert the model again"
    return "restore or rebuild the model"
