"""The served engine against a real HTTP server on 127.0.0.1 (tests/served_server.py) answering the
completions API from tiny-random-llama: the same per-item results as the local engine, vLLM's reply
shapes (tests/served_replies/), and a clear error naming the URL for every way a server can fail."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from served_server import Model, Server

from pytest_kick import tasks
from pytest_kick.config import build
from pytest_kick.engines.http import Client, RetryPolicy, normalize_base_url, retry_after_seconds
from pytest_kick.engines.local import LocalEngine
from pytest_kick.engines.served import ServedEngine
from pytest_kick.engines.tokens import rolling_windows
from pytest_kick.errors import KickError
from pytest_kick.requests import GenerationRequest, LoglikelihoodRequest, RollingRequest
from pytest_kick.runtime import KickCase, Runtime

REPLIES = Path(__file__).parent / "served_replies"
FAST = RetryPolicy(attempts=3, backoff=0.01, max_wait=0.5)


@pytest.fixture(scope="module")
def server(tiny):
    model, tokenizer = tiny
    with Server(Model(model, tokenizer, "tiny-random-llama")) as running:
        yield running


@pytest.fixture
def fresh(server):
    """The module's server with no queued faults or canned replies, and an empty request log."""
    server.faults.clear(), server.replies.clear(), server.requests.clear()
    server.models_reply = None
    yield server
    server.faults.clear(), server.replies.clear()
    server.models_reply = None


def served(url: str, tokenizer=None, timeout: float = 30.0, retry: RetryPolicy = FAST, sleep=None) -> ServedEngine:
    client = Client(url, timeout=timeout, retry=retry, **({"sleep": sleep} if sleep else {}))
    return ServedEngine(client, tokenizer, concurrency=4)


@pytest.fixture
def local(tiny):
    model, tokenizer = tiny
    return LocalEngine(model, tokenizer, "cpu", batch_size=4)


LL_REQUESTS = [
    LoglikelihoodRequest("Question: What is the capital of France?\nAnswer:", " Paris"),
    LoglikelihoodRequest("The quick brown fox", " jumps over the lazy dog"),
    LoglikelihoodRequest("", "An empty context starts at BOS"),
    LoglikelihoodRequest("Answer:", " A"),
    LoglikelihoodRequest("A trailing space moves into the continuation: ", "B"),
]
GEN_REQUESTS = [
    GenerationRequest("Q: Who wrote Hamlet?\nA:", 12, stop=("\n",)),
    GenerationRequest("Once upon a time", 20),
    GenerationRequest("abc", 30, length_factor=2),
    GenerationRequest("Say", 8, stop=("e", "a")),
]


# --- the same answers as the local engine -----------------------------------------------------------


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


def _nothing() -> dict:
    from pytest_kick.config import OPTIONS

    return {opt.name: None for opt in OPTIONS}


# --- vLLM's reply shapes --------------------------------------------------------------------------


def _reply(name: str) -> dict:
    return {k: v for k, v in json.loads((REPLIES / name).read_text()).items() if not k.startswith("_")}


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


# --- failures end in a clear error naming the URL --------------------------------------------------


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


# --- the plugin as a user meets it -----------------------------------------------------------------

SESSION = [
    "--kick-model",
    "tiny-random-llama",
    "--kick-limit",
    "4",
    "--kick-tasks",
    "icrqa:closed",
    "-p",
    "no:cacheprovider",
]


LOOP = [
    "--kick-model",
    "tiny-random-llama",
    "--kick-limit",
    "4",
    "--kick-tasks",
    "perplexity",
    "-p",
    "no:cacheprovider",
]


def _cases(path: Path) -> dict:
    return {(c["compressor"], c["ratio"]): c for c in json.loads(path.read_text())["cases"]}


