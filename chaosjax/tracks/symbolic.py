"""The symbolic functional track end to end: data, one compiled training grid, attribution, scores.

A *setting* (noise columns, rows, depth, width, learning rate, optimizer, dropout, label noise) is run as
one grid of formulas x seeds: every formula's table is padded to a common width (zero columns, masked
out of every metric), all models train in one `jit(vmap(fit))`, and every attribution method runs over
the whole grid in one `jit(vmap(...))`. A sweep (`--sweep AXIS=...`) runs one grid per value; values
that keep the shapes (learning rate, label noise) reuse the compiled programs.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from chaosjax import attribution, metrics
from chaosjax.data import symbolic as data
from chaosjax.models.mlp import mlp
from chaosjax.train import OPTIMIZERS, fit_grid, predict_grid, progress_to

#: Ground truth each method is scored against (`chaosjax.data.symbolic.ground_truth` method names).
TRUTH_FOR = {
    "saliency": "saliency",
    "smoothgrad": "saliency",
    "random_baseline": "saliency",
    "input_x_gradient": "input_x_gradient",
    "deeplift": "deeplift",
    "integrated_gradients": "integrated_gradients",
    "gradient_shap": "integrated_gradients",
    "feature_ablation": "feature_ablation",
    # The perturbation family (docs/ground_truth.md): each method's exact limit applied to the formula.
    "occlusion": "occlusion",
    "shapley_exact": "shapley",
    "shapley_sampling": "shapley",
    "kernel_shap": "shapley",
    "lime": "shapley",  # LIME's ranking: its coefficients are scored like the Shapley values (scale-free metrics)
    "feature_permutation": "feature_permutation",  # against all test rows, the batch the method permutes
    "guided_backprop": "saliency",  # no ReLU in the formula or the GELU MLP: guided backprop is the gradient
    "deeplift_shap": "shapley",  # averaged over the method's baselines
}
#: Perturbation budgets on the symbolic track (110 columns by default). Each draw is one forward pass of the grid
#: over the test rows; these keep the new methods to about a third of the default run on 2 CPU cores.
PERTURBATION_SAMPLES = 256  # kernel_shap and lime coalitions
SHAPLEY_PERMUTATIONS = 2  # shapley_sampling orders: one antithetic pair, 2 * (W - 1) passes
DEEPLIFT_SHAP_BASELINES = 16  # training rows DeepLIFT-SHAP averages over (the first of GradientSHAP's 64)
#: Columns of `results.csv`, in order.
COLUMNS = (
    "track", "formula", "formula_text", "m", "noise_features", "seed", "model", "method", "protocol",
    "n", "depth", "width", "lr", "optimizer", "dropout", "label_noise", "epochs", "ig_steps", "sweep_axis",
    "functional_precision", "uniform_score", "consistency", "test_mae", "pred_score", "initial_loss", "final_loss",
    "seconds", "train_seconds",
)
SCHEMA_VERSION = 1
_SWEEP_FIELDS = {
    "noise": "noise_features", "n": "n", "depth": "depth", "width": "width", "lr": "learning_rate",
    "dropout": "dropout", "label-noise": "label_noise", "optimizer": "optimizer",
}
_TRUTH_STEPS = 20  # the study's path-sum steps S for the IG ground truth
_TRUTH_ROWS = 500  # rows per ground-truth program: the study's test split of its smallest n (2,500 x 0.2)


@dataclasses.dataclass(frozen=True)
class SymbolicConfig:
    """Everything a symbolic run depends on; defaults are the study's protocol (PROTOCOL.md section 1)."""

    formulas: tuple[int | str, ...] = tuple(range(15))
    noise_features: int = 100
    seeds: tuple[int, ...] = (0,)
    methods: tuple[str, ...] | None = None  # None: every method of chaosjax.attribution.METHODS
    epochs: int = 1000
    n: int = 10_000
    depth: int = 3
    width: int = 100
    activation: str = "gelu"
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    dropout: float = 0.0
    label_noise: float = 0.01
    ig_steps: int = 10
    smoothgrad_samples: int = 50
    shap_samples: int = 20
    protocol: str = "paper"
    sweep: tuple[str, tuple] | None = None
    train_batch_size: int | None = None  # None: full batch, as the study
    attribution_batch_size: int | None = None  # draws per chunk; None: 1 on CPU (cache-friendly), all elsewhere

    def method_names(self) -> tuple[str, ...]:
        """The methods to run. The default (`methods=None`) is every method of `chaosjax.attribution.METHODS`
        that fits: `shapley_exact` only when the grid has at most `MAX_EXACT_GROUPS` (16) columns."""
        if self.methods is not None:
            return tuple(self.methods)
        try:
            fits = grid_width(self) <= attribution.MAX_EXACT_GROUPS
        except (TypeError, ValueError):  # a malformed formula or noise count: `validate` names it
            fits = False
        return tuple(m for m in attribution.METHODS if m != "shapley_exact" or fits)

    def resolved_formulas(self) -> list[tuple[str, data.Formula]]:
        """(label, Formula) for each entry: an index into the protocol's 15, or a user text."""
        table = data.formulas(self.protocol)
        out = []
        for entry in self.formulas:
            if isinstance(entry, (int, np.integer)) and not isinstance(entry, bool):
                if not 0 <= entry < len(table):
                    raise ValueError(f"formulas: index {entry} out of range 0-{len(table) - 1}")
                out.append((str(int(entry)), table[int(entry)]))
            elif isinstance(entry, str):
                out.append((entry, data.formula(entry, name="custom")))
            else:
                raise TypeError(f"formulas: expected indices or formula texts, got {entry!r}")
        return out

    def settings(self) -> list[SymbolicConfig]:
        """One config per sweep value (the config itself without a sweep)."""
        if self.sweep is None:
            return [self]
        axis, values = self.sweep
        field = _SWEEP_FIELDS[axis]
        return [dataclasses.replace(self, sweep=None, **{field: v}) for v in values]

    def validate(self) -> None:
        """Raises ValueError/TypeError naming the bad field, before any expensive work."""
        if not self.formulas:
            raise ValueError("formulas: empty")
        resolved = self.resolved_formulas()
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or any(s < 0 for s in self.seeds):
            raise ValueError(f"seeds: expected distinct non-negative integers, got {self.seeds!r}")
        unknown = [m for m in self.method_names() if m not in attribution.METHODS]
        if unknown or not self.method_names():
            raise ValueError(f"methods: unknown {unknown!r}; expected names from {', '.join(attribution.METHODS)}")
        if self.protocol not in data.PROTOCOLS:
            raise ValueError(f"protocol: expected one of {data.PROTOCOLS}, got {self.protocol!r}")
        if self.sweep is not None:
            axis, values = self.sweep
            if axis not in _SWEEP_FIELDS:
                raise ValueError(f"sweep: unknown axis {axis!r}; expected one of {', '.join(_SWEEP_FIELDS)}")
            if not values:
                raise ValueError(f"sweep: no values for {axis}")
        for setting in self.settings():
            setting._validate_setting(max(f.m for _, f in resolved))
        if self.methods is not None and "shapley_exact" in self.methods:
            widest = max(grid_width(setting) for setting in self.settings())
            if widest > attribution.MAX_EXACT_GROUPS:
                raise ValueError(
                    f"methods: shapley_exact enumerates every coalition of the {widest} columns (2^{widest}); its "
                    f"limit is {attribution.MAX_EXACT_GROUPS} columns (m + noise). Use fewer noise columns, or "
                    "shapley_sampling or kernel_shap"
                )

    def _validate_setting(self, m_max: int) -> None:
        def positive_int(name, value):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")

        for name in ("epochs", "depth", "width", "ig_steps", "smoothgrad_samples", "shap_samples"):
            positive_int(name, getattr(self, name))
        if isinstance(self.noise_features, bool) or not isinstance(self.noise_features, (int, np.integer)) \
                or self.noise_features < 0:
            raise ValueError(f"noise: expected an integer >= 0, got {self.noise_features!r}")
        positive_int("n", self.n)
        n_test = round(self.n * 0.2)
        if n_test < 1 or self.n - n_test < 1:
            raise ValueError(f"n: {self.n} rows are too few for an 80/20 train/test split")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: unknown {self.optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(f"lr: expected a positive number, got {self.learning_rate!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: expected a rate in [0, 1), got {self.dropout!r}")
        if not (self.label_noise >= 0 and math.isfinite(self.label_noise)):
            raise ValueError(f"label-noise: expected a std >= 0, got {self.label_noise!r}")
        for name in ("train_batch_size", "attribution_batch_size"):
            value = getattr(self, name)
            if value is not None:
                positive_int(name, value)
        if self.train_batch_size is not None and self.train_batch_size > self.n - round(self.n * 0.2):
            raise ValueError(f"train_batch_size: {self.train_batch_size} exceeds the training rows")

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["methods"] = list(self.method_names())
        return out


# ------------------------------------------------------------------------------------------- attribution


def _method_options(config: SymbolicConfig, method: str) -> dict[str, Any]:
    """Keyword options of `method` under the config (static, hashable values only)."""
    chunk = config.attribution_batch_size
    if chunk is None and jax.default_backend() == "cpu":
        chunk = 1  # one path point / copy at a time stays in cache on a CPU, and is faster there
    signed = config.protocol == "corrected"  # corrected: signed saliency against the signed derivative
    if method == "saliency":
        return {"absolute": not signed}
    if method == "integrated_gradients":
        return {"steps": config.ig_steps, "batch_size": chunk}
    if method == "smoothgrad":
        return {"samples": config.smoothgrad_samples, "batch_size": chunk,
                "method_kwargs": (("absolute", not signed),)}
    if method == "gradient_shap":
        return {"samples": config.shap_samples, "batch_size": chunk}
    if method in ("feature_ablation", "feature_permutation", "shapley_exact", "deeplift_shap"):
        return {"batch_size": chunk}
    if method == "occlusion":  # one column at a time: a table's column order carries no meaning
        return {"window": 1, "strides": 1, "batch_size": chunk}
    if method == "shapley_sampling":
        return {"permutations": SHAPLEY_PERMUTATIONS, "antithetic": True, "batch_size": chunk}
    if method in ("kernel_shap", "lime"):
        return {"samples": PERTURBATION_SAMPLES, "batch_size": chunk}
    return {}


@functools.partial(jax.jit, static_argnames=("apply_fn", "method", "options"))
def _attribute_grid(apply_fn, params, x, refs, keys, *, method: str, options: tuple) -> jax.Array:
    """`method` on every grid member's test rows: `(G, rows, W)`; one compiled program per method."""
    kwargs = dict(options)
    if "method_kwargs" in kwargs:
        kwargs["method_kwargs"] = dict(kwargs["method_kwargs"])
    fn = attribution.METHODS[method]

    def one(p, xg, rg, key):
        f = lambda z: apply_fn(p, z)[:, 0]  # noqa: E731
        extra = {}
        if method in attribution.NEEDS_KEY:
            extra["key"] = key
        if method == "gradient_shap":
            extra["baselines"] = rg
        elif method == "deeplift_shap":
            extra["baselines"] = rg[:DEEPLIFT_SHAP_BASELINES]
        return fn(f, xg, **kwargs, **extra)

    return jax.vmap(one)(params, x, refs, keys)


@functools.partial(jax.jit, static_argnames=("protocol",))
def _scores(attr, truth, m, mask, *, protocol):
    def one(a, g, mm, valid):
        return (
            metrics.functional_precision(a, mm, valid=valid),
            metrics.uniform_score(a, g, mm, protocol=protocol, valid=valid),
            metrics.consistency(a, mm, valid=valid),
        )

    return jax.vmap(one)(attr, truth, m, mask)


# ------------------------------------------------------------------------------------------------ a grid


class Cell(NamedTuple):
    """One grid member: a formula (with a stable integer key for its random streams) and a seed."""

    key: int  # the formula's index among the study's 15, or 1000 + position for a user's text
    label: str
    formula: data.Formula
    seed: int


def cells_of(config: SymbolicConfig) -> list[Cell]:
    """The config's formulas x seeds, formula-major."""
    out = []
    for position, (entry, (label, f)) in enumerate(zip(config.formulas, config.resolved_formulas())):
        key = int(entry) if isinstance(entry, (int, np.integer)) else 1_000 + position
        out.extend(Cell(key, label, f, seed) for seed in config.seeds)
    return out


def grid_width(config: SymbolicConfig) -> int:
    """Common column count of a setting: the largest m plus the noise columns (fixed per config, so a
    cell's numbers do not depend on which other cells share its chunk)."""
    return max(f.m for _, f in config.resolved_formulas()) + config.noise_features


def _stream(cell: Cell, purpose: int) -> jax.Array:
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(cell.seed), cell.key), purpose)


