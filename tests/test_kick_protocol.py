"""--kick-protocol kick item by item against what the LLM-KICK repo (VITA-Group/llm-kick) computes, worked
out by hand from its code: the factoid budget and answer set, file order, MMLU's 2048-token shot budget and
pandas' "nan", TriviaQA's answer extraction, and eval_ppl. strict perplexity is token-weighted."""

import json
import math

import pytest

from pytest_kick import tasks
from pytest_kick.engines.base import Runner
from pytest_kick.engines.local import LocalEngine
from pytest_kick.tasks import perplexity
from pytest_kick.tasks.base import Example, Settings
from pytest_kick.tasks.icrqa import TriviaItem
from pytest_kick.tasks.mmlu_data import by_subject

KICK, STRICT = Settings(protocol="kick"), Settings(protocol="strict")


# --- factoid QA ---------------------------------------------------------------------------------


def freebase_file(path, questions):
    path.write_text(
        json.dumps(
            {
                "Questions": [
                    {
                        "Question-ID": qid,
                        "RawQuestion": q,
                        "Parses": [
                            {"Answers": [{"AnswersMid": "m", "AnswersName": names} for names in parse]}
                            for parse in parses
                        ],
                    }
                    for qid, q, parses in questions
                ]
            }
        ),
        encoding="utf-8",
    )


def test_factoid_kick_budget_is_twice_the_prompt_with_no_cap(tiny, one_thread):
    """main_freebase.py: generate(max_length = 3 x prompt tokens): a prompt of P tokens gets 2P new ones, even
    past the old 96-token cap (EOS switched off so the budget alone stops generation)."""
    model, tokenizer = tiny
    engine = LocalEngine(model, tokenizer, "cpu")
    engine.eos_ids = set()
    question = "Which river flows through the capital city of the country that hosted the 1936 Olympics?"
    [request] = tasks.get("factoid_qa").requests([Example("q", question, ("spree",))], [], KICK)
    prompt_tokens = len(engine.prompt_ids(request))
    assert 2 * prompt_tokens > 96
    [new] = engine.generate_ids([request])
    assert len(new) == 3 * prompt_tokens - prompt_tokens


def test_factoid_kick_takes_the_first_answer_of_the_first_parse(tmp_path):
    freebase_file(
        tmp_path / "FreebaseQA-train.json",
        [("t0", "Who wrote Hamlet?", [[["william shakespeare", "shakespeare"], ["the bard"]], [["marlowe"]]])],
    )
    settings = Settings(protocol="kick", data_dir=tmp_path)
    task = tasks.get("factoid_qa")
    [item] = task.load(settings).examples
    assert item.answers == ("william shakespeare", "shakespeare")  # freebase_qa.py: Parses[0].Answers[0].AnswersName
    [request] = task.requests([item], [], settings)
    assert task.score(item, request, "the bard", settings) == 0.0  # the second answer is not an answer in kick
    assert task.score(item, request, "Shake speare", settings) == 1.0  # spaces removed, case folded
    [strict_item] = task.load(Settings(data_dir=tmp_path)).examples
    assert set(strict_item.answers) == {"william shakespeare", "shakespeare", "the bard", "marlowe"}


def test_factoid_kick_reads_the_train_file_first_n_in_file_order(tmp_path):
    train = [(f"t{i}", f"Train question {i}?", [[[f"a{i}"]]]) for i in range(10)]
    freebase_file(tmp_path / "FreebaseQA-train.json", train)
    freebase_file(
        tmp_path / "FreebaseQA-eval.json", [(f"e{i}", f"Eval question {i}?", [[[f"b{i}"]]]) for i in range(10)]
    )
    task = tasks.get("factoid_qa")
    settings = Settings(protocol="kick", limit=4, data_dir=tmp_path)
    shots, items = task.split(task.load(settings), settings)
    assert shots == [] and [i.id for i in items] == ["t0", "t1", "t2", "t3"]  # `for data in dataset["Questions"]`
    strict = Settings(limit=4, data_dir=tmp_path)
    _, strict_items = task.split(task.load(strict), strict)
    assert all(i.id.startswith("e") for i in strict_items) and [i.id for i in strict_items] != ["e0", "e1", "e2", "e3"]


def test_factoid_kick_on_the_bundled_sample_is_its_file_order():
    task = tasks.get("factoid_qa")
    dataset = task.load(KICK)
    _, items = task.split(dataset, Settings(protocol="kick", limit=5))
    assert items == list(dataset.examples[:5])


# --- MMLU ---------------------------------------------------------------------------------------


