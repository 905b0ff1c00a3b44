"""The one registry of extension points (pytest_kick/extensions.py): its kinds, protocols and entry-point groups,
the bundled entries, entries from installed packages (an in-house pruner end to end), and no branch on a
compressor, engine or task-family name outside its own module."""

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_kick import compress, extensions
from pytest_kick.config import OPTIONS, build
from pytest_kick.errors import KickError

ROOT = Path(__file__).resolve().parent.parent

# An in-house pruner as a team would ship it: the entry (no torch) and its solver (torch, imported when it runs).
PRUNER_ENTRY = """
from pytest_kick.compress import Compressor

ENTRY = Compressor("myprune", ("sparsity",), ("0.5",), "in-house: |W| x its input column's norm",
                   calibrated=False, solver="myprune_pkg.solver:ColumnNormPruner")
"""
PRUNER_SOLVER = """
from pytest_kick.compress.masks import prune_by_score


class ColumnNormPruner:
    def __init__(self, linear):
        self.linear = linear

    def apply(self, spec):
        weight = self.linear.weight.data
        prune_by_score(weight, weight.abs() * weight.float().norm(dim=0, keepdim=True), spec, per_row=False)
        return {}
"""


def install(site: Path, name: str, group: str, line: str, files: dict) -> Path:
    """An installed package, simulated: its modules and a *.dist-info with entry_points.txt under ``site``."""
    package = site / name
    package.mkdir(parents=True)
    for file, text in files.items():
        (package / file).write_text(textwrap.dedent(text))
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{line}\n")
    return site


@pytest.fixture(autouse=True)
def bundled_only():
    extensions.reset()
    yield
    extensions.reset()


def values(**given):
    raw = {opt.name: None for opt in OPTIONS}
    raw.update({k.replace("_", "-"): v for k, v in given.items()})
    return raw


def test_every_kind_has_a_protocol_and_an_entry_point_group():
    assert extensions.GROUPS == {
        "tasks": "pytest_kick.tasks",
        "compressors": "pytest_kick.compressors",
        "engines": "pytest_kick.engines",
        "judges": "pytest_kick.judges",
        "recovery": "pytest_kick.recovery",
    }
    for kind in extensions.KINDS.values():
        assert kind.protocol.__doc__ and getattr(kind.protocol, "_is_protocol", False), kind.name
    assert "mmlu" in extensions.tasks and extensions.tasks.get("mmlu").family == "mmlu"


