"""Bad input, told apart from bugs: `BadInput` and the checks the tracks and the command line share.

`chaosjax` reports bad input (a flag, a file, a config value, data it cannot use) in one line with exit code 2,
and anything else as an internal error: a traceback, one line saying so, exit code 1. The line between them
is drawn by type, not by guessing from a message: our checks raise `BadInput`, and the command line turns
the ValueError/TypeError of a config's validation (which runs before any work) into `BadInput` with
`as_bad_input()`. A ValueError that JAX, numpy or pandas raise once work has started is a bug, and stays one.

`BadInput` is a `ValueError`, so library callers that catch ValueError (and `pytest.raises(ValueError)`)
see no difference.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["MAX_SEED", "BadInput", "as_bad_input", "check_distinct", "check_finite_number", "check_out_dir",
           "check_seeds", "diverged", "refuse_or_warn_diverged"]

#: Largest seed: `jax.random.key(seed)` keeps 32 bits (without x64, `key(2**32) == key(0)`), so a larger
#: seed would silently repeat a smaller one.
MAX_SEED = 2**32 - 1


class BadInput(ValueError):
    """Input chaosjax refuses, with a message naming the argument (or file, or row) and what was expected.

    The `chaosjax` command prints it in one line and exits 2. It is a ValueError, so existing
    `except ValueError` clauses keep working.
    """


@contextlib.contextmanager
def as_bad_input() -> Iterator[None]:
    """Inside this block, a ValueError or TypeError is the input's fault (validation code runs here, no work):
    it is re-raised as `BadInput` with the same message. Use it around config building and validation only."""
    try:
        yield
    except BadInput:
        raise
    except (ValueError, TypeError) as err:
        raise BadInput(str(err)) from err


def check_seeds(seeds: Any, name: str = "seeds") -> tuple[int, ...]:
    """`seeds` as a non-empty tuple of distinct integers in [0, MAX_SEED], or a ValueError naming `name`."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise TypeError(f"{name}: expected a sequence of integers, got {seeds!r}")
    seeds = tuple(seeds)
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, numbers.Integral) or not 0 <= s <= MAX_SEED]
    if bad:
        raise ValueError(f"{name}: expected integers in [0, 2**32 - 1] (a random key keeps 32 bits), got {bad[0]!r}")
    if not seeds:
        raise ValueError(f"{name}: no seeds given")
    check_distinct(seeds, name)
    return tuple(int(s) for s in seeds)


def check_distinct(values: Iterable[Any], name: str) -> None:
    """Raises a ValueError naming `name` and the first repeated value (a repeated value would run twice and
    double its rows)."""
    seen = set()
    for v in values:
        key = v if not isinstance(v, float) else float(v)
        if key in seen:
            raise ValueError(f"{name}: {v!r} is given twice (it would run twice and double its rows)")
        seen.add(key)


def check_finite_number(value: Any, name: str, *, low: float | None = None, positive: bool = False) -> float:
    """`value` as a finite real number (> 0 with `positive`, >= `low` if given), or an error naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    if positive and not value > 0:
        raise ValueError(f"{name}: expected a positive number, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name}: expected a number >= {low:g}, got {value!r}")
    return value


def check_out_dir(out: str | os.PathLike, *, overwrite: bool = False, flag: str = "--out") -> Path:
    """Checks, before any work, that results can be written to directory `out`: it is a directory or can be
    created (no regular file in the way, the nearest existing parent writable), and holds no results.csv
    unless `overwrite`. Creates nothing."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag}: {path} exists and is not a directory")
    parent = path
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if parent != path and not parent.is_dir():
        raise ValueError(f"{flag}: cannot create {path}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{flag}: cannot write to {parent} (permission denied)")
    if (path / "results.csv").exists() and not overwrite:
        raise ValueError(f"{flag}: {path} already holds results.csv; choose a new directory or pass --overwrite")
    return path


def diverged(losses: Any) -> Any:
    """A boolean per model: whether its training loss became non-finite (NaN or inf) at any step. `losses` has a
    leading model axis, then steps."""
    import numpy as np

    losses = np.asarray(losses, np.float64)
    return ~np.isfinite(losses.reshape(losses.shape[0], -1)).all(axis=1)


def refuse_or_warn_diverged(dead: Iterable[Any], labels: Iterable[str], lr_name: str, lr: float, *,
                            consequence: str = "their attribution scores are NaN") -> None:
    """After training: `BadInput` when every model diverged (nothing worth reporting), a warning naming the cells
    when some did. `dead[i]`: a boolean per model of cell `labels[i]` (`diverged`)."""
    import warnings

    import numpy as np

    dead = [np.asarray(d, bool).reshape(-1) for d in dead]
    bad = [f"{label} ({int(d.sum())} of {d.size} models)" for label, d in zip(labels, dead) if d.any()]
    if not bad:
        return
    where = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    if all(d.all() for d in dead):
        raise BadInput(f"training diverged: the loss of every model became non-finite ({where}); lower the learning "
                       f"rate ({lr_name} {lr:g}) and run again")
    warnings.warn(f"training diverged in {where}: {consequence}", stacklevel=3)
