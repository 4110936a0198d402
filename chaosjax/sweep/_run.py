"""Running a sweep: its chunks computed by their tracks, in flight several at a time, recorded in plan order
(see `chaosjax.sweep`)."""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from chaosjax import _journal, runs, tracks
from chaosjax._placement import GridPlacement
from chaosjax._progress import Progress
from chaosjax.sweep._distributed import _distributed
from chaosjax.sweep._plan import SweepPlan, plan
from chaosjax.sweep._store import (
    _check_directory,
    _check_layout,
    _check_out,
    _chunk_records,
    _ChunkRun,
    _holds,
    _lock,
    _notify,
    _roll_back,
    _Store,
)
from chaosjax.tracks import Chunk

def run(description: Mapping[str, Any], out: str | os.PathLike, *, force_new: bool = False,
        progress: bool = True, log=print, workers: int = 1, source: str | os.PathLike | None = None,
        notify=_notify):
    """Runs (or resumes) a sweep into `out`; returns the results DataFrame (this host's, merged on host 0).

    `workers` chunks are in flight at once, each in a thread of its own: one chunk's compilation (CPU work,
    which releases the GIL) overlaps the others' compilation and device work. Rows are still appended in
    plan order, so the results file is the same for any `workers`.

    Everything is validated before anything is written: bad input (the description, `--out`, a directory of
    another sweep or one being run) raises ValueError naming the key or file (`source`: the description's file,
    for messages) and writes nothing; so does any error before this run recorded its first chunk into a new
    directory (what it wrote is removed). `notify(line)` receives the one-line notices about repairs (default:
    stderr).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected an integer >= 1, got {workers!r}")
    sweep_plan = plan(description, source=source)
    path = Path(out)
    _check_out(path)
    host, hosts = _distributed()
    if host == 0:
        _check_directory(path, sweep_plan.spec, force_new, move=False)  # refused before writing anything
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--out: cannot create {path}: {err.strerror}") from None
    before = set(os.listdir(path))
    try:
        locks = _lock(path, host, hosts, notify)
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                path.rmdir()  # only if nobody else put anything there
        raise
    store, fresh = None, False
    try:
        _journal.fault("locked")
        fresh = hosts == 1 and not (path / "sweep.json").exists()  # decided under the lock
        if host == 0:
            _check_directory(path, sweep_plan.spec, force_new)  # again, now that nobody else writes
            if not _holds(path, sweep_plan.spec):
                _journal.atomic_write(path / "sweep.json", json.dumps(sweep_plan.spec, indent=2, default=str),
                                      "sweep-json")
        _check_layout(path, hosts)
        mine = [c for i, c in enumerate(sweep_plan.chunks) if i % hosts == host]
        store = _Store(path, host, hosts, sweep_plan.columns, notify=notify)
        done = store.open({c.id for c in mine})
        return _run_chunks(sweep_plan, mine, done, store, path, host, hosts, progress, log, workers)
    except Exception:
        if store is None or store.appended == 0:
            for lock in locks:
                lock.release()
            _roll_back(path, before, created, everything=fresh)
        raise
    finally:
        for lock in locks:
            lock.release()


def _run_chunks(sweep_plan: SweepPlan, mine: list[Chunk], done: dict, store: _Store, path: Path, host: int,
                hosts: int, progress: bool, log, workers: int):
    import pandas as pd

    todo = [c for c in mine if c.id not in done]
    place = GridPlacement()
    devices = place.devices
    started = time.time()
    checkpoint_lock = threading.Lock()

    def compute(chunk: Chunk):
        """Trains (or restores) and attributes one chunk; returns its real cells' rows and timings."""
        return tracks.get(chunk.track).compute(chunk, _ChunkRun(place, store, checkpoint_lock, chunk.id))

    cells = Progress(enabled=progress).phase(f"sweep: {len(todo)} of {len(mine)} chunks to run",
                                             total=sum(c.size for c in mine), unit="cells",
                                             initial=sum(c.size for c in mine if c.id in done))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chaosjax-sweep")
    with cells as bar:
        try:
            upcoming = iter(todo)
            in_flight = collections.deque((c, pool.submit(compute, c)) for c in itertools.islice(upcoming, workers))
            while in_flight:
                chunk, future = in_flight.popleft()
                bar.note(f"{chunk.id}: {chunk.label}")
                rows, seconds = future.result()
                store.append(chunk.id, rows, seconds)  # in plan order, whatever finished first
                bar.update(chunk.size)
                if not progress and log:
                    times = ", ".join(f"{k.replace('_', ' ')} {v:.1f} s" for k, v in seconds.items() if k != "restored")
                    log(f"{chunk.id}: {chunk.size} cells, {times}{' (restored)' if seconds['restored'] else ''}")
                following = next(upcoming, None)
                if following is not None:
                    in_flight.append((following, pool.submit(compute, following)))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # an error or Ctrl-C: do not wait for chunks in flight
            raise
        else:
            pool.shutdown(wait=True)

    if hosts > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("chaosjax-sweep-done")
        if host == 0:
            parts = [pd.read_csv(p) for p in sorted(path.glob("results.host*.csv")) if p.stat().st_size]
            merged = pd.concat(parts, ignore_index=True)
            _journal.atomic_write(path / "results.csv", merged.to_csv(index=False))
    mine_only = store.results if hosts > 1 and host != 0 else path / "results.csv"  # host 0 merges
    frame = pd.read_csv(mine_only) if mine_only.exists() and mine_only.stat().st_size else pd.DataFrame()
    if host == 0:
        entries = _chunk_records(path)
        meta = {
            "schema_version": runs.SCHEMA_VERSION,
            "track": "+".join(sweep_plan.tracks),
            "sweep": sweep_plan.spec,
            "cells": sweep_plan.cells,
            "chunks": len(sweep_plan.chunks),
            "environment": {**runs.environment(), "process_count": hosts, "local_devices": devices},
            "wall_seconds": {"this_run": time.time() - started,
                             "per_chunk": {k: v.get("seconds") for k, v in entries.items()}},
        }
        _journal.atomic_write(path / "config.json", json.dumps(meta, indent=2, default=str), "config")
    return frame
