"""The run layer: what every track's results directory holds and how its numbers are summarised.

A run writes ``results.csv`` (one row per cell x method; the columns are the track's) and ``config.json`` (the
schema version, the track, its config, the command line, the git commit, versions and devices, the start time and
wall seconds), the two files ``chaosjax.report`` reads. The tracks, the sweep and the report import these helpers
from here, never from one another. Nothing here imports JAX at module level: the report and the CLI load it only
when a run needs devices.
"""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MIN_CI_SAMPLES",
    "SCHEMA_VERSION",
    "environment",
    "format_mean_ci",
    "git_commit",
    "markdown_table",
    "mean_ci",
    "summary_rows",
    "write_results",
]

#: The version of the results files' layout; ``chaosjax.report`` refuses files of a newer one. Columns added since
#: schema 1's first release are read by name (older files lack them), so adding a column keeps the version.
SCHEMA_VERSION = 1

#: The fewest values a printed confidence interval is computed from: with two, Student's t (12.7) makes the interval
#: meaningless (a two-formula run printed 0.695 ± 3.875); below it the count is printed instead.
MIN_CI_SAMPLES = 3


def write_results(path: Path, frame, *, track: str, config: dict[str, Any], started: float,
                  walls: dict[str, Any] | None = None, **extra: Any) -> None:
    """Writes a run's ``path/results.csv`` and ``path/config.json``, the files ``chaosjax.report`` reads.

    The CSV goes through a temporary file and a rename, so a killed run never leaves a half-written one.
    ``config.json`` holds the schema version, ``track``, ``config``, the command line and the git commit of the
    code (when it runs from a git checkout), versions and devices, the start time (``started``: a ``time.time()``),
    the wall seconds (``total`` since ``started``, plus ``walls``) and ``extra``.
    """
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / "results.csv.tmp"
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path / "results.csv")
    meta = {
        "schema_version": SCHEMA_VERSION,
        "track": track,
        "config": config,
        "command": shlex.join(sys.argv),
        "git_commit": git_commit(),
        "environment": environment(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "wall_seconds": {"total": time.time() - started, **(walls or {})},
        **extra,
    }
    (path / "config.json").write_text(json.dumps(meta, indent=2, default=str))


@functools.cache
def git_commit() -> str | None:
    """The commit of the chaosjax code that runs (``+dirty`` with uncommitted changes), or None outside a git
    checkout (an installed wheel) or without git."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def environment() -> dict[str, Any]:
    """Versions and devices, for config.json."""
    import flax
    import jax
    import optax

    import chaosjax

    return {
        "chaosjax": chaosjax.__version__,
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
    }


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its Student-t confidence interval (0 for a single value)."""
    # Student's t quantile from scipy.special (what scipy.stats.t.ppf calls, the same numbers): importing
    # scipy.stats for it cost a command-line run 0.4-2 s.
    from scipy.special import stdtrit

    arr = np.asarray(values, np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return float("nan"), float("nan")
    if arr.size == 1:
        return float(arr[0]), 0.0
    half = stdtrit(arr.size - 1, 0.5 + level / 2) * arr.std(ddof=1) / math.sqrt(arr.size)
    return float(arr.mean()), float(half)


def format_mean_ci(values: Sequence[float], digits: int = 3) -> str:
    """`mean ± half-width` of the 95% CI over the finite values, from `MIN_CI_SAMPLES` of them; below that the
    mean and the count (`0.695 (n=2)`); `–` with none."""
    arr = np.asarray(values, np.float64)
    n = int(np.isfinite(arr).sum())
    if n == 0:
        return "–"
    mean, half = mean_ci(arr)
    return f"{mean:.{digits}f} ± {half:.{digits}f}" if n >= MIN_CI_SAMPLES else f"{mean:.{digits}f} (n={n})"


def markdown_table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table: the `head` row, then one row per element of `rows` (cells shown with `str`)."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def summary_rows(frame, by: Sequence[str], scores: Mapping[str, str], *, count: str | None = None,
                 digits: int = 3) -> str:
    """The summary table a track prints: a row per group of the `by` columns (in order of appearance), each of
    `scores` (header -> column) as `format_mean_ci`, then the group's size under the header `count` (if given)
    and its summed ``seconds``."""
    head = [*by, *scores, *([count] if count else []), "seconds"]
    rows = []
    for key, group in frame.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        rows.append([*key, *(format_mean_ci(group[c], digits) for c in scores.values()),
                     *([len(group)] if count else []), f"{group['seconds'].sum():.1f}"])
    return markdown_table(head, rows)
