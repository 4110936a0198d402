"""Sweeps under faults: a run stopped at every write boundary of a chunk, torn records, damaged checkpoints, edited
results, concurrent runs, and bad inputs. Each case ends with results identical to an uninterrupted run (every
column but the timings, to the CSV's last digit), or with a one-line refusal naming the file, and never with a
duplicated or lost row.

Runs are stopped by the fault-injection hook (`chaosjax._journal`: CHAOSJAX_FAULT names a write boundary,
CHAOSJAX_FAULT_ACTION says what happens there): in process, `raise` leaves the files as a kill at that instant
would (no cleanup of the directory runs); the SIGKILL cases run the command in a subprocess that kills itself
there, so that the lock is left to a dead process too.
"""

import dataclasses
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from chaosjax import _journal, cli, sweep, tracks
from chaosjax.tracks import symbolic as sym

ROOT = Path(__file__).resolve().parents[1]
TIMING = ["seconds", "train_seconds"]
CHUNKS = ["s0-c0", "s0-c1"]

# 2 formulas x 2 seeds in chunks of 2: two chunks of 2 cells, 4 rows; a run takes about a second once compiled.
TOML = """
[sweep]
chunk_size = 2

[symbolic]
formulas = "0-1"
seeds = [0, 1]
noise = 3
n = 60
epochs = 3
depth = 1
width = 4
methods = ["saliency"]
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "tiny.toml"
    path.write_text(TOML)
    return path


@pytest.fixture(scope="module")
def reference_dir(config, tmp_path_factory) -> Path:
    """An uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "run"
    sweep.run(sweep.load_toml(config), out, progress=False, log=None)
    return out


@pytest.fixture(scope="module")
def reference(reference_dir) -> pd.DataFrame:
    return _table(reference_dir)


@pytest.fixture
def faults(monkeypatch):
    """Arms a fault point for the next run: `faults("record#2@17")`; the run raises `FaultInjected` there."""
    monkeypatch.setenv(_journal.FAULT_ACTION_ENV, "raise")
    monkeypatch.delenv(_journal.FAULT_ENV, raising=False)
    _journal.reset_faults()

    def arm(spec: str | None):
        _journal.reset_faults()
        if spec:
            monkeypatch.setenv(_journal.FAULT_ENV, spec)
        else:
            monkeypatch.delenv(_journal.FAULT_ENV, raising=False)

    yield arm
    _journal.reset_faults()


def _table(out: Path) -> pd.DataFrame:
    """results.csv as text (every digit as written), without the timing columns."""
    return pd.read_csv(out / "results.csv", dtype=str, keep_default_na=False).drop(columns=TIMING)


def _run(config: Path, out: Path, notes: list | None = None, **kwargs):
    return sweep.run(sweep.load_toml(config), out, progress=False, log=None,
                     notify=(notes.append if notes is not None else lambda line: None), **kwargs)


def _assert_identical(out: Path, reference: pd.DataFrame) -> None:
    table = _table(out)
    assert not table.duplicated(["formula", "seed", "method"]).any()
    pd.testing.assert_frame_equal(table, reference)
    records, valid, length = _journal.read_journal(out / "progress.jsonl")
    assert [r["chunk"] for r in records] == CHUNKS and valid == length
    assert records[-1]["offset"] == (out / "results.csv").stat().st_size
    assert json.loads((out / "config.json").read_text())["chunks"] == 2


def _snapshot(path: Path) -> dict | None:
    """Every file's bytes and every folder under `path` (None when it does not exist)."""
    if not path.exists():
        return None
    if path.is_file():
        return {".": path.read_bytes()}
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else "dir") for p in sorted(path.rglob("*"))}


# ------------------------------------------------------------------------------------------ kill points

