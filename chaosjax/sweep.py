"""Sweeps at scale: a grid of cells sharded across devices, written as it goes, resumable.

A sweep is described by a TOML file (or the equivalent dict):

    [sweep]
    chunk_size = 16            # cells trained and attributed together
    combine = "product"        # settings: every combination of the axes; "each": one axis at a time

    [symbolic]
    formulas = "0-14"          # indices, a range string, or formula texts
    seeds = "0-2"
    noise = [50, 100, 150]     # a list makes an axis of the grid; a scalar is fixed
    lr = [1e-3, 3e-3]
    methods = "all"
    epochs = 1000

    [vision]                   # VisionConfig's fields; a list on a scalar field makes an axis
    conditions = ["RBFP", "SBRP"]
    seeds = "0-2"
    learning_rate = [3e-3, 1e-2]

    [audio]                    # AudioConfig's fields, likewise
    models = ["tcn", "lstm"]
    background_gain = [0.2, 1.0]

    [rfe]                      # RFEConfig's fields, likewise
    formulas = "10-14"
    noise_features = [50, 150]

The grid is tracks x formulas (conditions x models) x seeds x settings: the product of the list-valued
axes, or with `combine = "each"` every axis alone around the fixed values (the study's ablation; a setting
met on several axes, such as the defaults, runs once, and its symbolic rows are written once per axis with
`sweep_axis` naming it, as separate one-axis sweeps would give them). `results.csv` has the union of the
tracks' columns.
Every chunk's grid axis is split across every local device (`chaosjax._placement.GridPlacement`: a `Mesh`
and a `NamedSharding` on the leading axis; padded to a multiple of the device count with copies of the
last member, whose rows are dropped):

* symbolic: cells of one setting, cut into chunks of `chunk_size`; a chunk is one program over its cells
  (`chaosjax.tracks.symbolic.train_grid` and `attribute_grid`). A cell's numbers do not depend on its chunk: on
  a CPU each cell is computed alone (a `lax.map`; XLA rounds a vmapped reduction differently for each batch
  size, and 1,000 epochs grow that to ~1e-4 in test MAE), so a cell is bit-identical in chunks of any size
  and in the `symbolic` command. Split across several devices, or on an accelerator, cells run side by side
  (`vmap`) and agree with other chunkings to that float rounding only;
* vision and audio: one (model, condition) of a setting, its seeds trained side by side
  (`train_cell`) and then attributed (`attribute_cell`) by the track's own functions;
* RFE: one setting, its eliminations (datasets x seeds x methods x schedules) one program.

JAX's own engine does the scheduling; `workers` > 1 keeps several chunks in flight, so that one chunk's
compilation (a new setting's programs) overlaps another's device work, with rows still written in plan
order.

Nothing lost, nothing doubled, nothing silently wrong (`chaosjax._journal`):

* Journal. After each chunk its rows are appended to `DIR/results.csv` (fsynced), then one line is appended to
  `DIR/progress.jsonl` (one write, fsynced): the chunk, its row count, the byte span of its rows with their
  SHA-256, its timings, and a checksum of the line. A kill can only tear the last line (a fragment without a
  newline): the next run drops it and says so, and its chunk runs again. A complete line that is not a valid
  record (edited, damaged, a field missing, a chunk twice or out of order) is refused, naming the file and line.
* Results. On resume each recorded chunk's rows must be in `results.csv` byte for byte: from the first chunk
  whose rows were edited or deleted (or a missing file) the file as found is copied to `DIR/previous-<time>/`,
  cut there, and that chunk and every later one run again (from their checkpoints), as one line says. Rows
  past the last recorded chunk (a kill between rows and record) are dropped, likewise said.
* Checkpoints. A symbolic, vision or audio chunk's trained params (its real cells or seeds, so that any device
  count restores them) go to `DIR/checkpoints/<chunk>` (orbax) before attribution, then a marker with the
  training time and the SHA-256 of every file and of the arrays. A checkpoint without its marker (killed while
  saving), whose files or arrays do not match, or that orbax cannot read, is said in one line and its chunk
  trained again; its files are checked before orbax reads them. An RFE chunk, whose every round retrains and
  ranks, is not checkpointed and reruns whole if killed.
* Lock. A run holds `DIR/sweep.lock` (`flock`, with its pid, host and start time inside) until it ends: a
  second run into `DIR` is refused in one line naming the holder; the lock of a process that died (the kernel
  releases it; its record stays) is reclaimed, and the run says so.
* Nothing written on bad input. The description, `--out` and a directory's own files are all checked before
  anything is written; a run into a directory without a sweep that fails before recording its first chunk
  removes what it wrote (so the corrected config is not refused as "another config").

A `DIR` made by a different config is refused unless `force_new`, which moves the old files to
`DIR/previous-<time>/` (nothing is deleted). From the command line, a rerun loads its compiled programs from
JAX's persistent cache instead of compiling them again (on by default, `chaosjax._cache`; a 3-formula sweep on CPU
took 6.5 s, then 3.5 s); from Python, set `jax_compilation_cache_dir` for the same.

Multi-host: when `jax.distributed` is configured (`JAX_COORDINATOR_ADDRESS` with `JAX_NUM_PROCESSES` and
`JAX_PROCESS_ID`, or `CHAOSJAX_DISTRIBUTED=1` on a platform whose environment `jax.distributed.initialize()`
reads), process `p` of `P` runs chunks `p, p + P, ...` on its local devices, writes `results.host<p>.csv`
and checkpoints of its own, with a journal `progress.host<p>.jsonl` of its own; process 0 merges the results into
`results.csv` at the end. Each process holds `sweep.lock` shared (the job's processes share the directory; a
one-process run is refused) and `sweep.host<p>.lock` exclusively (a process of another job is refused, as is a
job whose other processes' locks a live job holds); a directory is resumed with the process count it started
with. Tested with two CPU processes on one machine:

    JAX_COORDINATOR_ADDRESS=localhost:1234 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=0 chaosjax sweep g.toml --out d &
    JAX_COORDINATOR_ADDRESS=localhost:1234 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=1 chaosjax sweep g.toml --out d
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import json
import os
import shutil
import sys
import threading
import time
import tomllib
import types
import typing
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from chaosjax import _journal, runs
from chaosjax._placement import GridPlacement
from chaosjax._progress import Progress
from chaosjax import tracks
from chaosjax.tracks import Chunk

_SWEEP_KEYS = {"chunk_size", "combine"}
COMBINE = ("product", "each")  # how list-valued axes make settings; see `_combinations`


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    spec: dict[str, Any]  # the normalised description (what config.json and the resume check compare)
    chunks: tuple[Chunk, ...]

    @property
    def cells(self) -> int:
        return sum(c.size for c in self.chunks)

    @property
    def tracks(self) -> tuple[str, ...]:
        return tuple(t for t in tracks.names() if t in self.spec)

    @property
    def columns(self) -> tuple[str, ...]:
        """The results file's columns: the union of the tracks' columns, in track order, and of those their settings
        add (the symbolic proxies'), then any swept field a track's own columns lack (e.g. vision's
        ``learning_rate``), so that every row names its setting."""
        own = [c for t in self.tracks for c in tracks.get(t).columns]
        own += [c for chunk in self.chunks for c in tracks.get(chunk.track).setting_columns(chunk.setting)]
        swept = [a for c in self.chunks for a in c.axes]
        return tuple(dict.fromkeys(own + swept))


def load_toml(path: str | os.PathLike) -> dict[str, Any]:
    """The TOML file `path` as a dict; ValueError naming the file when it is missing, unreadable, not text or not
    TOML."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"sweep: no such config file {str(path)!r}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"sweep: {path} is not a TOML text file (byte {err.start} is not UTF-8)") from None
    except OSError as err:
        raise ValueError(f"sweep: cannot read {path}: {err.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"sweep: {path} is not valid TOML: {err}") from None


def _int_list(value, key) -> tuple[int, ...]:
    from chaosjax._parse import parse_int_range

    if isinstance(value, str):
        try:
            return parse_int_range(value, key)
        except ValueError as err:
            raise ValueError(f"sweep: {key}: {str(err).partition(': ')[2]}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    raise ValueError(f"sweep: `{key}` must be integers (a list or a range like '0-4'), got {_shown(value)}")


def _formulas(value, key) -> tuple[int | str, ...]:
    """A `formulas` entry: a range string ('0-4', '3,5'), a formula text, an index, or a list of those."""
    from chaosjax._parse import parse_formulas

    if isinstance(value, str):
        try:
            return parse_formulas(value)
        except ValueError as err:
            raise ValueError(f"sweep: {key}: {str(err).partition(': ')[2]}") from None
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)) for v in values):
        raise ValueError(f"sweep: {key} must be formula indices or texts (a list, or a range like '0-4'), "
                         f"got {_shown(value)}")
    return tuple(values)


