"""Where chaosjax keeps files between runs, and JAX's persistent compilation cache for command-line runs.

Imports neither JAX nor numpy, so that `chaosjax --help` and the speech builders stay fast.

The compilation cache: a command-line run compiles a few dozen XLA programs (training, each attribution method,
ground truth, scores), the same ones on every rerun with the same shapes. JAX can keep compiled programs on disk
and load them instead of compiling again (`jax_compilation_cache_dir`); `enable_compile_cache` turns that on in
``cache_dir() / "jax"`` unless ``$CHAOSJAX_NO_COMPILE_CACHE`` is set (to anything but ``""`` or ``"0"``), the
``--no-compile-cache`` flag is given, or the user has already pointed JAX at a directory of their own
(``$JAX_COMPILATION_CACHE_DIR``), which is then used as it is. A directory that cannot be written leaves the cache
off with a warning; the run itself is unchanged. Programs are keyed by their HLO, compile options, JAX/XLA version
and device, so a cached program is the one XLA would compile: results are identical with and without it.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

#: Set to anything but "" or "0" to keep command-line runs off the persistent compilation cache.
NO_COMPILE_CACHE_ENV = "CHAOSJAX_NO_COMPILE_CACHE"
#: Programs that compile faster than this are not written. JAX's default, 1 s, leaves out nearly all of a symbolic
#: run's ~60 programs (attribution, ground truth, scores, the eager steps that build the data). With 0 a warm
#: `chaosjax symbolic --formulas 14` loads 61 of its 62 programs (0.8 s to read) and compiles 2.3 s, training's
#: program alone (docs/cli.md says why); with 0.2 it loaded 13 and compiled 8.0 s (in-process, on a loaded machine).
MIN_COMPILE_SECONDS = 0.0
#: The cache's size limit: past it, JAX deletes the least recently used programs (`jax_compilation_cache_max_size`).
#: A new symbolic setting adds a few hundred KiB, a default run about 30 MiB; 1 GiB keeps thousands of settings.
MAX_CACHE_BYTES = 1 << 30


def cache_dir() -> Path:
    """``$CHAOSJAX_CACHE``, else ``$XDG_CACHE_HOME/chaosjax``, else ``~/.cache/chaosjax``."""
    if os.environ.get("CHAOSJAX_CACHE"):
        return Path(os.environ["CHAOSJAX_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "chaosjax"


def compile_cache_dir() -> Path:
    """Where command-line runs keep compiled programs: ``cache_dir() / "jax"``."""
    return cache_dir() / "jax"


def compile_cache_disabled_by_env() -> bool:
    """Whether ``$CHAOSJAX_NO_COMPILE_CACHE`` asks for no compilation cache."""
    return os.environ.get(NO_COMPILE_CACHE_ENV, "") not in ("", "0")


def _writable(path: Path) -> str | None:
    """None if files can be created in `path` (made if missing), else why not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError as err:
        return f"{type(err).__name__}: {err.strerror or err}"
    return None


def enable_compile_cache(path: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    """Turns JAX's persistent compilation cache on for this process (imports JAX).

    Returns ``(directory, note)``: the directory in use (None: off) and a line saying why. `path` defaults to
    `compile_cache_dir()`. Off when ``$CHAOSJAX_NO_COMPILE_CACHE`` says so or when the directory cannot be written
    (with a warning). A directory already set for JAX (``$JAX_COMPILATION_CACHE_DIR`` or
    ``jax.config.update("jax_compilation_cache_dir", ...)``) is kept as it is.
    """
    if compile_cache_disabled_by_env():
        return None, f"off (${NO_COMPILE_CACHE_ENV} is set)"
    import jax

    current = jax.config.jax_compilation_cache_dir
    if current:
        return Path(current), "the directory already set for JAX"
    target = Path(path) if path is not None else compile_cache_dir()
    problem = _writable(target)
    if problem is not None:
        warnings.warn(f"compilation cache off: cannot write to {target} ({problem}); set "
                      f"{NO_COMPILE_CACHE_ENV}=1 or CHAOSJAX_CACHE to silence this", stacklevel=2)
        return None, f"off ({target} cannot be written)"
    jax.config.update("jax_compilation_cache_dir", str(target))
    if jax.config.jax_persistent_cache_min_compile_time_secs == 1.0:  # JAX's default: not the user's choice
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    if jax.config.jax_compilation_cache_max_size == -1:  # JAX's default (no limit): not the user's choice
        jax.config.update("jax_compilation_cache_max_size", MAX_CACHE_BYTES)
    if jax.config.jax_compilation_cache_max_size != -1:
        _stamp_unstamped(target)
    return target, "on"


def _stamp_unstamped(directory: Path) -> None:
    """Gives every cached program without one a last-use stamp (its file's modification time).

    With a size limit, JAX reads the stamp (`KEY-atime`, nanoseconds, 8 bytes little-endian) of every program in the
    directory before it writes a new one, and a missing stamp makes every write fail (a warning per program, nothing
    cached). Programs written without a limit (chaosjax before it set one, or JAX's default) have none."""
    try:
        names = set(os.listdir(directory))
    except OSError:
        return
    for name in names:
        if not name.endswith("-cache") or name.removesuffix("-cache") + "-atime" in names:
            continue
        try:
            stamp = (directory / name).stat().st_mtime_ns
            (directory / (name.removesuffix("-cache") + "-atime")).write_bytes(stamp.to_bytes(8, "little"))
        except OSError:  # removed meanwhile by another process's eviction, or read-only: JAX copes or warns
            pass


def describe(directory: Path | None, note: str) -> str:
    """The one line `chaosjax -v` prints about the cache."""
    if directory is None:
        return f"compilation cache: {note}"
    return f"compilation cache: {directory} ({note})"
