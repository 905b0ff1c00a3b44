"""WikiText-2 test perplexity, for contrast (LLM-KICK, section 3: perplexity stays "fine" while the
knowledge-intensive tasks fail).

The corpus is the WikiText-2 raw test split joined with ``"\\n\\n"`` as in the SparseGPT / Wanda / GPTQ
evaluations. Two protocols, both exp(total negative log-likelihood / total scored tokens):

- ``strict`` (default): the corpus cut into items of about CHUNK_CHARS characters at row boundaries, and
  scored as one token sequence in blocks that each share one window start (tasks/perplexity_stream.py states
  the definition: windows of up to 2,048 tokens, every token after the first block seeing at least 512 tokens
  before it, the Hugging Face guide's strided evaluation with a longer window). A block's items are scored in
  one pass, each reusing the keys and values of the text before it; ``--kick-accelerate off`` computes every
  item's tokens on their own, the same numbers. With ``--kick-limit N`` the items are N consecutive chunks from
  a seeded start, so they share blocks. The figure is token-weighted: an item's score is its summed NLL times
  n / (tokens of all n items), so the mean of the scores is the NLL per token and the figure exp(mean score)
  (an item's own perplexity is in its output).
- ``kick``: the Wanda / LLM-KICK ``eval_ppl`` (VITA-Group/llm-kick, ``lib/eval.py``; imported by every
  LLM-KICK script, never called): the joined text tokenized once (a BOS first where the tokenizer puts
  one), cut into non-overlapping windows of KICK_WINDOW tokens (or the model's context, if shorter), the
  tail dropped, each window scored from scratch (its first token is never a target): exp(mean window loss).
  The gate's items are slots, fixed before any tokenizer is seen: with ``--kick-limit N``, window k is
  slot k for the first N windows; without, the windows are dealt over KICK_SLOTS slots (window j to slot
  j mod KICK_SLOTS), a slot scoring its windows' summed loss times slots / windows, so the mean of the
  slot scores is the mean window loss, and the figure is eval_ppl's.

Data order: the hub's ``wikitext`` / ``wikitext-2-raw-v1`` test split (empty rows included, as the
papers join them), a local ``DIR/wikitext2/*.jsonl`` with ``--kick-data-dir``, or the bundled rows. The
bundled copy lacks the split's empty rows, so its perplexity differs slightly from hub-based figures.
"""

from __future__ import annotations

import math
import random
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from pytest_kick.errors import KickError
from pytest_kick.hashing import file_hash, text_hash
from pytest_kick.requests import RollingRequest
from pytest_kick.tasks import perplexity_stream as stream
from pytest_kick.tasks.base import Dataset, Settings
from pytest_kick.tasks.data import bundled_dir, hub_rows, read_jsonl

BUNDLED = "wikitext2/wikitext2_raw_test_lines.jsonl"
HUB = ("wikitext", "wikitext-2-raw-v1", "test")
CHUNK_CHARS = 2000  # about 450 SmolLM2 tokens per item
KICK_WINDOW = 2048  # eval_ppl's model.seqlen, set by hand in LLM-KICK's get_llm
KICK_SLOTS = 64  # gate items of a kick run without --kick-limit


@dataclass(frozen=True)
class Chunk:
    id: str
    text: str
    start: int  # character offset of the chunk in the joined corpus

    @property
    def question(self) -> str:  # what a flip report shows
        return self.text[:80]

    answers: tuple[str, ...] = ()


def chunks(text: str, size: int | None = None) -> list[Chunk]:
    """The corpus cut after the first row end ("\\n") at or beyond every ``size`` (CHUNK_CHARS) characters."""
    size = size or CHUNK_CHARS
    found, start = [], 0
    while start < len(text):
        end = text.find("\n", min(start + size, len(text)) - 1)
        end = len(text) if end == -1 else end + 1
        found.append(Chunk(f"wikitext2/chunk/{len(found)}", text[start:end], start))
        start = end
    return found


@dataclass(frozen=True)
class Slot:
    """A kick item: the windows j of the tokenized corpus with j mod slots == index (see the module doc)."""

    id: str
    index: int
    slots: int
    limited: bool  # --kick-limit: one window per slot, the first ``slots`` windows only
    corpus: str  # the dataset's content hash: whose text is tokenized

    @property
    def question(self) -> str:  # what a flip report shows
        return (
            f"window {self.index}"
            if self.limited
            else f"windows {self.index}, {self.index + self.slots}, ... (every {self.slots}th)"
        )

    answers: tuple[str, ...] = ()


LOCAL_LAYOUT = f"wikitext2/*.jsonl records with a 'text' field per WikiText-2 test row (as the bundled {BUNDLED})"


