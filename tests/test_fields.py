"""Config fields declared once (`chaosjax._fields`): the checks, the flags made from a declaration, and every
track's command line agreeing with its config's defaults."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from chaosjax import cli, tracks
from chaosjax._fields import add_flags, check_fields, from_args, integer, number, one_of, option


@dataclasses.dataclass(frozen=True)
class Toy:
    steps: int = option(10, "training steps", check=integer(1))
    rate: float = option(0.5, "a rate", check=number(low=0.0, high=1.0), flags=("--rate", "-r"), metavar="R")
    kind: str | None = option(None, "a kind", check=one_of("a", "b", optional=True))
    names: tuple[str, ...] = option(("x", "y"), "names", parse=lambda text, flag: tuple(text.split(",")))
    loud: bool = option(False, "a switch")
    plain: int = 3  # not declared: no check, no flag


@pytest.mark.parametrize("changes, message", [
    ({"steps": 0}, "steps: expected an integer >= 1, got 0"),
    ({"steps": True}, "steps: expected an integer >= 1, got True"),
    ({"rate": 2.0}, r"rate: expected a number in \[0.0, 1.0\], got 2.0"),
    ({"rate": float("nan")}, "rate"),
    ({"kind": "c"}, "kind: unknown 'c'; expected one of a, b"),
])
def test_a_declared_check_names_its_field(changes, message):
    check_fields(Toy())
    check_fields(Toy(kind="a"))
    with pytest.raises(ValueError, match=message):
        check_fields(Toy(**changes))


def test_flags_come_from_the_declaration():
    parser = argparse.ArgumentParser()
    add_flags(parser, Toy, ["steps", "rate", "kind", "names", "loud"])
    actions = {a.dest: a for a in parser._actions}
    assert actions["rate"].option_strings == ["--rate", "-r"] and actions["rate"].metavar == "R"
    assert actions["steps"].type is int and actions["steps"].default == 10 and actions["steps"].help == "training steps"
    assert actions["names"].default == "x,y" and actions["loud"].nargs == 0
    assert "plain" not in actions
    assert Toy(**from_args(parser.parse_args([]), Toy, ["steps", "rate", "kind", "names", "loud"])) == Toy()
    args = parser.parse_args(["--steps", "4", "-r", "0.25", "--names", "p,q,r", "--loud"])
    assert Toy(**from_args(args, Toy, ["steps", "rate", "names", "loud"])) == Toy(steps=4, rate=0.25,
                                                                                 names=("p", "q", "r"), loud=True)


@pytest.mark.parametrize("name", ["symbolic", "vision", "audio", "rfe"])
def test_each_track_command_line_without_flags_is_the_config_default(name):
    """A flag's default is its field's default (one declaration): the bare command runs the config's defaults."""
    track = tracks.get(name)
    module = __import__(track.config.__module__, fromlist=["_FLAGS"])
    args = cli.build_parser(only=name).parse_args([name])
    values = from_args(args, track.config, module._FLAGS)
    default = track.config()
    assert values == {field: getattr(default, field) for field in module._FLAGS}
