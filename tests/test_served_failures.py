"""The served engine against the loopback server (tests/served_server.py): vLLM's reply shapes
(tests/served_replies/), and a clear error naming the URL for every way a server can fail."""

from __future__ import annotations

import json
import math

import pytest
import served_helpers
from served_helpers import LL_REQUESTS, _reply, served

from pytest_kick.engines.http import RetryPolicy, normalize_base_url, retry_after_seconds
from pytest_kick.errors import KickError
from pytest_kick.requests import GenerationRequest, LoglikelihoodRequest

server, fresh, local = served_helpers.server, served_helpers.fresh, served_helpers.local  # the fixtures


def test_recorded_vllm_replies_are_read_as_vllm_means_them(fresh, tiny):
    """The replies pinned from vLLM's source: prompt_logprobs by token id (greedy = rank 1), /v1/models."""
    _, tokenizer = tiny
    fresh.models_reply = _reply("models.json")
    engine = served(fresh.base_url, tokenizer)
    assert engine.model_id == "meta-llama/Llama-2-7b-hf" and engine.max_length == 4096
    assert served(fresh.base_url, tokenizer=None).max_length is None  # nothing to count prompts with
    echo = _reply("echo_logprobs.json")
    ids = [1, 450, 7483, 310, 3444, 338, 3681]
    fresh.replies.append((200, echo))
    scored = engine._prompt_logprobs(ids, 2)  # " is Paris"
    assert scored == [(-0.96875, True), (-0.234375, True)]
    fresh.replies.append((200, echo))
    assert engine._prompt_logprobs(ids, 3) == [(-2.828125, False), (-0.96875, True), (-0.234375, True)]
    without = json.loads(json.dumps(echo))
    without["choices"][0]["prompt_logprobs"] = None  # a server without vLLM's field: the OpenAI logprobs
    fresh.replies.append((200, without))
    assert engine._prompt_logprobs(ids, 3) == [(-2.828125, False), (-0.96875, True), (-0.234375, True)]
    fresh.replies.append((200, _reply("generate_stop.json")))
    assert engine.generate([GenerationRequest("The capital of France is", 32, stop=("\n",))]) == [" Paris"]
    fresh.replies.append((400, _reply("error_400.json")))
    with pytest.raises(KickError, match=r"HTTP 400: This model's maximum context length is 4096") as err:
        engine.generate([GenerationRequest("x", 4)])
    assert fresh.base_url + "/completions" in str(err.value)


def test_the_test_server_speaks_the_recorded_shapes(fresh, tiny):
    """The loopback server's replies carry every field the recorded vLLM replies have, of the same types."""
    _, tokenizer = tiny
    engine = served(fresh.base_url, tokenizer)
    ids = tokenizer("The capital of France is Paris")["input_ids"]
    ours = engine.client.post(
        "completions",
        {"model": engine.model_id, "prompt": ids, "max_tokens": 1, "echo": True, "logprobs": 1, "temperature": 0},
    )
    theirs = _reply("echo_logprobs.json")
    for key in ("id", "object", "created", "model", "choices", "usage"):
        assert type(ours[key]) is type(theirs[key]), key
    mine, recorded = ours["choices"][0], theirs["choices"][0]
    for key in ("index", "text", "logprobs", "finish_reason", "prompt_logprobs"):
        assert key in mine
    assert set(mine["logprobs"]) == set(recorded["logprobs"])
    assert len(mine["logprobs"]["tokens"]) == len(ids) + 1 and mine["logprobs"]["token_logprobs"][0] is None
    assert mine["prompt_logprobs"][0] is None and set(next(iter(mine["prompt_logprobs"][1].values()))) == {
        "logprob",
        "rank",
        "decoded_token",
    }
    assert set(engine.client.get("models")["data"][0]) >= {"id", "object", "owned_by", "max_model_len"}


def test_server_errors_are_retried_then_named(fresh, tiny):
    _, tokenizer = tiny
    engine = served(fresh.base_url, tokenizer)
    fresh.faults += ["500", "500"]  # two failures, then an answer: retried, and the same result
    assert engine.loglikelihood(LL_REQUESTS[:1]) == served(fresh.base_url, tokenizer).loglikelihood(LL_REQUESTS[:1])
    fresh.faults += ["500"] * 3
    with pytest.raises(KickError) as err:
        engine.loglikelihood(LL_REQUESTS[:1])
    message = str(err.value)
    assert f"POST {fresh.base_url}/completions failed after 3 attempts" in message
    assert "HTTP 500: EngineCore encountered an issue" in message


