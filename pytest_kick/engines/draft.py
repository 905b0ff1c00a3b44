"""Dense-drafted decoding: the dense model's greedy answer to a prompt drafts a compressed variant's answer.

A compressed variant that still matches its dense model mostly says what dense said. So when a variant decodes
greedily, the dense answer to the same prompt (its token ids, kept when dense ran: engines/draft_store.py) is
verified instead of generated: one forward pass feeds a row's next token followed by up to ``k`` draft tokens,
and reads the variant's own greedy choice at each of them. The longest run of draft tokens equal to those choices
is accepted, plus the variant's choice after it (the token plain decoding would have produced next), so every
token emitted is the variant's own greedy choice given the tokens before it: the answer is plain greedy decoding's,
token for token, except where float noise between a one-token step and a many-token pass picks the other of two
near-equal logits. Such near-ties (top-two gap below ``NEAR_TIE``) are counted, never hidden.

A row's first pass (its prompt) verifies its whole draft: a variant that agrees all the way, EOS included, has
its answer after that one pass. After a disagreement the row decodes on its own tokens until its last
``ALIGN`` tokens occur in the draft again (the dense text re-aligns after a changed word), then drafts from
there, ``k`` starting at ``RESTART`` and doubling with every fully accepted pass, up to ``STEP_MAX``.

This module is plain Python (no torch): the book of drafts, a row's place in its draft, and the tally.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Sequence

NEAR_TIE = 1e-4  # a greedy choice whose top-two logit gap is below this may differ from a one-token step's
ALIGN = 3  # tokens of the row's own output that must occur in the draft to draft from there again
RESTART = 4  # draft tokens verified per pass after a disagreement
STEP_MAX = 16  # most draft tokens a decode step verifies per row (the first pass verifies the whole draft)
FILL = 0.5  # least share of a pass's draft columns (rows x width) that must hold draft tokens, not padding


def trimmed(proposals: list[list[int]]) -> list[list[int]]:
    """The proposals cut to the widest width whose columns are at least FILL draft tokens (the rest padding).

    A pass feeds every row as many draft columns as its widest proposal, and a padded column costs what a draft
    token costs; on a device whose passes are bound by compute (a CPU), a pass where one row drafts 16 tokens
    and the others none costs 17 plain steps and saves at most one row 16. So a pass is only as wide as most of
    its rows fill: rows whose text left the draft decode one token a pass, as plain decoding does. Cutting a
    proposal never changes an answer (every token kept is the variant's own greedy choice)."""
    lengths = sorted((len(p) for p in proposals), reverse=True)
    width = 0
    for k in range(1, (lengths[0] if lengths else 0) + 1):
        if sum(min(n, k) for n in lengths) >= FILL * len(lengths) * k:
            width = k
    return [p[:width] for p in proposals]


def prompt_key(prompt: Sequence[int]) -> str:
    """The key of a prompt's draft: a digest of its token ids."""
    return hashlib.sha256(",".join(map(str, prompt)).encode()).hexdigest()[:32]


class Drafts:
    """Greedy answers (token ids, EOS kept when the answer ended with it) by prompt (token ids)."""

    def __init__(self, entries: dict[str, list[int]] | None = None):
        self.entries: dict[str, list[int]] = dict(entries or {})

    def get(self, prompt: Sequence[int]) -> list[int] | None:
        return self.entries.get(prompt_key(prompt))

    def put(self, prompt: Sequence[int], answer: Sequence[int]) -> None:
        self.entries[prompt_key(prompt)] = [int(t) for t in answer]

    def __len__(self) -> int:
        return len(self.entries)


@dataclass
class Tally:
    """What drafting did over some generation: draft tokens proposed and accepted, tokens emitted, passes
    (forward passes of the decode loop), near-ties among the emitted tokens' greedy choices, rows drafted."""

    rows: int = 0
    drafted_rows: int = 0
    proposed: int = 0
    accepted: int = 0
    emitted: int = 0
    passes: int = 0
    near_ties: int = 0

    def add(self, other: "Tally") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def acceptance(self) -> float | None:
        """Draft tokens accepted per draft token proposed (None: nothing was proposed)."""
        return self.accepted / self.proposed if self.proposed else None

    def record(self) -> dict:
        """The case record's ``drafting`` figures."""
        return {
            "acceptance": None if self.acceptance is None else round(self.acceptance, 4),
            "proposed": self.proposed,
            "accepted": self.accepted,
            "emitted": self.emitted,
            "passes": self.passes,
            "near_ties": self.near_ties,
            "rows": self.rows,
            "drafted_rows": self.drafted_rows,
        }


@dataclass
class Cursor:
    """Where a row's output stands in its draft: ``at`` is the draft position of the token expected next, valid
    while ``aligned``; ``k`` how many draft tokens the next pass verifies."""

    draft: list[int]
    at: int = 0
    aligned: bool = True
    k: int = 1 << 30  # the first pass: the whole draft
    _index: dict = field(default_factory=dict, repr=False)

    def propose(self, out: Sequence[int], room: int) -> list[int]:
        """Draft tokens to verify after the row's output ``out`` (at most ``room``: what its budget leaves)."""
        if not self.aligned and not self._realign(out):
            return []
        return self.draft[self.at : self.at + max(0, min(self.k, room))]

    def settle(self, proposed: Sequence[int], accepted: int, chosen: int) -> None:
        """After a pass: ``accepted`` of ``proposed`` were taken, then the variant chose ``chosen``."""
        self.at += accepted
        self.k = min(2 * self.k, STEP_MAX) if proposed and accepted == len(proposed) else RESTART
        if self.aligned and self.at < len(self.draft) and self.draft[self.at] == chosen:
            self.at += 1  # the variant's own next token is the draft's too: still aligned
        else:
            self.aligned = False

    def _realign(self, out: Sequence[int]) -> bool:
        """Find the row's last ALIGN tokens in the draft (the occurrence nearest after where it left it)."""
        if len(out) < ALIGN:
            return False
        if not self._index:
            for end in range(ALIGN, len(self.draft) + 1):
                self._index.setdefault(tuple(self.draft[end - ALIGN : end]), []).append(end)
        ends = self._index.get(tuple(out[-ALIGN:]))
        if not ends:
            return False
        later = [e for e in ends if e >= self.at]
        self.at = later[0] if later else ends[-1]
        self.aligned = self.at < len(self.draft)
        return self.aligned
