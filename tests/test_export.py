"""--kick-export: a compressed variant written as a checkpoint reloads, through transformers and through
--kick-compressed's loader, to weights bit-identical to the compressed model that was gated."""

from __future__ import annotations

import json
import os

import pytest
import torch

from pytest_kick.compress import pipeline
from pytest_kick.compress.base import DenseWeights
from pytest_kick.compress.checkpoint import load_into
from pytest_kick.compress.export import REPORT, export, variant_dir
from pytest_kick.compress.spec import parse
from pytest_kick.models.loading import LoadedModel
from pytest_kick.models.tiny import tiny_random_llama


@pytest.fixture
def model():
    built, tokenizer, recipe = tiny_random_llama(seed=0)
    return LoadedModel(built.eval(), tokenizer, {"name": "tiny-random-llama", "recipe": recipe}, "cpu", "float32")


def _same(a, b) -> bool:
    first, second = a.state_dict(), b.state_dict()
    return list(first) == list(second) and all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize(
    "compressor, ratio",
    [("magnitude", "0.5"), ("magnitude", "2:4"), ("rtn", "w4g128"), ("rtn", "w4g32"), ("gptq", "w4g32")],
)
def test_an_exported_variant_reloads_bit_identical(model, tmp_path, compressor, ratio):
    from transformers import AutoModelForCausalLM

    calibration = torch.randint(3, 200, (4, 32), generator=torch.Generator().manual_seed(0))
    report = pipeline.compress(
        model.model, compressor, parse(ratio), DenseWeights(model.model), calibration if compressor == "gptq" else None
    )
    line = export(model, "tiny-random-llama", report, tmp_path)
    directory = variant_dir(tmp_path, "tiny-random-llama", compressor, ratio)
    assert str(directory) in line and directory.name == f"tiny-random-llama-{compressor}-{ratio.replace(':', 'of')}"
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json", REPORT} <= {
        p.name for p in directory.iterdir()
    }
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no half-written directory left

    if compressor == "magnitude":  # a packed checkpoint is read through compressed-tensors (below)
        served = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)  # as a server loads it
        assert _same(served, model.model)
    fresh, _, _ = tiny_random_llama(seed=0)  # the dense model, then --kick-compressed's loader on top
    loaded = load_into(fresh, directory, DenseWeights(fresh))
    assert _same(fresh, model.model) and loaded.achieved == report.achieved

    record = json.loads((directory / REPORT).read_text())
    assert record["compression"]["sparsity"] == report.achieved and record["compression"]["ratio"] == ratio
    assert record["identity"]["name"] == "tiny-random-llama" and record["dtype"] == "float32"
    assert set(record["per_layer_sparsity"]) == set(report.per_layer)
    config = json.loads((directory / "config.json").read_text())
    if compressor == "magnitude":  # a plain checkpoint: vLLM 0.32 refuses any compressed-tensors sparsity_config
        assert "quantization_config" not in config
        assert record["format"] == "safetensors (pruned weights stored dense)"
    else:  # pack-quantized; the tiny model's layers have 64 or 128 inputs: g128 is one group a row (channel)
        quant = config["quantization_config"]
        assert (
            quant["format"] == "pack-quantized" and record["format"] == f"compressed-tensors pack-quantized ({ratio})"
        )
        (scheme,) = quant["config_groups"].values()
        weights = scheme["weights"]
        assert weights["num_bits"] == 4 and not weights["symmetric"]
        if ratio == "w4g32":
            assert weights["strategy"] == "group" and weights["group_size"] == 32
        else:
            assert weights["strategy"] == "channel"
        assert "model.layers.0.mlp.down_proj" in scheme["targets"] and "lm_head" in quant["ignore"]
        assert loaded.bits == 4 and loaded.stats["format"] == "compressed-tensors"
        # transformers reads it decompressed (its compressed modules expect zero points unpacked; the file
        # has them packed along the output rows, as vLLM reads them)
        from transformers import CompressedTensorsConfig

        served = AutoModelForCausalLM.from_pretrained(
            directory, dtype=torch.float32, quantization_config=CompressedTensorsConfig(run_compressed=False)
        )
        assert _same(served, model.model)


def test_a_tokenizer_roundtrips_with_the_export(model, tmp_path):
    from transformers import AutoTokenizer

    report = pipeline.compress(model.model, "magnitude", parse("0.3"), DenseWeights(model.model))
    export(model, "tiny-random-llama", report, tmp_path)
    again = AutoTokenizer.from_pretrained(variant_dir(tmp_path, "tiny-random-llama", "magnitude", "0.3"))
    text = "Who wrote Hamlet? <s>"
    assert again(text)["input_ids"] == model.tokenizer(text)["input_ids"]


def test_export_replaces_an_earlier_export_of_the_variant(model, tmp_path):
    dense = DenseWeights(model.model)
    first = pipeline.compress(model.model, "magnitude", parse("0.5"), dense)
    export(model, "tiny-random-llama", first, tmp_path)
    directory = variant_dir(tmp_path, "tiny-random-llama", "magnitude", "0.5")
    (directory / "stale.txt").write_text("from an earlier run")
    export(model, "tiny-random-llama", first, tmp_path)
    assert not (directory / "stale.txt").exists()


def test_the_option_exports_every_variant_of_a_run(pytester):
    # perplexity has no chance floor, so dense is informative and every variant is built (dense first would
    # skip compressing variants of a task where the random model sits at chance)
    result = pytester.runpytest(
        "--kick-model",
        "tiny-random-llama",
        "--kick-limit",
        "2",
        "--kick-tasks",
        "perplexity",
        "-p",
        "no:cacheprovider",
        "--kick-compressor",
        "magnitude",
        "--kick-ratio",
        "0.5,2:4",
        "--kick-export",
        "exported",
    )
    assert len(result.parseoutcomes()) and result.ret in (0, 1), result.stdout.str()  # verdicts, not errors
    exported = sorted(p.name for p in (pytester.path / "exported").iterdir())
    assert exported == ["tiny-random-llama-magnitude-0.5", "tiny-random-llama-magnitude-2of4"]
    for name in exported:
        weights = pytester.path / "exported" / name / "model.safetensors"
        assert weights.is_file()
        umask = os.umask(0)
        os.umask(umask)
        assert weights.stat().st_mode & 0o777 == 0o666 & ~umask  # a server run as another user can read it


def test_weights_off_any_grid_are_written_dequantized_not_packed(model, tmp_path):
    """A layer whose values no 4-bit grid reproduces exactly is never packed approximately."""
    from pytest_kick.compress.base import CompressionReport, compressible_linears
    from pytest_kick.compress.pack import recover_grid

    weight = next(iter(compressible_linears(model.model).values())).weight
    assert recover_grid(weight, 4, 64) is None  # dense random floats
    export(model, "tiny-random-llama", CompressionReport("rtn", "w4g128", 0.0), tmp_path)
    directory = variant_dir(tmp_path, "tiny-random-llama", "rtn", "w4g128")
    assert "quantization_config" not in json.loads((directory / "config.json").read_text())
    assert "dequantized w4g128" in json.loads((directory / REPORT).read_text())["format"]
