"""Config fields declared once: a field's default, its help and its check, from which come its command-line flag,
its sweep TOML key (the field's name) and its part of the config's validation.

    @dataclasses.dataclass(frozen=True)
    class Config:
        epochs: int = option(16, "training epochs", check=integer(1))

    Config().validate()          # calls check_fields(self): "epochs: expected an integer >= 1, got 0"
    add_flags(parser, Config, ["epochs"])            # --epochs EPOCHS (type int, default 16, its help)
    Config(**from_args(args, Config, ["epochs"]))     # the parsed values

A check is a function ``check(value, name)`` that raises ValueError (or TypeError) naming the field; `integer`,
`number`, `one_of` and `seed_list` are the common ones. A flag's text is parsed by the field's `parse` (a range of
seeds, a list of names), else by the type its annotation names; a ``bool`` field is a switch.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["Option", "add_flags", "check_fields", "from_args", "integer", "number", "one_of", "option", "seed_list"]

_KEY = "chaosjax"


@dataclasses.dataclass(frozen=True)
class Option:
    """What a field declares beyond its default: see `option`."""

    help: str
    check: Callable[[Any, str], Any] | None = None
    flags: tuple[str, ...] = ()
    parse: Callable[[str, str], Any] | None = None
    text: str | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None


def option(default: Any = dataclasses.MISSING, help: str = "", *, check: Callable[[Any, str], Any] | None = None,
           flags: Sequence[str] = (), parse: Callable[[str, str], Any] | None = None, text: str | None = None,
           choices: Sequence[str] | None = None, metavar: str | None = None) -> Any:
    """A dataclass field with its declaration.

    Args:
      default: the field's default.
      help: one line for ``--help`` and the docs.
      check: ``check(value, name)``: raises ValueError/TypeError naming the field (`check_fields` calls it).
      flags: its command-line option strings (default: ``--field-name``; more than one: the first is the name,
        the others short forms, e.g. ``("--learning-rate", "--lr")``).
      parse: ``parse(text, flag) -> value`` for a flag whose text is not the value itself (ranges, lists).
      text: the flag's default as text, for a field with `parse` (``"0-14"``); default: the default shown as is.
      choices: the flag's choices (argparse checks them).
      metavar: the flag's value in ``--help`` (default: the field's name in capitals).
    """
    declared = Option(help, check, tuple(flags), parse, text, None if choices is None else tuple(choices), metavar)
    return dataclasses.field(default=default, metadata={_KEY: declared})


def declared(config_type: type) -> dict[str, tuple[dataclasses.Field, Option]]:
    """Every declared field of `config_type` -> (the dataclass field, its `Option`)."""
    return {f.name: (f, f.metadata[_KEY]) for f in dataclasses.fields(config_type) if _KEY in f.metadata}


def check_fields(config: Any) -> None:
    """Runs every declared field's check on its value (in field order); the first failure raises."""
    for name, (_, declaration) in declared(type(config)).items():
        if declaration.check is not None:
            declaration.check(getattr(config, name), name)


# ----------------------------------------------------------------------------------------------------- checks


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def integer(low: int = 1, high: int | None = None, *, optional: bool = False) -> Callable[[Any, str], None]:
    """An integer ``>= low`` (``< high`` when given); `optional`: None allowed."""
    def check(value: Any, name: str) -> None:
        if optional and value is None:
            return
        if not _is_int(value) or value < low or (high is not None and value >= high):
            bound = f">= {low}" if high is None else f"in [{low}, {high})"
            raise ValueError(f"{name}: expected an integer {bound}{' or None' if optional else ''}, got {value!r}")

    return check


def number(*, positive: bool = False, low: float | None = None, high: float | None = None, optional: bool = False
           ) -> Callable[[Any, str], None]:
    """A finite number: ``> 0`` with `positive`, within ``[low, high]`` where given; `optional`: None allowed."""
    from chaosjax.checks import check_finite_number

    def check(value: Any, name: str) -> None:
        if optional and value is None:
            return
        value = check_finite_number(value, name, positive=positive, low=low)
        if high is not None and value > high:
            raise ValueError(f"{name}: expected a number in [{low}, {high}], got {value!r}")

    return check


def one_of(*choices: Any, optional: bool = False) -> Callable[[Any, str], None]:
    """One of `choices`; `optional`: None allowed."""
    def check(value: Any, name: str) -> None:
        if (optional and value is None) or value in choices:
            return
        raise ValueError(f"{name}: unknown {value!r}; expected one of {', '.join(map(str, choices))}")

    return check


def seed_list(value: Any, name: str) -> None:
    """Seeds: distinct integers that fit a PRNG key (`chaosjax.checks.check_seeds`)."""
    from chaosjax.checks import check_seeds

    check_seeds(value)


# ------------------------------------------------------------------------------------------------ the flags


def _flags(name: str, declaration: Option) -> tuple[str, ...]:
    return declaration.flags or (f"--{name.replace('_', '-')}",)


def _scalar_type(hint: Any) -> Any:
    """int, float or str for an annotation such as ``int | None``; None for anything else."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        kinds = [h for h in typing.get_args(hint) if h is not type(None)]
        return _scalar_type(kinds[0]) if len(kinds) == 1 else None
    return hint if hint in (int, float, str, bool) else None


def add_flags(parser, config_type: type, names: Sequence[str]) -> None:
    """Adds the flags of the declared fields `names` to an argparse parser: option strings, type, default, help
    and choices, all from the declaration (a field with `parse` takes text, parsed by `from_args`)."""
    fields, hints = declared(config_type), typing.get_type_hints(config_type)
    for name in names:
        field, declaration = fields[name]
        default = field.default if field.default is not dataclasses.MISSING else None
        kind = _scalar_type(hints[name])
        if kind is bool and declaration.parse is None:
            parser.add_argument(*_flags(name, declaration), dest=name, action="store_true", help=declaration.help)
            continue
        common = dict(dest=name, help=declaration.help, choices=declaration.choices,
                      metavar=declaration.metavar or name.upper())
        if declaration.parse is not None or kind is None:
            shown = declaration.text if declaration.text is not None else (
                ",".join(map(str, default)) if isinstance(default, tuple) else default)
            parser.add_argument(*_flags(name, declaration), default=shown, **common)
            continue
        parser.add_argument(*_flags(name, declaration), type=kind, default=default, **common)


def from_args(args: Any, config_type: type, names: Sequence[str]) -> dict[str, Any]:
    """The values of the declared fields `names` from parsed arguments (`add_flags`'s), as config keywords."""
    fields = declared(config_type)
    out = {}
    for name in names:
        _, declaration = fields[name]
        value = getattr(args, name)
        out[name] = declaration.parse(value, _flags(name, declaration)[0]) if declaration.parse else value
    return out