def _shown(value: Any) -> str:
    """A TOML value for a message, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fits(value: Any, hint: Any) -> bool:
    """Whether a TOML value has the type a config field declares (`None` never: TOML has no null)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, h) for h in args)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(v, args[0]) for v in value)
        return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return hint is not type(None)  # anything else is the config's own validation's


def _kind(hint: Any) -> str:
    """What a field of type `hint` takes, in words."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_kind(h) for h in args if h is not type(None))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_kind(args[0]).removeprefix('an ').removeprefix('a ')}s"
        return f"a list of {len(args)} {_kind(args[0]).removeprefix('an ').removeprefix('a ')}s"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def _check_type(key: str, value: Any, hint: Any, axis: bool, written: Any = None) -> None:
    """Raises ValueError naming `key` when `value` (each element of a list, where a list makes an axis) does not
    have the field's type; the message shows `written` (what the file says) when given."""
    values = value if axis else [value]
    for v in values:
        if not _fits(v, hint):
            each = "each value of " if axis else ""
            shown = v if axis or written is None else written
            raise ValueError(f"sweep: {each}{key} must be {_kind(hint)}, got {_shown(shown)}")


def plan(description: Mapping[str, Any], *, source: str | os.PathLike | None = None) -> SweepPlan:
    """Validates a sweep description and cuts its grid into chunks. Raises ValueError naming the key (and
    `source`, the file the description came from, when given)."""
    try:
        return _plan(description)
    except (ValueError, TypeError) as err:
        message = str(err)
        if source is not None:
            message = (f"sweep: {source}: {message.removeprefix('sweep: ')}")
        elif not message.startswith("sweep: "):
            message = f"sweep: {message}"
        raise ValueError(message) from None


