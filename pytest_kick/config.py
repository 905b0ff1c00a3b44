"""Every --kick-* option and ini key, parsed and validated into one frozen KickConfig.

All validation lives here: a bad value becomes a pytest usage error that names the option and what it
accepts, never a traceback from deep inside a run. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pytest_kick import compress, extensions, tasks
from pytest_kick.compress import spec
from pytest_kick.config_judge import judge_settings
from pytest_kick.config_recover import recover_settings
from pytest_kick.config_search import search_settings
from pytest_kick.config_served import engine_settings
from pytest_kick.config_stat import stat_settings
from pytest_kick.config_tolerance import ToleranceSpec, parse_tolerance
from pytest_kick.config_values import boolean as _bool
from pytest_kick.config_values import choice as _choice
from pytest_kick.config_values import device as _device
from pytest_kick.config_values import names as _names
from pytest_kick.config_values import output_path as _output
from pytest_kick.config_values import split_list as _split
from pytest_kick.config_values import whole_number as _int
from pytest_kick.errors import KickError
from pytest_kick.models import registry
from pytest_kick.options import OPTIONS, Option, add_options  # noqa: F401  (re-exported: the option table)

PROTOCOLS = ("strict", "kick")
DTYPES = ("auto", "float32", "float16", "bfloat16")
ACCELERATE = ("auto", "on", "off")


@dataclass(frozen=True)
class KickConfig:
    models: tuple[str, ...]
    compressors: tuple[str, ...]
    ratios: tuple[str, ...]  # canonical spec spellings, as asked
    tasks: tuple[str, ...]  # task (variant) names
    limit: int | None
    tolerance: ToleranceSpec
    protocol: str
    shots: int
    device: str
    dtype: str
    batch_size: int
    cache_dir: Path
    seed: int
    report: Path | None
    data_dir: Path | None
    stat: str = "point"  # sequential | point | ci (config_stat.py)
    alpha: float = 0.05  # sequential: each decision's error rate
    undecided: str = "pass"  # sequential: pass | fail when the budget runs out
    family: str = "case"  # sequential: case | session
    plan: bool = False  # --kick-plan
    baseline_dir: Path | None = None
    regen: bool = False
    strict_env: bool = False
    markdown: Path | None = None
    plot: Path | None = None
    variants: tuple[tuple[str, str], ...] = ()  # (compressor, ratio spec) pairs to run, in order
    compressed: Path | None = None
    calib_samples: int = 128
    calib_seqlen: int = 512
    engine: str = "local"  # an engine's name (extensions.engines): local, openai-completions, or a registered one
    base_url: str | None = None  # openai-completions: the dense model's server
    compressed_url: str | None = None  # openai-completions: the compressed model's server (variant "served")
    timeout: float = 600.0  # openai-completions: seconds per reply
    export: Path | None = None  # --kick-export DIR
    judge: str = "rouge"  # rouge | openai:<model> | local:<model> (config_judge.py)
    judge_url: str | None = None  # openai: judge: the API root
    judge_key_env: str | None = None  # openai: judge: the variable holding the key (None: OPENAI_API_KEY)
    judge_concurrency: int = 8
    judge_timeout: float = 120.0  # openai: judge: seconds per reply
    judge_retries: int = 4  # openai: judge: retries of a failed request
    judge_scoring: str = "text"  # probability | text (config_judge.py; probability is the default for local:)
    judge_explain: bool = False  # probability scoring: the explanation generated after the scores
    recover: tuple[str, ...] = ()  # recovery methods run on each compressed variant (none: empty)
    recover_data: Path | None = None  # --kick-recover-data DIR (None: calibration's C4 documents)
    recover_steps: int = 100
    recover_lr: float | None = None  # None: each method's default
    recover_sizes: dict = field(default_factory=dict)  # {method: {setting: value}}
    recover_seqlen: int = 256
    search: bool = False  # --kick-search: the largest matching level per (task, model, compressor)
    search_resolution: float = 0.05
    searched: tuple[str, ...] = ()  # the compressors --kick-search covers
    accelerate: str = "auto"  # --kick-accelerate: auto, on or off (engines/draft_store.drafting, Settings.accelerate)


def parse_ratio(flag: str, text: str) -> str:
    """The canonical spelling of one --kick-ratio entry (see compress.spec)."""
    try:
        return spec.parse(text).text
    except KickError as err:
        raise KickError(f"{flag}: {err}") from None


def pair_variants(
    compressors: tuple[str, ...],
    ratios: tuple[str, ...] | None,
    ratio_flag: str = "--kick-ratio",
    compressor_flag: str = "--kick-compressor",
) -> tuple[tuple[str, str], ...]:
    """(compressor, ratio) pairs: each compressor with the asked ratios it accepts, or its defaults.

    A compressor that accepts none of the asked ratios, or a ratio no asked compressor accepts, is an
    error: silently running fewer cases than asked would gate less than the user thinks.
    """
    pairs = []
    for name in compressors:
        info = compress.info(name)
        if ratios is None:
            pairs.extend((name, r) for r in info.defaults)
            continue
        fitting = [r for r in ratios if info.accepts(spec.parse(r))]
        if not fitting:
            raise KickError(
                f"{ratio_flag}: none of {', '.join(ratios)} suits {name} ({info.what}); it takes "
                f"e.g. {', '.join(info.defaults)}"
            )
        pairs.extend((name, r) for r in fitting)
    if ratios is not None:
        for r in ratios:
            if not any(compress.info(name).accepts(spec.parse(r)) for name in compressors):
                raise KickError(f"{ratio_flag}: {r} suits none of {compressor_flag} {', '.join(compressors)}")
    return tuple(pairs)


def parse_tasks(flag: str, text: str) -> tuple[str, ...]:
    chosen = _split(flag, text)
    if not chosen:
        raise KickError(f"{flag}: give at least one task; known: {', '.join(tasks.spellings())}")
    found = []
    for name in chosen:
        try:
            found.extend(tasks.expand(name))
        except KickError as err:
            raise KickError(f"{flag}: {err}") from None
    return tuple(dict.fromkeys(found))


def _compressed_dir(flag, compressed: Path | None, compressors: tuple[str, ...]) -> Path | None:
    """--kick-compressed DIR, read by the compressors that load a compressed model (scope ``load``: checkpoint),
    checked now by their ``check`` (its safetensors headers) so a damaged one is a usage error."""
    readers = [c for c in compressors if compress.info(c).scope == "load"]
    if compressed is None:
        if readers:
            raise KickError(f"{flag('compressor')} {readers[0]} needs --kick-compressed DIR (the compressed model)")
        return None
    if not compressed.is_dir():
        raise KickError(f"{flag('compressed')}: {compressed} is not a directory")
    if not readers:
        loaders = [c for c in compress.names() if compress.info(c).scope == "load"]
        raise KickError(
            f"{flag('compressed')} is gated by the {' or '.join(loaders)} compressor: add {loaders[0]} to "
            f"{flag('compressor')}"
        )
    for name in readers:
        check = getattr(compress.info(name), "check", None)
        if check:
            extensions.resolve(check, f"compressor {name}'s check")(compressed, flag("compressed"))
    return compressed


def raw_values(get_option: Callable[[str], str | None], get_ini: Callable[[str], str | None]) -> tuple[dict, set]:
    """Each option's text, and the names whose text came from the ini file: the command line wins over
    the ini file, which wins over the default. A TOML list (``kick_ratio = [0.3, 0.5]``) reads as a comma list."""
    values, from_ini = {}, set()
    for opt in OPTIONS:
        value = get_option(opt.dest)
        if value is None:
            ini = get_ini(opt.ini)
            if isinstance(ini, (list, tuple)):
                ini = ",".join(str(v) for v in ini)
            if ini not in (None, ""):
                value = str(ini)
                from_ini.add(opt.name)
        values[opt.name] = value
    return values, from_ini


class Origins:
    """Where each value came from, so a message names what the user wrote: ``--kick-ratio`` for a command-line
    value, ``kick_ratio in /path/pyproject.toml`` for an ini value. Relative paths in the ini file are relative
    to the file's directory (as pytest's own ini paths are), on the command line to the current directory."""

    def __init__(self, base_dir: Path, from_ini: set = frozenset(), ini_file: Path | None = None):
        self.base_dir = base_dir
        self.from_ini = set(from_ini)
        self.ini_file = ini_file

    def __call__(self, name: str) -> str:
        if name in self.from_ini:
            key = "kick_" + name.replace("-", "_")
            return f"{key} in {self.ini_file}" if self.ini_file else f"ini key {key}"
        return f"--kick-{name}"

    def setting(self, name: str, value: str) -> str:
        """``--kick-device cuda`` or ``kick_device = cuda in /path/pytest.ini``: a value where the user wrote it."""
        if name in self.from_ini:
            return f"{self(name).replace(' in ', f' = {value} in ', 1)}"
        return f"--kick-{name} {value}"

    def path(self, name: str, value: str) -> Path:
        p = Path(value).expanduser()
        if p.is_absolute():
            return p
        base = self.ini_file.parent if name in self.from_ini and self.ini_file else self.base_dir
        return base / p


def build(values: dict, base_dir: Path, from_ini: set = frozenset(), ini_file: Path | None = None) -> KickConfig | None:
    """Parse option texts into a KickConfig; None when no model is given (the plugin stays off).

    ``from_ini`` names the options whose text came from ``ini_file``. Raises KickError naming the option
    (or the ini key and its file) for any bad value.
    """
    flag = Origins(base_dir, from_ini, ini_file)
    if values.get("model") is None:
        # kick_* ini keys without kick_model are defaults for runs that pass --kick-model: the plugin stays off
        given = [f"--kick-{name}" for name, value in values.items() if value is not None and name not in from_ini]
        if given:
            raise KickError(f"{given[0]} needs --kick-model (or the kick_model ini key): which model to gate?")
        return None
    text = {opt.name: values[opt.name] if values[opt.name] is not None else opt.default for opt in OPTIONS}
    if values["tasks"] is None:  # the default covers the tasks this session registered, too
        text["tasks"] = ",".join(tasks.families())

    models = _split(flag("model"), text["model"])
    if not models:
        raise KickError(f"{flag('model')}: give a model, e.g. --kick-model smollm2-135m")
    names: dict = {}
    for model in models:
        try:
            name = registry.resolve(model).name
        except KickError as err:
            raise KickError(f"{flag('model')}: {err}") from None
        if name in names and names[name] != model:
            raise KickError(
                f"{flag('model')}: {names[name]!r} and {model!r} would both be called {name!r} in test "
                f"ids, baselines and reports; run them separately or rename one directory"
            )
        names[name] = model

    def path(name):
        return None if text[name] is None else flag.path(name, text[name])

    ratios = None
    if text["ratio"] is not None:
        ratios = tuple(dict.fromkeys(parse_ratio(flag("ratio"), r) for r in _split(flag("ratio"), text["ratio"])))
        if not ratios:
            raise KickError(f"{flag('ratio')}: give at least one ratio, e.g. 0.5, 2:4 or w4g128")
    engine, served = engine_settings(values, text, flag, from_ini)
    if engine.local_weights:
        compressors = _names(flag("compressor"), text["compressor"], compress.names(), "compressor")
        variants = pair_variants(compressors, ratios, flag("ratio"), flag("compressor"))
    else:  # the server's variants: nothing is compressed here
        compressors, variants = (), served.pop("variants")
    found = search_settings(text, flag, _bool, ratios is not None, compressors, variants, engine)
    variants = found.pop("variants")
    compressed = _compressed_dir(flag, path("compressed"), compressors)
    task_names = tasks.names()
    limit = None if text["limit"] is None else _int(flag("limit"), text["limit"], 1)

    data_dir = path("data-dir")
    if data_dir is not None and not data_dir.is_dir():
        raise KickError(f"{flag('data-dir')}: {data_dir} is not a directory")

    for switch in ("regen", "strict-env"):
        if text[switch] is not None and _bool(flag(switch), text[switch]) and text["baseline-dir"] is None:
            raise KickError(f"{flag(switch)} applies to baseline files: give --kick-baseline-dir DIR too")

    chosen_tasks = parse_tasks(flag("tasks"), text["tasks"])
    protocol = _choice(flag("protocol"), text["protocol"], PROTOCOLS)
    judge = judge_settings(values, text, flag, [tasks.get(t) for t in chosen_tasks])
    return KickConfig(
        models=tuple(dict.fromkeys(models)),
        compressors=compressors,
        ratios=tuple(dict.fromkeys(r for _, r in variants)),
        tasks=chosen_tasks,
        limit=limit,
        tolerance=parse_tolerance(flag("tolerance"), text["tolerance"], task_names),
        protocol=protocol,
        shots=_int(flag("shots"), text["shots"], 0),
        device=_device(flag("device"), text["device"]),
        dtype=_choice(flag("dtype"), text["dtype"], DTYPES),
        batch_size=_int(flag("batch-size"), text["batch-size"], 1),
        accelerate=_choice(flag("accelerate"), text["accelerate"], ACCELERATE),
        cache_dir=path("cache-dir"),
        seed=_int(flag("seed"), text["seed"], 0),
        report=_output(flag("report"), path("report")),
        data_dir=data_dir,
        **stat_settings(text, flag, protocol),
        baseline_dir=path("baseline-dir"),
        regen=_bool(flag("regen"), text["regen"]),
        strict_env=_bool(flag("strict-env"), text["strict-env"]),
        markdown=_output(flag("markdown"), path("markdown")),
        plot=_output(flag("plot"), path("plot"), directory=True),
        variants=variants,
        compressed=compressed,
        calib_samples=_int(flag("calib-samples"), text["calib-samples"], 1),
        calib_seqlen=_int(flag("calib-seqlen"), text["calib-seqlen"], 8),
        engine=text["engine"],
        **served,
        export=path("export"),
        **judge,
        **recover_settings(values, text, flag, from_ini, path, engine),
        **found,
    )
