"""Option parsing and validation: every bad value is a KickError naming the option."""

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_kick.config import OPTIONS, build, parse_ratio, raw_values
from pytest_kick.config_tolerance import parse_tolerance, parse_tolerance_value
from pytest_kick.errors import KickError
from pytest_kick.gate import Tolerance


def values(**given):
    raw = {opt.name: None for opt in OPTIONS}
    raw.update({k.replace("_", "-"): v for k, v in given.items()})
    return raw


def test_no_model_means_plugin_off():
    assert build(values(), Path(".")) is None


def test_other_option_without_model_is_an_error():
    with pytest.raises(KickError, match="--kick-ratio needs --kick-model"):
        build(values(ratio="0.5"), Path("."))


def test_defaults(tmp_path):
    cfg = build(values(model="smollm2-135m"), tmp_path)
    assert cfg.models == ("smollm2-135m",)
    assert cfg.compressors == ("magnitude",)
    assert cfg.ratios == ("0.1", "0.3", "0.5")
    assert cfg.variants == (("magnitude", "0.1"), ("magnitude", "0.3"), ("magnitude", "0.5"))
    assert cfg.tasks == (
        "factoid_qa",
        "mmlu",
        "icrqa:closed",
        "icrqa:open",
        "summarization:small",
        "summarization:medium",
        "summarization:large",
        "instruction:vicuna",
        "instruction:mtbench",
        "perplexity",
    )
    assert cfg.limit is None
    assert cfg.tolerance.default == Tolerance(0.05, "relative")
    assert cfg.protocol == "strict"
    assert cfg.cache_dir == tmp_path / ".kick"
    assert cfg.batch_size == 16 and cfg.seed == 0 and cfg.shots == 0


