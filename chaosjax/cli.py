"""The `chaosjax` command (also `python -m chaosjax`)."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from chaosjax._cache import NO_COMPILE_CACHE_ENV
from chaosjax._parse import parse_formulas, parse_int_range, parse_names, parse_sweep
from chaosjax.checks import BadInput, as_bad_input, check_out_dir


def _add_symbolic(sub) -> None:
    p = sub.add_parser(
        "symbolic",
        help=COMMANDS["symbolic"],
        description=(
            "Train an MLP per formula x seed x setting (one compiled grid), attribute the test split with "
            "every method, and score functional precision and uniform score against the true function. "
            "Defaults are the study's protocol."
        ),
    )
    p.add_argument("--formulas", default="0-14", help="indices ('0-14', '3,5,9') or a formula text, e.g. '0.5*sin(a) + b**2'")
    p.add_argument("--noise", type=int, default=100, help="noise columns (default 100)")
    p.add_argument("--seeds", default="0", help="seeds, e.g. '0-4' or '0,3' (default 0)")
    p.add_argument("--methods", default="all", help="comma-separated names from chaosjax.attribution.METHODS, or 'all'")
    p.add_argument("--epochs", type=int, default=1000, help="full-batch training epochs")
    p.add_argument("--n", type=int, default=10_000, help="rows, split 80/20 into train and test")
    p.add_argument("--depth", type=int, default=3, help="hidden layers of the MLP")
    p.add_argument("--width", type=int, default=100, help="units per hidden layer")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    p.add_argument("--optimizer", default="adam", help="adam, adagrad, adadelta, rmsprop, sgd or asgd")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout rate in training")
    p.add_argument("--label-noise", type=float, default=0.01, help="std of the Gaussian label noise")
    p.add_argument("--ig-steps", type=int, default=10,
                   help="integrated-gradients steps (Gauss-Legendre) behind functional precision and consistency")
    p.add_argument("--ig-steps-uniform", type=int, default=None,
                   help="IG steps behind the uniform score (default: 20 under paper, as the study; --ig-steps under "
                        "corrected)")
    p.add_argument("--convergence-every", type=int, default=0, metavar="K",
                   help="also attribute the models every K training epochs and report how the global top-m "
                        "converges (topm_* columns; costs one attribution per snapshot)")
    p.add_argument("--time-passes", action="store_true",
                   help="run every attribution program once more to time one pass (attr_run_seconds; the peak "
                        "memory, attr_peak_bytes, is always reported)")
    p.add_argument("--proxies", default="none", metavar="NAMES",
                   help="also score proxy metrics per cell x method, one results column each: 'all' or "
                        "comma-separated names of chaosjax.tracks.proxy_bench.PROXIES (docs/proxies.md)")
    p.add_argument("--protocol", default="paper", choices=("paper", "corrected"),
                   help="paper: the study's choices, quirks included; corrected: fixed (docs/protocol.md)")
    p.add_argument("--sweep", default=None, help="one ablation axis as one grid: AXIS=v1,v2,... "
                   "(noise, n, depth, width, lr, dropout, label-noise, optimizer)")
    p.add_argument("--out", default="runs/symbolic", help="results directory (default runs/symbolic)")
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress lines (stderr)")
    p.set_defaults(prepare=_prepare_symbolic)


def _symbolic_config(args):
    from chaosjax.tracks.proxy_bench import resolve_proxies
    from chaosjax.tracks.symbolic import SymbolicConfig

    return SymbolicConfig(
        formulas=parse_formulas(args.formulas),
        noise_features=args.noise,
        seeds=parse_int_range(args.seeds, "--seeds"),
        methods=parse_names(args.methods, "--methods"),
        epochs=args.epochs,
        n=args.n,
        depth=args.depth,
        width=args.width,
        learning_rate=args.lr,
        optimizer=args.optimizer,
        dropout=args.dropout,
        label_noise=args.label_noise,
        ig_steps=args.ig_steps,
        ig_steps_uniform=args.ig_steps_uniform,
        convergence_every=args.convergence_every,
        time_passes=args.time_passes,
        proxies=resolve_proxies(args.proxies, "--proxies"),
        protocol=args.protocol,
        sweep=parse_sweep(args.sweep),
    )


def _prepare_symbolic(args) -> Callable[[], int]:
    config = _symbolic_config(args)
    config.validate()
    check_out_dir(args.out, overwrite=args.overwrite)
    return lambda: _run_symbolic(args, config)


def _run_symbolic(args, config=None) -> int:
    from chaosjax.tracks.symbolic import run, summary_table

    config = config if config is not None else _symbolic_config(args)
    frame = run(config, out=args.out, overwrite=args.overwrite, progress=not args.quiet)
    print(summary_table(frame))
    print(f"\nresults: {args.out}/results.csv  config: {args.out}/config.json")
    return 0


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

    symbolic = build_parser(only="symbolic").parse_args(["symbolic", "--out", args.out, "--overwrite"])
    _prepare_symbolic(symbolic)

    def job() -> int:
        print(_default_banner(Path(symbolic.out)), flush=True)
        code = _run_symbolic(symbolic)
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
# where it is registered, "module:function", imported only when that subcommand is used.
COMMANDS = {
    "symbolic": "the symbolic functional track: formulas among noise columns",
    "vision": "the vision track: a small foreground on a noisy canvas",
    "audio": "the audio track: which channel of ten holds the spoken word?",
    "rfe": "recursive feature elimination with neural attributions vs scikit-learn RFE",
    "sweep": "run (or resume) a grid described in a TOML file, sharded across devices",
    "report": "figures and report.md from a results directory",
    "run-default": "the default job of `make run`: the symbolic track, study defaults",
}
_REGISTER = {
    "symbolic": "chaosjax.cli:_add_symbolic",
    "vision": "chaosjax.tracks.vision:add_cli",
    "audio": "chaosjax.tracks.audio:add_cli",
    "rfe": "chaosjax.tracks.rfe:add_cli",
    "sweep": "chaosjax.sweep:add_cli",
    "report": "chaosjax.cli:_add_report",
    "run-default": "chaosjax.cli:_add_run_default",
}
#: Subcommands that compile XLA programs (all but `report`): they get the persistent compilation cache.
_COMPILING = frozenset(COMMANDS) - {"report"}


def _compile_cache(args) -> None:
    """JAX's persistent compilation cache for a compiling subcommand (`chaosjax._cache`), unless turned off."""
    from chaosjax import _cache

    if args.command not in _COMPILING:
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
    import importlib

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
    full = set(_REGISTER) if only == () else ({only} if isinstance(only, str) else set(only or ()))
    for name in COMMANDS:
        if name in full:
            module, function = _REGISTER[name].split(":")
            getattr(importlib.import_module(module), function)(sub)
        else:
            sub.add_parser(name, help=COMMANDS[name], add_help=False)
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
    parser = build_parser(only=command if command in COMMANDS else None)
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
