"""--kick-model ./dir: a directory is checked for what a model directory holds before anything loads."""

import hashlib
import os

import pytest

from pytest_kick.errors import KickError
from pytest_kick.models.directory import check_model_dir

PARTS = ("config.json", "model.safetensors", "tokenizer.json")


def make(directory, *parts):
    directory.mkdir(parents=True, exist_ok=True)
    for part in parts:
        (directory / part).write_text("{}")
    return directory


@pytest.mark.parametrize(
    "missing, said",
    [
        ("config.json", "no config.json"),
        ("model.safetensors", "no weights (*.safetensors or pytorch_model.bin)"),
        ("tokenizer.json", "no tokenizer files"),
    ],
)
def test_each_missing_part_is_named(tmp_path, missing, said):
    directory = make(tmp_path / "m", *(p for p in PARTS if p != missing))
    with pytest.raises(KickError) as raised:
        check_model_dir(directory)
    message = str(raised.value)
    assert message.startswith(f"{directory} is not a model directory: {said}")
    assert "a model directory holds what save_pretrained writes" in message and "\n" not in message


def test_complete_directories_pass(tmp_path):
    check_model_dir(make(tmp_path / "single", *PARTS))
    check_model_dir(
        make(
            tmp_path / "sharded",
            "config.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "tokenizer.model",
        )
    )
    check_model_dir(make(tmp_path / "bin", "config.json", "pytorch_model.bin", "vocab.json"))


def test_a_gguf_directory_says_how_to_convert_it(tmp_path):
    directory = make(tmp_path / "g", "model-q4.gguf")
    with pytest.raises(KickError, match="it holds model-q4.gguf: pytest-kick reads GGUF files only for its embedded"):
        check_model_dir(directory)


def test_session_with_a_model_directory_without_config_is_one_usage_error(pytester):
    directory = make(pytester.path / "my-model", "tokenizer.json", "tokenizer_config.json")
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}
    result = pytester.runpytest_subprocess(
        "--kick-model", "my-model", "--kick-tasks", "factoid_qa", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert err.count("is not a model directory: no config.json, no weights") == 1
    assert "Couldn't instantiate" not in err + result.stdout.str()
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()} == before
    assert not (pytester.path / ".kick").exists()  # refused before any cache was touched


@pytest.mark.parametrize(
    "spec",
    [
        "./does/not/exist",
        "does/not/exist",
        "/no/such/model",
        "~/no-such-kick-model",
        "models/",
        "../elsewhere",
        ".model",
    ],
)
def test_a_path_that_does_not_exist_says_so(tmp_path, monkeypatch, spec):
    from pytest_kick.models.registry import resolve

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    resolved = os.path.normpath((tmp_path / "home" / spec[2:]) if spec.startswith("~/") else (tmp_path / spec))
    with pytest.raises(KickError) as raised:
        resolve(spec)
    assert str(raised.value).startswith(f"no such model directory {spec} (resolved to {resolved})")
    assert "unknown model" not in str(raised.value)


def test_a_path_to_a_file_says_it_is_not_a_directory(tmp_path, monkeypatch):
    from pytest_kick.models.registry import resolve

    monkeypatch.chdir(tmp_path)
    make(tmp_path / "m", *PARTS)
    with pytest.raises(
        KickError,
        match=rf"^m/config.json is a file, not a model directory \(resolved to "
        rf"{tmp_path}/m/config.json\)",
    ):
        resolve("m/config.json")
    (tmp_path / "weights.bin").write_text("")
    with pytest.raises(KickError, match=r"^\./weights.bin is a file, not a model directory"):
        resolve("./weights.bin")


def test_hub_ids_and_names_are_not_paths(tmp_path, monkeypatch):
    from pytest_kick.models.registry import resolve

    monkeypatch.chdir(tmp_path)
    assert (resolve("org/name").kind, resolve("org/name").ref) == ("hub", "org/name")
    assert resolve("qwen2.5-coder-0.5b").kind == "gguf-package"
    with pytest.raises(KickError, match="unknown model 'no-such-model'"):
        resolve("no-such-model")
    make(tmp_path / "org" / "local", *PARTS)
    assert resolve("org/local").kind == "local"  # a directory that is there is a directory


def test_session_with_a_missing_model_path_is_one_usage_error(pytester):
    result = pytester.runpytest_subprocess(
        "--kick-model", "./does/not/exist", "--kick-tasks", "factoid_qa", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"--kick-model: no such model directory ./does/not/exist (resolved to {pytester.path}/does/not/exist)" in err