def test_429_waits_what_retry_after_asks(fresh, tiny):
    _, tokenizer = tiny
    waits = []
    engine = served(fresh.base_url, tokenizer, sleep=waits.append)
    fresh.faults += ["429:0.2", "429:7"]
    assert engine.generate([GenerationRequest("Hello", 3)]) == served(fresh.base_url, tokenizer).generate(
        [GenerationRequest("Hello", 3)]
    )
    assert waits == [0.2, 0.5]  # the second wait is capped by max_wait
    fresh.faults += ["429:0"] * 3
    with pytest.raises(KickError, match=r"failed after 3 attempts: HTTP 429: Too Many Requests"):
        engine.generate([GenerationRequest("Hello", 3)])


def test_a_reply_slower_than_the_timeout_is_retried_then_named(fresh, tiny):
    _, tokenizer = tiny
    engine = served(fresh.base_url, tokenizer, timeout=0.3)
    fresh.faults += ["slow:1.0"]
    assert engine.generate([GenerationRequest("Hello", 3)]) == served(fresh.base_url, tokenizer).generate(
        [GenerationRequest("Hello", 3)]
    )
    fresh.faults += ["slow:1.0"] * 3
    with pytest.raises(
        KickError,
        match=rf"POST {fresh.base_url}/completions failed after 3 attempts: no reply "
        rf"within the timeout of 0.3 s",
    ):
        engine.generate([GenerationRequest("Hello", 3)])


def test_a_dropped_connection_is_retried_then_named(fresh, tiny):
    _, tokenizer = tiny
    engine = served(fresh.base_url, tokenizer)
    fresh.faults += ["drop"] * 3
    with pytest.raises(
        KickError,
        match=rf"POST {fresh.base_url}/completions failed after 3 attempts: the "
        rf"connection broke",
    ):
        engine.loglikelihood(LL_REQUESTS[:1])


def test_no_server_is_named():
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(
        KickError,
        match=rf"GET http://127.0.0.1:{port}/v1/models failed after 3 attempts: "
        rf"cannot connect",
    ):
        served(f"http://127.0.0.1:{port}")


@pytest.mark.parametrize(
    "fault, message",
    [
        ("not-json", "the reply is not JSON: '<html>502 Bad Gateway</html>'"),
        ("no-choices", "the reply has no choices"),
        ("no-logprobs", "the reply has no logprobs object"),
        ("short-logprobs", "echo returned log-probs for 1 tokens, the prompt has"),
    ],
)
def test_a_malformed_reply_is_an_error_not_a_score(fresh, tiny, fault, message):
    _, tokenizer = tiny
    engine = served(fresh.base_url, tokenizer)
    fresh.faults.append(fault)
    with pytest.raises(KickError, match=f"{fresh.base_url}/completions") as err:
        engine.loglikelihood(LL_REQUESTS[:1])
    assert message in str(err.value)
    assert len(fresh.requests) == 1  # a broken reply is not retried: the server answered, wrongly


def test_malformed_prompt_logprobs_are_an_error(fresh, tiny):
    _, tokenizer = tiny
    engine = served(fresh.base_url, tokenizer)
    echo = _reply("echo_logprobs.json")
    echo["choices"][0]["prompt_logprobs"][6] = {"9999": {"logprob": -1.0, "rank": 1}}  # another token
    fresh.replies.append((200, echo))
    with pytest.raises(KickError, match=r"prompt_logprobs\[6\] has no log-prob of the prompt's token 3681"):
        engine._prompt_logprobs([1, 450, 7483, 310, 3444, 338, 3681], 2)


def test_results_keep_the_callers_order_with_requests_in_flight(fresh, tiny, local):
    _, tokenizer = tiny
    many = [LoglikelihoodRequest(f"Item {k}: " + "x" * (k * 7 % 23), f" answer {k}") for k in range(12)]
    seen = []
    remote = served(fresh.base_url, tokenizer).loglikelihood(many, progress=lambda d, t: seen.append((d, t)))
    assert [lp for lp, _ in remote] == pytest.approx([lp for lp, _ in local.loglikelihood(many)], abs=1e-4)
    assert seen[-1] == (12, 12) and all(t == 12 for _, t in seen)


def test_base_urls_and_retry_after():
    assert normalize_base_url("http://h:8000") == "http://h:8000/v1"
    assert normalize_base_url("http://h:8000/v1/") == "http://h:8000/v1"
    assert normalize_base_url("https://h/openai/v1/completions") == "https://h/openai/v1"
    with pytest.raises(KickError, match="is not an http"):
        normalize_base_url("localhost:8000")
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:05 GMT", now=lambda: 1445412480.0) == 5.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert math.isclose(RetryPolicy(backoff=1.0, max_wait=60).wait(3, None), 4.0)