class CountingRunner:
    """A runner whose token count of a text is its length in characters plus ``offset``."""

    def __init__(self, max_length, offset):
        self.max_length, self.offset = max_length, offset

    def token_counts(self, texts):
        return [len(t) + self.offset for t in texts]


def mmlu_with_data():
    task = tasks.get("mmlu")
    return task, task.load(KICK)


def test_mmlu_kick_budget_is_a_fixed_2048_token_prompt():
    """main_mmlu.py: `while input_ids.shape[-1] > 2048: k -= 1`: a prompt of exactly 2048 tokens keeps its five
    shots, one of 2049 loses the last shot, whatever the model's context (here 32768)."""
    task, dataset = mmlu_with_data()
    item = dataset.examples[0]
    shots = by_subject(dataset.dev)[item.subject]
    five = len(task.prompt(item, shots[:5], "kick"))
    four = len(task.prompt(item, shots[:4], "kick"))
    assert task.fit([item], shots, KICK, CountingRunner(32768, 2048 - five)).shots_used[item.id] == 5
    assert task.fit([item], shots, KICK, CountingRunner(32768, 2049 - five)).shots_used[item.id] == 4
    assert four + 2049 - five <= 2048
    # strict fits the model's context with the answer's tokens: a 2048-token prompt loses a shot on a 2048 context
    assert task.fit([item], shots, Settings(), CountingRunner(2048, 2048 - five)).shots_used[item.id] == 4


def test_mmlu_kick_prints_none_as_pandas_nan_and_takes_the_first_questions_in_order():
    task, dataset = mmlu_with_data()
    [item] = [i for i in dataset.examples if i.id == "mmlu/test/college_computer_science/10"]
    assert "None" in item.choices
    kick_prompt, strict_prompt = task.prompt(item, (), "kick"), task.prompt(item, (), "strict")
    assert kick_prompt == strict_prompt.replace(". None\n", ". nan\n") and kick_prompt != strict_prompt
    _, items = task.split(dataset, Settings(protocol="kick", limit=3))
    assert [i.id for i in items] == [f"mmlu/test/abstract_algebra/{k}" for k in range(3)]


# --- TriviaQA -----------------------------------------------------------------------------------


ROME = TriviaItem("q1", "What is the capital of Italy?", ("Rome",), ("rome",), "")


@pytest.mark.parametrize(
    "output, kick_score, strict_score",
    [
        # the continuation repeats the question block at once: the repo's prediction is "", in every alias: correct
        ("\nAnswer these questions:\n\nQ: What is the capital of Italy?\nA: Paris", 1.0, 0.0),
        # the block follows the answer on the same line: the repo keeps "Paris" only
        (" Paris Answer these questions:\n\nQ: What is the capital of Italy?\nA: Rome", 0.0, 0.0),
        (" Rome Answer these questions:\n\nQ: What is the capital of Italy?\nA: Rome", 1.0, 0.0),
        (" Rome\nQ: next", 1.0, 1.0),
    ],
)
def test_icrqa_kick_extraction_splits_on_the_prompt_end(output, kick_score, strict_score):
    """main_icrqa.py: `output.split(prompt_end)[1].strip().split("\\n")[0]` on the decoded prompt + continuation."""
    task = tasks.get("icrqa:closed")
    [request] = task.requests([ROME], [], KICK)
    assert task.score(ROME, request, output, KICK) == kick_score
    assert task.score(ROME, request, output, STRICT) == strict_score


def test_icrqa_kick_takes_the_first_rows_in_order():
    task = tasks.get("icrqa:open")
    dataset = task.load(KICK)
    _, items = task.split(dataset, Settings(protocol="kick", limit=3))
    assert items == list(dataset.examples[:3])


# --- perplexity ---------------------------------------------------------------------------------


