"""In-context summarization of CNN/DailyMail stories (LLM-KICK, section "In-context Summarization").

LLM-KICK (VITA-Group/llm-kick, in-context_summarization/) picked 30 stories in each of three length
buckets (``small``, ``mid``, ``large``; 18 stories sit in both ``small`` and ``mid``), asked
``"Summarize the given story|news in less than 150 words while preserving high coherence, consistency,
fluency, and relevance.\\n\\n" + story`` through the Vicuna conversation template, sampled up to 1024
new tokens and had GPT-4 rate the summaries. The prompts are bundled verbatim
(``json_utils/new_question.jsonl``). Because the repo concatenated the stripped lines of each ``.story``
file, a prompt runs its sentences together and ends with the story's ``@highlight`` markup and highlight
sentences, i.e. the reference summary.

Variants ``summarization:small``, ``summarization:medium`` (LLM-KICK's ``mid``) and
``summarization:large``, 30 prompts each, zero-shot (``--kick-shots`` does not apply).
- protocol ``kick``: LLM-KICK's prompt verbatim, highlights included;
- protocol ``strict`` (default): the same prompt cut before its first ``@highlight``, so the model does
  not see the reference it is scored against.
The user turn goes through the model's chat template; a model without one gets FastChat's Vicuna v1.1
prompt, as LLM-KICK built it. Decoding is greedy, at most MAX_NEW_TOKENS = 256 new tokens (LLM-KICK:
1024 sampled tokens; "less than 150 words" is about 200 LLaMA tokens, and 256 keeps a CPU run
affordable: the cap is part of the baseline key).

Scoring: without a judge, the reply (stripped) is compared with the highlights (one sentence a line) by
ROUGE F-measure (``rouge-score``, stemmer on). The item score is ROUGE-L: of the ROUGE variants it is
the one closest to what LLM-KICK's judge rated (coherence and fluency reward the order of content, which
ROUGE-L's longest common subsequence sees and ROUGE-1 does not); the report details give mean ROUGE-1,
ROUGE-2 and ROUGE-L. An empty reply scores 0. A judge (``--kick-judge``) replaces the scorer (see
tasks/scorers.py): its rating is the item score, 1 (the floor) to 10; an item it failed on scores NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_kick.errors import KickError
from pytest_kick.hashing import file_hash, text_hash
from pytest_kick.requests import GenerationRequest
from pytest_kick.tasks.base import Dataset, OneRequestPerItem, Settings
from pytest_kick.tasks.data import bundled_dir, read_jsonl, subset
from pytest_kick.tasks.instruction import VICUNA_SYSTEM, vicuna_prompt
from pytest_kick.tasks.scorers import RougeScorer, Scorer, mean_figures, prepare_judgments

BUNDLED = "cnn_dailymail/llmkick_summarization_prompts.jsonl"
HIGHLIGHT = "@highlight"
BUCKETS = {"small": "small", "medium": "mid", "large": "large"}  # variant -> LLM-KICK's bucket name
MAX_NEW_TOKENS = 256


@dataclass(frozen=True)
class Story:
    id: str
    question: str  # the story as LLM-KICK's prompt has it (lines run together), without the highlights
    answers: tuple[str, ...]  # (the reference summary: the highlight sentences, one a line,)
    prompt: str  # LLM-KICK's prompt, verbatim
    bucket: str  # small | mid | large
    category: str = "summarization"

    @property
    def references(self) -> tuple[str, ...]:
        return self.answers


def strip_highlights(prompt: str) -> str:
    """The prompt without its ``@highlight`` markup and the highlight sentences after it (all at the end)."""
    cut = prompt.find(HIGHLIGHT)
    return (prompt if cut == -1 else prompt[:cut]).rstrip()


def highlights(prompt: str) -> list[str]:
    """The highlight sentences a prompt ends with."""
    return [h.strip() for h in prompt.split(HIGHLIGHT)[1:] if h.strip()]


def story_from_record(record: dict, where: str) -> Story:
    prompt = record["prompt"]
    if not isinstance(prompt, str):
        raise KickError(f"{where}: prompt must be a string")
    found = highlights(prompt)
    if not found:
        raise KickError(f"{where}: the prompt has no {HIGHLIGHT} sentences, so there is no reference summary")
    body = strip_highlights(prompt).partition("\n\n")[2]
    return Story(str(record["id"]), body, ("\n".join(found),), prompt, str(record["length_bucket"]))


def load_stories(path) -> list[Story]:
    records = read_jsonl(path, required=("id", "length_bucket", "prompt"))
    return [story_from_record(r, f"{path} record {r['id']!r}") for r in records]


class Summarization(OneRequestPerItem):
    family = "summarization"
    version = "1"
    higher_is_better = True
    # the judge's prompt per --kick-protocol (judge/protocols.py FORMS): LLM-KICK's pairwise summary prompt, or
    # MT-Bench's single-answer grading
    judge_forms = {"kick": "kick-summary", "strict": "mtbench-single"}

    def __init__(self, variant: str, scorer: Scorer | None = None, max_new_tokens: int = MAX_NEW_TOKENS):
        if variant not in BUCKETS:
            raise ValueError(f"summarization variant must be one of {tuple(BUCKETS)}, got {variant!r}")
        self.variant = variant
        self.bucket = BUCKETS[variant]
        self.name = f"summarization:{variant}"
        self.scorer: Scorer = scorer or RougeScorer("rougeL")
        self.metric = self.scorer.name
        self.floor = self.scorer.floor
        self.max_new_tokens = max_new_tokens

    def load(self, settings: Settings) -> Dataset:
        """Always the bundled LLM-KICK prompts (the complete set the paper used; --kick-data-dir is not read)."""
        path = bundled_dir() / BUNDLED
        stories = [s for s in load_stories(path) if s.bucket == self.bucket]
        if not stories:
            raise KickError(f"{path}: no stories in LLM-KICK's {self.bucket!r} bucket")
        return Dataset(tuple(stories), f"bundled:{BUNDLED}", file_hash(path))

    def split(self, dataset: Dataset, settings: Settings) -> tuple[list, list[Story]]:
        return [], subset(list(dataset.examples), settings.limit, settings.seed, self.name)

    def user_turn(self, story: Story, protocol: str) -> str:
        return story.prompt if protocol == "kick" else strip_highlights(story.prompt)

    def requests(self, items, shots, settings: Settings) -> list[GenerationRequest]:
        requests = []
        for story in items:
            turn = (("user", self.user_turn(story, settings.protocol)),)
            requests.append(GenerationRequest(vicuna_prompt(turn), self.max_new_tokens, messages=turn))
        return requests

    def evaluate(self, items, shots, settings: Settings, run) -> tuple[list[float], list[str]]:
        """Generate every summary, then score them; a judge scorer judges the whole batch at once (concurrently)."""
        requests = self.requests(items, shots, settings)
        answers = run(requests)
        prepare_judgments(self.scorer, items, [(a.strip(),) for a in answers])
        return [self.score(i, r, a, settings) for i, r, a in zip(items, requests, answers)], list(answers)

    def score(self, item: Story, request: GenerationRequest, output: str, settings: Settings) -> float:
        return self.scorer.score(item, (output.strip(),))

    def score_outputs(self, items, outputs) -> list[float]:
        """Scores of stored outputs (a baseline's), judged as one batch."""
        replies = [(o.strip(),) for o in outputs]
        prepare_judgments(self.scorer, items, replies)
        return [self.scorer.score(i, r) for i, r in zip(items, replies)]

    def explain(self, item: Story, output: str) -> str | None:
        """The judge's explanation of its score for ``output`` (None under ROUGE): the flip report shows it."""
        explanation = getattr(self.scorer, "explanation", None)
        return None if explanation is None else explanation(item, (output.strip(),))

    def details(self, items, scores, outputs) -> dict[str, float]:
        figures = getattr(self.scorer, "figures", None)
        if figures is None:
            return {}
        replies = [(o.strip(),) for o in outputs]
        prepare_judgments(self.scorer, items, replies)
        return mean_figures(self.scorer, items, replies)

    def template_hash(self, settings: Settings) -> str:
        prompt = "kick:verbatim" if settings.protocol == "kick" else f"strict:cut-at:{HIGHLIGHT}"
        return text_hash(
            self.bucket,
            prompt,
            "chat-template|vicuna_v1.1",
            VICUNA_SYSTEM,
            f"greedy:{self.max_new_tokens}",
            self.scorer.fingerprint(),
        )
