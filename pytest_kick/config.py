"""Every --kick-* option and ini key, parsed and validated into one frozen KickConfig.

All validation lives here: a bad value becomes a pytest usage error that names the option and what it
accepts, never a traceback from deep inside a run. Nothing here imports torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pytest_kick import compress, tasks
from pytest_kick.compress import spec
from pytest_kick.errors import KickError
from pytest_kick.gate import Tolerance
from pytest_kick.models import registry


@dataclass(frozen=True)
class Option:
    name: str  # without the leading --kick-
    default: str | None
    help: str
    flag: bool = False  # a switch without a value (--kick-regen); ini: true/false

    @property
    def flag_name(self) -> str:
        return f"--kick-{self.name}"

    @property
    def ini(self) -> str:
        return "kick_" + self.name.replace("-", "_")

    @property
    def dest(self) -> str:
        return self.ini


OPTIONS = [
    Option("model", None, "model to gate: an alias (smollm2-135m, gemma3-270m, tiny-random-llama, vicuna-7b, ...), "
           "a Hugging Face hub id or a local directory; a comma list runs several. Turns the plugin on."),
    Option("compressor", "magnitude", "comma list of compressors (" + ", ".join(compress.names()) + ")"),
    Option("ratio", None, "comma list of what to ask of each compressor: sparsities in [0, 1) (0.3,0.5), N:M "
           "patterns (2:4, 4:8: N zeros per M weights) for pruners; quantization specs (w8, w4g128, w3g128) for "
           "gptq, rtn, awq; w8a8 for int8. Each compressor runs the ratios it accepts (default: pruners "
           "0.1,0.3,0.5; gptq/rtn w8,w4g128; awq w4g128; int8 w8a8)"),
    Option("tasks", ",".join(tasks.families()), "comma list of tasks, or task:variant (" +
           ", ".join(tasks.spellings()) + ")"),
    Option("compressed", None, "directory of a compressed checkpoint of --kick-model (safetensors; "
           "compressed-tensors; GPTQ/AWQ packed) to gate with --kick-compressor checkpoint"),
    Option("calib-samples", "128", "calibration sequences from C4 for wanda, sparsegpt, gptq and awq"),
    Option("calib-seqlen", "512", "tokens per calibration sequence"),
    Option("limit", None, "evaluate a deterministic, seeded subset of N items per task"),
    Option("tolerance", "5%", "how far compressed may fall behind dense: 5%% (relative), 3pp (absolute), "
           "with per-task overrides, e.g. 5%%,factoid_qa=10%%"),
    Option("protocol", "strict", "scoring: strict (continuation only, normalised answers) or kick "
           "(the LLM-KICK repo's scoring, to compare with the paper)"),
    Option("shots", "0", "in-context examples for factoid QA (0 = the paper's zero-shot setting)"),
    Option("device", "auto", "auto, cpu, cuda, cuda:N or mps; with xdist, cuda gives each worker its own GPU"),
    Option("dtype", "auto", "auto (float32 on CPU, float16 on GPU), float32, float16 or bfloat16"),
    Option("batch-size", "16", "prompts per forward pass"),
    Option("cache-dir", ".kick", "where converted models and dense baselines are kept"),
    Option("seed", "0", "seed for item subsets and anything random"),
    Option("report", None, "write every case's result as JSON to this path"),
    Option("data-dir", None, "directory with task data (e.g. DIR/freebaseqa/*.jsonl or FreebaseQA-eval.json) "
           "to use instead of the bundled samples"),
    Option("stat", "point", "point: judge the drop's point estimate (warn when its 95%% interval straddles the "
           "threshold); ci: fail only when the drop is beyond tolerance with 95%% confidence"),
    Option("baseline-dir", None, "keep dense baselines as reviewable files DIR/<model>/<task>.json "
           "(computed and written when missing)"),
    Option("regen", None, "recompute and rewrite the baseline files of --kick-baseline-dir", flag=True),
    Option("strict-env", None, "a baseline file made in another environment is an error, not a warning",
           flag=True),
    Option("markdown", None, "write a Markdown summary (e.g. for a CI job summary) to this path"),
    Option("plot", None, "draw score against sparsity per task (the paper's figure style) as PNGs into this "
           "directory (needs matplotlib)"),
    Option("engine", "local", "what runs the model: local (transformers, in this process) or openai-completions "
           "(a server's OpenAI-compatible completions API: vLLM, TGI, llama.cpp; see --kick-base-url)"),
    Option("base-url", None, "openai-completions: the server of --kick-model (dense), e.g. http://localhost:8000/v1"),
    Option("compressed-url", None, "openai-completions: the server of the compressed model, gated as the variant "
           "'served' against the dense one (e.g. what --kick-export wrote, served by vllm serve DIR)"),
    Option("timeout", "600", "openai-completions: seconds to wait for one reply before retrying"),
    Option("export", None, "write each compressed variant as a checkpoint a serving engine loads "
           "(compressed-tensors where it applies, else safetensors) to DIR/<model>-<compressor>-<ratio>"),
]

PROTOCOLS = ("strict", "kick")
STATS = ("point", "ci")
DTYPES = ("auto", "float32", "float16", "bfloat16")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class ToleranceSpec:
    default: Tolerance
    per_task: dict = field(default_factory=dict)

    def for_task(self, task: str) -> Tolerance:
        """A variant's own tolerance, else its family's (icrqa=10% covers icrqa:open), else the default."""
        if task in self.per_task:
            return self.per_task[task]
        return self.per_task.get(task.split(":", 1)[0], self.default)


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
    stat: str = "point"
    baseline_dir: Path | None = None
    regen: bool = False
    strict_env: bool = False
    markdown: Path | None = None
    plot: Path | None = None
    variants: tuple[tuple[str, str], ...] = ()  # (compressor, ratio spec) pairs to run, in order
    compressed: Path | None = None
    calib_samples: int = 128
    calib_seqlen: int = 512
    engine: str = "local"  # or "openai-completions"
    base_url: str | None = None  # openai-completions: the dense model's server
    compressed_url: str | None = None  # openai-completions: the compressed model's server (variant "served")
    timeout: float = 600.0  # openai-completions: seconds per reply
    export: Path | None = None  # --kick-export DIR


def add_options(parser) -> None:
    """Register the --kick-* options and their ini keys with pytest."""
    group = parser.getgroup("kick", "pytest-kick: gate compressed LLMs with LLM-KICK")
    for opt in OPTIONS:
        if opt.flag:
            group.addoption(opt.flag_name, dest=opt.dest, default=None, action="store_const", const="true",
                            help=opt.help)
        else:
            group.addoption(opt.flag_name, dest=opt.dest, default=None, metavar="VALUE",
                            help=opt.help + (f" (default: {opt.default})" if opt.default else ""))
        parser.addini(opt.ini, help=opt.help.replace("%%", "%"), default=None)


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _names(flag: str, value: str, known: list[str], what: str) -> tuple[str, ...]:
    chosen = _split(value)
    if not chosen:
        raise KickError(f"{flag}: give at least one {what}; known: {', '.join(known)}")
    for name in chosen:
        if name not in known:
            raise KickError(f"{flag}: unknown {what} {name!r}; known: {', '.join(known)}")
    return tuple(dict.fromkeys(chosen))


def parse_ratio(flag: str, text: str) -> str:
    """The canonical spelling of one --kick-ratio entry (see compress.spec)."""
    try:
        return spec.parse(text).text
    except KickError as err:
        raise KickError(f"{flag}: {err}") from None


def pair_variants(compressors: tuple[str, ...], ratios: tuple[str, ...] | None) -> tuple[tuple[str, str], ...]:
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
            raise KickError(f"--kick-ratio: none of {', '.join(ratios)} suits {name} ({info.what}); it takes "
                            f"e.g. {', '.join(info.defaults)}")
        pairs.extend((name, r) for r in fitting)
    if ratios is not None:
        for r in ratios:
            if not any(compress.info(name).accepts(spec.parse(r)) for name in compressors):
                raise KickError(f"--kick-ratio: {r} suits none of --kick-compressor {', '.join(compressors)}")
    return tuple(pairs)


def parse_tasks(flag: str, text: str) -> tuple[str, ...]:
    chosen = _split(text)
    if not chosen:
        raise KickError(f"{flag}: give at least one task; known: {', '.join(tasks.spellings())}")
    found = []
    for name in chosen:
        try:
            found.extend(tasks.expand(name))
        except KickError as err:
            raise KickError(f"{flag}: {err}") from None
    return tuple(dict.fromkeys(found))


def parse_tolerance_value(flag: str, text: str) -> Tolerance:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%|pp)\s*", text)
    if not match:
        raise KickError(f"{flag}: {text!r} is not a tolerance; write 5% (relative) or 3pp (absolute)")
    number, unit = float(match.group(1)), match.group(2)
    if unit == "%" and not 0 <= number < 100:
        raise KickError(f"{flag}: {text!r}: a relative tolerance must be in [0%, 100%)")
    return Tolerance(number / 100, "relative" if unit == "%" else "absolute")


def parse_tolerance(flag: str, text: str, known_tasks: list[str]) -> ToleranceSpec:
    default = Tolerance(0.05, "relative")
    per_task = {}
    for part in _split(text):
        if "=" in part:
            task, value = (p.strip() for p in part.split("=", 1))
            if task not in known_tasks and task not in tasks.families():
                raise KickError(f"{flag}: unknown task {task!r} in {part!r}; known: {', '.join(known_tasks)}")
            per_task[task] = parse_tolerance_value(flag, value)
        else:
            default = parse_tolerance_value(flag, part)
    return ToleranceSpec(default, per_task)


def _int(flag: str, text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise KickError(f"{flag}: {text!r} is not a whole number") from None
    if value < minimum:
        raise KickError(f"{flag}: must be at least {minimum} (got {value})")
    return value


def _choice(flag: str, text: str, choices) -> str:
    if text not in choices:
        raise KickError(f"{flag}: {text!r} is not one of {', '.join(choices)}")
    return text


def _bool(flag: str, text: str | None) -> bool:
    if text is None:
        return False
    value = str(text).strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise KickError(f"{flag}: {text!r} is not true or false")
    return value in ("true", "1", "yes")


def _device(flag: str, text: str) -> str:
    if not _DEVICE.match(text):
        raise KickError(f"{flag}: {text!r} is not a device; use auto, cpu, cuda, cuda:N or mps")
    return text


def raw_values(get_option: Callable[[str], str | None], get_ini: Callable[[str], str | None]) -> dict:
    """Each option's text: the command line wins over the ini file, which wins over the default."""
    values = {}
    for opt in OPTIONS:
        value = get_option(opt.dest)
        if value is None:
            ini = get_ini(opt.ini)
            value = ini if ini not in (None, "", []) else None
        values[opt.name] = value
    return values


