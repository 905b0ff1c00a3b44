"""The versions of the packages that change a model's results: part of every dense baseline's key."""

from __future__ import annotations

import importlib.metadata

from pytest_kick import __version__


def package_versions() -> dict:
    found = {"pytest-kick": __version__}
    for package in ("torch", "transformers"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found
