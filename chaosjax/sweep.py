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

* symbolic: cells of one setting, cut into chunks of `chunk_size`; a chunk is one `jit(vmap(...))`
  program over its cells;
* vision and audio: one (model, condition) of a setting, its seeds trained side by side
  (`train_cell`) and then attributed (`attribute_cell`) by the track's own functions;
* RFE: one setting, its eliminations (datasets x seeds x methods x schedules) one program.

JAX's own engine does the scheduling; `workers` > 1 keeps several chunks in flight, so that one chunk's
compilation (a new setting's programs) overlaps another's device work, with rows still written in plan
order.

Resume without loss: after each chunk its rows are appended to `DIR/results.csv` (flushed and
fsynced), then the chunk is recorded in `DIR/progress.jsonl` with the byte size of the results
file at that point. A symbolic, vision or audio chunk's trained params (its real cells or seeds, so
that any device count restores them) go to `DIR/checkpoints/<chunk>` (orbax) before attribution; an
RFE chunk, whose every round retrains and ranks, is not checkpointed and reruns whole if killed. A
rerun on the same `DIR` skips recorded chunks, drops any tail of the results file that no chunk
recorded (rows of a chunk that was killed while writing), restores trained-but-unattributed chunks
from their checkpoints, and runs the rest. A `DIR` made by a different config is refused unless
`force_new`, which moves the old files to `DIR/previous-<time>/` (nothing is deleted). A rerun compiles
its programs again; with JAX's persistent cache (`JAX_COMPILATION_CACHE_DIR=~/.cache/jax`, and
`JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0` to keep small programs too) it loads them instead: a
3-formula sweep on CPU took 6.5 s, then 3.5 s.

Multi-host: when `jax.distributed` is configured (`JAX_COORDINATOR_ADDRESS` with `JAX_NUM_PROCESSES` and
`JAX_PROCESS_ID`, or `CHAOSJAX_DISTRIBUTED=1` on a platform whose environment `jax.distributed.initialize()`
reads), process `p` of `P` runs chunks `p, p + P, ...` on its local devices, writes `results.host<p>.csv`
and checkpoints of its own; process 0 merges the results into `results.csv` at the end. Tested with two CPU
processes on one machine:

    JAX_COORDINATOR_ADDRESS=localhost:1234 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=0 chaosjax sweep g.toml --out d &
    JAX_COORDINATOR_ADDRESS=localhost:1234 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=1 chaosjax sweep g.toml --out d
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import json
import os
import shutil
import threading
import time
import tomllib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from chaosjax._placement import GridPlacement
from chaosjax.tracks import symbolic as sym

TRACKS = ("symbolic", "vision", "audio", "rfe")
_SWEEP_KEYS = {"chunk_size", "combine"}
COMBINE = ("product", "each")  # how list-valued axes make settings; see `_combinations`
# Tracks run by their own functions: vision and audio one chunk per setting x model x condition (its seeds side
# by side), RFE one chunk per setting (all its eliminations are one program). Their TOML keys are the
# config's field names; these fields take lists without being axes.
_TUPLE_FIELDS = {"vision": ("conditions", "models", "methods", "seeds"),
                 "audio": ("conditions", "models", "methods", "seeds", "speakers"),
                 "rfe": ("formulas", "methods", "baselines", "schedules", "seeds")}