def build(values: dict, base_dir: Path, from_command_line: set | None = None) -> KickConfig | None:
    """Parse option texts into a KickConfig; None when no model is given (the plugin stays off).

    Raises KickError naming the option for any bad value.
    """
    if values.get("model") is None:
        # kick_* ini keys without kick_model are defaults for runs that pass --kick-model: the plugin stays off
        cli = set(values) if from_command_line is None else from_command_line
        given = [f"--kick-{name}" for name, value in values.items() if value is not None and name in cli]
        if given:
            raise KickError(f"{given[0]} needs --kick-model (or the kick_model ini key): which model to gate?")
        return None
    text = {opt.name: values[opt.name] if values[opt.name] is not None else opt.default for opt in OPTIONS}

    models = _split(text["model"])
    if not models:
        raise KickError("--kick-model: give a model, e.g. --kick-model smollm2-135m")
    names: dict = {}
    for model in models:
        try:
            name = registry.resolve(model).name
        except KickError as err:
            raise KickError(f"--kick-model: {err}") from None
        if name in names and names[name] != model:
            raise KickError(f"--kick-model: {names[name]!r} and {model!r} would both be called {name!r} in test ids, "
                            f"baselines and reports; run them separately or rename one directory")
        names[name] = model

    def path(value):
        p = Path(value).expanduser()
        return p if p.is_absolute() else base_dir / p

    ratios = None
    if text["ratio"] is not None:
        ratios = tuple(dict.fromkeys(parse_ratio("--kick-ratio", r) for r in _split(text["ratio"])))
        if not ratios:
            raise KickError("--kick-ratio: give at least one ratio, e.g. 0.5, 2:4 or w4g128")
    served = _served(values, text, set(values) if from_command_line is None else from_command_line)
    compressors = () if served else _names("--kick-compressor", text["compressor"], compress.names(), "compressor")
    variants = served.pop("variants") if served else pair_variants(compressors, ratios)
    compressed = None
    if text["compressed"] is not None:
        compressed = path(text["compressed"])
        if not compressed.is_dir():
            raise KickError(f"--kick-compressed: {compressed} is not a directory")
        if "checkpoint" not in compressors:
            raise KickError("--kick-compressed is gated by --kick-compressor checkpoint; add it")
    elif "checkpoint" in compressors:
        raise KickError("--kick-compressor checkpoint needs --kick-compressed DIR (the compressed model)")
    task_names = tasks.names()
    limit = None if text["limit"] is None else _int("--kick-limit", text["limit"], 1)

    data_dir = None
    if text["data-dir"] is not None:
        data_dir = path(text["data-dir"])
        if not data_dir.is_dir():
            raise KickError(f"--kick-data-dir: {data_dir} is not a directory")

    for switch in ("regen", "strict-env"):
        if text[switch] is not None and _bool(f"--kick-{switch}", text[switch]) and text["baseline-dir"] is None:
            raise KickError(f"--kick-{switch} applies to baseline files: give --kick-baseline-dir DIR too")

    return KickConfig(
        models=tuple(dict.fromkeys(models)),
        compressors=compressors,
        ratios=tuple(dict.fromkeys(r for _, r in variants)),
        tasks=parse_tasks("--kick-tasks", text["tasks"]),
        limit=limit,
        tolerance=parse_tolerance("--kick-tolerance", text["tolerance"], task_names),
        protocol=_choice("--kick-protocol", text["protocol"], PROTOCOLS),
        shots=_int("--kick-shots", text["shots"], 0),
        device=_device("--kick-device", text["device"]),
        dtype=_choice("--kick-dtype", text["dtype"], DTYPES),
        batch_size=_int("--kick-batch-size", text["batch-size"], 1),
        cache_dir=path(text["cache-dir"]),
        seed=_int("--kick-seed", text["seed"], 0),
        report=None if text["report"] is None else path(text["report"]),
        data_dir=data_dir,
        stat=_choice("--kick-stat", text["stat"], STATS),
        baseline_dir=None if text["baseline-dir"] is None else path(text["baseline-dir"]),
        regen=_bool("--kick-regen", text["regen"]),
        strict_env=_bool("--kick-strict-env", text["strict-env"]),
        markdown=None if text["markdown"] is None else path(text["markdown"]),
        plot=None if text["plot"] is None else path(text["plot"]),
        variants=variants,
        compressed=compressed,
        calib_samples=_int("--kick-calib-samples", text["calib-samples"], 1),
        calib_seqlen=_int("--kick-calib-seqlen", text["calib-seqlen"], 8),
        engine=text["engine"],
        **(served or {}),
        export=None if text["export"] is None else path(text["export"]),
    )