@dataclasses.dataclass
class Grid:
    """Stacked tables of a list of cells (leading axis: cells)."""

    cells: list[Cell]
    m: np.ndarray
    x_train: jax.Array
    y_train: jax.Array
    x_test: jax.Array
    y_test: jax.Array
    y_test_clean: jax.Array
    mask: jax.Array


def build_grid(config: SymbolicConfig, cells: Sequence[Cell]) -> Grid:
    width = grid_width(config)
    tables = [
        data.make_dataset(
            jax.random.fold_in(jax.random.key(cell.seed), cell.key),
            cell.formula,
            noise_features=config.noise_features,
            n=config.n,
            y_std=config.label_noise,
            pad_to=width,
        )
        for cell in cells
    ]

    def stack(name):
        return jnp.stack([getattr(t, name) for t in tables])

    return Grid(
        cells=list(cells),
        m=np.array([t.m for t in tables], np.int32),
        x_train=stack("x_train"),
        y_train=stack("y_train"),
        x_test=stack("x_test"),
        y_test=stack("y_test"),
        y_test_clean=stack("y_test_clean"),
        mask=stack("column_mask"),
    )


def model_of(config: SymbolicConfig):
    return mlp(grid_width(config), depth=config.depth, width=config.width, activation=config.activation,
               dropout=config.dropout)


