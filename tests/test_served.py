"""The served engine against a real HTTP server on 127.0.0.1 (tests/served_server.py) answering the
completions API from tiny-random-llama: the same per-item results as the local engine. vLLM's reply shapes and
the failures are in test_served_failures.py, the plugin as a user meets it in test_served_plugin.py."""

from __future__ import annotations

import pytest
import served_helpers
from served_helpers import GEN_REQUESTS, LL_REQUESTS, _nothing, served
from served_server import Model, Server

from pytest_kick import tasks
from pytest_kick.config import build
from pytest_kick.engines.tokens import rolling_windows
from pytest_kick.errors import KickError
from pytest_kick.requests import LoglikelihoodRequest, RollingRequest
from pytest_kick.runtime import KickCase, Runtime

server, fresh, local = served_helpers.server, served_helpers.fresh, served_helpers.local  # the fixtures


def test_loglikelihood_equals_the_local_engine(fresh, tiny, local):
    _, tokenizer = tiny
    remote = served(fresh.base_url, tokenizer).loglikelihood(LL_REQUESTS)
    here = local.loglikelihood(LL_REQUESTS)
    for (lp, greedy), (want, want_greedy) in zip(remote, here):
        assert lp == pytest.approx(want, abs=1e-4)
        assert greedy == want_greedy
    wanted = [local._pair(r.context, r.continuation) for r in LL_REQUESTS]  # the local engine's tokens
    assert sorted(body["prompt"] for body in fresh.requests) == sorted(c + k for c, k in wanted)  # any order
    assert wanted[2][0] == [tokenizer.bos_token_id]  # an empty context starts at BOS
    for body in fresh.requests:
        assert body["echo"] is True and body["logprobs"] == 1 and body["temperature"] == 0
        assert body["model"] == "tiny-random-llama"


def test_loglikelihood_without_prompt_logprobs_reads_the_openai_logprobs(tiny, local):
    """A server that is not vLLM (no prompt_logprobs): echo + logprobs give the same numbers."""
    model, tokenizer = tiny
    with Server(Model(model, tokenizer, "plain"), vllm=False) as plain:
        remote = served(plain.base_url, tokenizer).loglikelihood(LL_REQUESTS)
        assert all("prompt_logprobs" not in r for r in [plain.complete(plain.requests[0])[1]["choices"][0]])
    for (lp, greedy), (want, want_greedy) in zip(remote, local.loglikelihood(LL_REQUESTS)):
        assert lp == pytest.approx(want, abs=1e-4) and greedy == want_greedy


def test_text_prompts_find_the_continuation_by_text_offset(fresh, tiny, local):
    """Without a tokenizer the prompt goes as text; text_offset (shifted by the BOS string) marks the
    continuation. The byte-level tokenizer splits context and continuation at the same place either way."""
    remote = served(fresh.base_url, tokenizer=None).loglikelihood(LL_REQUESTS[:2])
    assert all(isinstance(body["prompt"], str) for body in fresh.requests)
    for (lp, greedy), (want, want_greedy) in zip(remote, local.loglikelihood(LL_REQUESTS[:2])):
        assert lp == pytest.approx(want, abs=1e-4) and greedy == want_greedy


def test_generation_equals_the_local_engine(fresh, tiny, local):
    _, tokenizer = tiny
    remote = served(fresh.base_url, tokenizer).generate(GEN_REQUESTS)
    assert remote == local.generate(GEN_REQUESTS)
    by_budget = {body["max_tokens"]: body for body in fresh.requests}
    assert sorted(by_budget) == [6, 8, 12, 20]  # "abc": length_factor 2 x its 3 (byte) tokens
    assert by_budget[12]["stop"] == ["\n"] and "stop" not in by_budget[20]
    assert all(body["temperature"] == 0 for body in fresh.requests)
    assert not any("e" in text or "a" in text for text in remote[3:])


def test_an_empty_continuation_is_an_error(fresh, tiny):
    _, tokenizer = tiny
    with pytest.raises(KickError, match="empty continuation"):
        served(fresh.base_url, tokenizer).loglikelihood([LoglikelihoodRequest("Nothing follows", "")])
    assert not fresh.requests


