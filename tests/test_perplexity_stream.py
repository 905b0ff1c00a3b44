"""Strict perplexity in blocks that share a window start (tasks/perplexity_stream.py): the streamed computation,
the from-scratch one (--kick-accelerate off) and a plain forward pass per (item, block) written here from the
definition give the same per-token log-probabilities; every token after the first block sees at least the
minimum context; a limited run takes consecutive items, and streaming runs fewer tokens than computing each
item alone."""

import math

import pytest

from pytest_kick import tasks
from pytest_kick.engines.base import Runner
from pytest_kick.engines.local import LocalEngine
from pytest_kick.tasks import perplexity
from pytest_kick.tasks import perplexity_stream as stream
from pytest_kick.tasks.base import Settings

TOLERANCE = 1e-4  # float32: one pass over a block against a pass over a prefix of it


class Counting(Runner):
    """A Runner that counts the tokens of the windows it is asked for, and the engine calls."""

    def __init__(self, engine):
        super().__init__(engine)
        self.tokens = self.calls = 0

    def __call__(self, requests):
        self.tokens += sum(len(r.ids) for r in requests)
        self.calls += 1
        return super().__call__(requests)


def reference(model, tokenizer, texts, spans_of, shape):
    """Per-token log-probabilities of the items ``spans_of``, from the definition: T = the empty prompt's tokens,
    then each text tokenized alone; position p >= 1 scored after T[window start of p's block : p]."""
    import torch

    tokens = list(tokenizer("").input_ids)
    spans = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False).input_ids
        spans.append((len(tokens), len(tokens) + len(ids)))
        tokens += ids
    found = []
    for k in spans_of:
        start, end = spans[k]
        logprobs = []
        p = max(1, start)
        while p < end:
            block = p // shape.stride
            stop = min(end, (block + 1) * shape.stride)
            first = max(0, block * shape.stride - shape.context)
            ids = torch.tensor([tokens[first:stop]])
            with torch.inference_mode():
                logits = model(ids).logits[0].float().log_softmax(-1)
            for q in range(p, stop):
                logprobs.append(logits[q - first - 1, tokens[q]].item())
            p = stop
        found.append(logprobs)
    return tokens, found


def compare(model, tokenizer, limit, settings_dir=None):
    task = tasks.get("perplexity")
    settings = Settings(limit=limit, data_dir=settings_dir)
    _, items = task.split(task.load(settings), settings)
    corpus = task._corpus_for(items)
    position = {c.id: k for k, c in enumerate(corpus)}
    engine = LocalEngine(model, tokenizer, "cpu")
    shape = stream.geometry(engine.max_length)
    tokens, spans = stream.corpus_tokens([c.text for c in corpus], Runner(engine).tokenize)
    want_tokens, want = reference(model, tokenizer, [c.text for c in corpus], [position[i.id] for i in items], shape)
    assert tokens == want_tokens
    mine = [spans[position[i.id]] for i in items]
    streamed, scratch = Counting(engine), Counting(engine)
    got = stream.streamed(tokens, mine, shape, streamed)
    alone = stream.from_scratch(tokens, mine, shape, scratch)
    for a, b, c in zip(got, alone, want):
        assert len(a) == len(b) == len(c) > 0
        assert max(abs(x - z) for x, z in zip(a, c)) <= TOLERANCE
        assert max(abs(y - z) for y, z in zip(b, c)) <= TOLERANCE
    return task, items, settings, engine, streamed, scratch, want


def test_streamed_and_from_scratch_equal_the_definition_on_tiny(tiny, one_thread):
    """Bundled WikiText, 3 consecutive items of ~2,000 byte tokens: windows of the model's 1,024, stride 512."""
    model, tokenizer = tiny
    task, items, settings, engine, streamed, scratch, want = compare(model, tokenizer, 3)
    assert stream.geometry(engine.max_length) == stream.Geometry(1024, 512, 512)
    assert streamed.calls == 1 and scratch.calls > len(items)  # one engine call; one per (item, block) piece
    assert streamed.tokens < scratch.tokens  # a block shared by two items runs once
    # through the task, --kick-accelerate on and off: the same token-weighted scores, exp(mean) the figure
    on, _ = task.evaluate(items, [], settings, Runner(engine))
    off, outputs = task.evaluate(items, [], Settings(limit=3, accelerate=False), Runner(engine))
    total = sum(len(w) for w in want)
    expected = [-sum(w) * len(items) / total for w in want]
    assert on == pytest.approx(expected, abs=1e-5) and off == pytest.approx(expected, abs=1e-5)
    assert task.figure(sum(on) / len(on)) == pytest.approx(math.exp(-sum(map(sum, want)) / total), rel=1e-5)
    assert outputs[0].endswith(f"over {len(want[0])} tokens")


def test_streamed_equals_the_definition_on_smollm2(smollm2, one_thread, tmp_path, monkeypatch):
    """The real tokenizer (no BOS, merged tokens) and model, over the first rows of the bundled WikiText cut into
    ~300-character items, in windows shrunk to 160 tokens (40 of context, stride 120) so items cross blocks."""
    import json

    monkeypatch.setattr(stream, "WINDOW", 160)
    monkeypatch.setattr(stream, "MIN_CONTEXT", 40)
    monkeypatch.setattr(perplexity, "CHUNK_CHARS", 300)
    bundled = (perplexity.bundled_dir() / perplexity.BUNDLED).read_text(encoding="utf-8").splitlines()[:5]
    (tmp_path / "wikitext2").mkdir()
    (tmp_path / "wikitext2" / "rows.jsonl").write_text("\n".join(bundled) + "\n", encoding="utf-8")
    assert sum(len(json.loads(r)["text"]) for r in bundled) < 2000  # about 400 tokens: seconds
    _, items, _, engine, streamed, scratch, _ = compare(smollm2.model, smollm2.tokenizer, 3, tmp_path)
    assert stream.geometry(engine.max_length) == stream.Geometry(160, 40, 120)
    assert len(items) == 3 and streamed.tokens < scratch.tokens


@pytest.mark.parametrize("window", [1024, 2048, 8192, 300])
def test_every_token_after_the_first_block_sees_the_minimum_context(window):
    shape = stream.geometry(window)
    assert shape.window == min(window, stream.WINDOW) and shape.context == min(512, shape.window // 2)
    covered = []
    for block, first, stop in stream.pieces((0, 10 * shape.window), shape):
        start = shape.start(block)
        assert stop - start <= shape.window  # a window never holds more than W tokens
        assert first - start >= (shape.context if block else first)  # C tokens before, or all of them
        covered.extend(range(first, stop))
    assert covered == list(range(1, 10 * shape.window))  # every token but the first, once


def test_a_limited_run_takes_consecutive_items_from_a_seeded_start():
    task = tasks.get("perplexity")
    dataset = task.load(Settings())
    order = {c.id: k for k, c in enumerate(dataset.examples)}
    runs = {}
    for seed in (0, 1):
        _, items = task.split(dataset, Settings(limit=20, seed=seed))
        places = [order[i.id] for i in items]
        assert places == list(range(places[0], places[0] + 20))
        runs[seed] = places[0]
    assert runs[0] != runs[1]
    assert task.split(dataset, Settings(limit=20))[1] == task.split(dataset, Settings(limit=20))[1]