class Trained(NamedTuple):
    params: Any  # leading axis: cells
    losses: jax.Array  # (cells, epochs)
    seconds: float


def train_grid(config: SymbolicConfig, grid: Grid, place=None) -> Trained:
    """Trains every cell's model in one `fit_grid` program. `place(tree)` may put the stacked inputs on
    devices (e.g. sharded along the cell axis); the computation follows the inputs' placement."""
    place = place or (lambda tree: tree)
    model = model_of(config)
    params = jax.vmap(model.init)(jnp.stack([_stream(c, 1) for c in grid.cells]))
    keys = jnp.stack([_stream(c, 2) for c in grid.cells])
    params, x, y, keys = place((params, grid.x_train, grid.y_train, keys))
    start = time.perf_counter()
    result = fit_grid(
        model.apply, params, x, y, keys,
        optimizer=config.optimizer, learning_rate=config.learning_rate, epochs=config.epochs,
        batch_size=config.train_batch_size, loss="mse", dropout=config.dropout > 0,
    )
    jax.block_until_ready(result)
    return Trained(result.params, result.losses, time.perf_counter() - start)


def attribute_grid(config: SymbolicConfig, grid: Grid, trained: Trained, *, sweep_axis: str = "",
                   progress=None, place=None) -> list[dict[str, Any]]:
    """Every method on every cell's test rows, scored; one row per cell x method."""
    say = progress or (lambda msg: None)
    place = place or (lambda tree: tree)
    model = model_of(config)
    size = len(grid.cells)
    params, x_test = place((trained.params, grid.x_test))
    pred = predict_grid(model.apply, params, x_test)[..., 0]
    mae = jnp.mean(jnp.abs(pred - grid.y_test), axis=1)
    pred_score = jax.vmap(metrics.pred_score)(pred, grid.y_test_clean)
    initial_loss, final_loss = trained.losses[:, 0], trained.losses[:, -1]
    refs = place(grid.x_train[:, :64])  # GradientSHAP's baseline distribution: training rows
    attr_keys = place(jnp.stack([_stream(c, 3) for c in grid.cells]))
    m = jnp.asarray(grid.m)
    rows = []
    truths: dict[str, jax.Array] = {}  # methods that share a truth compute it once
    for method in config.method_names():
        say(f"attribute: {method}")
        options = tuple(sorted(_method_options(config, method).items()))
        start = time.perf_counter()
        attr = _attribute_grid(model.apply, params, x_test, refs, attr_keys, method=method, options=options)
        jax.block_until_ready(attr)
        seconds = time.perf_counter() - start
        kind, background = TRUTH_FOR[method], None
        if method == "deeplift_shap":  # the Shapley values against the baselines the method averaged over
            kind, background = "shapley/background", grid.x_train[:, :DEEPLIFT_SHAP_BASELINES]
        elif method == "feature_permutation":  # the expectation over permutations of the test rows
            background = grid.x_test
        if kind not in truths:
            truths[kind] = _truth(grid, kind.split("/")[0], config.protocol, background)
        truth = truths[kind]
        precision, uniform, consistency = jax.device_get(
            _scores(attr, truth, m, grid.mask, protocol=config.protocol)
        )
        for g, cell in enumerate(grid.cells):
            rows.append({
                "track": "symbolic",
                "formula": cell.label,
                "formula_text": cell.formula.text,
                "m": int(grid.m[g]),
                "noise_features": config.noise_features,
                "seed": cell.seed,
                "model": f"mlp{config.depth}x{config.width}-{config.activation}",
                "method": method,
                "protocol": config.protocol,
                "n": config.n,
                "depth": config.depth,
                "width": config.width,
                "lr": config.learning_rate,
                "optimizer": config.optimizer,
                "dropout": config.dropout,
                "label_noise": config.label_noise,
                "epochs": config.epochs,
                "ig_steps": config.ig_steps,
                "sweep_axis": sweep_axis,
                "functional_precision": float(precision[g]),
                "uniform_score": float(uniform[g]),
                "consistency": float(consistency[g]),
                "test_mae": float(mae[g]),
                "pred_score": float(pred_score[g]),
                "initial_loss": float(initial_loss[g]),
                "final_loss": float(final_loss[g]),
                "seconds": seconds / size,
                "train_seconds": trained.seconds / size,
            })
    return rows


