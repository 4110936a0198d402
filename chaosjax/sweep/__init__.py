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

import os
from pathlib import Path

from chaosjax import tracks
from chaosjax.sweep._plan import COMBINE, SweepPlan, load_toml, plan
from chaosjax.sweep._run import run
from chaosjax.sweep._store import (  # noqa: F401 (the directory's plumbing, reached from here by the tests)
    _cached_training,
    _checkpointer,
    _chunk_records,
    _holds,
    _lock,
    _Store,
)

__all__ = ["COMBINE", "SweepPlan", "add_cli", "describe", "load_toml", "plan", "run"]


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
