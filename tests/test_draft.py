"""Dense-drafted decoding (engines/draft.py, decode.py): a compressed variant verifies its dense model's answers
instead of generating them token by token, and says exactly what plain greedy decoding says (float32: near-ties
aside, which are counted). Checked on every task that generates, with tiny-random-llama and SmolLM2."""

import copy

import pytest

from pytest_kick import tasks
from pytest_kick.compress import grid
from pytest_kick.engines.base import Runner
from pytest_kick.engines.draft import Cursor, Drafts, trimmed
from pytest_kick.engines.draft_store import drafting
from pytest_kick.engines.local import LocalEngine
from pytest_kick.engines.tokens import cut_output
from pytest_kick.requests import GenerationRequest
from pytest_kick.tasks.base import Settings

PROMPTS = [f"Question number {i}: what comes after {i}? " + "x " * (i % 5) for i in range(14)]
BUDGETS = [1, 9, 3, 12, 2, 5, 2, 7, 11, 1, 4, 8, 6, 30]


def rtn(model, bits: int):
    """A copy of ``model`` with every linear layer of its blocks rounded to ``bits`` (rtn, one scale per row)."""
    import torch

    variant = copy.deepcopy(model)
    for name, module in variant.named_modules():
        if isinstance(module, torch.nn.Linear) and "layers." in name:
            grid.rtn_(module.weight.data, bits, None)
    return variant


class Twin:
    """An engine that answers with plain decoding and, beside it, decodes the same requests drafted: ``pairs``
    holds (plain, drafted) token ids of every generation call."""

    name = "local"

    def __init__(self, plain: LocalEngine, drafted: LocalEngine):
        self.plain, self.drafted, self.pairs = plain, drafted, []
        self.max_length = plain.max_length

    def token_counts(self, texts):
        return self.plain.token_counts(texts)

    def tokenize(self, text):
        return self.plain.tokenize(text)

    def generate(self, requests, progress=None):
        plain, drafted = self.plain.generate_ids(requests), self.drafted.generate_ids(requests)
        self.pairs.append((plain, drafted))
        return [cut_output(self.plain._decode(t), r.stop, r.first_line) for t, r in zip(plain, requests)]

    def loglikelihood(self, requests, progress=None):
        return self.plain.loglikelihood(requests, progress)

    def loglikelihood_rolling(self, requests, progress=None):
        return self.plain.loglikelihood_rolling(requests, progress)


def drafted_against_plain(model, tokenizer, variant, task_names, protocol: str, limit: int, batch_size: int = 4):
    """Per task (a name, or a task object): dense evaluates (its answers recorded as drafts), then the variant
    evaluates with plain and drafted decoding side by side. (task, pairs, tally) of the tasks that generated."""
    found = []
    for name in task_names:
        task = tasks.get(name) if isinstance(name, str) else name
        name = task.name
        settings = Settings(protocol=protocol, limit=limit)
        shots, items = task.split(task.load(settings), settings)
        dense = LocalEngine(model, tokenizer, "cpu", batch_size)
        dense.record = Drafts()
        task.evaluate(items, shots, settings, Runner(dense))
        if not dense.record:
            continue  # the task does not generate under this protocol
        drafted = LocalEngine(variant, tokenizer, "cpu", batch_size)
        drafted.drafts = dense.record
        twin = Twin(LocalEngine(variant, tokenizer, "cpu", batch_size), drafted)
        task.evaluate(items, shots, settings, Runner(twin))
        found.append((name, twin.pairs, drafted.tally))
    return found


def mismatches(pairs) -> int:
    return sum(p != d for plain, drafted in pairs for p, d in zip(plain, drafted))


def test_a_variant_that_agrees_with_its_drafts_answers_in_fewer_passes(tiny):
    model, tokenizer = tiny
    requests = [GenerationRequest(p, n) for p, n in zip(PROMPTS, BUDGETS)]
    dense = LocalEngine(model, tokenizer, "cpu", 4)
    dense.record = Drafts()
    answers = dense.generate_ids(requests)
    assert len(dense.record) == len(requests)
    drafted = LocalEngine(model, tokenizer, "cpu", 4)
    drafted.drafts = dense.record
    assert drafted.generate_ids(requests) == answers
    tally = drafted.tally
    assert tally.acceptance == 1.0 and tally.drafted_rows == len(requests)
    assert tally.passes < max(BUDGETS)  # plain decoding needs at least one pass per token of the longest answer


