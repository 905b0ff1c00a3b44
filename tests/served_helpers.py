"""Shared fixtures and helpers of the served-engine tests (test_served*.py): the module's loopback server
(tests/served_server.py) answering from tiny-random-llama, a served engine on it, and the local engine to
compare with. Test modules import the fixtures by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from served_server import Model, Server

from pytest_kick.engines.http import Client, RetryPolicy
from pytest_kick.engines.local import LocalEngine
from pytest_kick.engines.served import ServedEngine
from pytest_kick.requests import GenerationRequest, LoglikelihoodRequest

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


def _nothing() -> dict:
    from pytest_kick.config import OPTIONS

    return {opt.name: None for opt in OPTIONS}


def _reply(name: str) -> dict:
    return {k: v for k, v in json.loads((REPLIES / name).read_text()).items() if not k.startswith("_")}
