"""Calibration sequences for the calibrated compressors (Wanda, SparseGPT, GPTQ, AWQ).

As in SparseGPT / Wanda / GPTQ: ``samples`` random windows of ``seqlen`` tokens, each from a random C4
document long enough to hold it, drawn with a seeded generator. C4 comes from the hub's first English
train shard (the one those papers use) when the hub is reachable, else from ``--kick-data-dir``
(``c4/*.jsonl`` with a ``text`` field), else from the bundled 2,000-document C4 validation sample. When
too few documents are long enough (tiny seqlen aside, rare), documents are concatenated instead.
"""

from __future__ import annotations

import random
from pathlib import Path

from pytest_kick.errors import KickError
from pytest_kick.hashing import file_hash, text_hash
from pytest_kick.tasks.data import bundled_dir, hub_rows, read_jsonl

BUNDLED = "c4/c4_en_validation_2k.jsonl"
HUB_SHARD = "en/c4-train.00000-of-01024.json.gz"


def c4_documents(data_dir: Path | None = None, notify=None) -> tuple[list[str], str, str]:
    """(texts, source, digest) of the C4 documents calibration draws from."""
    if data_dir is not None:
        files = sorted((Path(data_dir) / "c4").glob("*.jsonl"))
        if files:
            texts = [r["text"] for f in files for r in read_jsonl(f, required=("text",))]
            return texts, "local:" + ",".join(map(str, files)), text_hash(*(file_hash(f) for f in files))
    hub = hub_rows("allenai/c4", None, "train", notify, data_files={"train": HUB_SHARD})
    if hub is not None:
        rows, source, digest = hub
        return [r["text"] for r in rows], source, digest
    path = bundled_dir() / BUNDLED
    return [r["text"] for r in read_jsonl(path, required=("text",))], f"bundled:{BUNDLED}", file_hash(path)


def calibration_ids(tokenizer, samples: int, seqlen: int, seed: int, data_dir: Path | None = None, notify=None):
    """(LongTensor [samples, seqlen], source, digest): the calibration windows, reproducible from ``seed``."""
    import torch

    texts, source, digest = c4_documents(data_dir, notify)
    if not texts:
        raise KickError(f"calibration data {source} holds no documents")
    rng = random.Random(f"{seed}/calibration")
    windows = []
    for _ in range(samples):
        ids = None
        for _attempt in range(64):  # a random document long enough for one window (SparseGPT's sampling)
            candidate = tokenizer(texts[rng.randrange(len(texts))], add_special_tokens=False)["input_ids"]
            if len(candidate) > seqlen:
                ids = candidate
                break
        if ids is None:  # documents too short: concatenate random ones until a window fits
            ids = []
            while len(ids) <= seqlen:
                ids += tokenizer(texts[rng.randrange(len(texts))], add_special_tokens=False)["input_ids"]
        start = rng.randrange(len(ids) - seqlen)
        windows.append(ids[start : start + seqlen])
    return torch.tensor(windows, dtype=torch.long), source, digest
