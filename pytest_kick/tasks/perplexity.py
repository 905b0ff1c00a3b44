"""WikiText-2 test perplexity, for contrast (LLM-KICK, section 3: perplexity stays "fine" while the
knowledge-intensive tasks fail).

The corpus is the WikiText-2 raw test split joined with ``"\\n\\n"`` as in the SparseGPT / Wanda / GPTQ
evaluations, cut into items of about CHUNK_CHARS characters at row boundaries. Each item is one rolling
log-likelihood request (the engine's ``loglikelihood_rolling``): its own text, conditioned on the corpus
text before it (the last CONTEXT_CHARS characters), the model seeing at most WINDOW tokens at a time (or
its context, if shorter); every token of the item is scored, an item longer than a window in several
windows. The item's score is the mean negative log-likelihood (nats per token) of its own tokens; the
task's figure is exp(mean item score): perplexity, lower is better. The engine tokenizes an item's text
on its own, so item boundaries are token boundaries for every tokenizer.

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
from pytest_kick.requests import RollingRequest
from pytest_kick.tasks.base import Dataset, Settings
from pytest_kick.tasks.data import bundled_dir, hub_rows, read_jsonl, subset

BUNDLED = "wikitext2/wikitext2_raw_test_lines.jsonl"
HUB = ("wikitext", "wikitext-2-raw-v1", "test")
CHUNK_CHARS = 2000  # about 450 SmolLM2 tokens per item
WINDOW = 1024  # tokens the model sees at a time: the item plus the text before it
CONTEXT_CHARS = 8 * WINDOW  # text before an item sent as context: more than a window of tokens in practice


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
    version = "2"  # 2: every token of an item scored (1 dropped tokens past one window), context as text
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
        return text_hash("wikitext2", "join:\\n\\n", f"chunk:{CHUNK_CHARS}", f"window:{WINDOW}",
                         f"context-chars:{CONTEXT_CHARS}", "rolling:all-tokens,stride-half-window")

    def figure(self, mean: float) -> float:
        return math.exp(mean)

    def requests(self, items: Sequence[Chunk]) -> list[RollingRequest]:
        """One rolling log-likelihood request per item: its text, after the corpus text before it."""
        corpus = self._corpus_for(items)
        joined = "".join(c.text for c in corpus)
        return [RollingRequest(i.text, joined[max(0, i.start - CONTEXT_CHARS):i.start], WINDOW) for i in items]

    def evaluate(self, items: Sequence[Chunk], shots, settings: Settings, run):
        """(mean NLL per item, its perplexity as text) for every item."""
        return nll_scores(self.name, items, run(self.requests(items)))

    def _corpus_for(self, items) -> tuple[Chunk, ...]:
        for corpus in self._corpus.values():
            position = {c.id: k for k, c in enumerate(corpus)}
            if all(i.id in position and corpus[position[i.id]] == i for i in items):
                return corpus
        raise KickError("perplexity: items were not produced by this task's load(); load the data first")


def nll_scores(task: str, items, answers) -> tuple[list[float], list[str]]:
    """(mean negative log-likelihood per item, its perplexity as text) from each item's rolling log-probabilities."""
    scores, outputs = [], []
    for item, logprobs in zip(items, answers):
        if not logprobs:
            raise KickError(f"{task}: item {item.id} has no token to score")
        nll = -sum(logprobs) / len(logprobs)
        scores.append(nll)
        outputs.append(f"ppl {math.exp(nll):.3f} over {len(logprobs)} tokens")
    return scores, outputs
