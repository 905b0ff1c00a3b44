"""One registry for every extension point: tasks, compressors, engines, judges and recovery methods.

Each kind has a protocol (extension_protocols.py: what an entry must have, its optional parts in the docstring) and an
entry-point group, so an installed package adds one without touching pytest-kick::

    [project.entry-points."pytest_kick.compressors"]
    myprune = "myprune_pkg:ENTRY"

An entry point names an entry, a list of entries, or a callable returning either. The bundled entries are
named the same way, by a ``"module:object"`` string each kind reads on first use, so this module imports
nothing of the package but errors.py and listing a kind never imports torch: a compressor names its solver,
an engine its builder, a judge its backend, a recovery method its class, all as ``"module:object"`` strings
resolved (:func:`resolve`) only when one runs. docs/extending.md shows one of each.

Tasks keep their own registry (``pytest_kick.tasks``: variants, families, where each was declared); the
``tasks`` kind here is a view of it, and registration.py feeds it from the same entry-point loader.
"""

from __future__ import annotations

import importlib
from typing import Callable, Iterable

from pytest_kick.errors import KickError
from pytest_kick.extension_protocols import (
    CompressorEntry,
    EngineEntry,
    JudgeEntry,
    RecoveryEntry,
    TaskEntry,
)


def resolve(ref: str, what: str = ""):
    """The object a ``"module:object"`` string names (``object`` may be dotted); KickError naming it otherwise."""
    module, sep, attr = str(ref).partition(":")
    try:
        if not sep or not module or not attr:
            raise ValueError("not of the form 'module:object'")
        found = importlib.import_module(module)
        for part in attr.split("."):
            found = getattr(found, part)
        return found
    except Exception as err:
        raise KickError(f"{what or ref}: cannot load {ref!r}: {type(err).__name__}: {err}") from None


def as_list(value, where: str, accept: Callable[[object], bool], what: str = "entry") -> list:
    """An entry, a list of entries, or a callable (class, factory) giving either, as a list."""
    if value is None:
        return []
    if accept(value) and not isinstance(value, type):
        return [value]
    if isinstance(value, (list, tuple)):
        return [e for v in value for e in as_list(v, where, accept, what)]
    if callable(value):
        try:
            return as_list(value(), where, accept, what)
        except KickError:
            raise
        except Exception as err:
            raise KickError(f"{where}: building what it gives failed: {type(err).__name__}: {err}") from None
    raise KickError(f"{where}: gave {value!r}, not {what} or a list of them")


def entry_points(group: str) -> list[tuple[object, str]]:
    """(loaded value, where) of every installed entry point of ``group``; a KickError names one that fails."""
    from importlib.metadata import entry_points as installed

    found = []
    for point in installed(group=group):
        where = f"entry point {point.name} = {point.value} (group {group})"
        try:
            found.append((point.load(), where))
        except Exception as err:
            raise KickError(f"{where}: cannot be loaded: {type(err).__name__}: {err}") from None
    return found


class Kind:
    """The entries of one extension point: the bundled ones (read on first use) plus the registered ones."""

    def __init__(self, name: str, protocol: type, bundled: str, required: tuple[str, ...]):
        self.name = name  # "compressors"
        self.group = f"pytest_kick.{name}"
        self.protocol = protocol
        self.bundled = bundled  # "module:object" of the bundled entries
        self.required = required
        self._entries: dict | None = None
        self._origin: dict[str, str] = {}

    def entries(self) -> dict:
        if self._entries is None:
            self._entries = {}
            for entry in resolve(self.bundled, f"bundled {self.name}"):
                self._entries[entry.name] = entry
        return self._entries

    def names(self) -> list[str]:
        return list(self.entries())

    def registered(self) -> list[str]:
        """Names added beyond the bundled entries, in registration order."""
        return list(self._origin)

    def where(self, name: str) -> str:
        return self._origin.get(name, "pytest-kick")

    def __contains__(self, name) -> bool:
        return name in self.entries()

    def get(self, name: str):
        try:
            return self.entries()[name]
        except KeyError:
            raise KickError(f"unknown {self.name[:-1]} {name!r}; known: {', '.join(self.names())}") from None

    def add(self, entry, where: str) -> None:
        """Register ``entry``; a KickError naming ``where`` when it lacks part of the protocol or its name is taken."""
        missing = [a for a in self.required if not hasattr(entry, a)]
        if missing:
            raise KickError(
                f"{where}: {entry!r} is not one of {self.name}: it lacks {', '.join(missing)} "
                f"(see {self.protocol.__module__}.{self.protocol.__name__})"
            )
        name = entry.name
        if not isinstance(name, str) or not name or any(c in name for c in ",=: "):
            raise KickError(f"{where}: name {name!r} must be a non-empty word (no comma, '=', ':' or space)")
        if name in self.entries():
            raise KickError(
                f"{where}: {self.name[:-1]} {name!r} is already registered by {self.where(name)}; rename one"
            )
        self.entries()[name] = entry
        self._origin[name] = where

    def reset(self) -> None:
        """Back to the bundled entries."""
        for name in self._origin:
            self.entries().pop(name, None)
        self._origin.clear()

    def load_installed(self) -> None:
        """Add every entry of the installed packages' entry points of this kind's group."""
        accept = lambda e: hasattr(e, "name") and not callable(e)  # noqa: E731  (add() checks the protocol)
        for value, where in entry_points(self.group):
            for entry in as_list(value, where, accept, f"one of {self.name}"):
                self.add(entry, where)


class TaskView:
    """The ``tasks`` kind: the task registry of ``pytest_kick.tasks`` (it knows families and variants), seen
    through the same names as the other kinds. Read only: tasks join through ``tasks.use`` (registration.py)."""

    name = "tasks"
    group = "pytest_kick.tasks"
    protocol = TaskEntry

    def names(self) -> list[str]:
        return importlib.import_module("pytest_kick.tasks").names()

    def registered(self) -> list[str]:
        return importlib.import_module("pytest_kick.tasks").registered()

    def get(self, name: str):
        return importlib.import_module("pytest_kick.tasks").get(name)

    def __contains__(self, name) -> bool:
        return name in self.names()


tasks = TaskView()
compressors = Kind(
    "compressors",
    CompressorEntry,
    "pytest_kick.compress:BUNDLED",
    (
        "name",
        "kinds",
        "defaults",
        "what",
        "calibrated",
        "act_bits",
        "solver",
        "scope",
        "quantizer",
        "searchable",
        "accepts",
    ),
)
engines = Kind(
    "engines", EngineEntry, "pytest_kick.engines.factory:BUNDLED", ("name", "what", "local_weights", "build")
)
judges = Kind("judges", JudgeEntry, "pytest_kick.judge:BUNDLED", ("name", "what", "form", "backend", "takes_model"))
recovery = Kind(
    "recovery", RecoveryEntry, "pytest_kick.recover.spec:BUNDLED", ("name", "what", "method", "sizes", "lr")
)
KINDS: dict = {k.name: k for k in (tasks, compressors, engines, judges, recovery)}
GROUPS: dict[str, str] = {name: kind.group for name, kind in KINDS.items()}


def registries() -> Iterable[Kind]:
    """The kinds this module holds the entries of (every kind but tasks)."""
    return (compressors, engines, judges, recovery)


def reset() -> None:
    for kind in registries():
        kind.reset()


def load_installed() -> None:
    """Every installed package's compressors, engines, judges and recovery methods (tasks: registration.py)."""
    reset()
    for kind in registries():
        kind.load_installed()
