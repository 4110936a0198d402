"""A sweep's directory: its results file, journal and checkpoints (`_Store`), and the checks and locks that keep
one directory to one sweep (see `chaosjax.sweep`, "Nothing lost, nothing doubled, nothing silently wrong")."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from chaosjax import _journal, tracks
from chaosjax._placement import GridPlacement

# -------------------------------------------------------------------------------------------- storage


def _notify(message: str) -> None:
    """A one-line notice about the directory (a repair, a reclaimed lock, a retrained chunk), on stderr."""
    print(f"chaosjax: {message}", file=sys.stderr, flush=True)


def _aside(path: Path) -> Path:
    """A new, empty `path/previous-<time>/` directory to keep old files in (nothing is deleted)."""
    stamp = time.strftime("previous-%Y%m%d-%H%M%S")
    keep = path / stamp
    for n in itertools.count(2):
        try:
            keep.mkdir()
            return keep
        except FileExistsError:
            keep = path / f"{stamp}-{n}"
    raise AssertionError("unreachable")


class _Store:
    """A process's results file, its journal and its checkpoints; see the module docstring."""

    #: Written into a checkpoint's directory after the arrays, with their digest: its absence means the save did
    #: not finish.
    MARKER = "chaosjax.json"

    def __init__(self, path: Path, host: int, hosts: int, columns: tuple[str, ...] = (),
                 notify=_notify):
        self.path = path
        self.columns = list(columns)
        suffix = "" if hosts == 1 else f".host{host}"
        self.results = path / f"results{suffix}.csv"
        self.progress = path / f"progress{suffix}.jsonl"
        self.checkpoints = path / "checkpoints"
        self.notify = notify
        self.end = 0  # bytes of the results file that recorded chunks hold
        self.appended = 0  # chunks this process recorded

    def open(self, chunks: Collection[str]) -> dict[str, dict]:
        """The chunks the journal records (of `chunks`, this process's share), after making the files agree:
        a torn last record is dropped; rows that do not match their record's digest (edited or deleted) are set
        aside with every later chunk, which run again; rows no chunk recorded (a chunk killed while writing) are
        dropped. Each repair says so in one line. A journal that was edited is refused (ValueError naming the
        file and line)."""
        records, valid, length = _journal.read_journal(self.progress)
        if length > valid:
            with open(self.progress, "r+b") as fh:
                fh.truncate(valid)
                os.fsync(fh.fileno())
            self.notify(f"sweep: {self.progress} ended in a torn record (a run killed while writing it); dropped "
                        "it, and its chunk runs again")
        seen: set[str] = set()
        end = 0
        for line, record in enumerate(records, start=1):
            where = f"sweep: {self.progress} line {line}"
            if record["chunk"] not in chunks:
                raise ValueError(f"{where} records chunk {record['chunk']!r}, which is not this process's share of "
                                 "the sweep (edited, or run with another number of processes); restore it, or "
                                 "start over with --force-new")
            if record["chunk"] in seen:
                raise ValueError(f"{where} records chunk {record['chunk']!r} a second time; the journal was edited "
                                 "(restore it, or start over with --force-new)")
            if record["start"] != end:
                raise ValueError(f"{where}: its rows start at byte {record['start']} of {self.results.name}, but "
                                 f"the chunk before ends at byte {end}; the journal was edited (restore it, or "
                                 "start over with --force-new)")
            seen.add(record["chunk"])
            end = record["offset"]
        records = self._verify_results(records)
        self.end = records[-1]["offset"] if records else 0
        if self.results.exists() and self.results.stat().st_size > self.end:
            extra = self.results.stat().st_size - self.end
            with open(self.results, "r+b") as fh:
                fh.truncate(self.end)  # rows past the last recorded chunk were never finished
                os.fsync(fh.fileno())
            self.notify(f"sweep: dropped {extra} bytes of rows that no chunk recorded from {self.results} (a run "
                        "killed before recording them); their chunk runs again")
        return {r["chunk"]: r for r in records}

    def _verify_results(self, records: list[dict]) -> list[dict]:
        """The records whose rows are in the results file byte for byte; from the first that is not, the rows
        are set aside (a copy of the file in previous-<time>/) and the journal is cut there."""
        if not records:
            return records
        data = self.results.read_bytes() if self.results.exists() else None
        for k, record in enumerate(records):
            if data is None:
                reason = "is missing"
            elif len(data) < record["offset"]:
                reason = "is shorter than its journal records"
            elif _journal.sha256(data[record["start"]:record["offset"]]) != record["sha256"]:
                reason = "does not match its journal (rows edited or deleted)"
            else:
                continue
            kept = ""
            if data:
                keep = _aside(self.path)
                shutil.copy2(self.results, keep / self.results.name)
                kept = f"; the file as found is kept in {keep}"
            later = len(records) - k - 1
            after = {0: "", 1: " and the chunk after it"}.get(later, f" and the {later} chunks after it")
            self.notify(f"sweep: {self.results} {reason} from chunk {record['chunk']} on; rerunning it{after} (from "
                        f"their checkpoints){kept}")
            fd = os.open(self.results, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.ftruncate(fd, record["start"])
                os.fsync(fd)
            finally:
                os.close(fd)
            kept_records = records[:k]
            _journal.atomic_write(self.progress, b"".join(_journal.encode_record(
                **{f: r[f] for f in _journal.RECORD_FIELDS}) for r in kept_records).decode())
            return kept_records
        return records

    def append(self, chunk_id: str, rows: list[dict], seconds: dict[str, float]) -> None:
        """Appends a chunk's rows (fsynced), then its journal record (one write, fsynced)."""
        import pandas as pd

        frame = pd.DataFrame(rows, columns=self.columns)
        data = frame.to_csv(index=False, header=self.end == 0).encode()
        _journal.durable_append(self.results, data, "results")
        _journal.fault("after-results")
        record = _journal.encode_record(chunk=chunk_id, rows=len(rows), start=self.end, offset=self.end + len(data),
                                        sha256=_journal.sha256(data), seconds=seconds)
        _journal.durable_append(self.progress, record, "record")
        self.end += len(data)
        self.appended += 1
        _journal.fault("after-record")

    def checkpoint_path(self, chunk_id: str) -> Path:
        return self.checkpoints / chunk_id

    def save_trained(self, chunk_id: str, tree: Any, seconds: float) -> None:
        """Saves a chunk's trained arrays (its real cells only, so that any device count can restore them), then
        marks the save finished: its training time, the SHA-256 of each file orbax wrote and of the arrays."""
        target = self.checkpoint_path(chunk_id)
        if target.exists():
            shutil.rmtree(target)  # an unfinished or damaged save
        # Host copies: each process saves its own chunks alone (device arrays of one host are not global).
        arrays = jax.device_get(tree)
        _checkpointer().save(target.resolve(), arrays)
        _journal.fault("checkpoint")
        _journal.atomic_write(target / self.MARKER, _journal.sealed({
            "train_seconds": seconds, "files": _journal.files_digest(target, self.MARKER),
            "sha256": _journal.tree_digest(arrays)}))
        _journal.fault("after-checkpoint")

    def restore_trained(self, chunk_id: str, template) -> tuple[Any, float] | None:
        """(arrays shaped like what `template()` returns, training seconds), or None when the chunk has no finished
        checkpoint, or one whose files do not match their digests (checked before orbax reads them), or that
        cannot be read, or whose arrays do not match theirs: each said in one line, and the chunk is trained
        again. `template` is only traced for its shapes (`jax.eval_shape`), never run."""
        target = self.checkpoint_path(chunk_id)
        if not target.exists():
            return None
        again = f"training chunk {chunk_id} again"
        try:
            meta = _journal.unseal((target / self.MARKER).read_text())
            seconds, files, digest = float(meta["train_seconds"]), dict(meta["files"]), str(meta["sha256"])
        except FileNotFoundError:
            self.notify(f"sweep: the checkpoint of chunk {chunk_id} was not finished (a run killed while saving "
                        f"it); {again}")
            return None
        except (OSError, ValueError, KeyError, TypeError):
            self.notify(f"sweep: {target / self.MARKER} is damaged; {again}")
            return None
        found = _journal.files_digest(target, self.MARKER)
        if found != files:
            bad = sorted(set(files) ^ set(found)) or sorted(k for k in files if files[k] != found[k])
            self.notify(f"sweep: the checkpoint {target} does not match its checksum (damaged: {bad[0]}); {again}")
            return None
        try:
            restored = _checkpointer().restore(target.resolve(), jax.eval_shape(template))
        except Exception as err:  # noqa: BLE001 - any failure to read it: the chunk is trained again
            self.notify(f"sweep: the checkpoint {target} cannot be read ({type(err).__name__}); {again}")
            return None
        if _journal.tree_digest(restored) != digest:
            self.notify(f"sweep: the checkpoint {target} does not match its checksum (its arrays); {again}")
            return None
        return restored, seconds


def _leading(tree: Any, rows: int) -> Any:
    """The first `rows` entries of every leaf's leading axis, or the last entry repeated up to `rows` (the padding
    a device count asks for: copies of the last real cell or seed)."""
    def fit(a):
        if a.shape[0] >= rows:
            return a[:rows]
        return jnp.concatenate([a, jnp.repeat(a[-1:], rows - a.shape[0], axis=0)])

    return jax.tree.map(fit, tree)


def _cached_training(store: _Store, lock: threading.Lock, chunk_id: str, template, train, real: int,
                     padded: int) -> tuple[Any, float, bool]:
    """A chunk's trained arrays for `padded` cells: restored from its checkpoint (shaped like `template()`'s
    `real` cells), or `train()`ed (a tree and its seconds) and checkpointed (the first `real` cells) before
    anything else happens to them."""
    with lock:
        restored = store.restore_trained(chunk_id, template)
    if restored is not None:
        tree, seconds = restored
        return _leading(tree, padded), seconds, True
    tree, seconds = train()
    with lock:
        store.save_trained(chunk_id, _leading(tree, real), seconds)
    return tree, seconds, False


def _chunk_records(path: Path) -> dict[str, dict]:
    """Every recorded chunk of the sweep in `path`, from every host's journal (read only: a torn last record is
    left for the next run to drop)."""
    return {r["chunk"]: r for log in sorted(path.glob("progress*.jsonl")) for r in _journal.read_journal(log)[0]}


@dataclasses.dataclass
class _ChunkRun:
    """What a track's `compute` gets (`chaosjax.tracks.ChunkRun`): the placement, and the chunk's checkpoint."""

    place: GridPlacement
    store: _Store
    lock: threading.Lock
    chunk_id: str

    def trained(self, template, train, real: int, padded: int) -> tuple[Any, float, bool]:
        return _cached_training(self.store, self.lock, self.chunk_id, template, train, real, padded)


def _checkpointer():
    """An orbax checkpointer private to this process: with several processes, each saves and restores its own
    chunks, without the collective barriers orbax uses for a checkpoint shared by all processes."""
    import orbax.checkpoint as ocp

    me = jax.process_index()
    # Synchronous (no cross-process completion signals), and this process is the only participant.
    return ocp.Checkpointer(
        ocp.StandardCheckpointHandler(),
        multiprocessing_options=ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me}))


