"""Validation of the recovery options (--kick-recover and its settings), for config.build.

``--kick-recover none,prompt,idp,lora`` adds, for every compressed variant, one case per method; the
compressed case itself always runs (it is what recovery is measured against), so ``none`` alone is the
default and changes nothing. Messages name what the user wrote, as every config message does. No torch.
"""

from __future__ import annotations

from pytest_kick import extensions
from pytest_kick.config_values import whole_number
from pytest_kick.errors import KickError
from pytest_kick.recover.spec import methods as known_methods
from pytest_kick.recover.spec import parse_methods, parse_sizes


def recover_settings(values: dict, text: dict, flag, from_ini, path, engine) -> dict:
    """The KickConfig fields of the recovery options (``values``: as given, None when not; ``text``: with
    defaults filled in; ``engine``: the --kick-engine entry). Settings from the ini file without a method are
    defaults for runs that recover."""
    try:
        methods = tuple(m for m in parse_methods(text["recover"]) if m is not None)
    except KickError as err:
        raise KickError(f"{flag('recover')}: {str(err).removeprefix('--kick-recover: ')}") from None
    settings = ("recover-data", "recover-steps", "recover-lr", "recover-size", "recover-seqlen")
    if not methods:
        given = [name for name in settings if values.get(name) is not None and name not in from_ini]
        if given:
            names = known_methods()
            raise KickError(
                f"{flag(given[0])} sets up recovery: add {flag('recover')} {', '.join(names[:-1])} or {names[-1]}"
            )
        return {}
    import importlib.util

    if importlib.util.find_spec("peft") is None:
        raise KickError(f"{flag('recover')} needs peft: pip install 'pytest-kick[recover]'")
    if not engine.local_weights:
        local = [e.name for e in extensions.engines.entries().values() if e.local_weights]
        raise KickError(
            f"{flag('recover')} trains parameters on the model in this process; it needs "
            f"--kick-engine {' or '.join(local)}"
        )
    steps = whole_number(flag("recover-steps"), text["recover-steps"], 1)
    seqlen = whole_number(flag("recover-seqlen"), text["recover-seqlen"], 1)
    lr = None
    if text["recover-lr"] is not None:
        try:
            lr = float(text["recover-lr"])
        except ValueError:
            raise KickError(f"{flag('recover-lr')}: {text['recover-lr']!r} is not a number") from None
        if not lr > 0:
            raise KickError(f"{flag('recover-lr')}: must be more than 0 (got {text['recover-lr']})")
    sizes = {}
    if text["recover-size"] is not None:
        try:
            sizes = parse_sizes(text["recover-size"])
        except KickError as err:
            raise KickError(f"{flag('recover-size')}: {str(err).removeprefix('--kick-recover-size: ')}") from None
        for method, values in sizes.items():
            for name, value in values.items():
                if isinstance(value, int) and value < 1:
                    raise KickError(f"{flag('recover-size')}: {method}.{name} must be at least 1 (got {value})")
                if isinstance(value, str) and not value:
                    raise KickError(f"{flag('recover-size')}: {method}.{name} names nothing")
    data = path("recover-data")
    if data is not None and not data.is_dir():
        raise KickError(
            f'{flag("recover-data")}: {data} is not a directory; give one holding *.jsonl files with a "text" field'
        )
    return {
        "recover": methods,
        "recover_data": data,
        "recover_steps": steps,
        "recover_lr": lr,
        "recover_sizes": {m: dict(v) for m, v in sizes.items()},
        "recover_seqlen": seqlen,
    }