# (tasks, protocol, bits): every task family that generates; the slow spellings (kick factoid QA's 2 x prompt budget,
# summarization's larger variants) are the same requests, longer
CASES = [
    (["factoid_qa", "icrqa:open", "summarization:small"], "strict", 8),
    (["mmlu", "icrqa:closed"], "kick", 8),
    (["instruction:vicuna"], "strict", 3),
]


@pytest.mark.parametrize("names, protocol, bits", CASES)
def test_drafted_decoding_is_plain_decoding_on_every_generation_task(tiny, names, protocol, bits):
    model, tokenizer = tiny
    found = drafted_against_plain(model, tokenizer, rtn(model, bits), names, protocol, 2)
    assert [name for name, _, _ in found] == names  # each of them generates
    for name, pairs, tally in found:
        assert mismatches(pairs) <= tally.near_ties, name  # float32 on a tiny model: in practice none at all
        assert tally.drafted_rows == tally.rows > 0, name
        if name != "mmlu":  # kick MMLU generates one token: nothing to draft
            assert tally.proposed > 0, name
    if bits == 8:  # an 8-bit variant of a random model still mostly says what dense says
        assert sum(t.accepted for _, _, t in found) > 0.5 * sum(t.proposed for _, _, t in found)


def test_stop_strings_first_lines_and_prompt_budgets_end_drafted_rows_where_plain_ones_end(tiny):
    model, tokenizer = tiny
    free = LocalEngine(model, tokenizer, "cpu", 1).generate([GenerationRequest(p, 12) for p in PROMPTS])
    requests = [
        GenerationRequest(p, 2**31 - 1, length_factor=1)
        if k % 3 == 0
        else GenerationRequest(p, 12, stop=(text[5:7],) if k % 3 == 1 else (), first_line=k % 3 == 2)
        for k, (p, text) in enumerate(zip(PROMPTS, free))
    ]
    dense = LocalEngine(model, tokenizer, "cpu", 4)
    dense.record = Drafts()
    dense.generate(requests)
    variant = rtn(model, 4)
    drafted = LocalEngine(variant, tokenizer, "cpu", 4)
    drafted.drafts = dense.record
    assert drafted.generate(requests) == LocalEngine(variant, tokenizer, "cpu", 4).generate(requests)
    assert drafted.tally.proposed > 0


def test_a_row_drafts_again_where_the_dense_text_realigns():
    cursor = Cursor([1, 2, 3, 4, 5, 6, 7, 8, 9])
    assert cursor.propose([], 100) == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    cursor.settle([1, 2, 3, 4, 5, 6, 7, 8, 9], 2, 42)  # 1, 2 accepted, then the variant said 42, not 3
    assert not cursor.aligned and cursor.propose([1, 2, 42], 100) == []
    assert cursor.propose([1, 2, 42, 4, 5, 6], 100) == [7, 8, 9][: cursor.k]  # back on the dense text after 42
    assert cursor.propose([1, 2, 42, 4, 5, 6], 1) == [7]  # never beyond what the budget leaves


def test_served_and_sliding_window_engines_do_not_draft(tiny, monkeypatch):
    from pytest_kick.engines import passes

    model, tokenizer = tiny
    requests = [GenerationRequest(p, n) for p, n in zip(PROMPTS, BUDGETS)]
    dense = LocalEngine(model, tokenizer, "cpu", 4)
    dense.record = Drafts()
    answers = dense.generate_ids(requests)
    monkeypatch.setattr(passes, "packable", lambda model: False)
    drafted = LocalEngine(model, tokenizer, "cpu", 4)
    drafted.drafts = dense.record
    assert drafted.generate_ids(requests) == answers
    assert drafted.tally.proposed == 0