def test_rolling_windows_cover_every_token_once():
    context, text = list(range(100, 105)), list(range(10))
    windows = rolling_windows(context, text, window=4)
    assert [ids[-scored:] for ids, scored in windows] == [[0, 1, 2], [3, 4], [5, 6], [7, 8], [9]]
    assert all(len(ids) <= 4 for ids, _ in windows)
    assert windows[0][0] == [104, 0, 1, 2] and windows[1][0] == [1, 2, 3, 4]  # as much before as fits
    alone = rolling_windows([], text, window=4)
    assert sum(scored for _, scored in alone) == len(text) - 1  # the corpus's first token is not scored
    with pytest.raises(KickError, match="scores nothing"):
        rolling_windows([], text, window=1)


def test_rolling_loglikelihood_equals_the_local_engine(fresh, tiny, local):
    _, tokenizer = tiny
    requests = [
        RollingRequest("a text longer than one window of the model", context="before it. ", window=16),
        RollingRequest("the first text of a corpus", window=8),
    ]
    remote = served(fresh.base_url, tokenizer).loglikelihood_rolling(requests)
    for got, want in zip(remote, local.loglikelihood_rolling(requests)):
        assert len(got) == len(want) and got == pytest.approx(want, abs=1e-4)


def test_rolling_loglikelihood_equals_a_forward_pass_per_window(fresh, tiny):
    import torch

    model, tokenizer = tiny
    request = RollingRequest("a text longer than one window of the model", context="before it. ", window=16)
    got = served(fresh.base_url, tokenizer).loglikelihood_rolling([request])[0]
    context = tokenizer(request.context, add_special_tokens=False)["input_ids"]
    text = tokenizer(request.text, add_special_tokens=False)["input_ids"]
    want = []
    for ids, scored in rolling_windows(context, text, 16):
        with torch.inference_mode():
            logprobs = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
        want += [logprobs[p - 1, ids[p]].item() for p in range(len(ids) - scored, len(ids))]
    assert len(got) == len(text) and got == pytest.approx(want, abs=1e-4)
    assert len(fresh.requests) == len(rolling_windows(context, text, 16)) > 1


@pytest.mark.parametrize("task", tasks.names())
def test_every_bundled_task_gives_the_local_per_item_results(fresh, task, tmp_path, monkeypatch):
    """A Runtime with --kick-engine openai-completions, end to end: the same per-item scores and outputs.
    Summaries and answers to instructions are cut to 24 new tokens on both sides (the random model never
    stops by itself; 256 tokens a turn would only make the test slow)."""
    if hasattr(tasks.get(task), "max_new_tokens"):
        monkeypatch.setattr(tasks.get(task), "max_new_tokens", 24)
    common = {"model": "tiny-random-llama", "tasks": task, "limit": "3", "cache-dir": str(tmp_path)}
    local_config = build({**_nothing(), **common}, tmp_path)
    served_config = build(
        {**_nothing(), **common, "engine": "openai-completions", "base-url": fresh.base_url}, tmp_path
    )
    here = Runtime(local_config).evaluate(KickCase(task, "tiny-random-llama"))
    there = Runtime(served_config).evaluate(KickCase(task, "tiny-random-llama"))
    assert there.item_ids == here.item_ids and len(here.scores) == 3
    assert there.scores == pytest.approx(here.scores, rel=1e-5, abs=1e-5)
    if tasks.get(task).metric != "perplexity":
        assert there.outputs == here.outputs
    assert fresh.requests, "the served runtime must have asked the server"


def test_the_baseline_key_names_what_the_server_serves(fresh, tmp_path):
    """A cached dense baseline is keyed by the served model (URL, id, root): another model behind the same
    URL never reuses it."""
    config = build(
        {
            **_nothing(),
            "model": "tiny-random-llama",
            "tasks": "factoid_qa",
            "limit": "2",
            "cache-dir": str(tmp_path),
            "engine": "openai-completions",
            "base-url": fresh.base_url,
        },
        tmp_path,
    )
    case = KickCase("factoid_qa", "tiny-random-llama")
    key = Runtime(config).baseline_key(case)
    assert key["model"]["served_model"] == "tiny-random-llama" and key["model"]["url"] == fresh.base_url
    assert key["dtype"] == "served"
    fresh.models_reply = {"object": "list", "data": [{"id": "tiny-random-llama", "root": "/models/another"}]}
    assert Runtime(config).baseline_key(case)["model"] != key["model"]
