"""Reading a user's data file: JSON Lines, CSV or Parquet, each record with the line it starts on (Parquet: its row
number), for messages. JSON Lines and CSV need nothing beyond Python; Parquet needs the ``datasets`` package (the
``hub`` extra), whose Parquet engine (pyarrow) reads the file directly: no dataset cache is written."""

from __future__ import annotations

import csv
from pathlib import Path

from pytest_kick.errors import KickError
from pytest_kick.tasks.data import read_jsonl

FORMATS = (".jsonl", ".csv", ".parquet")


def read_records(path: Path) -> list[tuple[int, dict]]:
    """(line, record) pairs of a .jsonl, .csv or .parquet file (CSV: the first row names the columns)."""
    path = Path(path)
    if path.suffix not in FORMATS:
        raise KickError(f"{path}: data files are {', '.join(FORMATS)}, not {path.suffix or 'extension-less'}")
    if not path.is_file():
        raise KickError(f"{path}: no such data file")
    if path.suffix == ".parquet":
        return _parquet(path)
    if path.suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            found = []
            for record in reader:
                found.append((reader.line_num, {k: v for k, v in record.items() if k is not None}))
        if not found:
            raise KickError(f"{path}: the CSV file holds no rows")
        return found
    with open(
        path, encoding="utf-8"
    ) as handle:  # lines as read_jsonl reads them (U+0085 inside a string is no newline)
        lines = [n for n, line in enumerate(handle, 1) if line.strip()]
    found = list(zip(lines, read_jsonl(path)))
    for line, record in found:
        if not isinstance(record, dict):
            kind = {list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
                type(record), "a number"
            )
            raise KickError(f'{path}:{line}: a record is a JSON object ({{"field": value, ...}}), not {kind}')
    return found


def _parquet(path: Path) -> list[tuple[int, dict]]:
    try:
        import pyarrow.parquet
    except ImportError:
        raise KickError(
            f"{path}: reading Parquet needs the datasets package (pip install 'pytest-kick[hub]'); "
            f"or give the data as .jsonl or .csv"
        ) from None
    try:
        rows = pyarrow.parquet.read_table(path).to_pylist()
    except Exception as err:  # pyarrow's errors have no common base class
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise KickError(f"{path}: not a readable Parquet file ({first})") from None
    if not rows:
        raise KickError(f"{path}: the Parquet file holds no rows")
    return list(enumerate(rows, 1))
