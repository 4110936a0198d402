"""Progress on long work: one bar per phase, counts that match their label, an honest ETA.

A run goes through phases (building data, training N models, attributing with each method, ...). Each phase
gets its own bar, counted in the unit its label names. A phase whose first unit of work waits on compilation
(training, an attribution program) says ``compiling`` until that first unit arrives, and its rate and ETA are
measured from then on: compile time is reported once, at the end of the phase, and never inflates the ETA.

On a terminal (or in a notebook) the bar redraws in place. Anywhere else (a log, CI, ``make run | tee``) it
prints plain lines: the phase's start, about every 10 % (at most every ``log_seconds``), and its end with the
time taken. Never a cursor code off a terminal.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import IO

__all__ = ["Phase", "Progress", "count", "format_seconds"]

# How often a terminal bar redraws, and how often (at most) a log line is printed per phase.
_REDRAW_SECONDS = 0.2
_LOG_SECONDS = 30.0
_LOG_FRACTION = 0.1
_NOTE_SECONDS = 5.0


def count(n: int, noun: str) -> str:
    """``1 model``, ``15 models``: a count and its noun, plural when it is not one."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def format_seconds(seconds: float) -> str:
    """``4.2 s``, ``3:05``, ``1:02:05``: seconds below a minute, else minutes:seconds (hours when needed)."""
    if seconds != seconds or seconds < 0:  # NaN or negative: unknown
        return "?"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _interactive(stream: IO[str]) -> bool:
    """A terminal, or a Jupyter kernel (which renders carriage returns): where a bar may redraw in place."""
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return True
    return "ipykernel" in sys.modules and stream in (sys.stdout, sys.stderr)


class Progress:
    """Phases of one run, written to ``stream`` (default stderr); ``enabled=False`` writes nothing.

    >>> progress = Progress()
    >>> with progress.phase("train 15 models x 1000 epochs", total=15_000, unit="model-epochs",
    ...                     compiling=True) as phase:
    ...     phase.set(3_000)                # first update: compiling is over, the rate starts from here
    ...     phase.set(15_000)
    """

    def __init__(self, enabled: bool = True, stream: IO[str] | None = None, *, interactive: bool | None = None,
                 log_seconds: float = _LOG_SECONDS, prefix: str = ""):
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = _interactive(self.stream) if interactive is None else interactive
        self.log_seconds = log_seconds
        self.prefix = prefix

    @contextlib.contextmanager
    def phase(self, label: str, total: int | None = None, unit: str = "", *, initial: int = 0,
              compiling: bool = False) -> Iterator[Phase]:
        """A phase of `total` units of `unit` (``None``: one step, no count), `initial` of them done already (a
        resumed run: the rate counts only what this run does). With ``compiling=True`` the phase says so until its
        first `set`/`update`, and its rate is measured from that moment."""
        phase = Phase(self, label, total, unit, compiling)
        phase.done = phase._rate_base = int(initial)
        phase._begin()
        try:
            yield phase
        except BaseException:
            phase._end(failed=True)
            raise
        phase._end()

    def write(self, line: str) -> None:
        """One line of text between phases (e.g. a warning), kept out of a bar being drawn."""
        if self.enabled:
            self.stream.write(line + "\n")
            self.stream.flush()


