"""What a flip report (``.kick/reports/...jsonl``) says about an item: its question and answers, and for a
multiple-choice item its choices and the correct one, apart, each as the model saw it ("B. 4" when lettered)."""

from __future__ import annotations

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def item_fields(item) -> dict:
    """``question`` and ``answers`` of any item; ``choices`` and ``correct`` too for a multiple-choice item (one
    with ``choices`` and the index of the correct one as ``label`` or ``answer_index``)."""
    if item is None:
        return {"question": None, "answers": None}
    found = {"question": item.question, "answers": list(item.answers)}
    choices = getattr(item, "choices", None)
    index = getattr(item, "label", getattr(item, "answer_index", None))
    if not choices or not isinstance(index, int) or not 0 <= index < len(choices):
        return found
    labels = getattr(item, "labels", None)
    if labels is None and hasattr(item, "answer_index") and len(choices) <= len(LETTERS):
        labels = LETTERS[: len(choices)]  # MMLU: lettered choices, the answer a letter
    shown = [f"{x}. {c}" for x, c in zip(labels, choices)] if labels else list(choices)
    return {**found, "choices": shown, "correct": shown[index]}
