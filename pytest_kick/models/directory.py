"""What a local model directory (``--kick-model ./dir``) must hold, checked before anything is loaded.

A model directory is what ``save_pretrained`` writes for the model and its tokenizer: ``config.json``,
the weights, and the tokenizer's files. The check looks at file names only (no torch, no reading), so
it runs while options are validated, and a directory missing a part fails once, naming what is missing,
instead of every item failing deep inside transformers.
"""

from __future__ import annotations

from pathlib import Path

from pytest_kick.errors import KickError

WEIGHTS = ("*.safetensors", "pytorch_model*.bin")
TOKENIZER = (
    "tokenizer.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "*.tiktoken",
)
MUST_HOLD = (
    "a model directory holds what save_pretrained writes for a model and its tokenizer: config.json, "
    "the weights (model.safetensors, or shards with model.safetensors.index.json, or pytorch_model.bin) "
    "and the tokenizer files (tokenizer.json or tokenizer.model, with tokenizer_config.json)"
)


def _any(directory: Path, patterns) -> list[str]:
    return sorted({p.name for pattern in patterns for p in directory.glob(pattern) if p.is_file()})


def check_model_dir(directory: Path | str) -> None:
    """KickError naming what ``directory`` lacks to be a model directory; None when it has every part."""
    directory = Path(directory)
    missing = []
    if not (directory / "config.json").is_file():
        missing.append("config.json")
    if not _any(directory, WEIGHTS):
        missing.append("weights (*.safetensors or pytorch_model.bin)")
    if not _any(directory, TOKENIZER):
        missing.append("tokenizer files (tokenizer.json or tokenizer.model)")
    if not missing:
        return
    gguf = _any(directory, ("*.gguf",))
    hint = (
        (
            f"; it holds {gguf[0]}: pytest-kick reads GGUF files only for its embedded models, so convert it "
            f"once with transformers (from_pretrained(dir, gguf_file=...) then save_pretrained)"
        )
        if gguf
        else ""
    )
    raise KickError(f"{directory} is not a model directory: no {', no '.join(missing)}{hint}; {MUST_HOLD}")
