"""What the tracks' subcommands share: check a config and ``--out``, then run, print the summary and say where the
results are."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chaosjax.checks import check_out_dir


def checked_job(args, config: Any, run: Callable[..., Any], summary_table: Callable[[Any], str], *,
                wrote: str = "config: {out}/config.json") -> Callable[[], int]:
    """Validates `config` and ``args.out`` (touching nothing; a ValueError or TypeError names the input), then
    returns the job `chaosjax.cli.main` runs: ``run(config, out=..., overwrite=..., progress=...)``, its
    `summary_table`, and a line naming ``results.csv`` and what else the track `wrote` (``{out}``: the
    directory)."""
    config.validate()
    check_out_dir(args.out, overwrite=args.overwrite)

    def job() -> int:
        frame = run(config, out=args.out, overwrite=args.overwrite, progress=not args.quiet)
        print(summary_table(frame))
        print(f"\nresults: {args.out}/results.csv" + (f"  {wrote.format(out=args.out)}" if wrote else ""))
        return 0

    return job