class Phase:
    """One bar; made by `Progress.phase`. `update(n)` adds units, `set(done)` sets the count, `note(text)` shows
    what is being done now (e.g. the method's name)."""

    def __init__(self, progress: Progress, label: str, total: int | None, unit: str, compiling: bool):
        self._progress = progress
        self.label = progress.prefix + label
        self.total = total
        self.unit = unit
        self.done = 0
        self._text = ""
        self._compiling = compiling
        self._started = self._rate_from = time.perf_counter()
        self._rate_base = 0
        self.compile_seconds: float | None = None
        self._last_draw = -float("inf")
        self._last_log = self._started
        self._logged_fraction = 0.0
        self._width = 0
        self._items = 0

    # ----------------------------------------------------------------------------------------------- counting
    def update(self, n: int = 1) -> None:
        """Adds `n` finished units."""
        self.set(self.done + n)

    def set(self, done: int) -> None:
        """Sets the count of finished units (it never goes back)."""
        now = time.perf_counter()
        if self._compiling:  # the first unit of work: compilation is over
            self._compiling = False
            self.compile_seconds = now - self._started
            self._rate_from, self._rate_base = now, max(done, self.done)
        self.done = max(self.done, int(done))
        self._tick(now)

    def item(self, text: str) -> None:
        """Begins the next named unit (e.g. a method): the one before it counts as finished."""
        if self._items:
            self.done += 1  # counted here, shown by the note with the new item's name
        self._items += 1
        self.note(text)

    def note(self, text: str) -> None:
        """What the phase is doing now, shown after the count (on a terminal) or on the next log line."""
        self._text = text
        now = time.perf_counter()
        # In a log, a new note starts a line unless the last one is recent (fast items would flood it).
        self._tick(now, force=not self._progress.interactive and bool(text) and now - self._last_log >= _NOTE_SECONDS)

    # ------------------------------------------------------------------------------------------------- timing
    def eta(self, now: float | None = None) -> float | None:
        """Seconds left at the rate measured since the phase's first unit (after compiling), or None if unknown."""
        now = time.perf_counter() if now is None else now
        # Nothing to go on yet: no unit since compiling, or too short a time (dispatch runs ahead of the device).
        if self.total is None or self._compiling or self.done <= self._rate_base or now - self._rate_from < 1.0:
            return None
        rate = (self.done - self._rate_base) / max(now - self._rate_from, 1e-9)
        return (self.total - self.done) / rate

    # ---------------------------------------------------------------------------------------------- rendering
    def _status(self, now: float) -> str:
        parts = [self.label]
        if self._compiling:
            parts.append("compiling")
        elif self.total is not None:
            share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
            parts.append(f"{self.done}/{self.total}{' ' + self.unit if self.unit else ''}{share}")
        parts.append(format_seconds(now - self._started))
        eta = self.eta(now)
        if eta is not None and self.done < (self.total or 0):
            parts.append(f"~{format_seconds(eta)} left")
        if self._text:
            parts.append(self._text)
        return ", ".join(parts[:1]) + ": " + ", ".join(parts[1:])

    def _tick(self, now: float, force: bool = False) -> None:
        if not self._progress.enabled:
            return
        if self._progress.interactive:
            if force or now - self._last_draw >= _REDRAW_SECONDS:
                self._draw(self._status(now))
                self._last_draw = now
            return
        fraction = self.done / self.total if self.total else 0.0
        if self.total is not None and self.done >= self.total:
            return  # the phase's end line follows
        due = (fraction - self._logged_fraction >= _LOG_FRACTION
               and now - self._last_log >= min(self._progress.log_seconds, 5.0)) or (
            now - self._last_log >= self._progress.log_seconds)
        if force or due:
            self._line(self._status(now))
            self._last_log, self._logged_fraction = now, fraction

    def _draw(self, text: str) -> None:
        stream = self._progress.stream
        pad = max(0, self._width - len(text))
        stream.write("\r" + text + " " * pad)
        stream.flush()
        self._width = len(text)

    def _line(self, text: str) -> None:
        self._progress.stream.write(text + "\n")
        self._progress.stream.flush()

    def _begin(self) -> None:
        if not self._progress.enabled:
            return
        now = time.perf_counter()
        if self._progress.interactive:
            self._draw(self._status(now))
            self._last_draw = now
        else:  # the start, without the clock and the ETA that only exist later
            self._line(f"{self.label}: " + ("compiling" if self._compiling else "started"))

    def _end(self, failed: bool = False) -> None:
        if self._items and not failed:  # `item` counts a unit when the next begins: the last one ends here
            self.done += 1
        if not self._progress.enabled:
            return
        elapsed = time.perf_counter() - self._started
        count = ""
        if self.total is not None:
            count = f"{self.done}/{self.total}{' ' + self.unit if self.unit else ''} "
        compiled = f" (compiling ~{format_seconds(self.compile_seconds)})" if self.compile_seconds is not None else ""
        end = "stopped after" if failed else "in"
        text = f"{self.label}: {count}{end} {format_seconds(elapsed)}{compiled}"
        if self._progress.interactive:
            self._draw(text)
            self._progress.stream.write("\n")
            self._progress.stream.flush()
        else:
            self._line(text)
