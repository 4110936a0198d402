"""The `chaosjax` command (also `python -m chaosjax`)."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from chaosjax._cache import NO_COMPILE_CACHE_ENV
from chaosjax.checks import BadInput, as_bad_input, check_out_dir


def _add_report(sub) -> None:
    p = sub.add_parser(
        "report",
        help=COMMANDS["report"],
        description=(
            "Draw the figures of a results directory (DIR/figures/*.png) and write DIR/report.md with the tables "
            "behind them. Works on the output of any track: symbolic, vision, audio, rfe."
        ),
    )
    p.add_argument("dir", help="a results directory (holding results.csv), e.g. runs/default")
    p.add_argument("--svg", action="store_true", help="also write SVG copies of the figures")
    p.set_defaults(prepare=_prepare_report)


def _print_report(result) -> None:
    print(f"report: {result.markdown}")
    print(f"figures: {result.figure_dir}/ ({', '.join(p.name for p in result.figures)})")


def _prepare_report(args) -> Callable[[], int]:
    from chaosjax.report import check, report

    formats = ("png", "svg") if args.svg else ("png",)
    check(args.dir, formats=formats)  # every check of the table and the galleries, before a figure is drawn

    def job() -> int:
        _print_report(report(args.dir, formats=formats))
        return 0

    return job


def _prepare_default(args) -> Callable[[], int]:
    """`make run`: the symbolic track with the study's defaults, then its report."""
    from chaosjax.report import report
    from chaosjax.tracks import symbolic as track

    symbolic = build_parser(only="symbolic").parse_args(["symbolic", "--out", args.out, "--overwrite"])
    track.prepare_cli(symbolic)

    def job() -> int:
        print(_default_banner(Path(symbolic.out)), flush=True)
        code = track.run_cli(symbolic)
        if code == 0:
            print()
            _print_report(report(symbolic.out))
        return code

    return job


def _default_banner(out: Path) -> str:
    """What `make run` is about to do, and what it replaces."""
    from chaosjax.tracks.symbolic import SymbolicConfig

    config = SymbolicConfig()
    what = (f"the symbolic track, the study's defaults: {len(config.formulas)} formulas x {len(config.seeds)} seed, "
            f"{config.epochs} epochs, {len(config.method_names())} methods, into {out}/")
    previous = out / "results.csv"
    if previous.exists():
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(previous.stat().st_mtime))
        return f"{what}\n(replacing the run there from {when}; copy {out} away first to keep it)"
    return what


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default after its help, unless the help already says it or there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or action.default is None or action.default is False
                or action.default == argparse.SUPPRESS or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors in one line (the usage itself is one `--help` away) and defaults in `--help`."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_run_default(sub) -> None:
    p = sub.add_parser("run-default", help=COMMANDS["run-default"],
                       description="The symbolic track with the study's defaults into --out (replacing what is there), "
                                   "then its report: what `make run` runs.")
    p.add_argument("--out", default="runs/default", help="results directory, replaced if it holds results")
    p.set_defaults(prepare=_prepare_default)


# Each subcommand's one-line help (the top-level --help lists them without importing any track, hence JAX) and
# where it is registered, "module:function", imported only when that subcommand is used. The tracks' come from
# their registry (`chaosjax.tracks`): a registered track with a subcommand is one too.
_OWN = {
    "sweep": ("run (or resume) a grid described in a TOML file, sharded across devices", "chaosjax.sweep:add_cli"),
    "report": ("figures and report.md from a results directory", "chaosjax.cli:_add_report"),
    "run-default": ("the default job of `make run`: the symbolic track, study defaults", "chaosjax.cli:_add_run_default"),
}


def _commands() -> dict[str, str]:
    """Every subcommand -> its one-line help: the tracks, then the sweep, the report and run-default."""
    from chaosjax import tracks

    return {**{name: tracks.help_line(name) for name in tracks.names()}, **{k: v[0] for k, v in _OWN.items()}}


def _register(name: str, sub) -> None:
    from chaosjax import tracks

    if name in _OWN:
        module, function = _OWN[name][1].split(":")
        getattr(importlib.import_module(module), function)(sub)
    else:
        tracks.get(name).register_cli(sub)


COMMANDS = _commands()
#: Subcommands that compile XLA programs (all but `report`): they get the persistent compilation cache.
_NOT_COMPILING = frozenset({"report"})


def _compile_cache(args) -> None:
    """JAX's persistent compilation cache for a compiling subcommand (`chaosjax._cache`), unless turned off."""
    from chaosjax import _cache

    if args.command in _NOT_COMPILING:
        return
    if args.no_compile_cache:
        directory, note = None, "off (--no-compile-cache)"
    else:
        directory, note = _cache.enable_compile_cache()
    if args.verbose:
        print(_cache.describe(directory, note), file=sys.stderr)


def build_parser(only: str | None | Sequence[str] = ()) -> argparse.ArgumentParser:
    """The `chaosjax` parser. By default every subcommand is registered in full (importing the tracks, hence JAX);
    with `only=NAME` just that one is, the others by name and help alone (what `main` does, so that
    `chaosjax --help` and one subcommand's run import no more than they need); `only=None` registers none."""
    from chaosjax import __version__

    parser = _Parser(
        prog="chaosjax",
        description="Benchmark post-hoc attribution methods where signal is scarce (ChaosMining in JAX).",
    )
    parser.add_argument("--version", action="version", version=f"chaosjax {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="say where compiled programs are cached (on stderr)")
    parser.add_argument("--no-compile-cache", action="store_true",
                        help="compile every program afresh instead of reusing JAX's persistent compilation cache "
                             f"(also: {NO_COMPILE_CACHE_ENV}=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    commands = _commands()
    full = set(commands) if only == () else ({only} if isinstance(only, str) else set(only or ()))
    for name, line in commands.items():
        if name in full:
            _register(name, sub)
        else:
            sub.add_parser(name, help=line, add_help=False)
    return parser


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"chaosjax: warning: {_one_line(Warning(message))}", file=sys.stderr if file is None else file)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit code: 0 done, 2 bad input (one line on stderr, nothing written),
    1 an internal error (a bug: its traceback, then one line), 130 interrupted.

    A subcommand registers `prepare(args) -> job`: it builds and checks everything the job needs and touches
    nothing, so any ValueError/TypeError it raises is the input's fault; the job does the work, and there only
    `BadInput` (data the run cannot use, found on the way) is the input's fault. A subcommand that registers a
    plain `handler(args) -> int` instead has its ValueError/TypeError taken as bad input throughout.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)  # the subcommand: no option precedes it
    parser = build_parser(only=command if command in _commands() else None)
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help (0), or a usage error, already printed in one line (2)
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            _compile_cache(args)
            if getattr(args, "out", None) is not None:
                with as_bad_input():  # a file in the way of --out is bad input for every command
                    check_out_dir(args.out, overwrite=True)
            if hasattr(args, "prepare"):
                with as_bad_input():
                    job = args.prepare(args)
                return job()
            with as_bad_input():
                return args.handler(args)
    except BadInput as err:
        print(f"chaosjax: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("chaosjax: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 -- anything else is a bug of ours: say so, with its traceback
        traceback.print_exc()
        print(f"chaosjax: internal error ({type(err).__name__}): this is a bug in chaosjax, not a problem with "
              "your input; please report it with the traceback above", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
