"""The discrimination check (judge/discrimination.py): a judge must prefer references to degraded copies."""

import random
import re

import pytest

from pytest_kick.judge import discrimination
from pytest_kick.judge.protocols import family_for
from pytest_kick.judge.runner import Outcome, Reading
from pytest_kick.tasks.instruction import Conversation

ANSWER = re.compile(r"\[The Start of Assistant(?: \d)?'s Answer\]\n(.*?)\n*\[The End of Assistant", re.DOTALL)
REFERENCES = [
    "Paris is the capital of France. It lies on the Seine.",
    "Water boils at 100 degrees Celsius at sea level. Higher up it boils sooner.",
    "Photosynthesis turns light into sugar. Plants and algae do it.",
    "The Moon orbits the Earth. One orbit takes about 27 days.",
    "Python is a programming language. It was created by Guido van Rossum.",
    "Mount Everest is the highest mountain. It stands in the Himalaya.",
    "A triangle has three sides. Its angles add up to 180 degrees.",
]
ITEMS = [
    Conversation(f"q{k}", f"Question {k}?", (r,), (f"Question {k}?",), (r,), "generic")
    for k, r in enumerate(REFERENCES)
]


class ScriptedJudge:
    """``run(asks)`` as runner.Judge: each answer in an ask scored by ``rate(answer, reference, position)``."""

    def __init__(self, rate):
        self.rate = rate
        self.asked = 0

    def run(self, asks):
        self.asked += len(asks)
        outcomes = []
        for ask in asks:
            reference = next(r for r in REFERENCES if f"Question {REFERENCES.index(r)}?" in ask.user)
            answers = ANSWER.findall(ask.user)
            scores = [self.rate(a, reference, n) for n, a in enumerate(answers, 1)]
            if ask.model_slot:
                outcomes.append(Outcome(Reading(scores[ask.model_slot - 1], scores[2 - ask.model_slot]), ("",)))
            else:
                outcomes.append(Outcome(Reading(scores[0]), ("",)))
        return outcomes


PREFERS = ScriptedJudge(lambda answer, reference, position: 9.0 if answer == reference else 3.0)


def coin(seed):
    rng = random.Random(seed)
    return ScriptedJudge(lambda answer, reference, position: float(rng.randint(1, 10)))


def test_three_degraded_copies_of_each_reference():
    copies = discrimination.degraded_copies(ITEMS[:3], seed=0)
    assert [(item.id, kind) for item, _, kind, _ in copies] == [
        (f"q{k}", kind) for k in range(3) for kind in ("other", "shuffled", "first_sentence")
    ]
    by = {(item.id, kind): copy[0] for item, _, kind, copy in copies}
    assert by["q0", "other"] == REFERENCES[1] and by["q2", "other"] == REFERENCES[0]
    assert by["q0", "first_sentence"] == "Paris is the capital of France."
    assert sorted(by["q0", "shuffled"].split()) == sorted(REFERENCES[0].split()) != by["q0", "shuffled"].split()
    assert discrimination.degraded_copies(ITEMS[:3], seed=0) == copies  # seeded
    one = Conversation("x", "Q?", ("Just one sentence.",), ("Q?",), ("Just one sentence.",), "generic")
    assert [kind for _, _, kind, _ in discrimination.degraded_copies([one], 0)] == ["shuffled"]  # nothing to cut


def test_the_binomial_tail_is_exact():
    assert discrimination.binomial_tail(15, 15) == 2**-15
    assert discrimination.binomial_tail(0, 7) == 1.0 and discrimination.binomial_tail(0, 0) == 1.0
    assert discrimination.binomial_tail(12, 15) == pytest.approx(576 / 32768)


@pytest.mark.parametrize("protocol", ["kick", "strict"])
def test_a_judge_that_always_prefers_the_reference_passes(protocol):
    family = family_for("instruction", "vicuna", protocol)
    check = discrimination.run(PREFERS, family, ITEMS, "instruction:vicuna", "scripted", alpha=0.05)
    record = check.record()
    assert check.fit and record["preference_rate"] == 1.0 and record["comparisons"] == 21
    assert record["p_value"] == 2**-21
    assert all(k["preference_rate"] == 1.0 for k in record["by_degradation"].values())
    assert record["position_disagreement_rate"] == (0.0 if protocol == "kick" else None)


@pytest.mark.parametrize("protocol", ["kick", "strict"])
def test_a_random_judge_is_not_fit_and_the_message_says_what_to_do(protocol):
    family = family_for("instruction", "vicuna", protocol)
    check = discrimination.run(coin(3), family, ITEMS, "instruction:vicuna", "local:coin", alpha=0.05)
    assert not check.fit and check.p_value >= 0.05
    message = check.message()
    assert message.startswith("instruction:vicuna: inconclusive: the judge local:coin prefers the reference answer")
    assert f"in {check.preferred} of 21 comparisons" in message and "another item's answer" in message
    assert "a larger judge" in message and "--kick-judge openai:<model>" in message


def test_a_position_biased_judge_is_not_fit_and_its_orders_disagree():
    biased = ScriptedJudge(lambda answer, reference, position: 9.0 if position == 1 else 3.0)
    check = discrimination.run(biased, family_for("instruction", "vicuna", "kick"), ITEMS, "t", "biased")
    record = check.record()
    assert not check.fit and record["preferred"] == 0  # the two orders cancel: a tie is no preference
    assert record["position_disagreement_rate"] == 1.0 and record["order_pairs"] == 21


def test_identical_asks_are_asked_once():
    judge = ScriptedJudge(lambda answer, reference, position: 9.0 if answer == reference else 3.0)
    discrimination.run(judge, family_for("instruction", "vicuna", "strict"), ITEMS, "t", "scripted")
    assert judge.asked == 7 + 21  # each reference rated once, beside its three copies


def test_alpha_is_the_sessions():
    family = family_for("instruction", "vicuna", "strict")
    ties = {"Paris is the capital of France.", "Water boils at 100 degrees Celsius at sea level."}
    rate = lambda answer, reference, position: 9.0 if answer == reference or answer in ties else 3.0  # noqa: E731
    check = discrimination.run(ScriptedJudge(rate), family, ITEMS[:4], "t", "scripted", alpha=0.05)
    assert check.preferred == 10 and check.n == 12 and check.p_value == pytest.approx(79 / 4096)
    assert check.fit
    strict = discrimination.run(ScriptedJudge(rate), family, ITEMS[:4], "t", "scripted", alpha=0.01)
    assert not strict.fit