def _table(description: Mapping[str, Any], name: str) -> dict[str, Any]:
    table = description.get(name, {})
    if isinstance(table, list):
        raise ValueError(f"[{name}] must be one table, not an array of tables ([[{name}]])")
    if not isinstance(table, Mapping):
        raise ValueError(f"{name} must be a table ([{name}]), got {_shown(table)}")
    return dict(table)


def _plan(description: Mapping[str, Any]) -> SweepPlan:
    if not isinstance(description, Mapping):
        raise TypeError(f"sweep: a description is a dict of tables, got {type(description).__name__}")
    description = dict(description)
    known = tracks.names()
    unknown_tables = [k for k in description if k != "sweep" and k not in known]
    if unknown_tables:
        raise ValueError(f"sweep: unknown track {unknown_tables[0]!r}; tracks a sweep can run: {', '.join(known)}")
    options = _table(description, "sweep")
    for key in options:
        if key not in _SWEEP_KEYS:
            raise ValueError(f"sweep: unknown key [sweep].{key}; expected one of {', '.join(sorted(_SWEEP_KEYS))}")
    chunk_size = options.get("chunk_size", 16)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"sweep: [sweep].chunk_size must be an integer >= 1, got {_shown(chunk_size)}")
    combine = options.get("combine", "product")
    if not isinstance(combine, str) or combine not in COMBINE:
        raise ValueError(f"sweep: [sweep].combine must be one of {', '.join(map(repr, COMBINE))}, "
                         f"got {_shown(combine)}")
    if not any(t in description for t in known):
        raise ValueError(f"sweep: empty grid: no track table (add one of {', '.join(f'[{t}]' for t in known)})")
    spec: dict[str, Any] = {"sweep": {"chunk_size": chunk_size}}
    if combine != "product":  # recorded only when set, so that directories of earlier sweeps still resume
        spec["sweep"]["combine"] = combine
    chunks: list[Chunk] = []
    for name in known:
        if name in description:
            spec[name], track_chunks = _plan_track(tracks.get(name), _table(description, name), chunk_size, combine)
            chunks.extend(track_chunks)
    if not chunks:
        raise ValueError("sweep: empty grid")
    return SweepPlan(spec, tuple(chunks))