def test_the_deployment_loop(pytester, tiny):
    """Compress and gate here, --kick-export, serve the export, gate the served model with the same baseline:
    the served variant gets the per-item results the in-process one got."""
    from transformers import AutoModelForCausalLM

    local = pytester.runpytest(
        *LOOP,
        "--kick-compressor",
        "magnitude",
        "--kick-ratio",
        "0.5",
        "--kick-export",
        "exported",
        "--kick-baseline-dir",
        "baselines",
        "--kick-report",
        "local.json",
    )
    assert local.ret in (0, 1), local.stdout.str()
    model, tokenizer = tiny
    exported = AutoModelForCausalLM.from_pretrained(pytester.path / "exported" / "tiny-random-llama-magnitude-0.5")
    with (
        Server(Model(model, tokenizer, "tiny-random-llama")) as dense,
        Server(Model(exported.eval(), tokenizer, "tiny-random-llama-magnitude-0.5")) as compressed,
    ):
        served = pytester.runpytest(
            *LOOP,
            "--kick-engine",
            "openai-completions",
            "--kick-base-url",
            dense.base_url,
            "--kick-compressed-url",
            compressed.base_url,
            "--kick-cache-dir",
            "served-cache",
            "--kick-report",
            "served.json",
            "-v",
        )
        assert "test_perplexity[tiny-random-llama-served]" in served.stdout.str()
        assert dense.requests and compressed.requests  # each model answered by its own server
        files = pytester.runpytest(
            *LOOP,
            "--kick-engine",
            "openai-completions",
            "--kick-compressed-url",
            compressed.base_url,
            "--kick-baseline-dir",
            "baselines",
            "--kick-report",
            "files.json",
            "-W",
            "always",
        )
    here, there, from_files = (_cases(pytester.path / name) for name in ("local.json", "served.json", "files.json"))
    variant = here[("magnitude", "0.5")]
    assert variant["compressed"] != pytest.approx(variant["dense"])  # a change the served run must reproduce
    for run in (there, from_files):
        assert run[("served", "as-given")]["verdict"] == variant["verdict"]
        for key in ("dense", "compressed", "n", "lost", "kept", "gained"):
            assert run[("served", "as-given")][key] == pytest.approx(variant[key]), key
    assert there[("dense", None)]["dense"] == pytest.approx(here[("dense", None)]["dense"])
    # the dense results came from the committed file, not from a dense server; the file says where it was made
    assert from_files[("served", "as-given")]["baseline"] == "file"
    assert "was made in another environment" in files.stdout.str()


def test_a_dead_server_ends_the_session_once_naming_its_url(pytester):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = pytester.runpytest(
        *SESSION,
        "--kick-engine",
        "openai-completions",
        "--kick-base-url",
        f"http://127.0.0.1:{port}",
        "--kick-timeout",
        "2",
    )
    # an unreachable server dooms every item: one session error, not a failure per item
    assert result.ret == pytest.ExitCode.INTERRUPTED
    out = result.stdout.str() + result.stderr.str()
    assert out.count(f"GET http://127.0.0.1:{port}/v1/models failed after 5 attempts: cannot connect") == 1, out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--kick-base-url", "http://h:8000"],
            "--kick-base-url points at a server: add --kick-engine openai-completions",
        ),
        (["--kick-engine", "openai-completions"], "--kick-engine openai-completions needs --kick-base-url URL"),
        (["--kick-engine", "vllm"], "--kick-engine: 'vllm' is not one of local, openai-completions"),
        (
            ["--kick-engine", "openai-completions", "--kick-base-url", "h:8000"],
            "--kick-base-url: 'h:8000' is not an http",
        ),
        (
            ["--kick-engine", "openai-completions", "--kick-base-url", "http://h", "--kick-compressor", "wanda"],
            "--kick-compressor compresses in this process; a served model is not",
        ),
        (
            ["--kick-engine", "openai-completions", "--kick-base-url", "http://h", "--kick-timeout", "0"],
            "--kick-timeout: must be more than 0 seconds",
        ),
    ],
)
def test_bad_served_options_are_usage_errors(pytester, args, message):
    result = pytester.runpytest("--kick-model", "tiny-random-llama", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_served_ids(pytester):
    result = pytester.runpytest(
        *SESSION,
        "--kick-engine",
        "openai-completions",
        "--kick-base-url",
        "http://h:1",
        "--kick-compressed-url",
        "http://h:2",
        "--collect-only",
        "-q",
    )
    assert "test_icrqa[closed-tiny-random-llama-dense]" in result.stdout.str()
    assert "test_icrqa[closed-tiny-random-llama-served]" in result.stdout.str()
