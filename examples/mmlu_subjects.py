"""Write a copy of the bundled MMLU restricted to some subjects, for ``--kick-data-dir``.

    python examples/mmlu_subjects.py OUT_DIR SUBJECT [SUBJECT ...] [--per-subject N]

writes OUT_DIR/mmlu/mmlu_test.jsonl (the subjects' test questions, the first N of each in file order) and
OUT_DIR/mmlu/mmlu_dev.jsonl (their dev questions, where the 5 shots come from). Then

    pytest --kick-model ... --kick-tasks mmlu --kick-data-dir OUT_DIR

gates the subjects that matter to your deployment. Questions of one subject share their 5-shot block, so
the engine runs it once per subject: a few subjects cost far less per question than a spread over all 57.
``make demo`` uses this for a run of a few minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pytest_kick.files import atomic_write
from pytest_kick.tasks.data import bundled_dir, read_jsonl

TEST, DEV = "mmlu/mmlu_test.jsonl", "mmlu/mmlu_dev.jsonl"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("subjects", nargs="+")
    parser.add_argument("--per-subject", type=int, default=None, help="the first N test questions of each subject")
    args = parser.parse_args(argv)
    if args.per_subject is not None and args.per_subject < 1:
        parser.error(f"--per-subject must be at least 1 (got {args.per_subject})")
    test, dev = read_jsonl(bundled_dir() / TEST), read_jsonl(bundled_dir() / DEV)
    known = sorted({r["subject"] for r in test})
    unknown = [s for s in args.subjects if s not in known]
    if unknown:
        print(f"unknown MMLU subject(s) {', '.join(unknown)}; the 57 are: {', '.join(known)}", file=sys.stderr)
        return 2
    taken: dict[str, int] = {}
    chosen = []
    for r in test:
        s = r["subject"]
        if s in args.subjects and (args.per_subject is None or taken.get(s, 0) < args.per_subject):
            taken[s] = taken.get(s, 0) + 1
            chosen.append(r)
    for name, records in ((TEST, chosen), (DEV, [r for r in dev if r["subject"] in args.subjects])):
        atomic_write(args.out / name, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    print(f"{args.out / 'mmlu'}: {len(chosen)} test questions ({', '.join(f'{s} {n}' for s, n in taken.items())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