def runtime_for(tmp_path, accelerate: str):
    from pytest_kick import config
    from pytest_kick.runtime import Runtime

    values = {opt.name: None for opt in config.OPTIONS}
    values.update(
        {
            "model": "tiny-random-llama",
            "tasks": "icrqa:open",
            "limit": "4",
            "compressor": "rtn",
            "ratio": "w8",
            "accelerate": accelerate,
            "cache-dir": str(tmp_path),
        }
    )
    return Runtime(config.build(values, tmp_path))


def test_a_variant_drafts_from_the_stored_dense_answers_of_another_process(tmp_path):
    """The dense run writes its answers beside its baseline; a later session that reads the baseline from the
    cache drafts from them, gives the same results as plain decoding, and says what drafting did."""
    from pytest_kick.cases import KickCase

    dense, variant = (
        KickCase("icrqa:open", "tiny-random-llama"),
        KickCase("icrqa:open", "tiny-random-llama", "rtn", "w8"),
    )
    first = runtime_for(tmp_path, "on")
    assert first.dense(dense)[1] == "computed"
    assert list((tmp_path / "drafts").rglob("*.json"))  # written beside the baseline
    later = runtime_for(tmp_path, "on")
    assert later.dense(dense)[1] == "cached"
    drafted = later.evaluate(variant)
    record = later.drafting(variant)
    assert record["drafted_rows"] == 4 and record["proposed"] > 0 and record["acceptance"] > 0.5
    plain = runtime_for(tmp_path, "off")
    assert plain.evaluate(variant) == drafted
    assert plain.drafting(variant) is None


def test_accelerate_takes_auto_on_or_off_and_names_the_flag_otherwise(tmp_path):
    from pytest_kick.errors import KickError

    assert runtime_for(tmp_path, "off").settings.accelerate is False
    assert runtime_for(tmp_path, "auto").settings.accelerate is True  # perplexity streams under auto
    with pytest.raises(KickError, match="--kick-accelerate: 'fast' is not one of auto, on, off"):
        runtime_for(tmp_path, "fast")


def test_auto_drafts_on_a_cuda_device_only():
    assert drafting("auto", "cuda:0") and drafting("auto", "cuda")
    assert not drafting("auto", "cpu") and not drafting("auto", "mps")
    assert drafting("on", "cpu") and not drafting("off", "cuda:0")


def test_under_auto_a_variant_on_the_cpu_decodes_plainly_with_the_same_answers(tmp_path):
    """The default on a CPU: the dense run still records its answers (a later run with on can draft from them),
    the variant decodes plainly and reports no drafting, and its results are drafted decoding's."""
    from pytest_kick.cases import KickCase

    dense, variant = (
        KickCase("icrqa:open", "tiny-random-llama"),
        KickCase("icrqa:open", "tiny-random-llama", "rtn", "w8"),
    )
    auto = runtime_for(tmp_path, "auto")
    auto.dense(dense)
    assert list((tmp_path / "drafts").rglob("*.json"))
    plain = auto.evaluate(variant)
    assert auto.drafting(variant) is None
    drafted = runtime_for(tmp_path, "on")
    assert drafted.evaluate(variant) == plain
    assert drafted.drafting(variant)["proposed"] > 0


def test_a_pass_is_only_as_wide_as_most_of_its_rows_fill():
    """One row drafting 16 tokens beside 15 without a draft would make the pass 17 columns wide for all: it is cut
    to a plain step; rows that mostly draft keep the width the fill allows, and a cut proposal keeps its start."""
    assert trimmed([[1] * 16] + [[]] * 15) == [[]] * 16
    assert trimmed([[1, 2, 3, 4]] * 16) == [[1, 2, 3, 4]] * 16
    assert trimmed([[7] * 8] * 10 + [[]] * 6) == [[7] * 8] * 10 + [[]] * 6  # 80 of 128 columns hold drafts
    assert trimmed([list(range(16)), [5, 6], []]) == [list(range(4)), [5, 6], []]  # 6 of 12 columns at width 4
    assert trimmed([]) == []
