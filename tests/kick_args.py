"""The command lines plugin tests run on tiny-random-llama, kept once (the tests folder is on sys.path)."""

# factoid QA, 12 items, the default compressors and ratios
FACTOID = [
    "--kick-model",
    "tiny-random-llama",
    "--kick-limit",
    "12",
    "--kick-tasks",
    "factoid_qa",
    "-p",
    "no:cacheprovider",
]
# magnitude pruning at 0.5, every selected task
MAGNITUDE = [
    "--kick-model",
    "tiny-random-llama",
    "--kick-compressor",
    "magnitude",
    "--kick-ratio",
    "0.5",
    "-p",
    "no:cacheprovider",
]
# factoid QA, every item, the default compressors at 0.5
FACTOID_AT_HALF = [
    "--kick-model",
    "tiny-random-llama",
    "--kick-ratio",
    "0.5",
    "--kick-tasks",
    "factoid_qa",
    "-p",
    "no:cacheprovider",
]