def eval_ppl(model, tokenizer, text, seqlen, nsamples=None):
    """LLM-KICK lib/eval.py eval_ppl_wikitext, re-typed (bs = 1), optionally over the first nsamples windows."""
    import torch

    testenc = tokenizer(text, return_tensors="pt").input_ids
    nsamples = min(nsamples or testenc.numel(), testenc.numel() // seqlen)
    nlls = []
    with torch.no_grad():
        for i in range(nsamples):
            inputs = testenc[:, i * seqlen : (i + 1) * seqlen].reshape(1, seqlen)
            lm_logits = model(inputs).logits
            loss = torch.nn.CrossEntropyLoss()(
                lm_logits[:, :-1].reshape(-1, lm_logits.size(-1)), inputs[:, 1:].reshape(-1)
            )
            nlls.append(loss.float() * seqlen)
    return torch.exp(torch.stack(nlls).sum() / (nsamples * seqlen)).item()


def wikitext_dir(tmp_path, rows):
    (tmp_path / "wikitext2").mkdir()
    (tmp_path / "wikitext2" / "rows.jsonl").write_text(
        "".join(json.dumps({"text": r}) + "\n" for r in rows), encoding="utf-8"
    )
    return tmp_path


def kick_figure(engine, settings):
    task = tasks.get("perplexity")
    shots, items = task.split(task.load(settings), settings)
    scores, outputs = task.evaluate(items, shots, settings, Runner(engine))
    return task.figure(sum(scores) / len(scores)), items, outputs


def test_kick_perplexity_is_eval_ppl_over_the_first_windows(tiny, one_thread):
    model, tokenizer = tiny
    figure, items, outputs = kick_figure(LocalEngine(model, tokenizer, "cpu"), Settings(protocol="kick", limit=3))
    assert [i.id for i in items] == [f"wikitext2/eval_ppl/window/{k}" for k in range(3)]
    text = "\n\n".join(r["text"] for r in map(json.loads, open(perplexity.bundled_dir() / perplexity.BUNDLED)))
    seqlen = min(perplexity.KICK_WINDOW, model.config.max_position_embeddings)  # 1024: the model's context
    assert figure == pytest.approx(eval_ppl(model, tokenizer, text, seqlen, 3), rel=1e-5)
    assert outputs[0].endswith(f"over 1 window(s) of {seqlen} tokens")


def test_kick_perplexity_without_limit_is_eval_ppl_over_every_window(tiny, one_thread, tmp_path, monkeypatch):
    """All windows dealt over the slots (15 windows, 4 slots: 4, 4, 4, 3 each), the tail dropped: exactly eval_ppl."""
    monkeypatch.setattr(perplexity, "KICK_SLOTS", 4)
    rows = [f"Row {k} of a small corpus, with some words to score: " + "abcdefghij" * (k % 7 + 3) for k in range(140)]
    model, tokenizer = tiny
    figure, items, _ = kick_figure(
        LocalEngine(model, tokenizer, "cpu"), Settings(protocol="kick", data_dir=wikitext_dir(tmp_path, rows))
    )
    text = "\n\n".join(rows)
    assert len(items) == 4 and len(tokenizer(text).input_ids) // 1024 == 15
    assert figure == pytest.approx(eval_ppl(model, tokenizer, text, 1024), rel=1e-5)


def test_kick_perplexity_with_too_few_windows_says_how_many(tiny, tmp_path):
    model, tokenizer = tiny
    settings = Settings(protocol="kick", limit=50, data_dir=wikitext_dir(tmp_path, ["a short corpus"] * 100))
    with pytest.raises(Exception, match=r"1 windows of 1024: too few for --kick-limit"):
        kick_figure(LocalEngine(model, tokenizer, "cpu"), settings)


def test_strict_perplexity_is_token_weighted(tiny, one_thread, tmp_path, monkeypatch):
    """Items of unequal length, each scored after the whole text before it, all in one window of the model: the
    figure is exp(total NLL / tokens) of one forward pass over the corpus (byte tokens, no BOS: the first
    character has nothing before it). A chunk-weighted mean would differ."""
    import torch

    monkeypatch.setattr(perplexity, "CHUNK_CHARS", 60)
    rows = [
        "A short first row.",
        "The second row is rather longer than the first one, by design here.",
        "Third.",
        "A fourth row, of middling length, closes the corpus.",
    ]
    model, tokenizer = tiny
    settings = Settings(data_dir=wikitext_dir(tmp_path, rows))
    task = tasks.get("perplexity")
    shots, items = task.split(task.load(settings), settings)
    scores, _ = task.evaluate(items, shots, settings, Runner(LocalEngine(model, tokenizer, "cpu")))
    ids = torch.tensor([tokenizer("\n\n".join(rows), add_special_tokens=False).input_ids])
    assert len(items) >= 2 and len({len(i.text) for i in items}) > 1 and ids.shape[1] < 1024
    with torch.no_grad():
        logprobs = model(ids).logits[0, :-1].float().log_softmax(-1)
    nll = -logprobs.gather(-1, ids[0, 1:, None]).sum().item()
    assert task.figure(sum(scores) / len(scores)) == pytest.approx(math.exp(nll / (ids.shape[1] - 1)), rel=1e-5)
    lengths = [len(i.text) - (k == 0) for k, i in enumerate(items)]
    per_item = [s * sum(lengths) / len(items) / n for s, n in zip(scores, lengths)]  # each item's own mean NLL
    assert math.exp(sum(per_item) / len(per_item)) != pytest.approx(math.exp(nll / (ids.shape[1] - 1)), rel=1e-3)
