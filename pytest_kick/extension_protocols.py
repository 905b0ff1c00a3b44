"""What an entry of each extension kind must have (extensions.py keeps the registry): one Protocol per kind,
its optional parts in its docstring. extensions.py imports them, and the code names them from there
(``extensions.CompressorEntry``)."""

from __future__ import annotations

from typing import Protocol


class CompressorEntry(Protocol):
    """A compressor (bundled ones: ``pytest_kick.compress.Compressor``).

    ``kinds``: the ratio kinds it accepts (``sparsity``, ``nm``, ``quant``, ``checkpoint``: compress/spec.py);
    ``defaults``: its ``--kick-ratio`` when none is given; ``calibrated``: it is fed calibration activations;
    ``act_bits``: a quantizer of activations too (int8: 8). ``solver`` is ``"module:object"``, called per
    ``scope`` (compress/pipeline.py runs it):

    - ``linear``: ``object(linear)`` per linear layer of each block, with ``apply(spec) -> dict | None``
      (changes the weight in place), ``add_batch(inputs)`` when calibrated, optional ``free()``;
    - ``block``: ``object(block, inputs, forward, spec) -> dict | None`` per decoder block (AWQ);
    - ``linears``: ``object(linears, model) -> undo`` replaces the linear layers (int8); weights stay dense;
    - ``load``: ``object(model, directory, dense) -> CompressionReport`` puts a compressed model's weights
      in from ``--kick-compressed DIR`` (checkpoint); optional ``check = "module:object"``,
      ``check(directory, flag)``, reads that directory while options are validated.

    ``quantizer`` (its level is a bit width) and ``searchable`` (``--kick-search`` has a level to search)
    follow from ``kinds`` in the bundled class; ``accepts(spec)`` says whether it takes one ratio.
    """

    name: str
    kinds: tuple[str, ...]
    defaults: tuple[str, ...]
    what: str
    calibrated: bool
    act_bits: int | None
    solver: str
    scope: str
    quantizer: bool
    searchable: bool

    def accepts(self, spec) -> bool: ...


class EngineEntry(Protocol):
    """What runs the model (bundled: ``pytest_kick.engines.factory.EngineEntry``; the Engine protocol an engine
    implements is engines/base.py's three calls).

    ``local_weights``: the model's weights are loaded into this process (compressors, recovery and
    ``--kick-search`` need that); ``build = "module:object"``, ``build(loaded, config, compressed) -> Engine``,
    called once per model (per model and variant when ``local_weights`` is false: one server each).
    Optional: ``loader = "module:object"``, ``loader(config, spec) -> loaded``, for an engine without local
    weights (the served engine loads a tokenizer): an object with ``identity`` (a dict), ``device`` and
    ``dtype`` (strings), all part of every dense baseline key; ``settings = "module:object"``,
    ``settings(values, text, flag, from_ini) -> dict`` of KickConfig fields (may hold ``variants``);
    ``options``: the ``--kick-*`` names only it takes.
    """

    name: str
    what: str
    local_weights: bool
    build: str


class JudgeEntry(Protocol):
    """How judged tasks' replies are scored (``--kick-judge NAME`` or ``NAME:<model>``; bundled:
    ``pytest_kick.judge.JudgeEntry``).

    ``backend``: ``None`` for the task's own scorer (rouge), else ``"module:object"``,
    ``backend(model, config, ui, worker_id)`` giving an object with ``complete(conversations, temperature,
    max_tokens)``, ``model`` and ``endpoint`` (judge/client.py). ``takes_model``: spelled ``NAME:<model>``;
    ``form``: how ``--help`` and errors spell it. Optional: ``options`` (the ``--kick-judge-*`` names it
    takes), ``settings = "module:object"``, ``settings(values, text, flag, model) -> dict`` of KickConfig
    fields, ``scoring`` (``--kick-judge-scoring``'s default, ``"text"`` unless the judge scores by
    probability). A task is judged when it holds a ``scorer`` and a ``variant`` (tasks/scorers.py; opt out with
    ``judged = False``).
    """

    name: str
    what: str
    form: str
    backend: str | None
    takes_model: bool


class RecoveryEntry(Protocol):
    """A recovery method (``--kick-recover NAME``; bundled: ``pytest_kick.recover.spec.Method``).

    ``method = "module:object"``, ``object(spec)`` with ``initial(model, seed) -> dict`` of tensors to train,
    ``attach(model, params)`` returning a handle with ``remove()``, ``parameter_count(model) -> int`` (the
    parameters it adds, from shapes alone) and ``input_dependent`` (a class attribute: True when what it adds
    depends on the whole input, so no shared-prefix cache may be reused); ``sizes``: its
    size settings with defaults (``--kick-recover-size NAME.SETTING=VALUE``); ``lr``: its default learning
    rate; ``reference``: the method the others' parameter counts are reported against (LoRA).
    """

    name: str
    what: str
    method: str
    sizes: dict
    lr: float


class TaskEntry(Protocol):
    """A task: the protocol is pytest_kick.tasks.base.Task (pytest_kick.api for users)."""

    name: str
    family: str
