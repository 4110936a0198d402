"""A sweep directory's integrity: its journal of recorded chunks, its lock, atomic writes, checksums, and the
fault-injection hook the tests use to kill a run at each write boundary.

Journal (``progress.jsonl``): one JSON object per line, appended with a single ``write`` and fsynced after the
chunk's rows are fsynced. A record names its chunk, its row count and the byte span ``[start, offset)`` its rows
take in the results file, with the SHA-256 of those bytes, and ends with ``check``: the first 16 hex digits of
the SHA-256 of the record's other fields (canonical JSON). A record is valid only if its line is complete (ends in
a newline), parses, has every field with the right type, and its ``check`` matches. A kill can only tear the last
line (no newline): it is dropped on open. A complete line that is not a valid record was edited or damaged: the
journal is refused, naming the file and line.

Lock: ``flock`` on a file in the directory (released by the kernel when its holder dies, whatever the way),
holding the holder's pid, host and start time while it runs; a clean exit empties it, so content found under a
lock we could take is a dead holder's, and is reported as reclaimed. Where ``flock`` is not supported (some
network file systems) the pid and host decide: a live pid on this host, or any other host, keeps the lock.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import hashlib
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

# ------------------------------------------------------------------------------------------ fault injection

#: ``CHAOSJAX_FAULT=point[#n][@k]`` stops the process the ``n``-th time (default: the first) it reaches the write
#: boundary ``point``; for a torn write, after the first ``k`` bytes (default: half; negative: all but the last
#: ``-k``) of what it was writing.
#: ``CHAOSJAX_FAULT_ACTION``: ``kill`` (default: SIGKILL to itself, as a kill from outside at that instant),
#: ``raise`` (`FaultInjected`, for in-process tests) or ``wait:PATH`` (pause until PATH exists, then go on).
#: Points: ``results`` (torn rows), ``after-results``, ``record`` (torn journal record), ``after-record``,
#: ``checkpoint`` (saved, not yet marked finished), ``after-checkpoint``, ``sweep-json`` (torn), ``config`` (torn
#: config.json), ``locked`` (the directory just locked). For tests only.
FAULT_ENV = "CHAOSJAX_FAULT"
FAULT_ACTION_ENV = "CHAOSJAX_FAULT_ACTION"
_arrivals: collections.Counter[str] = collections.Counter()


class FaultInjected(BaseException):
    """Raised at a fault point under ``CHAOSJAX_FAULT_ACTION=raise``; a BaseException, as a kill is not an error
    the sweep may clean up after."""


def reset_faults() -> None:
    """Forgets how often each fault point was reached (tests running several sweeps in one process)."""
    _arrivals.clear()


def _fault_spec(point: str) -> int | None | bool:
    """False when `point` is not armed now; else the byte count to tear at (None: half)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return False
    name, _, tear = spec.partition("@")
    name, _, nth = name.partition("#")
    if name != point:
        return False
    _arrivals[point] += 1
    if _arrivals[point] != (int(nth) if nth else 1):
        return False
    return int(tear) if tear else None


def _stop(point: str) -> None:
    action = os.environ.get(FAULT_ACTION_ENV, "kill")
    if action.startswith("wait:"):
        flag = Path(action[len("wait:"):])
        while not flag.exists():
            time.sleep(0.02)
        return
    if action == "raise":
        raise FaultInjected(point)
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # never reached


def fault(point: str) -> None:
    """A write boundary: stops here when `CHAOSJAX_FAULT` names it (see above); otherwise nothing."""
    if _fault_spec(point) is not False:
        _stop(point)


def write_all(fd: int, data: bytes, point: str | None = None) -> None:
    """Writes `data` to `fd`, or, when `point` is armed, only its first bytes (then syncs and stops): a torn
    write, as a kill in the middle of it leaves."""
    tear = False if point is None else _fault_spec(point)
    if tear is not False:
        keep = len(data) // 2 if tear is None else tear if tear >= 0 else len(data) + tear
        data = data[:max(0, min(keep, len(data)))]
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    if tear is not False:
        os.fsync(fd)
        _stop(point)


