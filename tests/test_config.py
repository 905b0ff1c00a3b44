"""Option parsing and validation: every bad value is a KickError naming the option."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_kick.config import OPTIONS, build, parse_ratio, parse_tolerance, parse_tolerance_value
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
    assert cfg.ratios == (0.1, 0.3, 0.5)
    assert cfg.tasks == ("factoid_qa",)
    assert cfg.limit is None
    assert cfg.tolerance.default == Tolerance(0.05, "relative")
    assert cfg.protocol == "strict"
    assert cfg.cache_dir == tmp_path / ".kick"
    assert cfg.batch_size == 16 and cfg.seed == 0 and cfg.shots == 0


def test_lists_are_split_and_deduplicated(tmp_path):
    cfg = build(values(model="tiny-random-llama", ratio=" 0.5, 0.3,0.5 ", compressor="magnitude,magnitude"), tmp_path)
    assert cfg.ratios == (0.5, 0.3)
    assert cfg.compressors == ("magnitude",)


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("model", "no-such-model", "--kick-model: unknown model 'no-such-model'"),
        ("ratio", "1.5", "--kick-ratio: 1.5 is outside [0, 1)"),
        ("ratio", "abc", "--kick-ratio: 'abc' is not a number"),
        ("ratio", "-0.1", "outside [0, 1)"),
        ("ratio", ",", "--kick-ratio: give at least one sparsity"),
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
    assert parse_ratio("--kick-ratio", repr(ratio)) == ratio
