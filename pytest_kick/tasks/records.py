"""Reading a user's data file: JSON Lines or CSV, each record with the line it starts on (for messages)."""

from __future__ import annotations

import csv
from pathlib import Path

from pytest_kick.errors import KickError
from pytest_kick.tasks.data import read_jsonl

FORMATS = (".jsonl", ".csv")


def read_records(path: Path) -> list[tuple[int, dict]]:
    """(line, record) pairs of a .jsonl or .csv file (CSV: the first row names the columns)."""
    path = Path(path)
    if path.suffix not in FORMATS:
        raise KickError(f"{path}: data files are {' or '.join(FORMATS)}, not {path.suffix or 'extension-less'}")
    if not path.is_file():
        raise KickError(f"{path}: no such data file")
    if path.suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            found = []
            for record in reader:
                found.append((reader.line_num, {k: v for k, v in record.items() if k is not None}))
        if not found:
            raise KickError(f"{path}: the CSV file holds no rows")
        return found
    lines = [n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if line.strip()]
    return list(zip(lines, read_jsonl(path)))
