"""A cache shared by several users (or mounted read-only for them): every file pytest-kick writes into it gets
the mode an ordinary file gets under the umask (0644 / 0755 under umask 022), so another user can read it;
and a file another user may not read is reported as such ("cannot read PATH (permission denied)"), never as
damaged or missing with advice to delete it.

Conversions are real: a tiny GGUF (tiny-random-llama's weights and byte tokenizer, written with the ``gguf``
package) goes through transformers' GGUF loader. The second user is real where the tests run as root
(``setpriv`` to uid 65534); elsewhere an unreadable file is a ``chmod 000`` away.
"""

import os
import stat
import tempfile
from pathlib import Path

import pytest

from pytest_kick import files
from pytest_kick.files import atomic_write, ordinary_mode
from pytest_kick.models import loading
from pytest_kick.models.registry import EMBEDDED

SOURCE = EMBEDDED["smollm2-135m"]  # any embedded GGUF model: gguf_path is pointed at the tiny file


@pytest.fixture
def umask():
    """Set the umask for one test, and put the old one back."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def modes(root: Path) -> dict:
    """{relative path: octal mode} of everything under root."""
    return {str(p.relative_to(root)): oct(stat.S_IMODE(p.lstat().st_mode)) for p in sorted(root.rglob("*"))}


def write_tiny_gguf(path: Path) -> Path:
    """tiny-random-llama as a GGUF file (F32 tensors, llama.cpp's names and q/k row order, a GPT-2 style
    tokenizer of its byte vocabulary)."""
    gguf = pytest.importorskip("gguf", reason="the gguf package is needed to write a GGUF file")
    import numpy

    from pytest_kick.models.tiny import tiny_random_llama

    model, tokenizer, _ = tiny_random_llama(seed=0)
    config = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    tokens = [token for token, _ in sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])]
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if token in ("<pad>", "<s>", "</s>") else 1 for token in tokens])
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_token_merges([])
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    names = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    for layer in range(config.num_hidden_layers):
        for ours, theirs in (
            ("input_layernorm", "attn_norm"),
            ("post_attention_layernorm", "ffn_norm"),
            ("self_attn.q_proj", "attn_q"),
            ("self_attn.k_proj", "attn_k"),
            ("self_attn.v_proj", "attn_v"),
            ("self_attn.o_proj", "attn_output"),
            ("mlp.gate_proj", "ffn_gate"),
            ("mlp.up_proj", "ffn_up"),
            ("mlp.down_proj", "ffn_down"),
        ):
            names[f"model.layers.{layer}.{ours}.weight"] = f"blk.{layer}.{theirs}.weight"
    for name, tensor in model.state_dict().items():
        values = tensor.float().numpy()
        heads = {"attn_q": config.num_attention_heads, "attn_k": config.num_key_value_heads}.get(
            names[name].split(".")[-2]
        )
        if heads:  # llama.cpp interleaves the rotary halves of each head; transformers' loader undoes it
            values = values.reshape(heads, 2, values.shape[0] // heads // 2, -1).swapaxes(1, 2).reshape(values.shape)
        writer.add_tensor(names[name], numpy.ascontiguousarray(values))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def convert(gguf: Path, cache: Path, monkeypatch):
    monkeypatch.setattr(loading, "gguf_path", lambda source, cache_dir: gguf)
    return loading._load_gguf_package(SOURCE, cache, lambda message: None)


@pytest.mark.parametrize(
    "mask, file_mode, dir_mode", [(0o022, "0o644", "0o755"), (0o002, "0o664", "0o775"), (0o077, "0o600", "0o700")]
)
def test_a_converted_gguf_follows_the_umask(tmp_path, monkeypatch, umask, mask, file_mode, dir_mode):
    import torch

    from pytest_kick.models.tiny import tiny_random_llama

    gguf = write_tiny_gguf(tmp_path / "tiny.gguf")
    umask(mask)
    model, tokenizer, _, notes = convert(gguf, tmp_path / "cache", monkeypatch)
    assert notes[0].startswith("converted tiny.gguf")
    found = modes(tmp_path / "cache")
    [converted] = [name for name in found if name.endswith(f"-{loading.CONVERSION}")]
    assert {"model.safetensors", "config.json", "tokenizer.json", loading.COMPLETE} <= {
        Path(name).name for name in found if name.startswith(converted + "/")
    }
    assert {
        name: mode
        for name, mode in found.items()
        if mode != (dir_mode if (tmp_path / "cache" / name).is_dir() else file_mode)
    } == {}
    reference, reference_tokenizer, _ = tiny_random_llama(seed=0)
    assert all(torch.equal(value, reference.state_dict()[name]) for name, value in model.state_dict().items())
    assert tokenizer("hello").input_ids == reference_tokenizer("hello").input_ids


def test_atomic_write_gives_ordinary_modes_even_over_a_narrow_temporary(tmp_path, umask):
    target = tmp_path / "a" / "b" / "result.json"
    atomic_write(target, "{}")
    assert modes(tmp_path) == {"a": "0o755", "a/b": "0o755", "a/b/result.json": "0o644"}
    stale = target.with_name(f"result.json.tmp-{os.getpid()}")  # a killed run of the same pid (containers)
    stale.write_text("half")
    stale.chmod(0o600)
    atomic_write(target, "{}")
    assert modes(tmp_path)["a/b/result.json"] == "0o644" and not stale.exists()
    umask(0o002)
    atomic_write(tmp_path / "shared.json", "{}")
    assert modes(tmp_path)["shared.json"] == "0o664"


def test_ordinary_mode_widens_what_tempfile_makes_narrow(tmp_path, umask):
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    handle, name = tempfile.mkstemp(dir=folder)
    os.close(handle)
    assert modes(tmp_path) == {folder.name: "0o700", f"{folder.name}/{Path(name).name}": "0o600"}
    ordinary_mode(folder)
    assert modes(tmp_path) == {folder.name: "0o755", f"{folder.name}/{Path(name).name}": "0o644"}
    umask(0o027)
    ordinary_mode(folder)
    assert modes(tmp_path) == {folder.name: "0o750", f"{folder.name}/{Path(name).name}": "0o640"}


def test_the_umask_is_read_without_changing_it(umask):
    umask(0o027)
    assert files.current_umask() == 0o027
    assert os.umask(0o027) == 0o027


def test_judge_replies_and_recovery_parameters_are_ordinary_files(tmp_path, umask):
    import torch

    from pytest_kick.judge.cache import Reply, ReplyCache
    from pytest_kick.recover import cache as recovery

    ReplyCache(tmp_path / "cache").put("ab" + "0" * 62, Reply("8 7"))
    entry = recovery.entry_dir(tmp_path / "cache", "lora", {"k": 1})
    recovery.save(entry, {"k": 1}, {"a": torch.zeros(2)}, {"seconds": 1})
    assert set(modes(tmp_path / "cache").values()) == {"0o755", "0o644"}
    assert recovery.load(entry, {"k": 1})[1]["seconds"] == 1


def test_joined_split_gguf_is_an_ordinary_file_even_over_a_narrow_temporary(tmp_path, monkeypatch, umask):
    import hashlib
    import importlib

    from pytest_kick.models.parts import Part, SplitGGUF, assemble

    site, parts, chunks = tmp_path / "site", [], [b"GGUF" + bytes(60), bytes(range(64))]
    for number, chunk in enumerate(chunks, 1):
        (site / f"kickmode_part{number}").mkdir(parents=True)
        (site / f"kickmode_part{number}" / "__init__.py").write_text("")
        (site / f"kickmode_part{number}" / "part.bin").write_bytes(chunk)
        parts.append(Part(f"kickmode_part{number}", "part.bin", len(chunk), hashlib.sha256(chunk).hexdigest()))
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    joined = b"".join(chunks)
    target = tmp_path / "cache" / "gguf" / "model.gguf"
    target.parent.mkdir(parents=True)
    stale = target.with_name(f"model.gguf.tmp-{os.getpid()}")
    stale.write_bytes(b"half")
    stale.chmod(0o600)
    assemble(SplitGGUF(tuple(parts), "1.0", len(joined), hashlib.sha256(joined).hexdigest()), target, "fake")
    assert target.read_bytes() == joined and modes(tmp_path / "cache") == {
        "gguf": "0o755",
        "gguf/model.gguf": "0o644",
        "gguf/model.gguf.lock": "0o644",
    }
