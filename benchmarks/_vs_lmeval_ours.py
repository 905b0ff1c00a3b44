"""vs_lmeval.py, our side and the shared setup: the model as our loader converts it (lm-eval is pointed at
the same safetensors), our local engine, and the items, built by our task code, that both sides get."""

from __future__ import annotations

from pathlib import Path

SUBJECTS, PER_SUBJECT, TRIVIA_ITEMS = 10, 20, 100


def load_model(name: str, dtype: str = "float32", cache_dir: str | None = None):
    from pytest_kick.models import registry
    from pytest_kick.models.loading import load

    cache = Path(cache_dir) if cache_dir else Path(__file__).resolve().parents[1] / ".kick-test"
    cache.mkdir(exist_ok=True)
    return load(registry.resolve(name), cache, "cpu", dtype)


def make_engine(loaded, batch_size: int):
    """Our local engine on a loaded model."""
    try:
        from pytest_kick.engines.local import LocalEngine
    except ImportError:  # before the engine moved under engines/
        from pytest_kick.engine import Engine as LocalEngine
    return LocalEngine(loaded.model, loaded.tokenizer, loaded.device, batch_size)


# --- items, built by our task code ---------------------------------------------------------------


def mmlu_items(subjects_n: int = SUBJECTS, per_subject: int = PER_SUBJECT):
    from pytest_kick.tasks.base import Settings
    from pytest_kick.tasks.mmlu import MMLU

    settings = Settings()
    task = MMLU()
    dataset = task.load(settings)
    task.split(dataset, settings)
    subjects = sorted({i.subject for i in dataset.examples})[:subjects_n]
    items = [i for s in subjects for i in [x for x in dataset.examples if x.subject == s][:per_subject]]
    shots = {s: [d for d in dataset.dev if d.subject == s][: task.shots_for(settings)] for s in subjects}
    prompts = [task.prompt(i, shots[i.subject]) for i in items]
    if hasattr(task, "item_requests"):  # the task's own log-likelihood requests
        pairs = [[(r.context, r.continuation) for r in task.item_requests(p, "strict")] for p in prompts]
    else:
        pairs = [[(p, " " + letter) for letter in "ABCD"] for p in prompts]
    return task, settings, items, pairs


def mmlu_ours(task, settings, engine, items) -> list[str]:
    """Predicted letters through the task's own evaluation path (what a pytest-kick case runs)."""
    import inspect

    if "run" in inspect.signature(task.evaluate).parameters:  # the engine seam: tasks get a Runner
        from pytest_kick.engines.base import Runner

        shots, _ = task.split(task.load(settings), settings)  # the dev shots of the evaluated subjects
        return task.evaluate(items, shots, settings, Runner(engine))[1]
    return task.evaluate(engine, items, [], settings)[1]


def trivia_requests(limit: int):
    from pytest_kick.tasks.base import Settings
    from pytest_kick.tasks.icrqa import ICRQA

    settings = Settings(limit=limit)
    task = ICRQA("closed")
    shots, items = task.split(task.load(settings), settings)
    return items, task.requests(items, shots, settings)
