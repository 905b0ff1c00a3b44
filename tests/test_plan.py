"""Planning scored passes from tokens alone: folding jobs into the sequences that contain them, and cutting
the trie of shared prefixes into groups (pure Python, no model)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_kick.engines.plan import GROUP_OVERHEAD, Job, common_prefix, fold, group

tokens = st.lists(st.integers(0, 3), min_size=1, max_size=12)


@st.composite
def jobs(draw):
    """Jobs over a few shared stems, so prefixes and duplicates are common."""
    stems = draw(st.lists(tokens, min_size=1, max_size=3))
    found = []
    for _ in range(draw(st.integers(1, 12))):
        seq = tuple(draw(st.sampled_from(stems)) + draw(st.lists(st.integers(0, 3), max_size=6)))
        first = draw(st.integers(0, len(seq) - 1))
        width = draw(st.integers(1, len(seq) - first))
        found.append(Job(seq, first, tuple(range(width))))
    return found


def cost(leaves, groups):
    return sum(
        (GROUP_OVERHEAD + g.shared if g.shared else 0) + sum(len(leaves[i].tokens) - g.shared for i in g.leaves)
        for g in groups
    )


@settings(max_examples=300)
@given(jobs())
def test_every_job_lands_in_one_leaf_that_contains_it(found):
    leaves = fold(found)
    placed = sorted(j for leaf in leaves for j in leaf.jobs)
    assert placed == list(range(len(found)))
    for leaf in leaves:
        assert all(leaf.tokens[: len(found[j].tokens)] == found[j].tokens for j in leaf.jobs)
        assert leaf.first == min(found[j].first for j in leaf.jobs)
    for a in leaves:  # no leaf is a prefix of another: it would have been folded
        assert not any(a is not b and b.tokens[: len(a.tokens)] == a.tokens for b in leaves)


@settings(max_examples=300)
@given(jobs())
def test_groups_partition_the_leaves_and_share_only_real_prefixes(found):
    leaves = fold(found)
    groups = group(leaves)
    assert sorted(i for g in groups for i in g.leaves) == list(range(len(leaves)))
    for g in groups:
        if g.shared:
            assert len(g.leaves) > 1
            stem = leaves[g.leaves[0]].tokens[: g.shared]
            assert all(leaves[i].tokens[: g.shared] == stem and g.shared <= leaves[i].first for i in g.leaves)
    alone = sum(len(leaf.tokens) for leaf in leaves)
    assert cost(leaves, groups) <= alone  # never worse than running every sequence in full


def test_mmlu_shaped_jobs_share_each_subjects_block_and_one_pass_per_question():
    header = tuple(range(100, 110))  # shared by every subject: too short to be worth a group
    found = []
    for subject in range(3):
        block = header + tuple(range(200 + 50 * subject, 240 + 50 * subject))  # 5-shot block: 50 tokens
        for q in range(4):
            question = block + (1000 + 10 * subject + q, 7, 8)
            found += [Job(question, len(question) - 1, (letter,)) for letter in (11, 12, 13, 14)]
    leaves = fold(found)
    assert len(leaves) == 12 and all(len(leaf.jobs) == 4 for leaf in leaves)  # four letters, one pass
    groups = group(leaves)
    assert sorted(g.shared for g in groups) == [50, 50, 50] and all(len(g.leaves) == 4 for g in groups)


def test_unrelated_sequences_run_in_full():
    leaves = fold([Job((1, 2, 3), 0, (2,)), Job((4, 5), 0, (5,)), Job((1, 9), 0, (9,))])
    [only] = group(leaves)
    assert only.shared == 0 and len(only.leaves) == 3
    assert common_prefix((1, 2, 3), (1, 2, 4)) == 2 and common_prefix((), (1,)) == 0


@settings(max_examples=200)
@given(st.lists(st.integers(1, 40), max_size=30), st.integers(1, 64))
def test_pack_keeps_order_and_fills_rows_up_to_the_budget(lengths, budget):
    from pytest_kick.engines.plan import pack

    rows = pack(lengths, budget)
    assert [i for row in rows for i in row] == list(range(len(lengths)))  # every sequence once, in order
    for row, after in zip(rows, rows[1:] + [None]):
        size = sum(lengths[i] for i in row)
        assert size <= budget or len(row) == 1  # only a sequence longer than the budget overfills, alone
        if after is not None:
            assert size + lengths[after[0]] > budget  # a row closes only when the next one does not fit