# -------------------------------------------------------------------------------------------------- files


def fsync_dir(path: Path) -> None:
    """Makes a file's creation or rename in `path` durable (where the platform allows opening a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def durable_append(path: Path, data: bytes, point: str | None = None) -> None:
    """Appends `data` to `path` and syncs it (and, when the append created the file, its directory)."""
    new = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        write_all(fd, data, point)
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:
        fsync_dir(path.parent)


def atomic_write(path: Path, text: str, point: str | None = None) -> None:
    """Replaces `path` by `text` through a temporary file and a rename: readers see the old or the new file,
    never part of one."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, text.encode(), point)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_digest(folder: Path, leave_out: str) -> dict[str, str]:
    """SHA-256 of every file under `folder` (but `leave_out`), by relative path."""
    return {str(p.relative_to(folder)): sha256(p.read_bytes()) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != leave_out}


def sealed(fields: dict) -> str:
    """`fields` as JSON with ``check`` over them (as a journal record's)."""
    return json.dumps({**fields, "check": sha256(_canonical(fields))[:16]})


def unseal(text: str) -> dict:
    """The fields of `sealed` JSON; ValueError when it is not that, or does not match its check."""
    record = json.loads(text)
    if not isinstance(record, dict) or "check" not in record:
        raise ValueError("not a sealed record")
    fields = {k: v for k, v in record.items() if k != "check"}
    if sha256(_canonical(fields))[:16] != record["check"]:
        raise ValueError("does not match its check")
    return fields


def tree_digest(tree: Any) -> str:
    """SHA-256 of a pytree of arrays: every leaf's dtype, shape and bytes, in flattening order."""
    import jax
    import numpy as np

    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        array = np.ascontiguousarray(np.asarray(leaf))
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------- journal

#: A record's fields and their JSON types (``check`` last, over the others).
RECORD_FIELDS = {"chunk": str, "rows": int, "start": int, "offset": int, "sha256": str, "seconds": dict}


def _canonical(fields: dict) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def encode_record(**fields: Any) -> bytes:
    """One journal line: the fields, then ``check`` over them, then a newline."""
    check = sha256(_canonical(fields))[:16]
    return json.dumps({**fields, "check": check}).encode() + b"\n"