def test_listing_every_kind_never_imports_torch():
    code = (
        "import sys; from pytest_kick import extensions, options; "
        "names = [k.names() for k in extensions.KINDS.values()]; "
        "assert 'myprune' not in names[1] and 'checkpoint' in names[1] and 'lora' in names[4], names; "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_every_bundled_entry_names_objects_that_exist():
    for c in extensions.compressors.entries().values():
        assert callable(extensions.resolve(c.solver)) and c.scope in compress.SCOPES, c.name
    for e in extensions.engines.entries().values():
        for ref in (e.build, e.loader, e.settings):
            assert ref is None or callable(extensions.resolve(ref)), e.name
    for j in extensions.judges.entries().values():
        assert j.backend is None or callable(extensions.resolve(j.backend)), j.name
    for m in extensions.recovery.entries().values():
        assert hasattr(extensions.resolve(m.method), "attach"), m.name
    assert [c.name for c in extensions.compressors.entries().values() if c.searchable and c.quantizer] == [
        "gptq",
        "rtn",
        "awq",
    ]


def test_bad_entries_are_named_by_where_they_came_from():
    with pytest.raises(KickError, match="^here: .* is not one of compressors: it lacks kinds"):
        extensions.compressors.add(type("E", (), {"name": "x"})(), "here")
    with pytest.raises(KickError, match="compressor 'magnitude' is already registered by pytest-kick"):
        extensions.compressors.add(compress.info("magnitude"), "there")
    with pytest.raises(KickError, match=r"^engine x: cannot load 'no_such_module:build'"):
        extensions.resolve("no_such_module:build", "engine x")
    with pytest.raises(KickError, match="unknown compressor 'nope'; known: magnitude"):
        extensions.compressors.get("nope")


def test_an_entry_point_that_fails_is_named(tmp_path, monkeypatch):
    site = install(
        tmp_path / "site",
        "broken_pkg",
        "pytest_kick.engines",
        "broken = broken_pkg:ENTRY",
        {"__init__.py": "raise RuntimeError('half installed')\n"},
    )
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(
        KickError,
        match=r"^entry point broken = broken_pkg:ENTRY \(group pytest_kick.engines\): "
        r"cannot be loaded: RuntimeError: half installed",
    ):
        extensions.load_installed()


def test_a_registered_engine_is_chosen_by_name_and_builds_the_engine(tmp_path, monkeypatch):
    (tmp_path / "my_engine.py").write_text(
        textwrap.dedent("""
        from pytest_kick.engines.factory import EngineEntry, local_engine

        BUILT = []

        def build(loaded, config, compressed):
            BUILT.append(compressed)
            return local_engine(loaded, config, compressed)

        ENTRY = EngineEntry("mine", "the local engine, counted", True, "my_engine:build")
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_engine

    from pytest_kick.runtime import KickCase, Runtime

    extensions.engines.add(my_engine.ENTRY, "test")
    config = build(values(model="tiny-random-llama", engine="mine", tasks="factoid_qa", limit="3"), tmp_path)
    assert config.variants == (("magnitude", "0.1"), ("magnitude", "0.3"), ("magnitude", "0.5"))
    runtime = Runtime(config)
    runtime.evaluate(KickCase("factoid_qa", "tiny-random-llama", "magnitude", "0.5"))
    runtime.evaluate(KickCase("factoid_qa", "tiny-random-llama"))
    assert my_engine.BUILT == [True]  # local weights: one engine per model, whatever variant it is in
    with pytest.raises(
        KickError, match="--kick-engine: 'theirs' is not one of local, openai-completions, lmeval, mine"
    ):
        build(values(model="tiny-random-llama", engine="theirs"), tmp_path)


def test_a_registered_judge_and_recovery_method_are_spelled_by_the_registry():
    from pytest_kick.judge import JudgeEntry, parse_spec
    from pytest_kick.recover.spec import Method, RecoverySpec, parse_methods

    extensions.judges.add(
        JudgeEntry("house", "our judge", "house:<model>", "pytest_kick.judge.session:openai_judge"), "test"
    )
    assert parse_spec("house:v2").model == "v2"
    with pytest.raises(KickError, match="expected rouge, .* local:<model> .* or house:<model>"):
        parse_spec("house")
    extensions.recovery.add(
        Method("bias", "bias terms only", "pytest_kick.recover.lora:LoRA", {"layers": 2}, 1e-3), "test"
    )
    assert parse_methods("bias,lora") == ["bias", "lora"] and RecoverySpec("bias").size == {"layers": 2}


def test_a_registered_recovery_method_is_built_from_its_entry(tiny):
    """Training, its size and its prefix rule come from the entry, as for the bundled methods (no name branch)."""
    from pytest_kick.recover.lora import LoRA
    from pytest_kick.recover.recovery import method_for, parameter_count
    from pytest_kick.recover.spec import Method, RecoverySpec

    model, _ = tiny
    extensions.recovery.add(
        Method(
            "wide",
            "LoRA of rank 16",
            "pytest_kick.recover.lora:LoRA",
            {"rank": 16, "alpha": 32, "targets": "q_proj,v_proj"},
            1e-3,
        ),
        "test",
    )
    try:
        assert isinstance(method_for(RecoverySpec("wide")), LoRA)
        assert parameter_count(model, RecoverySpec("wide")) == 2 * parameter_count(model, RecoverySpec("lora"))
        hidden = model.get_input_embeddings().embedding_dim
        assert parameter_count(model, RecoverySpec("idp")) == 4 * 5 * hidden  # 4 prompts of 5 tokens
        assert parameter_count(model, RecoverySpec("prompt")) == 20 * hidden
    finally:
        extensions.recovery.reset()


def test_no_branch_on_an_extension_name_outside_its_own_module():
    """Compressor, engine, judge and recovery names and judged task families are compared only in their own
    modules (checkpoint formats, the judge's prompts per family) — the registry entry says everything else."""
    names = (
        "magnitude|wanda|sparsegpt|gptq|rtn|awq|int8|checkpoint|openai-completions|summarization|instruction|"
        "rouge|prompt|idp|lora"
    )
    pattern = re.compile(rf'[!=]= *"({names}|local)"|in \([^)]*"({names})"|"({names})" (not )?in ')
    own = {"compress/checkpoint.py", "compress/checkpoint_packed.py"}  # checkpoint formats, not compressor names
    found = [
        f"{path.relative_to(ROOT / 'pytest_kick')}:{k}: {line.strip()}"
        for path in sorted((ROOT / "pytest_kick").rglob("*.py"))
        if not path.parts[-2] == "tasks" and str(path.relative_to(ROOT / "pytest_kick")) not in own
        for k, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []


def test_an_installed_in_house_pruner_gates_a_model(pytester, echo_data):
    """A team's pruner from its own package (entry point group pytest_kick.compressors), end to end."""
    site = install(
        pytester.path / "site",
        "myprune_pkg",
        "pytest_kick.compressors",
        "myprune = myprune_pkg:ENTRY",
        {"__init__.py": PRUNER_ENTRY, "solver.py": PRUNER_SOLVER},
    )
    pytester.syspathinsert(site)
    result = pytester.runpytest(
        "--kick-model",
        "tiny-random-llama",
        "--kick-compressor",
        "myprune",
        "--kick-ratio",
        "0.5",
        "--kick-tasks",
        "factoid_qa",
        *echo_data,
        "--kick-report",
        "r.json",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=2)
    assert "myprune@0.5 on tiny-random-llama: achieved sparsity 0.5000" in result.stdout.str()  # the summary
    assert re.search(
        r"myprune@0\.5: achieved sparsity 0\.5000 over \d+ matrices \(per matrix 0\.5000\.\.0\.5000\)",
        result.stderr.str(),
    )  # the line when it was built
    verdicts = {c["compressor"]: c["verdict"] for c in json.loads((pytester.path / "r.json").read_text())["cases"]}
    assert verdicts == {"dense": "sane", "myprune": "matching"}
    assert "myprune" not in extensions.compressors.registered()  # a session's entries end with it
    assert "Registered here: myprune." in " ".join(pytester.runpytest("--help").stdout.str().split())
