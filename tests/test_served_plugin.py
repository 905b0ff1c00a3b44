"""The served engine in the plugin as a user meets it: the deployment loop against loopback servers
(tests/served_server.py), a dead server, and the served options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from served_server import Model, Server

SESSION = [
    "--kick-model",
    "tiny-random-llama",
    "--kick-limit",
    "4",
    "--kick-tasks",
    "icrqa:closed",
    "-p",
    "no:cacheprovider",
]


LOOP = [
    "--kick-model",
    "tiny-random-llama",
    "--kick-limit",
    "4",
    "--kick-tasks",
    "perplexity",
    "-p",
    "no:cacheprovider",
]


def _cases(path: Path) -> dict:
    return {(c["compressor"], c["ratio"]): c for c in json.loads(path.read_text())["cases"]}


def test_the_deployment_loop(pytester, tiny):
    """Compress and gate here, --kick-export, serve the export, gate the served model with the same baseline:
    the served variant gets the per-item results the in-process one got."""
    from transformers import AutoModelForCausalLM

    local = pytester.runpytest(
        *LOOP,
        "--kick-compressor",
        "magnitude",
        "--kick-ratio",
        "0.5",
        "--kick-export",
        "exported",
        "--kick-baseline-dir",
        "baselines",
        "--kick-report",
        "local.json",
    )
    assert local.ret in (0, 1), local.stdout.str()
    model, tokenizer = tiny
    exported = AutoModelForCausalLM.from_pretrained(pytester.path / "exported" / "tiny-random-llama-magnitude-0.5")
    with (
        Server(Model(model, tokenizer, "tiny-random-llama")) as dense,
        Server(Model(exported.eval(), tokenizer, "tiny-random-llama-magnitude-0.5")) as compressed,
    ):
        served = pytester.runpytest(
            *LOOP,
            "--kick-engine",
            "openai-completions",
            "--kick-base-url",
            dense.base_url,
            "--kick-compressed-url",
            compressed.base_url,
            "--kick-cache-dir",
            "served-cache",
            "--kick-report",
            "served.json",
            "-v",
        )
        assert "test_perplexity[tiny-random-llama-served]" in served.stdout.str()
        assert dense.requests and compressed.requests  # each model answered by its own server
        files = pytester.runpytest(
            *LOOP,
            "--kick-engine",
            "openai-completions",
            "--kick-compressed-url",
            compressed.base_url,
            "--kick-baseline-dir",
            "baselines",
            "--kick-report",
            "files.json",
            "-W",
            "always",
        )
    here, there, from_files = (_cases(pytester.path / name) for name in ("local.json", "served.json", "files.json"))
    variant = here[("magnitude", "0.5")]
    assert variant["compressed"] != pytest.approx(variant["dense"])  # a change the served run must reproduce
    for run in (there, from_files):
        assert run[("served", "as-given")]["verdict"] == variant["verdict"]
        for key in ("dense", "compressed", "n", "lost", "kept", "gained"):
            assert run[("served", "as-given")][key] == pytest.approx(variant[key]), key
    assert there[("dense", None)]["dense"] == pytest.approx(here[("dense", None)]["dense"])
    # the dense results came from the committed file, not from a dense server; the file says where it was made
    assert from_files[("served", "as-given")]["baseline"] == "file"
    assert "was made in another environment" in files.stdout.str()


def test_a_dead_server_ends_the_session_once_naming_its_url(pytester):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = pytester.runpytest(
        *SESSION,
        "--kick-engine",
        "openai-completions",
        "--kick-base-url",
        f"http://127.0.0.1:{port}",
        "--kick-timeout",
        "2",
    )
    # an unreachable server dooms every item: one session error, not a failure per item
    assert result.ret == pytest.ExitCode.INTERRUPTED
    out = result.stdout.str() + result.stderr.str()
    assert out.count(f"GET http://127.0.0.1:{port}/v1/models failed after 5 attempts: cannot connect") == 1, out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--kick-base-url", "http://h:8000"],
            "--kick-base-url points at a server: add --kick-engine openai-completions",
        ),
        (["--kick-engine", "openai-completions"], "--kick-engine openai-completions needs --kick-base-url URL"),
        (["--kick-engine", "vllm"], "--kick-engine: 'vllm' is not one of local, openai-completions"),
        (
            ["--kick-engine", "openai-completions", "--kick-base-url", "h:8000"],
            "--kick-base-url: 'h:8000' is not an http",
        ),
        (
            ["--kick-engine", "openai-completions", "--kick-base-url", "http://h", "--kick-compressor", "wanda"],
            "--kick-compressor compresses in this process; a served model is not",
        ),
        (
            ["--kick-engine", "openai-completions", "--kick-base-url", "http://h", "--kick-timeout", "0"],
            "--kick-timeout: must be more than 0 seconds",
        ),
    ],
)
def test_bad_served_options_are_usage_errors(pytester, args, message):
    result = pytester.runpytest("--kick-model", "tiny-random-llama", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_served_ids(pytester):
    result = pytester.runpytest(
        *SESSION,
        "--kick-engine",
        "openai-completions",
        "--kick-base-url",
        "http://h:1",
        "--kick-compressed-url",
        "http://h:2",
        "--collect-only",
        "-q",
    )
    assert "test_icrqa[closed-tiny-random-llama-dense]" in result.stdout.str()
    assert "test_icrqa[closed-tiny-random-llama-served]" in result.stdout.str()
