"""--kick-search: per (task, model, compressor), the largest sparsity (fewest bits) still matching dense."""


def test_search(kick_search_case, kick_search):
    kick_search(kick_search_case)