class Perplexity:
    name = "perplexity"
    family = "perplexity"
    version = "4"  # 4: strict in shared-start blocks (streams), runs of items; 3: token-weighted, kick = eval_ppl
    metric = "perplexity"
    higher_is_better = False
    floor = None  # no chance level: dense is always informative

    def __init__(self):
        self._corpus: dict = {}
        self._tokens = weakref.WeakKeyDictionary()  # engine -> {corpus: (T, spans)}: ~7 s a case on SmolLM2

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
        if settings.protocol == "kick":
            slots, limited = (settings.limit, True) if settings.limit is not None else (KICK_SLOTS, False)
            name = "window" if limited else "slot"
            return [], [
                Slot(f"wikitext2/eval_ppl/{name}/{k}", k, slots, limited, dataset.content_hash) for k in range(slots)
            ]
        return [], consecutive(list(dataset.examples), settings.limit, settings.seed, self.name)

    def template_hash(self, settings: Settings) -> str:
        if settings.protocol == "kick":
            return text_hash(
                "wikitext2",
                "join:\\n\\n",
                "eval_ppl",
                f"window:{KICK_WINDOW}",
                "one-tokenization,disjoint,tail-dropped",
                f"slots:{KICK_SLOTS}",
            )
        return text_hash(
            "wikitext2",
            "join:\\n\\n",
            f"chunk:{CHUNK_CHARS}",
            "corpus:empty-prompt+items-tokenized-alone",
            f"window:{stream.WINDOW}",
            f"min-context:{stream.MIN_CONTEXT}",
            "blocks:stride=window-context,shared-start",
            "limit:consecutive",
            "token-weighted",
        )

    def figure(self, mean: float) -> float:
        return math.exp(mean)

    def evaluate(self, items, shots, settings: Settings, run):
        """(score, output text) per item; the mean of the scores is the NLL per scored token (module doc)."""
        if settings.protocol == "kick":
            return self._evaluate_windows(items, run)
        corpus = self._corpus_for(items)
        tokens, spans = self._tokenized(corpus, run)
        where = {c.id: span for c, span in zip(corpus, spans)}
        compute = stream.streamed if settings.accelerate else stream.from_scratch
        answers = compute(tokens, [where[i.id] for i in items], stream.geometry(run.max_length), run)
        _, outputs = nll_scores(self.name, items, answers)  # checks every item scored a token
        total = sum(len(a) for a in answers)
        return [-sum(a) * len(items) / total for a in answers], outputs

    def _evaluate_windows(self, slots: Sequence[Slot], run):
        """eval_ppl over the windows behind ``slots`` (the module doc says how windows map to slots)."""
        if not slots:
            return [], []
        first = slots[0]
        corpus = self._corpus.get(first.corpus)
        if corpus is None:
            raise KickError("perplexity: items were not produced by this task's load(); load the data first")
        ids = run.tokenize("".join(c.text for c in corpus))
        if ids is None:
            raise KickError(
                "perplexity under --kick-protocol kick tokenizes the corpus itself and needs the "
                "model's tokenizer; this engine has none"
            )
        window = KICK_WINDOW if not run.max_length else min(KICK_WINDOW, run.max_length)
        total = len(ids) // window  # eval_ppl's nsamples: the tail is dropped
        if total < first.slots:
            what = "--kick-limit" if first.limited else f"its {KICK_SLOTS} items (pass --kick-limit {total} or less)"
            raise KickError(
                f"perplexity (kick): the corpus is {len(ids)} tokens, {total} windows of {window}: too few for {what}"
            )
        used = first.slots if first.limited else total
        requests = [
            RollingRequest("", window=window, ids=tuple(ids[j * window : (j + 1) * window])) for j in range(used)
        ]
        losses = []
        for logprobs in run(requests):
            losses.append(-sum(logprobs) / len(logprobs))  # the window's mean loss over its window - 1 targets
        scores, outputs = [], []
        for slot in slots:
            mine = losses[slot.index :: slot.slots]
            scores.append(sum(mine) * slot.slots / used)
            outputs.append(f"ppl {math.exp(sum(mine) / len(mine)):.3f} over {len(mine)} window(s) of {window} tokens")
        return scores, outputs

    def _tokenized(self, corpus: tuple[Chunk, ...], run):
        """The corpus as tokens (perplexity_stream.corpus_tokens), once per engine: its tokenizer never changes while
        the model is compressed in place, and the corpus is ~300k tokens."""
        engine = getattr(run, "engine", None)
        try:
            memo = self._tokens.setdefault(engine, {})
        except TypeError:  # no engine to key on (a plain callable): tokenize every time
            memo = {}
        if corpus not in memo:
            memo[corpus] = stream.corpus_tokens([c.text for c in corpus], run.tokenize)
        return memo[corpus]

    def _corpus_for(self, items) -> tuple[Chunk, ...]:
        for corpus in self._corpus.values():
            position = {c.id: k for k, c in enumerate(corpus)}
            if all(i.id in position and corpus[position[i.id]] == i for i in items):
                return corpus
        raise KickError("perplexity: items were not produced by this task's load(); load the data first")


def consecutive(items: list, limit: int | None, seed: int, salt: str) -> list:
    """``limit`` consecutive items from a seeded start (all items when limit is None): they share blocks."""
    if limit is None or limit >= len(items):
        return list(items)
    start = random.Random(f"{seed}/{salt}/run").randrange(len(items) - limit + 1)
    return items[start : start + limit]


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
