"""The ``lmeval`` engine entry: its two "models" are the two lm-eval runs of --kick-from-lmeval (dense, and the
variant ``lmeval``). Nothing runs: an lm-eval task (task.py) reads the stored results of the run its engine
stands for, and the engine answers no new request."""

from __future__ import annotations

from dataclasses import dataclass, field

from pytest_kick import tasks
from pytest_kick.compress import spec
from pytest_kick.errors import KickError
from pytest_kick.lmeval.task import FAMILY

VARIANT = "lmeval"  # the compressed run's variant: test ids end in -lmeval


class RunEngine:
    """One lm-eval run as an engine: ``lmeval_side`` (0 dense, 1 compressed) tells a task whose results to read."""

    name = "lmeval"

    def __init__(self, side: int, directory):
        self.lmeval_side = side
        self.directory = directory

    def _refuse(self, *args, **kwargs):
        raise KickError(
            f"the lm-eval run in {self.directory} answers no new request: only lm-eval tasks (lmeval:<task>) are "
            f"gated with --kick-from-lmeval"
        )

    generate = loglikelihood = loglikelihood_rolling = _refuse


@dataclass
class Runs:
    """What the runtime keeps of the two runs: their identity (part of the dense baseline's key) and engines."""

    identity: dict
    engines: tuple
    device: str = "lmeval"
    dtype: str = "lmeval"
    model: object = None
    tokenizer: object = None
    extra: dict = field(default_factory=dict)

    def engine(self, compressed: bool):
        return self.engines[1 if compressed else 0]


def runs_model(config, model: str) -> Runs:
    """The two runs behind the session's lm-eval tasks (read and paired when the tasks were registered)."""
    chosen = [tasks.get(t) for t in config.tasks]
    if not chosen or not hasattr(chosen[0], "runs"):
        raise KickError("--kick-engine lmeval gates lm-eval runs: give --kick-from-lmeval DENSE_DIR,COMPRESSED_DIR")
    dense, compressed = chosen[0].runs
    identity = {
        "engine": "lmeval",
        "dense": dense.model_name,
        "compressed": compressed.model_name,
        "fingerprint": dense.fingerprint(),
    }
    return Runs(identity, (RunEngine(0, dense.directory), RunEngine(1, compressed.directory)))


def run_engine(loaded, config, compressed: bool):
    return loaded.engine(compressed)


def settings(values: dict, text: dict, flag, from_ini) -> dict:
    """--kick-engine lmeval (set by --kick-from-lmeval): nothing is compressed or evaluated; only lm-eval tasks."""
    if values.get("from-lmeval") is None:
        raise KickError(
            f"{flag('engine')} lmeval replays lm-eval runs: give --kick-from-lmeval DENSE_DIR,COMPRESSED_DIR"
        )
    for name in ("compressor", "ratio", "compressed", "export", "recover"):
        if values.get(name) not in (None, "none") and name not in from_ini:
            raise KickError(
                f"--kick-{name} does not apply to --kick-from-lmeval: both runs were evaluated by lm-eval already"
            )
    others = [t for t in tasks.names() if t.split(":")[0] == FAMILY]
    for name in [n.strip() for n in text["tasks"].split(",") if n.strip()]:
        try:
            chosen = tasks.expand(name)
        except KickError:
            chosen = [name]
        if any(tasks.get(t).family != FAMILY if t in tasks.names() else True for t in chosen):
            raise KickError(
                f"{flag('tasks')}: {name} is not a task of the lm-eval runs; with --kick-from-lmeval the tasks are "
                f"{', '.join(others)} (or lmeval for all of them)"
            )
    return {"variants": ((VARIANT, spec.CHECKPOINT),)}
