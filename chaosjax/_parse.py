"""Parsing of the command line's compact values: ranges, name lists, sweeps."""

from __future__ import annotations

import re

SWEEP_AXES = ("noise", "n", "depth", "width", "lr", "dropout", "label-noise", "optimizer")
_INT_AXES = ("noise", "n", "depth", "width")
_FLOAT_AXES = ("lr", "dropout", "label-noise")


def parse_int_range(text: str, flag: str) -> tuple[int, ...]:
    """'0-4' -> (0, 1, 2, 3, 4); '3,5,9' -> (3, 5, 9); '2' -> (2,); mixes like '0-2,7' too."""
    values: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise ValueError(f"{flag}: empty range {part!r}")
            values.extend(range(lo, hi + 1))
        elif re.fullmatch(r"\d+", part):
            values.append(int(part))
        else:
            raise ValueError(f"{flag}: expected integers like '0-4' or '3,5,9', got {text!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"{flag}: repeated values in {text!r}")
    return tuple(values)


def parse_formulas(text: str) -> tuple[int | str, ...]:
    """Formula indices ('0-14', '3,5,9') or a single formula text ('0.5*sin(a) + b**2')."""
    if re.fullmatch(r"[\d,\s-]+", text):
        return parse_int_range(text, "--formulas")
    return (text,)


def parse_names(text: str, flag: str) -> tuple[str, ...] | None:
    """'all' -> None (every name); 'a,b' -> ('a', 'b')."""
    if text.strip() == "all":
        return None
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    if not names:
        raise ValueError(f"{flag}: no names given")
    return names


def parse_sweep(text: str | None) -> tuple[str, tuple] | None:
    """'lr=1e-4,1e-3' -> ('lr', (1e-4, 1e-3)); values typed per axis."""
    if text is None:
        return None
    if "=" not in text:
        raise ValueError(f"--sweep: expected AXIS=v1,v2,..., got {text!r}")
    axis, _, raw = text.partition("=")
    axis = axis.strip().replace("_", "-")
    if axis not in SWEEP_AXES:
        raise ValueError(f"--sweep: unknown axis {axis!r}; expected one of {', '.join(SWEEP_AXES)}")
    items = [v.strip() for v in raw.split(",") if v.strip()]
    if not items:
        raise ValueError(f"--sweep: no values for {axis}")
    try:
        if axis in _INT_AXES:
            values: tuple = tuple(int(v) for v in items)
        elif axis in _FLOAT_AXES:
            values = tuple(float(v) for v in items)
        else:
            values = tuple(items)
    except ValueError:
        raise ValueError(f"--sweep: values of {axis} must be numbers, got {raw!r}") from None
    return axis, values
