"""Training text for recovery: a language-modelling objective on calibration-style data.

By default the C4 documents calibration draws from (:func:`pytest_kick.compress.calibration.c4_documents`:
the bundled 2,000-document validation sample when no hub or ``--kick-data-dir`` copy is found); with
``--kick-recover-data DIR``, the user's own ``*.jsonl`` files in DIR (one JSON object a line with a
``text`` field). One document in ten (chosen by a hash of its text, so the split does not depend on file
order) is held out: recovery never trains on it, and held-out loss is measured on it.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

from pytest_kick.compress.calibration import c4_documents
from pytest_kick.errors import KickError
from pytest_kick.hashing import file_hash, text_hash
from pytest_kick.tasks.data import read_jsonl

HELD_OUT_EVERY = 10  # one document in ten is held out


@dataclass(frozen=True)
class Corpus:
    train: tuple[str, ...]
    held_out: tuple[str, ...]
    source: str  # "bundled:c4/...", "local:/path/a.jsonl,..."
    digest: str  # content hash of the files: part of the recovery cache key


def _held_out(text: str) -> bool:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) % HELD_OUT_EVERY == 0


def load_corpus(data_dir: Path | None = None, calibration_dir: Path | None = None, notify=None) -> Corpus:
    """The recovery corpus: ``data_dir``'s JSONL files when given, else calibration's C4 documents."""
    if data_dir is not None:
        texts, source, digest = _user_texts(Path(data_dir))
    else:
        texts, source, digest = c4_documents(calibration_dir, notify)
    texts = [t for t in texts if t.strip()]
    train = tuple(t for t in texts if not _held_out(t))
    held_out = tuple(t for t in texts if _held_out(t))
    if not train or not held_out:
        raise KickError(
            f"recovery data {source} holds {len(texts)} non-empty documents; at least "
            f"{HELD_OUT_EVERY} are needed (one in {HELD_OUT_EVERY} is held out)"
        )
    return Corpus(train, held_out, source, digest)


def _user_texts(directory: Path) -> tuple[list[str], str, str]:
    if not directory.is_dir():
        raise KickError(
            f'--kick-recover-data {directory} is not a directory; give one holding *.jsonl files with a "text" field'
        )
    files = sorted(directory.glob("*.jsonl"))
    if not files:
        raise KickError(
            f"--kick-recover-data {directory} holds no *.jsonl files; add files with one JSON object "
            'a line and a "text" field'
        )
    texts = []
    for f in files:
        for record in read_jsonl(f, required=("text",)):
            if not isinstance(record["text"], str):
                raise KickError(f'{f}: a "text" field is not a string')
            texts.append(record["text"])
    return texts, "local:" + ",".join(map(str, files)), text_hash(*(file_hash(f) for f in files))


def windows(tokenizer, texts, count: int, seqlen: int, seed: int, purpose: str = "train"):
    """LongTensor [count, seqlen]: random windows of random documents, as calibration draws them (one
    document long enough for a window; documents concatenated when none is), reproducible from ``seed``.

    Each window starts with what the tokenizer puts before any text (a BOS, for LLaMA tokenizers), as every
    evaluated prompt does, so a soft prompt learns to sit where it will sit at evaluation."""
    import torch

    lead = tokenizer("", add_special_tokens=True)["input_ids"]
    if len(lead) >= seqlen:
        raise KickError(f"recovery windows of {seqlen} tokens hold no text; use a longer --kick-recover-seqlen")
    body = seqlen - len(lead)
    rng = random.Random(f"{seed}/recover/{purpose}")
    rows = []
    for _ in range(count):
        ids = None
        for _attempt in range(64):
            candidate = tokenizer(texts[rng.randrange(len(texts))], add_special_tokens=False)["input_ids"]
            if len(candidate) > body:
                ids = candidate
                break
        if ids is None:
            ids = []
            while len(ids) <= body:
                ids += tokenizer(texts[rng.randrange(len(texts))], add_special_tokens=False)["input_ids"]
        start = rng.randrange(len(ids) - body)
        rows.append(lead + ids[start : start + body])
    return torch.tensor(rows, dtype=torch.long)