# TOML key -> SymbolicConfig field; the axes a list may sweep.
_SYMBOLIC_KEYS = {
    "formulas": "formulas", "seeds": "seeds", "methods": "methods", "noise": "noise_features", "n": "n",
    "depth": "depth", "width": "width", "activation": "activation", "lr": "learning_rate",
    "optimizer": "optimizer", "dropout": "dropout", "label_noise": "label_noise", "epochs": "epochs",
    "ig_steps": "ig_steps", "smoothgrad_samples": "smoothgrad_samples", "shap_samples": "shap_samples",
    "protocol": "protocol",
}
_AXES = ("noise", "n", "depth", "width", "activation", "lr", "optimizer", "dropout", "label_noise", "epochs")
_RESULT_COLUMN = {"noise": "noise_features", "activation": "model"}  # axis -> results.csv column
_SWEEP_AXIS = {"label_noise": "label-noise"}  # axis -> its name in the sweep_axis column (the CLI's `--sweep`)


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Cells computed together: symbolic cells of one setting; one (model, condition) of a vision or audio
    setting with all its seeds (`setting` names that one model and condition); or one RFE setting. `cells` is
    empty but for symbolic chunks."""

    id: str
    setting: Any  # SymbolicConfig, VisionConfig, AudioConfig or RFEConfig
    cells: tuple[sym.Cell, ...] = ()
    track: str = "symbolic"
    axes: tuple[str, ...] = ()  # a runner-run track's swept fields: written as columns of its rows
    sweep_axes: tuple[str, ...] = ()  # combine = "each": the axes whose one-at-a-time sweep holds this setting
    setting_index: int = 0  # which of its track's settings

    @property
    def size(self) -> int:
        """Cells in the chunk (vision and audio: its seeds; RFE: datasets x seeds)."""
        if self.track == "symbolic":
            return len(self.cells)
        if self.track == "rfe":
            datasets = len(self.setting.formulas) if self.setting.dataset == "symbolic" else 1
            return datasets * len(self.setting.seeds)
        return len(self.setting.seeds)

    @property
    def label(self) -> str:
        if self.track == "symbolic":
            return (f"{self.cells[0].label}..{self.cells[-1].label} "
                    f"seeds {sorted({c.seed for c in self.cells})}")
        if self.track == "rfe":
            return f"rfe {self.setting.dataset}"
        return f"{self.track} {self.setting.models[0]} {self.setting.conditions[0]}"


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    spec: dict[str, Any]  # the normalised description (what config.json and the resume check compare)
    chunks: tuple[Chunk, ...]

    @property
    def cells(self) -> int:
        return sum(c.size for c in self.chunks)

    @property
    def tracks(self) -> tuple[str, ...]:
        return tuple(t for t in TRACKS if t in self.spec)

    @property
    def columns(self) -> tuple[str, ...]:
        """The results file's columns: the union of the tracks' columns, in track order, then any swept field a
        track's own columns lack (e.g. vision's ``learning_rate``), so that every row names its setting."""
        own = [c for t in self.tracks for c in _columns(t)]
        swept = [a for t in self.tracks if t != "symbolic" for a in self.spec[t]["axes"]]
        return tuple(dict.fromkeys(own + swept))


def _track_module(track: str):
    from chaosjax.tracks import audio, rfe, vision

    return {"symbolic": sym, "vision": vision, "audio": audio, "rfe": rfe}[track]


def _columns(track: str) -> tuple[str, ...]:
    return tuple(_track_module(track).COLUMNS)


def load_toml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"sweep: no such config file {str(path)!r}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"sweep: {path} is not valid TOML: {err}") from None


def _int_list(value, key) -> tuple[int, ...]:
    from chaosjax._parse import parse_int_range

    if isinstance(value, str):
        return parse_int_range(value, key)
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    raise ValueError(f"sweep: `{key}` must be integers (a list or a range like '0-4'), got {value!r}")


def plan(description: Mapping[str, Any]) -> SweepPlan:
    """Validates a sweep description and cuts its grid into chunks. Raises ValueError naming the key."""
    description = dict(description)
    unknown_tables = [k for k in description if k != "sweep" and k not in TRACKS]
    if unknown_tables:
        raise ValueError(f"sweep: unknown track {unknown_tables[0]!r}; tracks a sweep can run: {', '.join(TRACKS)}")
    options = dict(description.get("sweep", {}))
    for key in options:
        if key not in _SWEEP_KEYS:
            raise ValueError(f"sweep: unknown key [sweep].{key}; expected one of {', '.join(sorted(_SWEEP_KEYS))}")
    chunk_size = options.get("chunk_size", 16)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"sweep: [sweep].chunk_size must be an integer >= 1, got {chunk_size!r}")
    combine = options.get("combine", "product")
    if combine not in COMBINE:
        raise ValueError(f"sweep: [sweep].combine must be one of {', '.join(map(repr, COMBINE))}, got {combine!r}")
    if not any(t in description for t in TRACKS):
        raise ValueError(f"sweep: empty grid: no track table (add one of {', '.join(f'[{t}]' for t in TRACKS)})")
    spec: dict[str, Any] = {"sweep": {"chunk_size": chunk_size}}
    if combine != "product":  # recorded only when set, so that directories of earlier sweeps still resume
        spec["sweep"]["combine"] = combine
    chunks: list[Chunk] = []
    if "symbolic" in description:
        spec["symbolic"], symbolic_chunks = _plan_symbolic(dict(description["symbolic"]), chunk_size, combine)
        chunks.extend(symbolic_chunks)
    for track in _TUPLE_FIELDS:
        if track in description:
            spec[track], track_chunks = _plan_cells(track, dict(description[track]), combine)
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


def _plan_symbolic(table: dict[str, Any], chunk_size: int, combine: str = "product"
                   ) -> tuple[dict[str, Any], list[Chunk]]:
    for key in table:
        if key not in _SYMBOLIC_KEYS:
            raise ValueError(f"sweep: unknown key [symbolic].{key}; expected one of {', '.join(_SYMBOLIC_KEYS)}")

    fixed: dict[str, Any] = {}
    axes: dict[str, list] = {}
    for key, value in table.items():
        field = _SYMBOLIC_KEYS[key]
        if key == "formulas":
            if isinstance(value, str):
                from chaosjax._parse import parse_formulas

                fixed[field] = parse_formulas(value)
            elif isinstance(value, list):
                fixed[field] = tuple(value)
            else:
                fixed[field] = (value,)
        elif key == "seeds":
            fixed[field] = _int_list(value, "[symbolic].seeds")
        elif key == "methods":
            fixed[field] = None if value == "all" else tuple([value] if isinstance(value, str) else value)
        elif isinstance(value, list):
            if key not in _AXES:
                raise ValueError(f"sweep: [symbolic].{key} cannot be a list; axes are {', '.join(_AXES)}")
            if not value:
                raise ValueError(f"sweep: empty grid: [symbolic].{key} is an empty list")
            axes[key] = value
        else:
            fixed[field] = value
    for key in ("formulas", "seeds"):
        if key in fixed and not fixed[key]:
            raise ValueError(f"sweep: empty grid: [symbolic].{key} is empty")

    try:
        base = sym.SymbolicConfig(**fixed)
    except TypeError as err:
        raise ValueError(f"sweep: {err}") from None
    settings = []
    for overrides, axis in _combinations(axes, combine):
        setting = dataclasses.replace(base, **{_SYMBOLIC_KEYS[k]: v for k, v in overrides.items()})
        setting.validate()
        settings.append((setting, axis))
    chunks = []
    for s, (setting, on_axes) in enumerate(_distinct(settings)):
        cells = sym.cells_of(setting)
        for c in range(0, len(cells), chunk_size):
            chunks.append(Chunk(f"s{s}-c{c // chunk_size}", setting, tuple(cells[c:c + chunk_size]),
                                sweep_axes=tuple(_SWEEP_AXIS.get(a, a) for a in on_axes), setting_index=s))
    spec = {"fixed": json.loads(json.dumps(base.to_json(), default=str)),
            "axes": {k: list(v) for k, v in axes.items()}}
    return spec, chunks


def _plan_cells(track: str, table: dict[str, Any], combine: str = "product") -> tuple[dict[str, Any], list[Chunk]]:
    """A vision, audio or RFE table: config fields; a list on a field not in `_TUPLE_FIELDS` makes an axis."""
    config_type = getattr(_track_module(track), {"vision": "VisionConfig", "audio": "AudioConfig",
                                                  "rfe": "RFEConfig"}[track])
    fields = [f.name for f in dataclasses.fields(config_type)]
    tuple_fields = _TUPLE_FIELDS[track]
    fixed: dict[str, Any] = {}
    axes: dict[str, list] = {}
    for key, value in table.items():
        if key not in fields:
            raise ValueError(f"sweep: unknown key [{track}].{key}; expected one of {', '.join(fields)}")
        if key == "seeds":
            fixed[key] = _int_list(value, f"[{track}].seeds")
        elif key == "methods" and value == "all":
            from chaosjax import attribution

            fixed[key] = tuple(attribution.METHODS) if track == "rfe" else None
        elif key == "formulas" and isinstance(value, str):
            from chaosjax._parse import parse_formulas

            fixed[key] = parse_formulas(value)
        elif key in tuple_fields:
            fixed[key] = tuple([value] if isinstance(value, str) else value)
        elif isinstance(value, list):
            if not value:
                raise ValueError(f"sweep: empty grid: [{track}].{key} is an empty list")
            axes[key] = value
        else:
            fixed[key] = value
    for key in ("conditions", "models", "seeds"):
        if key in fixed and not fixed[key]:
            raise ValueError(f"sweep: empty grid: [{track}].{key} is empty")
    try:
        base = config_type(**fixed)
    except TypeError as err:
        raise ValueError(f"sweep: [{track}]: {err}") from None
    settings = []
    for overrides, axis in _combinations(axes, combine):
        setting = dataclasses.replace(base, **overrides)
        try:
            setting.validate()
        except ValueError as err:
            raise ValueError(f"sweep: [{track}].{err}") from None
        settings.append((setting, axis))
    chunks = []
    for s, (setting, _) in enumerate(_distinct(settings)):
        if track == "rfe":
            chunks.append(Chunk(f"rfe-s{s}", setting, track=track, axes=tuple(axes), setting_index=s))
            continue
        for model in setting.models:
            for condition in setting.conditions:
                one = dataclasses.replace(setting, models=(model,), conditions=(condition,))
                chunks.append(Chunk(f"{track}-s{s}-{model}-{condition}", one, track=track, axes=tuple(axes),
                                    setting_index=s))
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


class _Store:
    """Append-only results with a progress log; see the module docstring."""

    def __init__(self, path: Path, host: int, hosts: int, columns: tuple[str, ...] = tuple(sym.COLUMNS)):
        self.path = path
        self.columns = list(columns)
        suffix = "" if hosts == 1 else f".host{host}"
        self.results = path / f"results{suffix}.csv"
        self.progress = path / f"progress{suffix}.jsonl"
        self.checkpoints = path / "checkpoints"

    def done(self) -> dict[str, dict]:
        """Recorded chunks; also cuts the results file back to the last recorded size."""
        entries = _read_progress(self.progress)
        size = max((e["offset"] for e in entries.values()), default=0)
        if self.results.exists() and self.results.stat().st_size > size:
            with open(self.results, "r+b") as fh:
                fh.truncate(size)  # rows past the last recorded chunk were never finished
        return entries

    def append(self, chunk_id: str, rows: list[dict], seconds: dict[str, float]) -> None:
        import pandas as pd

        frame = pd.DataFrame(rows, columns=self.columns)
        header = not self.results.exists() or self.results.stat().st_size == 0
        text = frame.to_csv(index=False, header=header)
        with open(self.results, "a") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
            offset = fh.tell()
        with open(self.progress, "a") as fh:
            fh.write(json.dumps({"chunk": chunk_id, "rows": len(rows), "offset": offset, "seconds": seconds}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def checkpoint_path(self, chunk_id: str) -> Path:
        return self.checkpoints / chunk_id

    def save_trained(self, chunk_id: str, tree: Any, seconds: float) -> None:
        """Saves a chunk's trained arrays (its real cells only, so that any device count can restore them) and
        its training time."""
        target = self.checkpoint_path(chunk_id)
        if target.exists():
            shutil.rmtree(target)  # an unfinished save of a killed run
        # Host copies: each process saves its own chunks alone (device arrays of one host are not global).
        _checkpointer().save(target.resolve(), jax.device_get(tree))
        (target / "chaosjax_seconds.json").write_text(json.dumps({"train_seconds": seconds}))

    def restore_trained(self, chunk_id: str, template) -> tuple[Any, float] | None:
        """(arrays shaped like what `template()` returns, training seconds), or None when the chunk has no finished
        checkpoint. `template` is only traced for its shapes (`jax.eval_shape`), never run."""
        target = self.checkpoint_path(chunk_id)
        meta = target / "chaosjax_seconds.json"
        if not meta.exists():  # written last: without it the save did not finish
            return None
        restored = _checkpointer().restore(target.resolve(), jax.eval_shape(template))
        return restored, json.loads(meta.read_text())["train_seconds"]


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


def _read_progress(log: Path) -> dict[str, dict]:
    """The chunks a progress log records, by id."""
    entries: dict[str, dict] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill: its chunk reruns
            entries[entry["chunk"]] = entry
    return entries


def _chunk_records(path: Path) -> dict[str, dict]:
    """Every recorded chunk of the sweep in `path`, from every host's progress log."""
    return {k: v for log in sorted(path.glob("progress*.jsonl")) for k, v in _read_progress(log).items()}