# ------------------------------------------------------------------------------------------ the directory

#: The directory's lock files: `sweep.lock`, and one per process of a multi-process sweep.
_LOCK = "sweep.lock"


def _stored_spec(path: Path) -> dict | None:
    """The description `path/sweep.json` holds, None without one; ValueError naming the file when it is damaged."""
    stored = path / "sweep.json"
    if not stored.exists():
        return None
    try:
        spec = json.loads(stored.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, OSError) as err:
        where = f" ({err.msg} at line {err.lineno} column {err.colno})" if isinstance(err, json.JSONDecodeError) else ""
        raise ValueError(f"--out: {stored} is not a sweep description{where}; it was edited or damaged: restore it, "
                         "or start over with --force-new (the old files are kept)") from None
    if not isinstance(spec, dict) or "sweep" not in spec:
        raise ValueError(f"--out: {stored} is not a sweep description; it was edited or damaged: restore it, or "
                         "start over with --force-new (the old files are kept)")
    return spec


def _normalised(spec: dict) -> dict:
    return json.loads(json.dumps(spec, default=str))


def _holds(path: Path, spec: dict) -> bool:
    """Whether `path` holds a sweep of this normalised description (its `sweep.json`)."""
    return _stored_spec(path) == _normalised(spec)


def _check_out(path: Path) -> None:
    """ValueError when `--out` cannot be a directory (it, or a folder above it, is a file)."""
    for folder in (path, *path.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ValueError(f"--out: {folder} is not a directory" if folder == path else
                                 f"--out: {path} cannot be made: {folder} is a file")
            return


def _check_directory(path: Path, spec: dict, force_new: bool, move: bool = True) -> None:
    """Refuses a directory that holds another sweep, results of no sweep, or a damaged `sweep.json` (ValueError),
    unless `force_new`, which (with `move`) moves its files but the locks to `path/previous-<time>/`."""
    try:
        old = _stored_spec(path)
    except ValueError:
        if not force_new:
            raise
        old = {}
    if old is None:
        if not any(path.glob("results*.csv")):
            return
        if not force_new:
            raise ValueError(f"--out: {path} holds results that no sweep wrote; use another directory or "
                             "--force-new")
    elif old == _normalised(spec):
        return
    elif not force_new:
        differing = []
        for track in tracks.names():
            before, now = old.get(track, {}), spec.get(track, {})
            before, now = (before if isinstance(before, dict) else {}), (now if isinstance(now, dict) else {})
            if before.get("axes") != now.get("axes"):
                differing.append(f"{track} axes")
            before, now = before.get("fixed", {}), now.get("fixed", {})
            differing += sorted(k if track == "symbolic" else f"{track}.{k}" for k in set(before) | set(now)
                                if before.get(k) != now.get(k))
        hint = f" (differs in {', '.join(differing)})" if differing else ""
        raise ValueError(f"--out: {path} holds a sweep of another config{hint}; resume it with its own config, "
                         "use another directory, or pass --force-new")
    if not move:
        return
    # --force-new: keep the old run, out of the way.
    keep = _aside(path)
    for item in list(path.iterdir()):
        if not item.name.startswith(("previous-", "sweep.lock", "sweep.host")):
            shutil.move(str(item), keep / item.name)


def _check_layout(path: Path, hosts: int) -> None:
    """Refuses to resume a sweep with another process layout than it started with (each process's journal
    covers its own share of the chunks)."""
    single = path / "progress.jsonl"
    multi = sorted(path.glob("progress.host*.jsonl"))
    if hosts == 1 and multi:
        raise ValueError(f"--out: {path} holds a sweep run by several processes ({multi[0].name}); resume it with "
                         "as many, or start over with --force-new")
    if hosts > 1 and single.exists() and single.stat().st_size:
        raise ValueError(f"--out: {path} holds a sweep run by one process ({single.name}); resume it with one, or "
                         "start over with --force-new")


def _lock(path: Path, host: int, hosts: int, notify) -> list[_journal.DirectoryLock]:
    """Locks `--out` for this run. One process: `sweep.lock`, exclusively. Each process of a multi-process sweep:
    `sweep.lock` shared (the job's processes share the directory, nobody else does) and `sweep.host<p>.lock`
    exclusively (its own files), refusing a directory whose other process locks a live process of another job
    holds."""
    what = f"--out {path}"
    job = {"job": os.environ.get("JAX_COORDINATOR_ADDRESS", ""), "process": host, "processes": hosts}
    locks = [_journal.DirectoryLock(path / _LOCK, shared=hosts > 1)]
    if hosts > 1:
        locks.append(_journal.DirectoryLock(path / f"sweep.host{host}.lock", info=job))
    taken = []
    try:
        for lock in locks:
            notice = lock.acquire(what)
            taken.append(lock)
            if notice:
                notify(f"sweep: {notice}")
        if hosts > 1:
            for other in sorted(path.glob("sweep.host*.lock")):
                if other.name == locks[1].path.name:
                    continue
                holder = _journal.live_holder(other)
                if holder and (holder.get("job"), holder.get("processes")) != (job["job"], hosts):
                    raise ValueError(f"{what} is in use by another multi-process sweep "
                                     f"({_journal.describe_holder(holder)}); wait for it to finish, or use another "
                                     "directory")
    except BaseException:
        for lock in reversed(taken):
            lock.release()
        raise
    return locks


def _roll_back(path: Path, before: set[str], created: bool, everything: bool) -> None:
    """After a run that failed before recording a chunk: removes the lock files it made, and with `everything`
    (a directory that held no sweep) all it wrote (entries not in `before`): a rejected sweep leaves nothing."""
    for name in set(os.listdir(path)) - before:
        if not everything and not (name.startswith("sweep.") and name.endswith(".lock")):
            continue
        item = path / name
        shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
    if created:
        with contextlib.suppress(OSError):
            path.rmdir()  # only if empty