def _combinations(axes: dict[str, list], combine: str) -> list[tuple[dict[str, Any], str | None]]:
    """The settings' overrides of the fixed values, each with the axis it sweeps: ``"product"``, every
    combination of the axes' values (no one axis); ``"each"``, every axis alone with the others at their fixed
    values (the study's ablation, docs/protocol.md, "Symbolic")."""
    if combine == "product":
        return [(dict(zip(axes, values)), None) for values in itertools.product(*axes.values())]
    return [({key: value}, key) for key, values in axes.items() for value in values] or [({}, None)]


def _distinct(settings: list[tuple[Any, str | None]]) -> list[tuple[Any, tuple[str, ...]]]:
    """Each distinct setting once, with every axis it lies on (under ``"each"``, the fixed values recur on every
    axis that lists them)."""
    first: dict[str, tuple[Any, list[str]]] = {}
    for setting, axis in settings:
        _, axes = first.setdefault(repr(setting), (setting, []))  # repr: a field's value may be unhashable
        if axis is not None:
            axes.append(axis)
    return [(setting, tuple(axes)) for setting, axes in first.values()]


def _field_value(track: tracks.Track, key: str, field: str, value: Any, hint: Any, where: str) -> Any:
    """A fixed (not swept) TOML value as the config field's value: the track's own parser, a seeds or formulas
    range, ``methods = "all"``, or a list field's values; the type checked against the field's."""
    if field in track.parsers:
        return track.parsers[field](value, where)
    if field == "seeds":
        return _int_list(value, where)
    if field == "formulas":
        return _formulas(value, where)
    if field == "methods" and value == "all":
        return None
    if field in track.list_fields:
        values = value if isinstance(value, list) else [value]
        _check_type(where, values, hint, axis=False, written=value)
        return tuple(values)
    _check_type(where, value, hint, axis=False)
    return value


def _plan_track(track: tracks.Track, table: dict[str, Any], chunk_size: int, combine: str = "product"
                ) -> tuple[dict[str, Any], list[Chunk]]:
    """One track's table: its config's fields (`Track.toml_keys`); a list on a key of `Track.axes` (default: any
    field not in `Track.list_fields`) makes an axis. Returns the track's spec and its chunks."""
    name, keys = track.name, track.toml_keys()
    hints = typing.get_type_hints(track.config)
    axes_allowed = track.axes if track.axes is not None else [k for k, f in keys.items() if f not in track.list_fields]
    fixed: dict[str, Any] = {}
    axes: dict[str, list] = {}
    for key, value in table.items():
        if key not in keys:
            raise ValueError(f"sweep: unknown key [{name}].{key}; expected one of {', '.join(keys)}")
        twice = [k for k in table if k != key and keys.get(k) == keys[key]]
        if twice:
            raise ValueError(f"sweep: [{name}].{key} and [{name}].{twice[0]} set the same field; keep one")
        field, where = keys[key], f"[{name}].{key}"
        if isinstance(value, list) and key in axes_allowed and field not in track.parsers:
            if not value:
                raise ValueError(f"sweep: empty grid: [{name}].{key} is an empty list")
            _check_type(where, value, hints[field], axis=True)
            axes[key] = value
        elif isinstance(value, list) and field not in track.list_fields and field not in track.parsers \
                and field not in ("seeds", "formulas"):
            raise ValueError(f"sweep: [{name}].{key} cannot be a list; axes are {', '.join(axes_allowed)}")
        else:
            fixed[field] = _field_value(track, key, field, value, hints[field], where)
    for field in ("formulas", "conditions", "models", "seeds"):
        if field in fixed and fixed[field] is not None and not fixed[field]:
            key = next(k for k, f in keys.items() if f == field)
            raise ValueError(f"sweep: empty grid: [{name}].{key} is empty")
    try:
        base = track.config(**fixed)
    except TypeError as err:
        raise ValueError(f"sweep: [{name}]: {err}") from None
    settings = []
    for overrides, axis in _combinations(axes, combine):
        setting = dataclasses.replace(base, **{keys[k]: v for k, v in overrides.items()})
        try:
            setting.validate()
        except (ValueError, TypeError) as err:
            raise ValueError(f"sweep: [{name}].{err}") from None
        settings.append((setting, axis))
    chunks = []
    for index, (setting, on_axes) in enumerate(_distinct(settings)):
        chunks.extend(track.split(setting, index, chunk_size=chunk_size, axes=tuple(keys[k] for k in axes),
                                  sweep_axes=on_axes))
    spec = {"fixed": json.loads(json.dumps(base.to_json(), default=str)),
            "axes": {k: list(v) for k, v in axes.items()}}
    return spec, chunks