def _truth(grid: Grid, method: str, protocol: str, background: jax.Array | None = None) -> jax.Array:
    """Each cell's ground truth on its test rows ``(cells, rows, W)``, computed on blocks of `_TRUTH_ROWS` rows
    (the last one padded with copies of the final row), so that one compiled program per (formula, method)
    serves every row count: an `n` ablation compiles its ground truth once, not once per `n`. `background`
    ``(cells, K, W)``: each cell's rows for the truths that average over rows (`ground_truth`'s `background`)."""
    cells, rows, width = grid.x_test.shape
    blocks = -(-rows // _TRUTH_ROWS)
    x = jnp.pad(grid.x_test, ((0, 0), (0, blocks * _TRUTH_ROWS - rows), (0, 0)), mode="edge")
    x = x.reshape(cells, blocks, _TRUTH_ROWS, width)
    return jnp.stack([
        jnp.concatenate([data.ground_truth(cell.formula, x[g, b], method, steps=_TRUTH_STEPS, protocol=protocol,
                                           background=None if background is None else background[g])
                         for b in range(blocks)])[:rows]
        for g, cell in enumerate(grid.cells)
    ])


def run_setting(config: SymbolicConfig, *, sweep_axis: str = "", progress=None) -> list[dict[str, Any]]:
    """Trains and attributes one setting's grid (formulas x seeds); returns one row per cell x method."""
    say = progress or (lambda msg: None)
    say("data")
    grid = build_grid(config, cells_of(config))
    say(f"train {len(grid.cells)} models x {config.epochs} epochs")
    trained = train_grid(config, grid)
    return attribute_grid(config, grid, trained, sweep_axis=sweep_axis, progress=say)


# ----------------------------------------------------------------------------------------------- a run


def _prepare_out(out: str | os.PathLike, overwrite: bool) -> Path:
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out: {path} exists and is not a directory")
    if (path / "results.csv").exists() and not overwrite:
        raise ValueError(f"--out: {path} already holds results.csv; choose a new directory or pass --overwrite")
    return path


def write_results(path: Path, frame, *, track: str, config: dict[str, Any], started: float,
                  walls: dict[str, Any] | None = None, **extra: Any) -> None:
    """Writes a run's ``path/results.csv`` and ``path/config.json``, the files ``chaosjax.report`` reads.

    The CSV goes through a temporary file and a rename, so a killed run never leaves a half-written one.
    ``config.json`` holds the schema version, ``track``, ``config``, versions and devices, the start time
    (``started``: a ``time.time()``), the wall seconds (``total`` since ``started``, plus ``walls``) and ``extra``.
    """
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / "results.csv.tmp"
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path / "results.csv")
    meta = {
        "schema_version": SCHEMA_VERSION,
        "track": track,
        "config": config,
        "environment": environment(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "wall_seconds": {"total": time.time() - started, **(walls or {})},
        **extra,
    }
    (path / "config.json").write_text(json.dumps(meta, indent=2, default=str))


def environment() -> dict[str, Any]:
    """Versions and devices, for config.json."""
    import flax
    import optax

    import chaosjax

    return {
        "chaosjax": chaosjax.__version__,
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
    }


def run(
    config: SymbolicConfig,
    *,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
):
    """Runs the symbolic track and returns the results as a pandas DataFrame.

    With `out`, writes `out/results.csv` (one row per formula x seed x setting x method) and
    `out/config.json` (the config, versions, devices, wall times). Bad input raises before any work.
    """
    import pandas as pd

    config.validate()
    path = _prepare_out(out, overwrite) if out is not None else None
    settings = config.settings()
    axis = config.sweep[0] if config.sweep else ""
    bar = _progress_bar(len(settings) * (2 + len(config.method_names())), enabled=progress)
    rows: list[dict[str, Any]] = []
    walls = []
    started = time.time()
    try:
        for i, setting in enumerate(settings):
            prefix = f"[{axis}={config.sweep[1][i]}] " if axis else ""

            def say(msg, prefix=prefix):
                bar.set_description(prefix + msg)
                bar.set_postfix_str("")
                bar.update(1)

            def epochs_done(epoch, epochs):
                bar.set_postfix_str(f"epoch {epoch}/{epochs}")

            start = time.perf_counter()
            with progress_to(epochs_done):
                rows.extend(run_setting(setting, sweep_axis=axis, progress=say))
            walls.append(time.perf_counter() - start)
    finally:
        bar.close()
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    if path is not None:
        write_results(path, frame, track="symbolic", config=config.to_json(), started=started,
                      walls={"per_setting": walls})
    return frame


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit="step", dynamic_ncols=True)


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its Student-t confidence interval (0 for a single value)."""
    from scipy import stats

    arr = np.asarray(values, np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return float("nan"), float("nan")
    if arr.size == 1:
        return float(arr[0]), 0.0
    half = stats.t.ppf(0.5 + level / 2, arr.size - 1) * arr.std(ddof=1) / math.sqrt(arr.size)
    return float(arr.mean()), float(half)


def summary_table(frame, by: Sequence[str] | None = None) -> str:
    """A markdown table per method (and sweep value): functional precision and uniform score, mean and
    95% CI over formulas x seeds, and the attribution wall time. `by`: result columns to split by
    (default: the CLI sweep's axis, if any)."""
    if by is None:
        first = frame["sweep_axis"].iloc[0] if len(frame) else ""
        axis = first if isinstance(first, str) else ""  # read back from CSV, an empty axis is NaN
        by = [{"noise": "noise_features", "label-noise": "label_noise"}.get(axis, axis)] if axis else []
    keys = list(by) + ["method"]
    head = list(by) + ["method", "functional precision", "uniform score", "cells", "seconds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, group in frame.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        fp, fp_ci = mean_ci(group["functional_precision"])
        us, us_ci = mean_ci(group["uniform_score"])
        cells = [str(k) for k in key] + [
            f"{fp:.3f} ± {fp_ci:.3f}", f"{us:.3f} ± {us_ci:.3f}", str(len(group)), f"{group['seconds'].sum():.1f}"
        ]
        lines.append("| " + " | ".join(cells) + " |")
    train = frame.drop_duplicates(["formula", "seed"] + list(by))["train_seconds"].sum()
    lines.append(f"\ntraining: {train:.1f} s for {len(frame.drop_duplicates(['formula', 'seed']))} models per setting")
    return "\n".join(lines)