ENGINES = ("local", "openai-completions")


def _served(values: dict, text: dict, cli: set) -> dict | None:
    """None for the local engine; for a served one, its KickConfig fields. A served model is not compressed
    here: its compressed variant is the model --kick-compressed-url serves (test id ...-served)."""
    from pytest_kick.engines.http import normalize_base_url

    engine = _choice("--kick-engine", text["engine"], ENGINES)
    urls = [f"--kick-{name}" for name in ("base-url", "compressed-url") if values.get(name) is not None]
    if engine == "local":
        if urls:
            raise KickError(f"{urls[0]} points at a server: add --kick-engine openai-completions")
        return None
    if values.get("base-url") is None and values.get("baseline-dir") is None:
        raise KickError("--kick-engine openai-completions needs --kick-base-url URL (the server of --kick-model), "
                        "or dense results in --kick-baseline-dir DIR")
    for name in ("compressor", "ratio", "compressed", "export"):
        if values.get(name) is not None and name in cli:
            raise KickError(f"--kick-{name} compresses in this process; a served model is not: serve the compressed "
                            f"model and pass --kick-compressed-url URL (--kick-export writes one to serve)")
    timeout = _number("--kick-timeout", text["timeout"])
    found = {}
    for name in ("base-url", "compressed-url"):
        try:
            found[name] = None if values.get(name) is None else normalize_base_url(values[name])
        except KickError as err:
            raise KickError(f"--kick-{name}: {err}") from None
    base, compressed = found["base-url"], found["compressed-url"]
    return {"base_url": base, "compressed_url": compressed, "timeout": timeout,
            "variants": (("served", spec.CHECKPOINT),) if compressed else ()}


def _number(flag: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise KickError(f"{flag}: {text!r} is not a number of seconds") from None
    if not value > 0:
        raise KickError(f"{flag}: must be more than 0 seconds (got {text})")
    return value