# ------------------------------------------------------------------------------------------- devices


def _distributed() -> tuple[int, int]:
    """(process index, count), initialising jax.distributed when its environment is present."""
    if os.environ.get("JAX_COORDINATOR_ADDRESS") or os.environ.get("CHAOSJAX_DISTRIBUTED") == "1":
        if not jax.distributed.is_initialized():
            # The coordinator's address is read by JAX itself; the process count and index are passed on from
            # JAX_NUM_PROCESSES / JAX_PROCESS_ID when set (a cluster such as SLURM or a TPU pod supplies them).
            counts = {arg: int(os.environ[env]) for arg, env in (("num_processes", "JAX_NUM_PROCESSES"),
                                                                  ("process_id", "JAX_PROCESS_ID"))
                      if os.environ.get(env)}
            # Processes sync at the end through a collective; on CPU-only hosts that needs gloo (accelerator
            # clients are unaffected).
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
            jax.distributed.initialize(**counts)
    return jax.process_index(), jax.process_count()


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


# ------------------------------------------------------------------------------------------------ run


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


def describe(sweep_plan: SweepPlan, out: str | os.PathLike | None = None) -> str:
    """What a sweep will run, per track (settings, chunks, cells), and how much of it `out` already holds."""
    combine = sweep_plan.spec["sweep"].get("combine", "product")
    lines = [f"sweep: {len(sweep_plan.chunks)} chunks, {sweep_plan.cells} cells ({combine} of the axes)"]
    for track in sweep_plan.tracks:
        chunks = [c for c in sweep_plan.chunks if c.track == track]
        settings = len({c.setting_index for c in chunks})
        axes = ", ".join(f"{k} ({len(v)})" for k, v in sweep_plan.spec[track]["axes"].items()) or "none"
        lines.append(f"  {track}: {settings} settings, {len(chunks)} chunks, {sum(c.size for c in chunks)} cells; "
                     f"axes: {axes}")
    if out is not None and (Path(out) / "sweep.json").exists():
        path = Path(out)
        if _holds(path, sweep_plan.spec):
            recorded = set(_chunk_records(path))
            done = [c for c in sweep_plan.chunks if c.id in recorded]
            lines.append(f"{out}: {len(done)} of {len(sweep_plan.chunks)} chunks recorded "
                         f"({sum(c.size for c in done)} cells); rerunning resumes there")
        else:
            lines.append(f"{out}: holds a sweep of another config (refused unless --force-new)")
    return "\n".join(lines)


def add_cli(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="run (or resume) a grid described in a TOML file, sharded across devices",
        description="Run a grid of cells from a TOML description, sharded across all local devices, writing "
                    "results as each chunk finishes. Rerun the same command to resume after an interruption.",
    )
    p.add_argument("config", help="the sweep's TOML file")
    p.add_argument("--out", required=True, help="results directory (resumed if it holds this sweep)")
    p.add_argument("--force-new", action="store_true",
                   help="start over in a directory of another config (its files move to previous-<time>/)")
    p.add_argument("--quiet", action="store_true", help="a log line per chunk instead of the progress line")
    p.add_argument("--plan", action="store_true",
                   help="print the grid (settings, chunks, cells; chunks already recorded in --out) and stop")
    p.add_argument("--workers", type=int, default=1,
                   help="chunks in flight at once, each compiling in a thread of its own (results unchanged); "
                        "on an accelerator, more than 1 overlaps one chunk's compilation with another's device work")

    def handler(args) -> int:
        description = load_toml(args.config)
        sweep_plan = plan(description, source=args.config)
        if args.plan:
            print(describe(sweep_plan, args.out))
            return 0
        frame = run(description, args.out, force_new=args.force_new, progress=not args.quiet,
                    workers=args.workers, source=args.config)
        spec = sweep_plan.spec
        combine = spec["sweep"].get("combine", "product")
        for name in sweep_plan.tracks:
            rows = frame.loc[frame["track"] == name] if len(frame) else frame
            if len(rows):
                print(tracks.get(name).summary_table(rows, {**spec[name], "combine": combine}))
        if not len(frame):
            print("no results")
        print(f"\nresults: {args.out}/results.csv")
        return 0

    p.set_defaults(handler=handler)
