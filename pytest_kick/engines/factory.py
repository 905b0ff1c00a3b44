"""Which engine answers a case: the engines by name (``BUNDLED``, plus the ones installed packages register
under the ``pytest_kick.engines`` entry-point group: ``extensions.engines``), and ``Engines``, which builds
each model's engine once through the entry ``--kick-engine`` names.

Bundled: ``local`` (the local engine on the model loaded in this process), and ``openai-completions`` (a
server: the dense model at --kick-base-url and the compressed variant ``served`` at --kick-compressed-url).
A served model is never loaded here: only its tokenizer is, from --kick-model."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pytest_kick import extensions
from pytest_kick.errors import KickError
from pytest_kick.hashing import file_hash
from pytest_kick.models import loading, registry
from pytest_kick.models.tiny import byte_tokenizer


@dataclass(frozen=True)
class EngineEntry:
    """An engine in the registry (extensions.EngineEntry documents each field)."""

    name: str
    what: str
    local_weights: bool  # the model's weights are loaded into this process (compressors, recovery, search)
    build: str  # "module:object": build(loaded, config, compressed) -> Engine
    loader: str | None = None  # "module:object": loader(config, spec) -> loaded, without local weights
    settings: str | None = None  # "module:object": settings(values, text, flag, from_ini) -> KickConfig fields
    options: tuple[str, ...] = ()  # --kick-* names only this engine takes


_HERE = "pytest_kick.engines.factory:"
BUNDLED = (
    EngineEntry(
        "local",
        "transformers, in this process",
        True,
        _HERE + "local_engine",
        settings="pytest_kick.config_served:local_settings",
    ),
    EngineEntry(
        "openai-completions",
        "a server's OpenAI-compatible completions API: vLLM, TGI, llama.cpp",
        False,
        _HERE + "served_engine",
        loader=_HERE + "served_model",
        settings="pytest_kick.config_served:served_settings",
        options=("base-url", "compressed-url"),
    ),
    EngineEntry(
        "lmeval",
        "two stored lm-evaluation-harness runs (set by --kick-from-lmeval)",
        False,
        "pytest_kick.lmeval.engine:run_engine",
        loader="pytest_kick.lmeval.engine:runs_model",
        settings="pytest_kick.lmeval.engine:settings",
        options=("from-lmeval",),
    ),
)


class Engines:
    """The engine of each model, built once by the --kick-engine entry: an engine on local weights runs
    whichever variant the model is in (one per model); one without has one per variant (per server)."""

    def __init__(self, config):
        self.config = config
        self.entry = extensions.engines.get(config.engine)
        self._built: dict = {}

    def get(self, spec: str, loaded, compressed: bool = False):
        key = spec if self.entry.local_weights else (spec, compressed)
        if key not in self._built:
            build = extensions.resolve(self.entry.build, f"engine {self.entry.name}")
            self._built[key] = build(loaded, self.config, compressed)
        return self._built[key]


def local_engine(loaded, config, compressed: bool):
    """The local engine on the model loaded in this process (whichever variant it is in)."""
    from pytest_kick.engines.local import LocalEngine  # lazy: engine modules, ~10 ms on every pytest run

    return LocalEngine(loaded.model, loaded.tokenizer, loaded.device, config.batch_size, loaded.dtype)


def served_engine(loaded, config, compressed: bool):
    """The served engine of the dense model's server or of the compressed one's."""
    return loaded.engine(compressed)


@dataclass
class ServedModel:
    """What the runtime keeps of a served --kick-model: its tokenizer and identity, and an engine per URL."""

    tokenizer: object
    identity: dict
    base_url: str | None
    compressed_url: str | None
    timeout: float
    concurrency: int
    device: str = "served"
    dtype: str = "served"
    model: object = None  # no weights in this process
    engines: dict = field(default_factory=dict)

    def engine(self, compressed: bool):
        url = self.compressed_url if compressed else self.base_url
        if url is None:
            raise KickError(
                "the dense results are not in --kick-baseline-dir and no --kick-base-url serves the dense "
                "model: give --kick-base-url URL, or compute the baseline files with the local engine"
            )
        if url not in self.engines:
            from pytest_kick.engines.http import Client  # lazy: urllib.request + ssl, ~10 ms on every pytest run
            from pytest_kick.engines.served import ServedEngine  # lazy: with engines.http, ~15 ms on every pytest run

            client = Client(url, self.timeout, api_key=os.environ.get("OPENAI_API_KEY") or None)
            self.engines[url] = ServedEngine(client, self.tokenizer, concurrency=self.concurrency)
        return self.engines[url]


def served_model(config, spec: str) -> ServedModel:
    """The dense model's identity (part of every baseline key) names what its server serves: URL, served
    model id and root, so a cached baseline never stands for another model. Without --kick-base-url the
    dense results can only come from --kick-baseline-dir files, whose envelope says where they were made."""
    source = registry.resolve(spec)
    tokenizer = load_tokenizer(source, Path(config.cache_dir))
    found = ServedModel(
        tokenizer,
        {"name": source.name, "engine": "openai-completions", "url": None},
        config.base_url,
        config.compressed_url,
        config.timeout,
        min(config.batch_size, 16),
    )
    if config.base_url is not None:
        found.identity = {"name": source.name, **found.engine(compressed=False).identity()}
    return found


def load_tokenizer(source, cache_dir: Path):
    """The tokenizer of a model source, without its weights."""
    from transformers import AutoTokenizer

    try:
        if source.kind == "random":
            return byte_tokenizer()
        if source.kind == "gguf-package":
            path = loading.gguf_path(source, cache_dir)
            converted = cache_dir / "models" / f"{source.name}-{file_hash(path)[:16]}"
            if (converted / loading.COMPLETE).is_file():
                return AutoTokenizer.from_pretrained(converted)
            return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        if source.kind == "hub":
            return AutoTokenizer.from_pretrained(source.ref, local_files_only=os.environ.get("HF_HUB_OFFLINE") == "1")
        return AutoTokenizer.from_pretrained(source.ref)
    except KickError:
        raise
    except Exception as err:  # transformers and tokenizers raise their own types
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise KickError(
            f"cannot load the tokenizer of {source.name} ({source.ref}): {first}; the served engine "
            f"needs it to send exact token ids"
        ) from None
