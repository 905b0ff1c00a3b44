"""A NaN or infinite number is an error naming where it came from, never a verdict and never a stored baseline."""

import json
import math

import pytest
from test_plugin import TINY

from pytest_kick import gate
from pytest_kick.engines.base import Runner
from pytest_kick.errors import KickError
from pytest_kick.finite import NonFinite, check_weights
from pytest_kick.models.tiny import tiny_random_llama
from pytest_kick.requests import LoglikelihoodRequest, RollingRequest


def _damaged_model_dir(path, value=math.nan):
    """tiny-random-llama saved as a model directory with one weight element set to ``value``."""
    import torch

    model, tokenizer, _ = tiny_random_llama(seed=0)
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight[3, 5] = value
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_a_model_with_a_nan_weight_ends_the_session_with_one_error_naming_the_tensor(pytester):
    _damaged_model_dir(pytester.path / "damaged")
    result = pytester.runpytest(
        "--kick-model",
        "damaged",
        "--kick-tasks",
        "factoid_qa",
        "--kick-limit",
        "4",
        "--kick-ratio",
        "0.5",
        "-p",
        "no:cacheprovider",
    )
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED, out
    assert "passed" not in out.splitlines()[-1]
    assert out.count("weight model.layers.1.mlp.down_proj.weight holds 1 NaN or infinite value(s)") == 1
    assert not list((pytester.path / ".kick" / "baselines").rglob("*.json"))  # nothing stored


def test_an_infinite_weight_is_refused_too(tmp_path):
    import torch

    model, _, _ = tiny_random_llama(seed=0)
    with torch.no_grad():
        model.lm_head.weight[0, 0] = math.inf
    with pytest.raises(NonFinite, match=r"^tiny: weight lm_head.weight holds 1 NaN or infinite"):
        check_weights(model, "tiny")


def test_a_cached_nan_baseline_is_refused_with_its_path_and_kept(pytester, echo_data):
    args = [*TINY, *echo_data, "--kick-ratio", "0.5"]
    pytester.runpytest(*args).assert_outcomes(passed=2)
    [cached] = (pytester.path / ".kick" / "baselines" / "tiny-random-llama").glob("factoid_qa-*.json")
    stored = json.loads(cached.read_text())
    stored["result"]["scores"] = [math.nan] * len(stored["result"]["scores"])
    cached.write_text(json.dumps(stored))  # as an older version wrote it: NaN in the JSON
    before = cached.read_text()
    result = pytester.runpytest(*args)
    out = result.stdout.str()
    result.assert_outcomes(failed=2)
    assert f"corrupt dense baseline {cached}: factoid_qa on tiny-random-llama dense: item e0 scored nan" in out
    assert "delete it to recompute" in out and "Traceback" not in out
    assert cached.read_text() == before


class _Engine:
    name = "stub"

    def __init__(self, value):
        self.value = value

    def loglikelihood(self, requests, progress=None):
        return [(self.value if k == 1 else -1.0, False) for k, _ in enumerate(requests)]

    def loglikelihood_rolling(self, requests, progress=None):
        return [(-1.0, self.value) for _ in requests]


@pytest.mark.parametrize("value", [math.nan, -math.inf])
def test_a_non_finite_log_likelihood_from_an_engine_is_an_error_naming_the_request(value):
    requests = [LoglikelihoodRequest("Q: one?\nA:", " a"), LoglikelihoodRequest("Q: two?\nA:", " b")]
    with pytest.raises(
        NonFinite,
        match=r"engine 'stub' gave a non-finite loglikelihood \((nan|-inf)\) for "
        r"request 2 of 2 \('Q: two\? A:'\)",
    ) as raised:
        Runner(_Engine(value))(requests)
    assert raised.value.request == requests[1]
    with pytest.raises(NonFinite, match="non-finite loglikelihood_rolling"):
        Runner(_Engine(value))([RollingRequest("some text")])


def test_finite_answers_pass_through():
    assert Runner(_Engine(-2.0))([LoglikelihoodRequest("a", " b"), LoglikelihoodRequest("c", " d")]) == [
        (-1.0, False),
        (-2.0, False),
    ]


@pytest.mark.parametrize(
    "dense, compressed", [([math.nan] * 4, [math.nan] * 4), ([1.0, 0.0, 1.0, 1.0], [1.0, math.inf, 1.0, 0.0])]
)
def test_the_gate_never_judges_a_non_finite_score(dense, compressed):
    with pytest.raises(KickError, match="scored (nan|inf)"):
        gate.judge(
            task="t",
            label="magnitude@0.5",
            dense=dense,
            compressed=compressed,
            tolerance=gate.Tolerance(0.05),
            floor=None,
        )


NAN_TASK = """
import math
from pathlib import Path

from pytest_kick.api import Dataset, Example, LoglikelihoodRequest, OneRequestPerItem, subset, text_hash


class Scores(OneRequestPerItem):
    name = family = "nan_scores"
    version = "1"
    metric = "accuracy"
    higher_is_better = True
    floor = None

    def load(self, settings):
        return Dataset(tuple(Example(f"q{k}", f"question {k}", ("a",)) for k in range(6)), "test", "0")

    def split(self, dataset, settings):
        return [], subset(dataset.examples, settings.limit, settings.seed, self.name)

    def template_hash(self, settings):
        return text_hash("nan")

    def requests(self, items, shots, settings):
        return [LoglikelihoodRequest(i.question, " a") for i in items]

    def score(self, item, request, answer, settings):
        return math.nan if item.id == "q2" else 1.0


def pytest_kick_tasks(config):
    return [Scores()]
"""


def test_a_task_scoring_nan_fails_naming_model_task_and_item_and_stores_nothing(pytester):
    pytester.makeconftest(NAN_TASK)
    result = pytester.runpytest(
        "--kick-model",
        "tiny-random-llama",
        "--kick-tasks",
        "nan_scores",
        "--kick-ratio",
        "0.5",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert "nan_scores on tiny-random-llama dense: item q2 scored nan; a non-finite score is an error" in out
    assert not list((pytester.path / ".kick" / "baselines").rglob("*.json"))


def test_finite_weights_whose_sum_overflows_are_not_refused():
    import torch

    model, _, _ = tiny_random_llama(seed=0)
    with torch.no_grad():
        model.lm_head.weight[0, :2] = 3e38  # finite, but their float32 sum is not
    check_weights(model, "tiny")