def _unpadded(rows: list[dict], padded: int, real: int) -> list[dict]:
    """Rows of the real members only: each method's rows come in member order, `padded` of them, the copies last."""
    return [r for i, r in enumerate(rows) if i % padded < real]


def _compute_symbolic(chunk: Chunk, store: _Store, lock: threading.Lock, place: GridPlacement):
    """Trains (or restores) and attributes a symbolic chunk, its cells padded to the device count."""
    cells = place.pad(chunk.cells)
    real = len(chunk.cells)
    t0 = time.perf_counter()
    grid = sym.build_grid(chunk.setting, cells)
    model = sym.model_of(chunk.setting)
    def template():
        return {"params": jax.vmap(model.init)(jnp.stack([sym._stream(c, 1) for c in chunk.cells])),
                "losses": jnp.zeros((real, chunk.setting.epochs), jnp.float32)}

    def train():
        trained = sym.train_grid(chunk.setting, grid, place=place)
        return {"params": trained.params, "losses": trained.losses}, trained.seconds

    tree, seconds, restored = _cached_training(store, lock, chunk.id, template, train, real, len(cells))
    trained = sym.Trained(tree["params"], tree["losses"], seconds)
    t1 = time.perf_counter()
    rows = _unpadded(sym.attribute_grid(chunk.setting, grid, trained, place=place), len(cells), real)
    if chunk.sweep_axes:  # combine = "each": the rows of every axis this setting lies on, as separate sweeps give
        rows = [{**r, "sweep_axis": axis} for axis in chunk.sweep_axes for r in rows]
    return rows, {"train": t1 - t0, "attribute": time.perf_counter() - t1, "restored": restored}


