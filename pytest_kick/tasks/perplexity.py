"""WikiText-2 test perplexity, for contrast (LLM-KICK, section 3: perplexity stays "fine" while the
knowledge-intensive tasks fail).

The corpus is the WikiText-2 raw test split joined with ``"\\n\\n"`` as in the SparseGPT / Wanda / GPTQ
evaluations, cut into items of about CHUNK_CHARS characters at row boundaries. Each item's tokens are
scored with a sliding window: the model sees up to WINDOW tokens, the item's own tokens preceded by as
much of the text before it as fits, and the item's score is the mean negative log-likelihood (nats per
token) of its own tokens. The task's figure is exp(mean item score): perplexity, lower is better.
Items are tokenized one by one, so item boundaries are token boundaries for every tokenizer.

Data order: the hub's ``wikitext`` / ``wikitext-2-raw-v1`` test split (empty rows included, as the
papers join them), a local ``DIR/wikitext2/*.jsonl`` with ``--kick-data-dir``, or the bundled rows. The
bundled copy lacks the split's empty rows, so its perplexity differs slightly from hub-based figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from pytest_kick.errors import KickError
from pytest_kick.hashing import file_hash, text_hash
from pytest_kick.tasks.base import Dataset, Settings
from pytest_kick.tasks.data import bundled_dir, hub_rows, read_jsonl, subset

BUNDLED = "wikitext2/wikitext2_raw_test_lines.jsonl"
HUB = ("wikitext", "wikitext-2-raw-v1", "test")
CHUNK_CHARS = 2000  # about 450 SmolLM2 tokens per item
WINDOW = 1024  # tokens the model sees per item: the item plus the text before it


@dataclass(frozen=True)
class Chunk:
    id: str
    text: str
    start: int  # character offset of the chunk in the joined corpus

    @property
    def question(self) -> str:  # what a flip report shows
        return self.text[:80]

    answers: tuple[str, ...] = ()


def chunks(text: str, size: int = CHUNK_CHARS) -> list[Chunk]:
    """The corpus cut after the first row end ("\\n") at or beyond every ``size`` characters."""
    found, start = [], 0
    while start < len(text):
        end = text.find("\n", min(start + size, len(text)) - 1)
        end = len(text) if end == -1 else end + 1
        found.append(Chunk(f"wikitext2/chunk/{len(found)}", text[start:end], start))
        start = end
    return found


LOCAL_LAYOUT = f"wikitext2/*.jsonl records with a 'text' field per WikiText-2 test row (as the bundled {BUNDLED})"


class Perplexity:
    name = "perplexity"
    family = "perplexity"
    version = "1"
    metric = "perplexity"
    higher_is_better = False
    floor = None  # no chance level: dense is always informative

    def __init__(self):
        self._corpus: dict = {}

    def load(self, settings: Settings) -> Dataset:
        files = sorted((Path(settings.data_dir) / "wikitext2").glob("*.jsonl")) if settings.data_dir else []
        if files:
            rows = [r["text"] for f in files for r in read_jsonl(f, required=("text",))]
            digest = text_hash(*(file_hash(f) for f in files))
            return self._dataset(rows, "local:" + ",".join(map(str, files)), digest)
        hub = hub_rows(*HUB)
        if hub is not None:
            rows, source, digest = hub
            return self._dataset([r["text"] for r in rows], source, digest)
        path = bundled_dir() / BUNDLED
        rows = [r["text"] for r in read_jsonl(path, required=("text",))]
        return self._dataset(rows, f"bundled:{BUNDLED} (empty rows absent)", file_hash(path))

    def _dataset(self, rows: list[str], source: str, digest: str) -> Dataset:
        if not all(isinstance(r, str) for r in rows):
            raise KickError(f"{source}: every WikiText row must be a string")
        found = tuple(chunks("\n\n".join(rows)))
        self._corpus[digest] = found  # every item needs the text before it as context: the corpus is kept whole
        return Dataset(found, source, digest)

    def split(self, dataset: Dataset, settings: Settings):
        return [], subset(list(dataset.examples), settings.limit, settings.seed, self.name)

    def template_hash(self, settings: Settings) -> str:
        return text_hash("wikitext2", "join:\\n\\n", f"chunk:{CHUNK_CHARS}", f"window:{WINDOW}")

    def figure(self, mean: float) -> float:
        return math.exp(mean)

    def evaluate(self, engine, items: Sequence[Chunk], shots, settings: Settings, progress=None):
        """(mean NLL per item, its perplexity as text) for every item."""
        import torch

        corpus = self._corpus_for(items)
        index = {c.id: k for k, c in enumerate(corpus)}
        tokenizer = engine.tokenizer
        limit = min(WINDOW, getattr(engine.model.config, "max_position_embeddings", WINDOW) or WINDOW)
        token_cache: dict[int, list[int]] = {}

        def tokens(k: int) -> list[int]:
            if k not in token_cache:
                token_cache[k] = tokenizer(corpus[k].text, add_special_tokens=False)["input_ids"]
            return token_cache[k]

        windows = []  # (input ids, number of scored tokens at the end)
        for item in items:
            k = index[item.id]
            own = tokens(k)[: limit - 1] if k else tokens(k)[:limit]
            context: list[int] = []
            j = k - 1
            while j >= 0 and len(context) + len(own) < limit:
                context = tokens(j)[-(limit - len(own) - len(context)):] + context
                j -= 1
            scored = len(own) if context else len(own) - 1  # the corpus's first token has nothing before it
            windows.append((context + own, scored))
        scores, outputs = [0.0] * len(items), [""] * len(items)
        order = sorted(range(len(windows)), key=lambda i: -len(windows[i][0]))
        done = 0
        for start in range(0, len(order), engine.batch_size):
            batch = order[start:start + engine.batch_size]
            width = max(len(windows[i][0]) for i in batch)
            keep = max(windows[i][1] for i in batch) + 1  # logits only where a scored token is predicted
            ids = torch.full((len(batch), width), engine.pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):  # left padding: every window ends at the last column
                seq = windows[i][0]
                ids[row, width - len(seq):] = torch.tensor(seq)
                mask[row, width - len(seq):] = 1
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
            with torch.inference_mode():
                logits = engine.model(input_ids=ids.to(engine.device), attention_mask=mask.to(engine.device),
                                      position_ids=positions.to(engine.device), logits_to_keep=keep).logits
            for row, i in enumerate(batch):
                scored = windows[i][1]
                if scored <= 0:
                    raise KickError(f"perplexity: item {items[i].id} has no token to score")
                # logits column -1 predicts nothing; columns -scored-1 .. -2 predict the scored tokens
                predicted = logits[row, keep - scored - 1:keep - 1].float()
                target = ids[row, width - scored:].to(predicted.device)
                nll = torch.nn.functional.cross_entropy(predicted, target).item()
                scores[i], outputs[i] = nll, f"ppl {math.exp(nll):.3f} over {scored} tokens"
            done += len(batch)
            if progress:
                progress(done, len(items))
        return scores, outputs

    def _corpus_for(self, items) -> tuple[Chunk, ...]:
        for corpus in self._corpus.values():
            position = {c.id: k for k, c in enumerate(corpus)}
            if all(i.id in position and corpus[position[i.id]] == i for i in items):
                return corpus
        raise KickError("perplexity: items were not produced by this task's load(); load the data first")