def _record_problem(line: bytes) -> str | tuple[str, dict]:
    """Why a complete line is not a valid record, or ("", record)."""
    try:
        record = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "is not a JSON record"
    if not isinstance(record, dict):
        return "is not a JSON object"
    missing = [k for k in (*RECORD_FIELDS, "check") if k not in record]
    if missing:
        if set(missing) <= {"start", "sha256", "check"} and "chunk" in record:
            return ("was written by an earlier chaosjax, without checksums (start over with --force-new; the old "
                    "files are kept)")
        return f"lacks the field {missing[0]!r}"
    for key, kind in RECORD_FIELDS.items():
        value = record[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"has {key} = {value!r}, not a{'n' if kind is int else ''} {kind.__name__}"
    if record["rows"] < 0 or record["start"] < 0 or record["offset"] < record["start"]:
        return f"has an impossible span (rows {record['rows']}, bytes {record['start']}-{record['offset']})"
    fields = {k: v for k, v in record.items() if k != "check"}
    if sha256(_canonical(fields))[:16] != record["check"]:
        return "does not match its checksum"
    return ("", record)


def read_journal(path: Path) -> tuple[list[dict], int, int]:
    """(valid records in order, the byte length they take, the file's length). The bytes past the first length
    are a torn last record. Raises ValueError naming the file and line for a complete line that is not a valid
    record (the journal was edited or damaged)."""
    if not path.exists():
        return [], 0, 0
    data = path.read_bytes()
    records = []
    end = data.rfind(b"\n") + 1  # past the last complete line
    for number, line in enumerate(data[:end].split(b"\n")[:-1], start=1):
        problem = _record_problem(line)
        if isinstance(problem, str):
            raise ValueError(f"sweep: {path} line {number} {problem}; it was edited or damaged (restore it, or "
                             "start over with --force-new, which keeps the old files)")
        records.append(problem[1])
    return records, end, len(data)


# -------------------------------------------------------------------------------------------------- lock

try:
    import fcntl
except ImportError:  # not POSIX: pid and host only
    fcntl = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    except OSError:
        return False
    return True


def _read_holder(fd: int) -> dict:
    """The JSON a lock file holds ({} when empty)."""
    os.lseek(fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(fd, 65536):
        raw += chunk
    try:
        holder = json.loads(raw) if raw.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {"pid": "?", "host": "?"}
    return holder if isinstance(holder, dict) else {"pid": "?", "host": "?"}


def live_holder(path: Path, wait: float = 2.0) -> dict | None:
    """What lock file `path` records if a live process holds it (its record, waiting up to `wait` seconds for a
    holder that is just starting to write it), else None. Without flock: None."""
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            deadline = time.monotonic() + wait
            while not (holder := _read_holder(fd)) and time.monotonic() < deadline:
                time.sleep(0.05)
            return holder or {"pid": "?", "host": "?"}
        except OSError:
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def describe_holder(holder: dict) -> str:
    since = holder.get("since")
    when = f" since {since}" if since else ""
    return f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}{when}"


class DirectoryLock:
    """An advisory lock on a file: exclusive, or shared with other holders of a shared lock (the processes of one
    multi-process sweep). `acquire` raises ValueError naming the live holder; it returns a one-line notice when it
    reclaimed the lock of a dead holder, else None. `release` is idempotent. An exclusive holder records `info`
    with its pid, host and start time."""

    def __init__(self, path: Path, *, shared: bool = False, info: dict | None = None):
        self.path = path
        self.shared = shared
        self.info = {"pid": os.getpid(), "host": socket.gethostname(),
                     "since": time.strftime("%Y-%m-%d %H:%M:%S"), **(info or {})}
        self.fd: int | None = None

    def _write(self, fd: int, holder: dict | None) -> None:
        os.ftruncate(fd, 0)
        if holder:
            os.lseek(fd, 0, os.SEEK_SET)
            write_all(fd, json.dumps(holder).encode())
        os.fsync(fd)

    def acquire(self, what: str) -> str | None:
        """Takes the lock for `what` (the directory's name in messages)."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise ValueError(f"{what}: cannot open its lock {self.path}: {err.strerror}") from None
        try:
            notice = self._lock(fd, what)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return notice

    def _lock(self, fd: int, what: str) -> str | None:
        flocked = fcntl is not None
        if flocked:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ValueError(self._busy(what, _read_holder(fd))) from None
            except OSError as err:
                if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise
                flocked = False  # a file system without flock: pid and host decide
        holder = _read_holder(fd)
        if holder and not flocked:
            here = holder.get("host") == socket.gethostname()
            pid = holder.get("pid")
            if not here or not isinstance(pid, int) or _alive(pid):
                raise ValueError(self._busy(what, holder, unchecked=not here))
        notice = None
        if holder:
            notice = (f"{what}: reclaimed the lock {self.path.name} of {describe_holder(holder)}, which is gone "
                      "(killed or crashed); resuming")
        if not self.shared:
            self._write(fd, self.info)
        elif holder:
            self._write(fd, None)  # a dead exclusive holder's record; shared holders record nothing here
        return notice

    def _busy(self, what: str, holder: dict, unchecked: bool = False) -> str:
        if holder.get("pid"):
            who = describe_holder(holder)
        else:  # a shared lock (the processes of a multi-process sweep), or a holder that is just starting
            others = [h for p in sorted(self.path.parent.glob(f"{self.path.stem}.host*{self.path.suffix}"))
                      if (h := live_holder(p, wait=0))]
            who = (f"a multi-process sweep ({describe_holder(others[0])}, ...)" if others else
                   "another process that is just starting")
        hint = (f"; if that process is gone, delete {self.path}" if unchecked else
                "; wait for it to finish, or use another directory")
        return f"{what} is in use by {who}{hint}"

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            if not self.shared:
                self._write(fd, None)  # a clean exit: nothing to reclaim
            if fcntl is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