def _compute_cells(chunk: Chunk, store: _Store, lock: threading.Lock, place: GridPlacement):
    """A vision or audio (model, condition), or an RFE setting, through the track's own functions, the seeds (RFE:
    its eliminations) split across the local devices. A vision or audio chunk's trained seeds are checkpointed
    before attribution; an RFE chunk (every round retrains and ranks) reruns whole if killed."""
    start = time.perf_counter()
    setting = chunk.setting
    module = _track_module(chunk.track)
    if chunk.track == "rfe":
        rows = module.run(setting, progress=False, place=place).to_dict("records")
        seconds = {"train_and_attribute": time.perf_counter() - start, "restored": False}
    else:
        model, condition = setting.models[0], setting.conditions[0]
        real = len(setting.seeds)
        # Seeds padded to the device count with copies of the last (a config no user could pass: seeds repeat).
        padded = dataclasses.replace(setting, seeds=tuple(place.pad(setting.seeds)))
        if chunk.track == "vision":
            data = module.datasets(padded, condition)
            init = functools.partial(module.init_cell, setting, model, condition)
        else:
            data = module.cell_data(padded, condition)
            init = functools.partial(module.init_cell, setting, model)

        def template():
            return {"variables": init(), "losses": jnp.zeros((real, setting.steps), jnp.float32)}

        def train():
            trained = module.train_cell(padded, model, condition, data=data, place=place)
            return {"variables": trained.variables, "losses": trained.losses}, trained.seconds

        tree, train_seconds, restored = _cached_training(store, lock, chunk.id, template, train, real,
                                                         len(padded.seeds))
        t1 = time.perf_counter()
        trained = module.Trained(tree["variables"], tree["losses"], train_seconds)
        rows = _unpadded(module.attribute_cell(padded, model, condition, trained, data=data, place=place),
                         len(padded.seeds), real)
        seconds = {"train": t1 - start, "attribute": time.perf_counter() - t1, "restored": restored}
    for row in rows:
        row.update({axis: getattr(setting, axis) for axis in chunk.axes})
    return rows, seconds


