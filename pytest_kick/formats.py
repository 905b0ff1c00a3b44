"""Text a person reads, from plain data: the order of ratio columns, a search reading with the gate's
confidence. A leaf: the reporters (report.py, plot.py) and the search (search_run.py) share it without
importing each other."""

from __future__ import annotations

from pytest_kick.compress import spec
from pytest_kick.errors import KickError


def ratio_key(text) -> tuple:
    """Order of ratio columns: sparsities ascending, then N:M patterns, then quantization specs (more bits
    first), then anything else; a spelling that does not parse sorts last, as text."""
    try:
        parsed = spec.parse(str(text))
    except KickError:
        return (9, 0.0, str(text))
    order = {"sparsity": 0, "nm": 1, "quant": 2, "checkpoint": 3}[parsed.kind]
    value = parsed.sparsity if parsed.kind != "quant" else -(parsed.bits + (parsed.act_bits or 0) / 100)
    return (order, value or 0.0, parsed.text)


def confidence(info: dict | None) -> str:
    """The gate's confidence at a level, in a few characters: ``drop +3.0% CI -4.2..+10.1%, p=0.5``."""
    if not info:
        return ""
    text = f"drop {info['drop'] * 100:+.1f}%"
    if info.get("drop_low") is not None:
        text += f" CI {info['drop_low'] * 100:+.1f}..{info['drop_high'] * 100:+.1f}%"
    if info.get("p_value") is not None:
        text += f", p={info['p_value']:.2g}"
    return text


def reading_text(reading: dict) -> str:
    """One reading for a person: ``0.35 (0.4 fails; drop +2.0% CI -3.1..+7.0%, p=0.6)`` or ``none``."""
    if reading["level"] is None:
        return "none" + (f" ({reading['next_failing']} fails)" if reading.get("next_failing") else "")
    notes = [f"{reading['next_failing']} fails"] if reading.get("next_failing") else []
    if reading.get("resolved") and not reading.get("next_failing"):
        notes.append("the search's limit")
    if not reading.get("resolved"):
        notes.append("unresolved")
    if reading.get("evidence"):
        notes.append(confidence(reading["evidence"]))
    return f"{reading['level']}" + (f" ({'; '.join(notes)})" if notes else "")


def bound_text(status: str, low: float, high: float, alpha: float) -> str:
    """The sequential gate's bound at the stop, the side that decided: ``drop >= 21.3% (error <= 5%)``; both
    sides for an undecided case."""
    error = f"error <= {alpha * 100:g}%"
    if status == "not matching":
        return f"drop >= {low * 100:.1f}% ({error})"
    if status == "matching":
        return f"drop <= {high * 100:.1f}% ({error})"
    return f"drop in [{low * 100:.1f}%, {high * 100:.1f}%] ({error} each way)"