def test_lists_are_split_and_deduplicated(tmp_path):
    cfg = build(values(model="tiny-random-llama", ratio=" 0.5, 0.3,0.5 ", compressor="magnitude,magnitude"), tmp_path)
    assert cfg.ratios == ("0.5", "0.3")
    assert cfg.compressors == ("magnitude",)


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("model", "no-such-model", "--kick-model: unknown model 'no-such-model'"),
        ("ratio", "1.5", "--kick-ratio: 1.5 is outside [0, 1)"),
        ("ratio", "abc", "--kick-ratio: 'abc' is not a compression ratio"),
        ("ratio", "4:2", "--kick-ratio: '4:2': an N:M pattern needs 0 < N < M"),
        ("ratio", "w5g128", "--kick-ratio: 'w5g128': weight bits must be one of 2, 3, 4, 8"),
        ("ratio", "w4g0", "the group size must be a positive number"),
        ("ratio", "w4a8", "the only weight+activation spec is w8a8"),
        ("ratio", "-0.1", "outside [0, 1)"),
        ("ratio", ",", "--kick-ratio: give at least one ratio"),
        ("tasks", "factoid_qa,nope", "--kick-tasks: unknown task 'nope'"),
        ("compressor", "wandaa", "--kick-compressor: unknown compressor 'wandaa'"),
        ("limit", "0", "--kick-limit: must be at least 1 (got 0)"),
        ("limit", "ten", "--kick-limit: 'ten' is not a whole number"),
        ("tolerance", "5", "--kick-tolerance: '5' is not a tolerance"),
        ("tolerance", "nope=5%", "--kick-tolerance: unknown task 'nope'"),
        ("tolerance", "150%", "must be in [0%, 100%)"),
        ("protocol", "loose", "--kick-protocol: 'loose' is not one of strict, kick"),
        ("device", "gpu", "--kick-device: 'gpu' is not a device"),
        ("dtype", "fp8", "--kick-dtype: 'fp8' is not one of"),
        ("batch-size", "0", "--kick-batch-size: must be at least 1"),
        ("shots", "-1", "--kick-shots: must be at least 0"),
        ("data-dir", "/no/such/dir", "--kick-data-dir: /no/such/dir is not a directory"),
    ],
)
def test_bad_values_name_the_option(option, value, message, tmp_path):
    raw = values(model="tiny-random-llama")
    raw[option] = value
    with pytest.raises(KickError) as err:
        build(raw, tmp_path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_model_aliases_hub_ids_and_directories(tmp_path):
    for part in ("config.json", "model.safetensors", "tokenizer.json"):  # what a model directory holds
        (tmp_path / part).write_text("{}")
    cfg = build(values(model="vicuna-7b,lmsys/vicuna-13b-v1.3," + str(tmp_path)), tmp_path)
    assert cfg.models == ("vicuna-7b", "lmsys/vicuna-13b-v1.3", str(tmp_path))


def test_tolerance_specs():
    spec = parse_tolerance("--kick-tolerance", "3pp, factoid_qa=10%", ["factoid_qa"])
    assert spec.default == Tolerance(0.03, "absolute")
    assert spec.for_task("factoid_qa") == Tolerance(0.10, "relative")
    assert spec.for_task("other") == Tolerance(0.03, "absolute")


@given(st.text(max_size=20))
def test_parsers_never_crash_on_any_text(text):
    """Whatever a user types, the answer is a value or a KickError, never another exception."""
    for parse in (lambda t: parse_ratio("--kick-ratio", t), lambda t: parse_tolerance_value("--kick-tolerance", t)):
        try:
            parse(text)
        except KickError:
            pass


@given(st.floats(min_value=0, max_value=0.999999, allow_nan=False))
def test_every_ratio_in_range_is_accepted(ratio):
    assert float(parse_ratio("--kick-ratio", repr(ratio))) == ratio


@pytest.mark.parametrize(
    "text, canonical, kind",
    [
        ("0.50", "0.5", "sparsity"),
        ("2:4", "2:4", "nm"),
        (" 4:8 ", "4:8", "nm"),
        ("W4G128", "w4g128", "quant"),
        ("w8", "w8", "quant"),
        ("w8a8", "w8a8", "quant"),
        ("as-given", "as-given", "checkpoint"),
    ],
)
def test_ratio_spellings(text, canonical, kind):
    from pytest_kick.compress.spec import parse

    assert parse_ratio("--kick-ratio", text) == canonical and parse(text).kind == kind


def test_each_compressor_runs_the_ratios_it_accepts(tmp_path):
    cfg = build(values(model="tiny-random-llama", compressor="wanda,gptq", ratio="0.5,2:4,w4g128"), tmp_path)
    assert cfg.variants == (("wanda", "0.5"), ("wanda", "2:4"), ("gptq", "w4g128"))
    cfg = build(values(model="tiny-random-llama", compressor="rtn,int8"), tmp_path)
    assert cfg.variants == (("rtn", "w8"), ("rtn", "w4g128"), ("int8", "w8a8"))
    with pytest.raises(KickError, match="none of 0.5 suits gptq"):
        build(values(model="tiny-random-llama", compressor="gptq", ratio="0.5"), tmp_path)
    with pytest.raises(KickError, match="w4g128 suits none of --kick-compressor wanda"):
        build(values(model="tiny-random-llama", compressor="wanda", ratio="0.5,w4g128"), tmp_path)
    with pytest.raises(KickError, match="checkpoint needs --kick-compressed"):
        build(values(model="tiny-random-llama", compressor="checkpoint"), tmp_path)


def test_tasks_take_families_and_variants(tmp_path):
    cfg = build(values(model="tiny-random-llama", tasks="icrqa:open,mmlu,summarization"), tmp_path)
    assert cfg.tasks == ("icrqa:open", "mmlu", "summarization:small", "summarization:medium", "summarization:large")
    with pytest.raises(KickError, match="unknown task 'icrqa:nope'"):
        build(values(model="tiny-random-llama", tasks="icrqa:nope"), tmp_path)
    spec = build(values(model="tiny-random-llama", tolerance="5%,icrqa=10%,icrqa:open=20%"), tmp_path).tolerance
    assert spec.for_task("icrqa:closed") == Tolerance(0.10, "relative")
    assert spec.for_task("icrqa:open") == Tolerance(0.20, "relative")
    assert spec.for_task("mmlu") == Tolerance(0.05, "relative")


@pytest.mark.parametrize(
    "option, value",
    [
        ("ratio", "0.5,,0.3"),
        ("ratio", "0.5,"),
        ("ratio", ",0.5"),
        ("compressor", "magnitude,,wanda"),
        ("tasks", "mmlu,,factoid_qa"),
        ("tolerance", "5%,,mmlu=10%"),
        ("model", "tiny-random-llama,"),
    ],
)
def test_an_empty_list_entry_is_an_error_not_dropped(option, value, tmp_path):
    raw = values(model="tiny-random-llama")
    raw[option] = value
    with pytest.raises(KickError, match=f"--kick-{option}: '{re.escape(value)}' has an empty entry"):
        build(raw, tmp_path)


def test_an_ini_value_is_named_by_its_key_and_file(tmp_path):
    ini = tmp_path / "pyproject.toml"
    raw = values(model="tiny-random-llama", ratio="2", limit="0")
    with pytest.raises(KickError) as err:
        build(raw, tmp_path, from_ini={"ratio"}, ini_file=ini)
    assert str(err.value).startswith(f"kick_ratio in {ini}: 2 is outside [0, 1)")
    raw["ratio"] = "0.5"
    with pytest.raises(KickError, match=r"^--kick-limit: must be at least 1"):  # limit was typed, not read
        build(raw, tmp_path, from_ini={"ratio"}, ini_file=ini)


def test_ini_keys_without_a_model_leave_the_plugin_off_but_flags_do_not(tmp_path):
    assert build(values(ratio="0.5", limit="3"), tmp_path, from_ini={"ratio", "limit"}) is None
    with pytest.raises(KickError, match="--kick-limit needs --kick-model"):
        build(values(ratio="0.5", limit="3"), tmp_path, from_ini={"ratio"})


def test_relative_ini_paths_are_relative_to_the_ini_file(tmp_path):
    ini = tmp_path / "project" / "tox.ini"
    cfg = build(
        values(model="tiny-random-llama", cache_dir="cache", report="r.json"),
        tmp_path / "elsewhere",
        from_ini={"cache-dir"},
        ini_file=ini,
    )
    assert cfg.cache_dir == tmp_path / "project" / "cache"
    assert cfg.report == tmp_path / "elsewhere" / "r.json"


def test_raw_values_command_line_over_ini_and_toml_lists():
    ini = {"kick_model": "smollm2-135m", "kick_ratio": ["0.3", 0.5], "kick_limit": "", "kick_seed": 7}
    cli = {"kick_model": "tiny-random-llama"}
    raw, from_ini = raw_values(cli.get, ini.get)
    assert raw["model"] == "tiny-random-llama" and raw["ratio"] == "0.3,0.5" and raw["seed"] == "7"
    assert raw["limit"] is None
    assert from_ini == {"ratio", "seed"}