def _checkpointer():
    """An orbax checkpointer private to this process: with several processes, each saves and restores its own
    chunks, without the collective barriers orbax uses for a checkpoint shared by all processes."""
    import orbax.checkpoint as ocp

    me = jax.process_index()
    # Synchronous (no cross-process completion signals), and this process is the only participant.
    return ocp.Checkpointer(
        ocp.StandardCheckpointHandler(),
        multiprocessing_options=ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me}))


def _holds(path: Path, spec: dict) -> bool:
    """Whether `path` holds a sweep of this normalised description (its `sweep.json`)."""
    stored = path / "sweep.json"
    return stored.exists() and json.loads(stored.read_text()) == json.loads(json.dumps(spec, default=str))


def _check_directory(path: Path, spec: dict, force_new: bool) -> None:
    stored = path / "sweep.json"
    if not stored.exists():
        if (path / "results.csv").exists():
            if not force_new:
                raise ValueError(f"--out: {path} holds results that no sweep wrote; use another directory or "
                                 "--force-new")
        else:
            return
    elif _holds(path, spec):
        return
    elif not force_new:
        old = json.loads(stored.read_text())
        differing = []
        for track in TRACKS:
            before, now = old.get(track, {}), spec.get(track, {})
            if before.get("axes") != now.get("axes"):
                differing.append(f"{track} axes")
            before, now = before.get("fixed", {}), now.get("fixed", {})
            differing += sorted(k if track == "symbolic" else f"{track}.{k}" for k in set(before) | set(now)
                                if before.get(k) != now.get(k))
        hint = f" (differs in {', '.join(differing)})" if differing else ""
        raise ValueError(f"--out: {path} holds a sweep of another config{hint}; resume it with its own config, "
                         "use another directory, or pass --force-new")
    # --force-new: keep the old run, out of the way.
    keep = path / time.strftime("previous-%Y%m%d-%H%M%S")
    keep.mkdir()
    for item in list(path.iterdir()):
        if not item.name.startswith("previous-"):
            shutil.move(str(item), keep / item.name)