# (fault spec, a fragment the resumed run's notices must hold, or None when it repairs nothing). `#n`: the n-th
# time the point is reached (chunk n); `@k`: torn after k bytes (negative: all but the last -k; none: half).
KILL_POINTS = [
    ("locked", None),
    ("sweep-json", None),
    ("sweep-json@0", None),
    ("checkpoint#1", "was not finished"),
    ("after-checkpoint#1", None),
    ("results#1@0", None),
    ("results#1@1", "dropped 1 bytes of rows"),
    ("results#1", "dropped"),
    ("results#1@-1", "dropped"),
    ("after-results#1", "dropped"),
    ("record#1@0", "dropped"),
    ("record#1@1", "torn record"),
    ("record#1@40", "torn record"),
    ("record#1", "torn record"),
    ("record#1@-1", "torn record"),
    ("after-record#1", None),
    ("checkpoint#2", "was not finished"),
    ("after-checkpoint#2", None),
    ("results#2@3", "dropped 3 bytes"),
    ("results#2", "dropped"),
    ("after-results#2", "dropped"),
    ("record#2@1", "torn record"),
    ("record#2@100", "torn record"),
    ("record#2@-1", "torn record"),
    ("after-record#2", None),
    ("config", None),
    ("config@0", None),
]
FAST = {"record#1", "results#2", "checkpoint#2", "after-record#1"}


@pytest.mark.parametrize("spec, notice", [pytest.param(s, n, marks=() if s in FAST else pytest.mark.slow, id=s)
                                          for s, n in KILL_POINTS])
def test_a_run_stopped_at_a_write_boundary_resumes_to_identical_results(config, reference, faults, tmp_path,
                                                                        spec, notice):
    out = tmp_path / "run"
    faults(spec)
    with pytest.raises(_journal.FaultInjected):
        _run(config, out)
    faults(None)
    notes = []
    _run(config, out, notes)
    _assert_identical(out, reference)
    if notice is None:
        assert notes == []
    else:
        assert len(notes) >= 1 and any(notice in line for line in notes), notes
        assert all("\n" not in line for line in notes)


def test_a_run_stopped_again_while_resuming_still_ends_identical(config, reference, faults, tmp_path):
    out = tmp_path / "run"
    # Each resume repairs the last one's tear and is stopped in turn: chunk 1's record torn; its rows torn on the
    # rerun; chunk 2's checkpoint unfinished; chunk 2's record torn; chunk 2 stopped after its rows; config.json.
    for spec in ("record#1@33", "results#1@5", "checkpoint#1", "record#1@-1", "after-results#1", "config"):
        faults(spec)
        with pytest.raises(_journal.FaultInjected):
            _run(config, out)
    faults(None)
    _run(config, out)
    _assert_identical(out, reference)


def _cli(args, env_extra=None, wait=True):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    env.pop(_journal.FAULT_ENV, None)
    env.pop(_journal.FAULT_ACTION_ENV, None)
    env.update(env_extra or {})
    cmd = [sys.executable, "-m", "chaosjax", "sweep", *map(str, args), "--quiet"]
    if wait:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


SIGKILL_POINTS = ["record#1", "results#1@1", "after-results#2", "checkpoint#2", "after-checkpoint#1", "record#2@-1",
                  "config", "locked"]


@pytest.mark.parametrize("spec", [pytest.param(s, marks=() if s == "record#1" else pytest.mark.slow, id=s)
                                  for s in SIGKILL_POINTS])
