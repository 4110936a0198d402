"""The command line's help: fast (no JAX for `chaosjax --help`), every flag explained with its default, and
confidence intervals printed only where they mean something."""

import argparse
import subprocess
import sys

import numpy as np
import pandas as pd

from chaosjax import cli
from chaosjax.tracks import symbolic


def _subcommands(parser):
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def test_top_level_help_and_version_import_no_track_and_no_jax():
    code = ("import contextlib, io, sys\n"
            "from chaosjax import cli\n"
            "for argv in (['--help'], ['--version']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "        assert cli.main(argv) == 0\n"
            "    assert 'usage: chaosjax' in out.getvalue() or 'chaosjax 0' in out.getvalue()\n"
            "print(sorted(m for m in sys.modules if m == 'jax' or m.startswith('chaosjax.tracks.')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_listed_help_of_each_subcommand_is_the_one_it_registers():
    listed = {a.dest: a.help for a in _subcommands(cli.build_parser(only=None))._choices_actions}
    registered = {a.dest: a.help for a in _subcommands(cli.build_parser())._choices_actions}
    assert listed == registered == cli.COMMANDS


def test_every_flag_has_help_and_its_default_shows(monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping inside a long default
    sub = _subcommands(cli.build_parser())
    for name, parser in sub.choices.items():
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"chaosjax {name} {action.option_strings[0]}: no help text"
            if action.default is not None and action.default is not False:
                shown = f"(default: {action.default})" in text or "default" in action.help
                assert shown, f"chaosjax {name} {action.option_strings[0]}: default {action.default!r} not shown"


def test_a_subcommand_parses_the_same_when_only_it_is_registered():
    argv = ["symbolic", "--formulas", "0,3", "--noise", "7", "--out", "x"]
    assert vars(cli.build_parser(only="symbolic").parse_args(argv)) == vars(cli.build_parser().parse_args(argv))


def test_confidence_intervals_only_from_three_values():
    assert symbolic.format_mean_ci([0.5, 0.9]) == "0.700 (n=2)"
    assert symbolic.format_mean_ci([0.5, np.nan, 0.9]) == "0.700 (n=2)"  # NaN (a diverged model) is not counted
    assert symbolic.format_mean_ci([]) == "–"
    three = symbolic.format_mean_ci([0.5, 0.7, 0.9])
    mean, half = symbolic.mean_ci([0.5, 0.7, 0.9])
    assert three == f"{mean:.3f} ± {half:.3f}"


def test_the_symbolic_summary_prints_the_count_for_two_formulas():
    frame = pd.DataFrame({
        "formula": ["0", "1", "0", "1"], "seed": [0] * 4, "method": ["saliency"] * 2 + ["deeplift"] * 2,
        "functional_precision": [0.5, 0.9, 0.4, 0.6], "uniform_score": [0.3, 0.5, 0.2, 0.2],
        "seconds": [1.0] * 4, "train_seconds": [2.0] * 4, "sweep_axis": [""] * 4,
    })
    table = symbolic.summary_table(frame)
    assert "0.700 (n=2)" in table and "±" not in table
    three = pd.concat([frame, frame.assign(formula="2")])
    assert "±" in symbolic.summary_table(three)
