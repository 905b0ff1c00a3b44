"""Shared test setup.

pytester's in-process runs snapshot sys.modules and drop whatever a run imported; torch cannot be
imported twice in one process, so the heavy modules a kick run touches are imported here, first.
"""

import pytest

from pytest_kick.models.tiny import tiny_random_llama

tiny_random_llama()  # imports torch, transformers and the LLaMA modelling code once, up front


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer) of tiny-random-llama, seed 0."""
    model, tokenizer, _ = tiny_random_llama(seed=0)
    return model.eval(), tokenizer
