"""The flip report of a failed case: a JSONL of the items whose score changed between dense and compressed,
under ``<cache>/reports/<model>/``, so a person can read what knowledge was lost (``Runtime.write_flips``)."""

from __future__ import annotations

import json
from pathlib import Path

from pytest_kick.files import atomic_write
from pytest_kick.gate import change
from pytest_kick.tasks import flips


def path_of(cache_dir: Path, case) -> Path:
    """``<cache>/reports/<model>/<task>-<compressor>-<ratio>[+<recovery>].jsonl`` (``:`` spelled out)."""
    ratio = case.ratio.replace(":", "of")
    recovery = "+" + case.recovery if case.recovery else ""
    name = f"{case.task.replace(':', '-')}-{case.compressor}-{ratio}{recovery}.jsonl"
    return Path(cache_dir) / "reports" / case.model_name / name


def write(cache_dir: Path, task, items, case, dense, compressed) -> Path | str:
    """The report's path, or why it could not be written (a read-only cache still gates; only this is lost)."""
    explain = getattr(task, "explain", None)  # a judged task: the judge's reasons beside each answer
    by_id = {i.id: i for i in items}
    path = path_of(cache_dir, case)
    lines = []
    for k, item_id in enumerate(dense.item_ids):
        d, c = dense.scores[k], compressed.scores[k]
        what = change(d, c, task.higher_is_better)
        if what is None:
            continue
        item = by_id.get(item_id)
        lines.append(
            json.dumps(
                {
                    "id": item_id,
                    "change": what,
                    **flips.item_fields(item),  # multiple choice: the choices and the correct one, apart
                    "dense_output": dense.outputs[k],
                    "compressed_output": compressed.outputs[k],
                    "dense_score": d,
                    "compressed_score": c,
                    **(
                        {}
                        if explain is None or item is None
                        else {
                            "dense_judge": explain(item, dense.outputs[k]),
                            "compressed_judge": explain(item, compressed.outputs[k]),
                        }
                    ),
                },
                ensure_ascii=False,
            )
            + "\n"
        )
    try:
        atomic_write(path, "".join(lines))
    except OSError as err:
        return f"no flip report: {path.parent} is not writable ({err.strerror or err})"
    return path