# ------------------------------------------------------------------------------------------------ run


def run(description: Mapping[str, Any], out: str | os.PathLike, *, force_new: bool = False,
        progress: bool = True, log=print, workers: int = 1):
    """Runs (or resumes) a sweep into `out`; returns the results DataFrame (this host's, merged on host 0).

    `workers` chunks are in flight at once, each in a thread of its own: one chunk's compilation (CPU work,
    which releases the GIL) overlaps the others' compilation and device work. Rows are still appended in
    plan order, so the results file is the same for any `workers`.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected an integer >= 1, got {workers!r}")
    sweep_plan = plan(description)
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out: {path} is not a directory")
    host, hosts = _distributed()
    if host == 0:
        path.mkdir(parents=True, exist_ok=True)
        _check_directory(path, sweep_plan.spec, force_new)
        (path / "sweep.json").write_text(json.dumps(sweep_plan.spec, indent=2, default=str))
    store = _Store(path, host, hosts, sweep_plan.columns)
    done = store.done()
    mine = [c for i, c in enumerate(sweep_plan.chunks) if i % hosts == host]
    todo = [c for c in mine if c.id not in done]
    place = GridPlacement()
    devices = place.devices
    started = time.time()
    checkpoint_lock = threading.Lock()

    def compute(chunk: Chunk):
        """Trains (or restores) and attributes one chunk; returns its real cells' rows and timings."""
        if chunk.track == "symbolic":
            return _compute_symbolic(chunk, store, checkpoint_lock, place)
        return _compute_cells(chunk, store, checkpoint_lock, place)

    bar = tqdm(total=sum(c.size for c in mine), initial=sum(c.size for c in mine if c.id in done),
               disable=not progress, unit="cell", dynamic_ncols=True)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chaosjax-sweep")
    try:
        upcoming = iter(todo)
        in_flight = collections.deque((c, pool.submit(compute, c)) for c in itertools.islice(upcoming, workers))
        while in_flight:
            chunk, future = in_flight.popleft()
            bar.set_postfix_str(f"{chunk.id}: {chunk.label}")
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
    finally:
        bar.close()

    if hosts > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("chaosjax-sweep-done")
        if host == 0:
            parts = [pd.read_csv(p) for p in sorted(path.glob("results.host*.csv"))]
            merged = pd.concat(parts, ignore_index=True)
            merged.to_csv(path / "results.csv.tmp", index=False)
            os.replace(path / "results.csv.tmp", path / "results.csv")
    mine_only = store.results if hosts > 1 and host != 0 else path / "results.csv"  # host 0 merges
    frame = pd.read_csv(mine_only) if mine_only.exists() and mine_only.stat().st_size else pd.DataFrame()
    if host == 0:
        entries = _chunk_records(path)
        meta = {
            "schema_version": sym.SCHEMA_VERSION,
            "track": "+".join(sweep_plan.tracks),
            "sweep": sweep_plan.spec,
            "cells": sweep_plan.cells,
            "chunks": len(sweep_plan.chunks),
            "environment": {**sym.environment(), "process_count": hosts, "local_devices": devices},
            "wall_seconds": {"this_run": time.time() - started,
                             "per_chunk": {k: v.get("seconds") for k, v in entries.items()}},
        }
        (path / "config.json").write_text(json.dumps(meta, indent=2, default=str))
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
    p.add_argument("--quiet", action="store_true", help="log lines instead of a progress bar")
    p.add_argument("--plan", action="store_true",
                   help="print the grid (settings, chunks, cells; chunks already recorded in --out) and stop")
    p.add_argument("--workers", type=int, default=1,
                   help="chunks in flight at once, each compiling in a thread of its own (results unchanged); "
                        "on an accelerator, more than 1 overlaps one chunk's compilation with another's device work")

    def handler(args) -> int:
        description = load_toml(args.config)
        if args.plan:
            print(describe(plan(description), args.out))
            return 0
        frame = run(description, args.out, force_new=args.force_new, progress=not args.quiet,
                    workers=args.workers)
        spec = plan(description).spec
        for track in TRACKS:
            if track not in spec or not len(frame):
                continue
            rows = frame.loc[frame["track"] == track, list(_columns(track))]
            if not len(rows):
                continue
            if track == "symbolic" and spec["sweep"].get("combine") == "each":
                for axis in spec["symbolic"]["axes"]:  # one table per axis, as its own sweep would print
                    column = _RESULT_COLUMN.get(axis, axis)
                    one = frame.loc[(frame["track"] == track) & (frame["sweep_axis"] == _SWEEP_AXIS.get(axis, axis))]
                    one = one.sort_values(column, kind="stable")  # the axis in order, the shared setting in place
                    print(sym.summary_table(one[list(_columns(track))], by=[column]))
            elif track == "symbolic":
                axes = [_RESULT_COLUMN.get(k, k) for k in spec["symbolic"]["axes"]]
                print(sym.summary_table(rows, by=axes))
            else:
                print(_track_module(track).summary_table(rows))
        if not len(frame):
            print("no results")
        print(f"\nresults: {args.out}/results.csv")
        return 0

    p.set_defaults(handler=handler)
