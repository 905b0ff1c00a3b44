"""A side environment for a benchmark's reference tool (vLLM, lm-evaluation-harness): made once, its pins recorded
in a stamp file, so a second run reuses it and a change of pins installs again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def install(venv: Path, pins: tuple[str, ...], removed: tuple[str, ...] = (), name: str = "side") -> Path:
    """The environment's python: ``pip install pins`` (then ``pip uninstall removed``) when its stamp is missing
    or names other pins."""
    python = venv / "bin" / "python"
    stamp = venv / f".kick-{name}-installed"
    if stamp.is_file() and stamp.read_text().strip() == " ".join(pins) and python.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", *pins], check=True)
    if removed:
        subprocess.run([str(python), "-m", "pip", "uninstall", "-y", *removed], check=True)
    stamp.write_text(" ".join(pins) + "\n")
    return python
