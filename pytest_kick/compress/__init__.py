"""Compressors by name. Each module exposes ``compress(model, ratio, seed=0) -> CompressionReport``.

Names are listed here without importing torch, so the config module can validate them cheaply; the
module is imported when a compressor is first used.
"""

from __future__ import annotations

import importlib

COMPRESSORS = {
    "magnitude": "pytest_kick.compress.magnitude",
}


def names() -> list[str]:
    return sorted(COMPRESSORS)


def get(name: str):
    """The ``compress`` function of compressor ``name``."""
    return importlib.import_module(COMPRESSORS[name]).compress