def test_a_sweep_killed_by_sigkill_resumes_to_identical_results_and_reclaims_its_lock(config, reference, tmp_path,
                                                                                     spec):
    out = tmp_path / "run"
    killed = _cli([config, "--out", out], env_extra={_journal.FAULT_ENV: spec, _journal.FAULT_ACTION_ENV: "kill"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    holder = json.loads((out / "sweep.lock").read_text())  # the dead process's record
    notes = []
    _run(config, out, notes)
    _assert_identical(out, reference)
    assert any(f"reclaimed the lock sweep.lock of pid {holder['pid']}" in line for line in notes), notes
    assert (out / "sweep.lock").read_text() == ""  # released cleanly: nothing to reclaim next time


@pytest.mark.slow
def test_a_sweep_killed_with_two_workers_in_flight_resumes_to_identical_results(config, reference, tmp_path):
    out = tmp_path / "run"
    killed = _cli([config, "--out", out, "--workers", "2"],
                  env_extra={_journal.FAULT_ENV: "record#1@20", _journal.FAULT_ACTION_ENV: "kill"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    resumed = _cli([config, "--out", out, "--workers", "2"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "torn record" in resumed.stderr and "reclaimed the lock" in resumed.stderr
    _assert_identical(out, reference)


# ------------------------------------------------------------------------------------------ locks


def test_a_directory_in_use_is_refused_in_one_line_and_left_unchanged(config, reference_dir, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(reference_dir, out)
    (out / "progress.jsonl").write_bytes(b"")  # half done: the second run would have work to do
    (out / "results.csv").write_bytes(b"")
    lock = _journal.DirectoryLock(out / "sweep.lock")
    assert lock.acquire("--out") is None
    try:
        before = _snapshot(out)
        assert cli.main(["sweep", str(config), "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert f"is in use by pid {os.getpid()} on host" in err and str(out) in err
        assert _snapshot(out) == before
    finally:
        lock.release()


def test_a_stale_lock_of_a_dead_process_is_reclaimed_and_said(config, reference, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    out = tmp_path / "run"
    out.mkdir()
    (out / "sweep.lock").write_text(json.dumps({"pid": pid, "host": "somewhere", "since": "then"}))
    notes = []
    _run(config, out, notes)
    assert notes == [f"sweep: --out {out}: reclaimed the lock sweep.lock of pid {pid} on host somewhere since then, "
                     "which is gone (killed or crashed); resuming"]
    _assert_identical(out, reference)


def test_without_flock_the_pid_and_host_decide(tmp_path, monkeypatch):
    import socket

    monkeypatch.setattr(_journal, "fcntl", None)
    lock_file = tmp_path / "sweep.lock"
    here = socket.gethostname()
    lock_file.write_text(json.dumps({"pid": os.getpid(), "host": here}))  # alive: this very process
    with pytest.raises(ValueError, match=f"in use by pid {os.getpid()} on host {here}; wait"):
        _journal.DirectoryLock(lock_file).acquire("--out d")
    lock_file.write_text(json.dumps({"pid": 7, "host": "elsewhere"}))  # cannot be checked from here
    with pytest.raises(ValueError, match=f"if that process is gone, delete {lock_file}"):
        _journal.DirectoryLock(lock_file).acquire("--out d")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock_file.write_text(json.dumps({"pid": int(dead.stdout), "host": here}))
    lock = _journal.DirectoryLock(lock_file)
    assert "reclaimed" in lock.acquire("--out d")
    assert json.loads(lock_file.read_text())["pid"] == os.getpid()
    lock.release()
    assert lock_file.read_text() == ""


def test_multi_process_locks_share_the_directory_within_a_job_only(tmp_path, monkeypatch):
    """Each process of a multi-process sweep holds sweep.lock shared and its own sweep.host<p>.lock; a one-process
    sweep, or a process of another job, is refused."""
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "node0:1234")
    notes = []
    job = [sweep._lock(tmp_path, p, 2, notes.append) for p in range(2)]  # both processes of one job
    with pytest.raises(ValueError, match=r"in use by a multi-process sweep \(pid \d+ on host"):
        sweep._lock(tmp_path, 0, 1, notes.append)  # a one-process sweep
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "node7:999")
    with pytest.raises(ValueError, match="in use by pid"):
        sweep._lock(tmp_path, 1, 2, notes.append)  # process 1 of another job: its own file is taken
    with pytest.raises(ValueError, match="in use by another multi-process sweep"):
        sweep._lock(tmp_path, 2, 3, notes.append)  # process 2 of a 3-process job: the others are a live job's
    for locks in job:
        for lock in locks:
            lock.release()
    alone = sweep._lock(tmp_path, 0, 1, notes.append)  # the job is gone: free
    for lock in alone:
        lock.release()
    assert notes == []


@pytest.mark.slow
def test_two_concurrent_sweeps_one_runs_the_other_is_refused(config, reference, tmp_path):
    out = tmp_path / "run"
    go = tmp_path / "go"
    first = _cli([config, "--out", out], wait=False,
                 env_extra={_journal.FAULT_ENV: "locked", _journal.FAULT_ACTION_ENV: f"wait:{go}"})
    try:
        lock = out / "sweep.lock"
        while not (lock.exists() and lock.read_text()):  # the first holds the lock (and waits there)
            assert first.poll() is None, first.communicate()[1][-2000:]
            time.sleep(0.05)
        second = _cli([config, "--out", out])
        assert second.returncode == 2
        assert second.stderr.count("\n") == 1 and f"is in use by pid {first.pid}" in second.stderr
        go.touch()
        _, err = first.communicate(timeout=600)
        assert first.returncode == 0, err[-2000:]
    finally:
        if first.poll() is None:
            first.kill()
    _assert_identical(out, reference)


# ------------------------------------------------------------------------------------------ checkpoints


def _largest(folder: Path) -> Path:
    return max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def _flip(path: Path, byte: int, bit: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[byte] ^= 1 << bit
    path.write_bytes(bytes(data))


# How the checkpoint of the second chunk is damaged after training, before its rows: (id, damage, the notice's
# fragment: each says so in one line and trains the chunk again, which gives the same numbers).
DAMAGES = [
    ("data-bit", lambda c: _flip(_largest(c / "d"), 300, 3), "does not match its checksum (damaged: d/"),
    ("data-truncated", lambda c: _largest(c / "d").write_bytes(b""), "does not match its checksum (damaged: d/"),
    ("metadata-deleted", lambda c: (c / "_METADATA").unlink(), "does not match its checksum (damaged: _METADATA)"),
    ("file-added", lambda c: (c / "extra").write_bytes(b"x"), "does not match its checksum (damaged: extra)"),
    ("marker-deleted", lambda c: (c / "chaosjax.json").unlink(), "was not finished"),
    ("marker-garbage", lambda c: (c / "chaosjax.json").write_bytes(b"{\x9f"), "is damaged"),
    ("marker-edited", lambda c: (c / "chaosjax.json").write_text(
        (c / "chaosjax.json").read_text().replace('"train_seconds": ', '"train_seconds": 1')), "is damaged"),
    ("arrays-differ", lambda c: _reseal(c, sha256="0" * 64), "does not match its checksum (its arrays)"),
    ("unreadable", lambda c: _reseal_files(c, lambda: (c / "manifest.ocdbt").write_bytes(b"\x00" * 40)),
     "cannot be read"),
]


def _reseal(folder: Path, **fields) -> None:
    """Rewrites the checkpoint's marker with `fields` changed and a valid check (a marker that lies)."""
    meta = _journal.unseal((folder / "chaosjax.json").read_text())
    (folder / "chaosjax.json").write_text(_journal.sealed({**meta, **fields}))


def _reseal_files(folder: Path, damage) -> None:
    """Damages the files, then records their damaged digests: only orbax can tell."""
    damage()
    _reseal(folder, files=_journal.files_digest(folder, "chaosjax.json"))


@pytest.mark.parametrize("damage, notice", [pytest.param(d, n, id=i) for i, d, n in DAMAGES])
def test_a_damaged_checkpoint_is_said_and_retrained_nothing_else_lost(config, reference, faults, tmp_path, damage,
                                                                     notice):
    out = tmp_path / "run"
    faults("after-checkpoint#2")  # trained and checkpointed, not attributed
    with pytest.raises(_journal.FaultInjected):
        _run(config, out)
    damage(out / "checkpoints" / "s0-c1")
    faults(None)
    notes = []
    _run(config, out, notes)
    assert len(notes) == 1 and notice in notes[0] and "s0-c1" in notes[0], notes
    _assert_identical(out, reference)
    records, _, _ = _journal.read_journal(out / "progress.jsonl")
    assert records[1]["seconds"]["restored"] is False  # trained again
    assert records[0]["seconds"]["restored"] is False


class _OrbaxReached(BaseException):
    pass


def test_every_bit_flip_anywhere_in_a_checkpoint_is_caught(config, reference, faults, tmp_path, monkeypatch):
    """Bits flipped across every file of a checkpoint, its marker included (every 5th byte, the bit cycling; about
    a thousand): each is refused with a one-line notice naming the chunk, and never reaches orbax (which does not
    read some files, and may restore others silently wrong or leave tracebacks of its threads)."""
    out = tmp_path / "run"
    faults("after-checkpoint#2")
    with pytest.raises(_journal.FaultInjected):
        _run(config, out)
    faults(None)
    store = sweep._Store(out, 0, 1)
    template = functools.partial(sym.chunk_template, sweep.plan(sweep.load_toml(config)).chunks[1])
    assert store.restore_trained("s0-c1", template) is not None

    def unreachable():
        raise _OrbaxReached

    checkpointer = sweep._checkpointer
    monkeypatch.setattr(sweep._store, "_checkpointer", unreachable)
    flips = 0
    folder = out / "checkpoints" / "s0-c1"
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        for byte in range(0, path.stat().st_size, 5):
            _flip(path, byte, byte % 8)
            notes = []
            store.notify = notes.append
            assert store.restore_trained("s0-c1", template) is None, (path, byte)
            assert len(notes) == 1 and "s0-c1" in notes[0], notes
            flips += 1
            _flip(path, byte, byte % 8)  # undo
    assert flips > 1000
    monkeypatch.setattr(sweep._store, "_checkpointer", checkpointer)
    _run(config, out)
    _assert_identical(out, reference)


# ------------------------------------------------------------------------------------------ edited results


def _lines(out: Path) -> list[bytes]:
    return (out / "results.csv").read_bytes().splitlines(keepends=True)


# (id, edit of a finished run's results.csv, the first chunk rerun or None, a fragment of the notice)
EDITS = [
    ("last-row-deleted", lambda out: (out / "results.csv").write_bytes(b"".join(_lines(out)[:-1])), "s0-c1",
     "is shorter than its journal records"),
    ("first-row-deleted", lambda out: (out / "results.csv").write_bytes(b"".join(_lines(out)[:1] + _lines(out)[2:])),
     "s0-c0", "and the chunk after it"),
    ("value-edited", lambda out: (out / "results.csv").write_bytes(
        b"".join(_lines(out)).replace(b"symbolic,0,", b"symbolic,00,", 1)), "s0-c0", "rows edited or deleted"),
    ("results-deleted", lambda out: (out / "results.csv").unlink(), "s0-c0", "is missing"),
    ("results-emptied", lambda out: (out / "results.csv").write_bytes(b""), "s0-c0", "is shorter"),
    ("tail-cut", lambda out: (out / "results.csv").write_bytes((out / "results.csv").read_bytes()[:-10]), "s0-c1",
     "is shorter"),
    ("row-duplicated", lambda out: (out / "results.csv").write_bytes(b"".join(_lines(out) + _lines(out)[-1:])), None,
     "dropped"),
    ("junk-appended", lambda out: (out / "results.csv").write_bytes(b"".join(_lines(out)) + b"a,b,c\n"), None,
     "dropped 6 bytes"),
]


@pytest.mark.parametrize("edit, first, notice", [pytest.param(e, f, n, id=i) for i, e, f, n in EDITS])
def test_edited_results_are_detected_and_their_chunks_rerun(config, reference_dir, reference, tmp_path, edit,
                                                            first, notice):
    out = tmp_path / "run"
    shutil.copytree(reference_dir, out)
    edit(out)
    found = (out / "results.csv").read_bytes() if (out / "results.csv").exists() else b""
    notes = []
    _run(config, out, notes)
    assert len(notes) == 1 and notice in notes[0], notes
    if first is not None:
        assert f"from chunk {first} on" in notes[0]
    _assert_identical(out, reference)
    kept = list(out.glob("previous-*/results.csv"))
    if first is not None and found:
        assert len(kept) == 1 and kept[0].read_bytes() == found  # the file as found is kept
    records, _, _ = _journal.read_journal(out / "progress.jsonl")
    rerun = CHUNKS[CHUNKS.index(first):] if first else []
    assert [r["seconds"]["restored"] for r in records if r["chunk"] in rerun] == [True] * len(rerun)


# ------------------------------------------------------------------------------------------ nothing written


def test_a_sweep_rejected_after_starting_writes_nothing(config, tmp_path, monkeypatch):
    """Bad input found only when the first chunk runs: what the run wrote is removed, so the corrected config
    is not refused as another config."""
    def bad(*args):
        raise ValueError("formulas: undefined on the sampled range")

    monkeypatch.setitem(tracks._REGISTRY, "symbolic", dataclasses.replace(tracks.get("symbolic"), compute=bad))
    out = tmp_path / "new"
    with pytest.raises(ValueError, match="undefined"):
        _run(config, out)
    assert not out.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="undefined"):
        _run(config, empty)
    assert _snapshot(empty) == {"notes.txt": b"mine"}
    monkeypatch.undo()
    changed = sweep.load_toml(config)
    changed["symbolic"]["epochs"] = 2
    sweep.run(changed, empty, progress=False, log=None)  # the corrected config: not "another config"
    assert len(pd.read_csv(empty / "results.csv")) == 4


def test_force_new_sets_a_damaged_directory_aside(config, reference_dir, reference, tmp_path):
    out = _copy(reference_dir, tmp_path / "run")
    (out / "sweep.json").write_bytes(b"{")
    with pytest.raises(ValueError, match="sweep.json is not a sweep description"):
        _run(config, out)
    _run(config, out, force_new=True)
    _assert_identical(out, reference)
    kept = list(out.glob("previous-*/sweep.json"))
    assert len(kept) == 1 and kept[0].read_bytes() == b"{"


# ------------------------------------------------------------------------------------------ bad inputs


def _copy(source: Path, out: Path) -> Path:
    shutil.copytree(source, out)
    return out


def _with(out: Path, name: str, content: bytes) -> Path:
    (out / name).write_bytes(content)
    return out


def _file(path: Path) -> Path:
    path.write_text("x")
    return path


def _record(**fields):
    return _journal.encode_record(**fields)


def _progress_edit(edit, lock=True):
    """A case whose --out is a finished run with its journal edited by `edit(lines) -> bytes` (without its lock
    file: as a directory copied elsewhere)."""
    def setup(tmp_path, reference_dir):
        out = tmp_path / "out"
        shutil.copytree(reference_dir, out)
        if not lock:
            (out / "sweep.lock").unlink()
        lines = (out / "progress.jsonl").read_bytes().splitlines(keepends=True)
        (out / "progress.jsonl").write_bytes(edit(lines))
        return out
    return setup


def _dropped(field):
    def edit(lines):
        record = json.loads(lines[1])
        del record[field]
        return lines[0] + json.dumps(record).encode() + b"\n"
    return edit


def _changed(lines):
    record = json.loads(lines[1])
    record["rows"] = 3
    return lines[0] + json.dumps(record).encode() + b"\n"


def _foreign(lines):
    record = json.loads(lines[1])
    return b"".join(lines) + _record(chunk="s9-c9", rows=1, start=record["offset"], offset=record["offset"] + 10,
                                     sha256="0" * 64, seconds={})


SPAN = {"chunk": "s0-c0", "rows": 2, "start": 0, "offset": 5, "sha256": "0" * 64, "seconds": {}}


def _old_format() -> bytes:
    """A record as chaosjax wrote them before the journal had checksums."""
    return json.dumps({"chunk": "s0-c0", "rows": 2, "offset": 5, "seconds": {}}).encode() + b"\n"


def _sweep_json(content: bytes):
    def setup(tmp_path, reference_dir):
        out = tmp_path / "out"
        shutil.copytree(reference_dir, out)
        (out / "sweep.json").write_bytes(content)
        return out
    return setup


# (id, the TOML (text, or bytes for a binary file), setup of --out or None, what the line must name). Every case:
# exit 2, one line on stderr, no traceback, --out unchanged.
BAD_INPUTS = [
    ("lr-string", TOML.replace("epochs = 3", 'epochs = 3\nlr = "fast"'), None,
     r"bad.toml: \[symbolic\].lr must be a number, got 'fast'"),
    ("methods-int", TOML.replace('methods = ["saliency"]', "methods = 5"), None,
     r"\[symbolic\].methods must be a list of strings, got 5"),
    ("array-of-tables", TOML.replace("[symbolic]", "[[symbolic]]"), None,
     r"\[symbolic\] must be one table, not an array of tables"),
    ("track-not-a-table", "symbolic = 5\n", None, "symbolic must be a table"),
    ("binary-file", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", None, "bad.toml is not a TOML text file"),
    ("not-toml", "[symbolic\nformulas = 1\n", None, "bad.toml is not valid TOML"),
    ("no-such-file", None, None, "no such config file"),
    ("empty-file", "", None, "empty grid"),
    ("formulas-float", TOML.replace('formulas = "0-1"', "formulas = 5.5"), None,
     r"\[symbolic\].formulas must be formula indices"),
    ("formulas-range", TOML.replace('formulas = "0-1"', 'formulas = "0-99"'), None,
     r"\[symbolic\].formulas: index 15 out of range"),
    ("seeds-text", TOML.replace("seeds = [0, 1]", 'seeds = "x"'), None, r"\[symbolic\].seeds: expected integers"),
    ("seeds-float", TOML.replace("seeds = [0, 1]", "seeds = [0.5]"), None, "seeds"),
    ("epochs-bool", TOML.replace("epochs = 3", "epochs = true"), None,
     r"\[symbolic\].epochs must be an integer, got True"),
    ("n-inf", TOML.replace("n = 60", "n = inf"), None, r"\[symbolic\].n must be an integer, got inf"),
    ("noise-axis-strings", TOML.replace("noise = 3", 'noise = [3, "x"]'), None,
     r"each value of \[symbolic\].noise must be an integer, got 'x'"),
    ("lr-negative", TOML.replace("epochs = 3", "epochs = 3\nlr = -1.0"), None,
     r"\[symbolic\].lr: expected a positive number"),
    ("depth-zero", TOML.replace("depth = 1", "depth = 0"), None, r"\[symbolic\].depth: expected an integer >= 1"),
    ("protocol-list", TOML.replace("epochs = 3", 'epochs = 3\nprotocol = ["paper"]'), None,
     r"\[symbolic\].protocol cannot be a list"),
    ("unknown-key", TOML.replace("epochs = 3", "epochs = 3\ntemperature = 1"), None,
     r"unknown key \[symbolic\].temperature"),
    ("chunk-size-string", TOML.replace("chunk_size = 2", 'chunk_size = "2"'), None,
     r"\[sweep\].chunk_size must be an integer"),
    ("combine-int", TOML.replace("chunk_size = 2", "chunk_size = 2\ncombine = 3"), None,
     r"\[sweep\].combine must be one of"),
    ("sweep-key", TOML.replace("chunk_size = 2", "chunk_size = 2\nworkers = 2"), None,
     r"unknown key \[sweep\].workers"),
    ("vision-epochs", '[vision]\nepochs = "many"\n', None, r"\[vision\].epochs must be an integer, got 'many'"),
    ("vision-conditions", "[vision]\nconditions = 3\n", None,
     r"\[vision\].conditions must be a list of strings, got 3"),
    ("audio-speakers", '[audio]\nsource = "synthetic"\nspeakers = 5\n', None,
     r"\[audio\].speakers must be a list of 2 integers"),
    ("audio-gain", '[audio]\nsource = "synthetic"\nbackground_gain = "loud"\n', None,
     r"\[audio\].background_gain must be a number"),
    ("rfe-early-stop", '[rfe]\nearly_stop = "yes"\n', None, r"\[rfe\].early_stop must be true or false, got 'yes'"),
    ("rfe-noise-axis", '[rfe]\nnoise_features = [3, 1.5]\n', None,
     r"each value of \[rfe\].noise_features must be an integer, got 1.5"),
    ("out-is-a-file", TOML, lambda tmp, ref: _file(tmp / "out"), "is not a directory"),
    ("out-under-a-file", TOML, lambda tmp, ref: _file(tmp / "f") / "out", "cannot (be made|create).*: .* is a file"),
    ("sweep-json-not-json", TOML, _sweep_json(b"{\n"), r"sweep.json is not a sweep description \(Expecting"),
    ("sweep-json-list", TOML, _sweep_json(b"[1, 2]"), r"sweep.json is not a sweep description"),
    ("sweep-json-binary", TOML, _sweep_json(b"\xff\xfe\x00"), r"sweep.json is not a sweep description"),
    ("sweep-json-other-config", TOML.replace("epochs = 3", "epochs = 4"), None, "holds a sweep of another config"),
    ("other-process-count", TOML, lambda tmp, ref: _with(_copy(ref, tmp / "out"), "progress.host0.jsonl", b""),
     r"holds a sweep run by several processes \(progress.host0.jsonl\); resume it with as many"),
    ("progress-no-offset", TOML, _progress_edit(_dropped("offset")), r"progress.jsonl line 2 lacks the field 'offset'"),
    ("progress-no-chunk", TOML, _progress_edit(_dropped("chunk")), r"progress.jsonl line 2 lacks the field 'chunk'"),
    ("progress-edited", TOML, _progress_edit(_changed), r"progress.jsonl line 2 does not match its checksum"),
    ("progress-edited-no-lock", TOML, _progress_edit(_changed, lock=False), r"progress.jsonl line 2 does not match"),
    ("progress-not-json", TOML, _progress_edit(lambda ls: ls[0] + b"garbage\n" + ls[1]),
     r"progress.jsonl line 2 is not a JSON record"),
    ("progress-binary", TOML, _progress_edit(lambda ls: b"\xff\x00\x01\n" + b"".join(ls)),
     r"progress.jsonl line 1 is not a JSON record"),
    ("progress-not-object", TOML, _progress_edit(lambda ls: b"[1]\n" + b"".join(ls)),
     r"progress.jsonl line 1 is not a JSON object"),
    ("progress-duplicate", TOML, _progress_edit(lambda ls: b"".join(ls) + ls[1]),
     r"progress.jsonl line 3 records chunk 's0-c1' a second time"),
    ("progress-swapped", TOML, _progress_edit(lambda ls: ls[1] + ls[0]),
     r"progress.jsonl line 1: its rows start at byte"),
    ("progress-foreign-chunk", TOML, _progress_edit(_foreign),
     r"progress.jsonl line 3 records chunk 's9-c9', which is not"),
    ("progress-old-format", TOML, _progress_edit(lambda ls: _old_format()),
     r"progress.jsonl line 1 was written by an earlier chaosjax"),
    ("progress-bad-type", TOML, _progress_edit(lambda ls: _record(**{**SPAN, "rows": "2"})),
     r"progress.jsonl line 1 has rows = '2', not an int"),
    ("progress-bad-span", TOML, _progress_edit(lambda ls: _record(**{**SPAN, "start": 9})),
     r"progress.jsonl line 1 has an impossible span"),
]


@pytest.mark.parametrize("toml, setup, expected", [pytest.param(t, s, e, id=i) for i, t, s, e in BAD_INPUTS])
def test_bad_inputs_are_refused_in_one_line_with_exit_2_and_nothing_written(toml, setup, expected, reference_dir,
                                                                             tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = Path("bad.toml")
    if toml is not None:
        config.write_bytes(toml if isinstance(toml, bytes) else toml.encode())
    if setup is not None:
        out = setup(tmp_path, reference_dir)
    elif "other-config" in expected or "another config" in expected:
        out = tmp_path / "out"
        shutil.copytree(reference_dir, out)
    else:
        out = tmp_path / "out"
    before = _snapshot(out)
    code = cli.main(["sweep", str(config), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("chaosjax: error: ") and "Traceback" not in err, err
    assert re.search(expected, err), err
    assert _snapshot(out) == before
    if "sweep.json" in expected or re.search(r"progress.jsonl line \d+ (is|lacks|does|has|was)", expected):
        # --plan reads the same files and refuses them alike.
        assert cli.main(["sweep", str(config), "--out", str(out), "--plan"]) == 2
        assert capsys.readouterr().err.count("\n") == 1
