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
import os
import time
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from chaosjax import attribution, metrics
from chaosjax._fields import add_flags, check_fields, from_args, integer, number, one_of, option
from chaosjax._parse import parse_formulas, parse_int_range, parse_names, parse_sweep
from chaosjax._progress import Progress, count
from chaosjax.checks import check_out_dir, diverged
from chaosjax.data import symbolic as data
from chaosjax.models.mlp import ACTIVATIONS, mlp
from chaosjax.runs import (  # noqa: F401 (the results helpers, also reached from here)
    MIN_CI_SAMPLES,
    SCHEMA_VERSION,
    environment,
    format_mean_ci,
    mean_ci,
    summary_rows,
    write_results,
)
from chaosjax.tracks import Chunk, ChunkRun, Track, draws_at_once, help_line, proxy_bench
from chaosjax.tracks._cli import checked_job
from chaosjax.tracks._seeded import unpadded
from chaosjax.train import OPTIMIZERS, fit_grid, progress_to

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
    # Added after schema 1's first release (readers take columns by name; older files lack them):
    "ig_steps_uniform", "attr_run_seconds", "attr_peak_bytes",
    "convergence_every", "topm_mean_overlap", "topm_settled_epoch", "topm_overlap_trace",
)
#: Columns `--proxies` adds after them (`chaosjax.tracks.proxy_bench.proxy_columns`: those of the proxies asked for).
OPTIONAL_COLUMNS = proxy_bench.proxy_columns(tuple(proxy_bench.PROXIES))
_SWEEP_FIELDS = {
    "noise": "noise_features", "n": "n", "depth": "depth", "width": "width", "lr": "learning_rate",
    "dropout": "dropout", "label-noise": "label_noise", "optimizer": "optimizer",
}
_TRUTH_STEPS = 20  # the study's path-sum steps S for the IG ground truth
_PAPER_UNIFORM_IG_STEPS = 20  # the study's IG steps for the uniform score (examples/train_eval_simulation.py)
_TRUTH_ROWS = 500  # rows per ground-truth program: the study's test split of its smallest n (2,500 x 0.2)


def _rate(value: Any, name: str) -> None:
    """A rate in [0, 1)."""
    from chaosjax.checks import check_finite_number

    if not 0.0 <= check_finite_number(value, name) < 1.0:
        raise ValueError(f"{name}: expected a rate in [0, 1), got {value!r}")


@dataclasses.dataclass(frozen=True)
class SymbolicConfig:
    """Everything a symbolic run depends on; defaults are the study's protocol (docs/protocol.md, "Symbolic")."""

    formulas: tuple[int | str, ...] = option(
        tuple(range(15)), "indices ('0-14', '3,5,9') or a formula text, e.g. '0.5*sin(a) + b**2'",
        parse=lambda text, flag: parse_formulas(text), text="0-14")
    noise_features: int = option(100, "noise columns", check=integer(0), flags=("--noise-features", "--noise"),
                                 metavar="NOISE")
    seeds: tuple[int, ...] = option((0,), "seeds, e.g. '0-4' or '0,3'", parse=parse_int_range, text="0")
    methods: tuple[str, ...] | None = option(  # None: every method of chaosjax.attribution.METHODS
        None, "comma-separated names from chaosjax.attribution.METHODS, or 'all'", parse=parse_names, text="all")
    epochs: int = option(1000, "full-batch training epochs", check=integer(1))
    n: int = option(10_000, "rows, split 80/20 into train and test", check=integer(1))
    depth: int = option(3, "hidden layers of the MLP", check=integer(1))
    width: int = option(100, "units per hidden layer", check=integer(1))
    activation: str = option("gelu", "the MLP's activation", check=one_of(*ACTIVATIONS))
    learning_rate: float = option(1e-3, "learning rate", check=number(positive=True),
                                  flags=("--learning-rate", "--lr"), metavar="LR")
    optimizer: str = option("adam", "adam, adagrad, adadelta, rmsprop, sgd or asgd", check=one_of(*OPTIMIZERS))
    dropout: float = option(0.0, "dropout rate in training", check=_rate)
    label_noise: float = option(0.01, "std of the Gaussian label noise", check=number(low=0.0))
    ig_steps: int = option(  # the study's top-k script: 10
        10, "integrated-gradients steps (Gauss-Legendre) behind functional precision and consistency",
        check=integer(1))
    ig_steps_uniform: int | None = option(  # None: see `uniform_ig_steps`
        None, "IG steps behind the uniform score (default: 20 under paper, as the study; --ig-steps under "
              "corrected)", check=integer(1, optional=True))
    smoothgrad_samples: int = option(50, "SmoothGrad's noisy samples", check=integer(1))
    shap_samples: int = option(20, "GradientSHAP's samples", check=integer(1))
    protocol: str = option("paper", "paper: the study's choices, quirks included; corrected: fixed "
                           "(docs/protocol.md)", choices=data.PROTOCOLS)
    sweep: tuple[str, tuple] | None = option(
        None, "one ablation axis as one grid: AXIS=v1,v2,... (noise, n, depth, width, lr, dropout, label-noise, "
              "optimizer)", parse=lambda text, flag: parse_sweep(text))
    train_batch_size: int | None = option(None, "training batch size (default: full batch, as the study)",
                                          check=integer(1, optional=True))
    attribution_batch_size: int | None = option(  # None: 1 on CPU (cache-friendly), all elsewhere
        None, "attribution draws per chunk", check=integer(1, optional=True))
    convergence_every: int = option(  # > 0: also attribute snapshots every K training epochs
        0, "also attribute the models every K training epochs and report how the global top-m converges "
           "(topm_* columns; costs one attribution per snapshot)", metavar="K")
    time_passes: bool = option(False, "run every attribution program once more to time one pass "
                                      "(attr_run_seconds; the peak memory, attr_peak_bytes, is always reported)")
    proxies: tuple[str, ...] = option(  # proxy metrics (chaosjax.tracks.proxy_bench.PROXIES); () none
        (), "also score proxy metrics per cell x method, one results column each: 'all' or comma-separated names "
            "of chaosjax.tracks.proxy_bench.PROXIES (docs/proxies.md)", parse=proxy_bench.resolve_proxies,
        text="none", metavar="NAMES")

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

    def uniform_ig_steps(self) -> int:
        """IG steps behind the uniform score: `ig_steps_uniform` if given, else 20 under "paper" (the study scores
        the uniform score with a 20-step IG, functional precision with a 10-step one: a second IG pass) and
        `ig_steps` under "corrected" (one IG pass behind both scores of a row)."""
        if self.ig_steps_uniform is not None:
            return self.ig_steps_uniform
        return _PAPER_UNIFORM_IG_STEPS if self.protocol == "paper" else self.ig_steps

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
        from chaosjax.checks import check_distinct, check_seeds

        if isinstance(self.formulas, (str, bytes)) or not isinstance(self.formulas, (tuple, list)):
            raise TypeError(f"formulas: expected a sequence of indices or formula texts, got {self.formulas!r}")
        if not self.formulas:
            raise ValueError("formulas: empty")
        if self.protocol not in data.PROTOCOLS:
            raise ValueError(f"protocol: expected one of {data.PROTOCOLS}, got {self.protocol!r}")
        resolved = self.resolved_formulas()
        check_distinct([f.text for _, f in resolved], "formulas")
        for entry, (_, f) in zip(self.formulas, resolved):
            if isinstance(entry, str):  # the study's own 15 are known to be usable (f12's quirk is the study's)
                for message in data.check_on_range(f):
                    warnings.warn(message, stacklevel=2)
        check_seeds(self.seeds)
        if isinstance(self.methods, (str, bytes)):
            raise TypeError(f"methods: expected a sequence of names, got {self.methods!r}")
        unknown = [m for m in self.method_names() if m not in attribution.METHODS]
        if unknown or not self.method_names():
            raise ValueError(f"methods: unknown {unknown!r}; expected names from {', '.join(attribution.METHODS)}")
        check_distinct(self.method_names(), "methods")
        proxy_bench.resolve_proxies(self.proxies, "proxies")
        if self.sweep is not None:
            if not isinstance(self.sweep, (tuple, list)) or len(self.sweep) != 2:
                raise TypeError(f"sweep: expected (axis, values), got {self.sweep!r}")
            axis, values = self.sweep
            if axis not in _SWEEP_FIELDS:
                raise ValueError(f"sweep: unknown axis {axis!r}; expected one of {', '.join(_SWEEP_FIELDS)}")
            if isinstance(values, (str, bytes)) or not isinstance(values, (tuple, list)):
                raise TypeError(f"sweep: the values of {axis} must be a sequence, got {values!r}")
            if not values:
                raise ValueError(f"sweep: no values for {axis}")
            check_distinct(values, f"sweep {axis}")
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
        check_fields(self)
        n_test = round(self.n * 0.2)
        if n_test < 1 or self.n - n_test < 1:
            raise ValueError(f"n: {self.n} rows are too few for an 80/20 train/test split")
        if isinstance(self.convergence_every, bool) or not isinstance(self.convergence_every, (int, np.integer)) \
                or not 0 <= self.convergence_every <= self.epochs:
            raise ValueError(f"convergence_every: expected 0 (off) or an integer in [1, epochs={self.epochs}], "
                             f"got {self.convergence_every!r}")
        if self.train_batch_size is not None and self.train_batch_size > self.n - round(self.n * 0.2):
            raise ValueError(f"train_batch_size: {self.train_batch_size} exceeds the training rows")

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["methods"] = list(self.method_names())
        return out


# ------------------------------------------------------------------------------------------- attribution


def method_options(config: SymbolicConfig, method: str) -> dict[str, Any]:
    """Keyword options of `method` under the config (static, hashable values only)."""
    chunk = draws_at_once(config.attribution_batch_size)
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
    if method == "deeplift":
        # paper: Captum's DeepLift, which has no GELU rule (input x gradient on the study's MLPs).
        return {"rescale": "captum" if config.protocol == "paper" else "all"}
    if method == "occlusion":  # one column at a time: a table's column order carries no meaning
        return {"window": 1, "strides": 1, "batch_size": chunk}
    if method == "shapley_sampling":
        return {"permutations": SHAPLEY_PERMUTATIONS, "antithetic": True, "batch_size": chunk}
    if method in ("kernel_shap", "lime"):
        return {"samples": PERTURBATION_SAMPLES, "batch_size": chunk}
    return {}


def _cell_by_cell(x: jax.Array) -> bool:
    """Whether a grid's cells are computed one at a time (a `lax.map`) rather than side by side (a `vmap`).

    XLA compiles a vmapped reduction or contraction differently for each grid size (and a size-1 batch as an
    unbatched op), so side by side a cell's float rounding depends on which cells share its grid; over 1,000
    epochs that grows to ~1e-4 in test MAE and to flipped near-ties in the ranking scores. One at a time, every
    cell runs the same program whatever its grid: on a CPU a cell's numbers are bit-identical in any chunk of a
    sweep and in the `symbolic` command, and it is no slower (`benchmarks/cell_by_cell.py`, 15 formulas, 2 cores:
    0.58-1.06 of the vmapped time per step at n 2,500 and 10,000; cache-sized work). Training the default grid
    (15 formulas, n 10,000, 1,000 epochs) one cell at a time is also the fastest grouping: groups of 5 and of 15
    took 1.28x and 1.07x as long, and changed every cell's final loss (up to 18% relative), `cell_by_cell.py
    --groups`; at n 10,000 `fit_grid`'s own cache-sized choice is one cell too. A grid split
    across several devices, or on an accelerator, stays side by side (that is its speed), and agrees with
    other groupings to float rounding grown by training."""
    sharding = getattr(x, "sharding", None)
    return jax.default_backend() == "cpu" and (sharding is None or len(sharding.device_set) == 1)


def _over_cells(fn, *args, cell_by_cell: bool):
    """`fn` on each cell's slice of `args` (leading axis: cells): one at a time or side by side."""
    if cell_by_cell:
        return jax.lax.map(lambda a: fn(*a), args)
    return jax.vmap(fn)(*args)


def _measured_pass(args: tuple, method: str, options: tuple, *, repeat: bool, cell_by_cell: bool = False) -> tuple[jax.Array, float, float]:
    """`attribute_program(*args)` with its compiled program's peak memory in bytes (arguments + outputs + temporaries -
    aliased buffers, from XLA's memory analysis; NaN where the backend reports none) and, with `repeat`, the wall
    seconds of running the compiled program once more (the steady state: the first run includes tracing, compiling
    and, on a CPU, XLA's deferred kernel code generation); NaN without `repeat`."""
    attr = attribute_program(*args, method=method, options=options, cell_by_cell=cell_by_cell)
    jax.block_until_ready(attr)
    # Lowering and compiling again after the call hits the compilation cache: no second compile.
    stats = attribute_program.lower(*args, method=method, options=options, cell_by_cell=cell_by_cell).compile().memory_analysis()
    peak = float("nan") if stats is None else float(
        stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes - stats.alias_size_in_bytes)
    seconds = float("nan")
    if repeat:
        start = time.perf_counter()
        jax.block_until_ready(attribute_program(*args, method=method, options=options, cell_by_cell=cell_by_cell))
        seconds = time.perf_counter() - start
    return attr, seconds, peak


@jax.jit
def _global_top_m(attr, m, mask):
    """Each cell's global top-`m` columns by mean |attribution| over its rows, as a bool mask `(cells, W)`
    (ties to the lower column; padding columns never)."""
    def one(a, mm, valid):
        score = jnp.where(valid, jnp.mean(jnp.abs(a), axis=0), -jnp.inf)
        rank = jnp.argsort(jnp.argsort(-score, stable=True), stable=True)
        return rank < mm

    return jax.vmap(one)(attr, m, mask)


def _convergence(snapshots, args: tuple, method: str, options: tuple, final_top, m, mask, *,
                 cell_by_cell: bool = False) -> np.ndarray:
    """Overlap `(cells, snapshots)` of each snapshot's global top-m with the trained model's: the study's
    convergence measurement (notebooks/simulation_convergence.ipynb), one compiled program for every snapshot."""
    apply_fn, _, *rest = args
    count = jax.tree.leaves(snapshots)[0].shape[1]
    out = []
    for s in range(count):
        params = jax.tree.map(lambda a, s=s: a[:, s], snapshots)
        attr = attribute_program(apply_fn, params, *rest, method=method, options=options, cell_by_cell=cell_by_cell)
        out.append(jnp.sum(_global_top_m(attr, m, mask) & final_top, axis=1))
    return np.asarray(jax.device_get(jnp.stack(out, axis=1)))


def _settled_epoch(overlap: np.ndarray, m: int, every: int, epochs: int) -> int:
    """First snapshot epoch from which every later snapshot's top-m is the final one (`epochs` if none)."""
    settled = epochs
    for i in range(len(overlap) - 1, -1, -1):
        if overlap[i] != m:
            break
        settled = (i + 1) * every
    return settled


@functools.partial(jax.jit, static_argnames=("apply_fn", "method", "options", "cell_by_cell"))
def attribute_program(apply_fn, params, x, refs, keys, *, method: str, options: tuple,
                    cell_by_cell: bool = False) -> jax.Array:
    """`method` on every grid member's test rows: `(G, rows, W)`; one compiled program per method."""
    run_method = _CellMethod(method, options)

    def one(p, xg, rg, key):
        return run_method(lambda z: apply_fn(p, z)[:, 0], xg, rg, key)

    return _over_cells(one, params, x, refs, keys, cell_by_cell=cell_by_cell)


@dataclasses.dataclass(frozen=True)
class _CellMethod:
    """`method` with the grid's options as one cell runs it: `(f, x, refs, key) -> attributions` (`refs`: the
    cell's training rows, GradientSHAP's and DeepLIFT-SHAP's baselines). Hashable: a static argument."""

    method: str
    options: tuple

    def __call__(self, f, x, refs, key):
        kwargs = dict(self.options)
        if "method_kwargs" in kwargs:
            kwargs["method_kwargs"] = dict(kwargs["method_kwargs"])
        extra = {}
        if self.method in attribution.NEEDS_KEY:
            extra["key"] = key
        if self.method == "gradient_shap":
            extra["baselines"] = refs
        elif self.method == "deeplift_shap":
            extra["baselines"] = refs[:DEEPLIFT_SHAP_BASELINES]
        return attribution.METHODS[self.method](f, x, **kwargs, **extra)


@functools.partial(jax.jit, static_argnames=("protocol", "cell_by_cell"))
def _scores(attr, truth, m, mask, *, protocol, cell_by_cell: bool = False):
    def one(a, g, mm, valid):
        return (
            metrics.functional_precision(a, mm, valid=valid),
            metrics.uniform_score(a, g, mm, protocol=protocol, valid=valid),
            metrics.consistency(a, mm, valid=valid),
        )

    return _over_cells(one, attr, truth, m, mask, cell_by_cell=cell_by_cell)


@functools.partial(jax.jit, static_argnames=("apply_fn", "cell_by_cell"))
def _predictions(apply_fn, params, x_test, y_test, y_test_clean, *, cell_by_cell: bool = False):
    """Each cell's test MAE and pred score."""
    def one(p, x, y, clean):
        pred = apply_fn(p, x)[..., 0]
        return jnp.mean(jnp.abs(pred - y)), metrics.pred_score(pred, clean)

    return _over_cells(one, params, x_test, y_test, y_test_clean, cell_by_cell=cell_by_cell)


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
    cell's shapes do not depend on which other cells share its chunk; its rounding does not either where the
    cells run one at a time, see `_cell_by_cell`)."""
    return max(f.m for _, f in config.resolved_formulas()) + config.noise_features


def cell_stream(cell: Cell, purpose: int) -> jax.Array:
    """The cell's random key for one `purpose` (1 init, 2 training, 3 attribution, 4 the randomised model, 5
    proxies, 6 shuffled labels): fixed by the cell's seed and formula, whatever chunk or grid holds the cell."""
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


def init_cells(config: SymbolicConfig, cells: Sequence[Cell]) -> Any:
    """The untrained parameters of each cell's model (leading axis: cells): what `train_grid` starts from, and the
    shapes a checkpoint restores into."""
    return jax.vmap(model_of(config).init)(jnp.stack([cell_stream(c, 1) for c in cells]))


class Trained(NamedTuple):
    params: Any  # leading axis: cells
    losses: jax.Array  # (cells, epochs)
    seconds: float
    snapshots: Any = None  # with convergence_every=K: params after epochs K, 2K, ... (cells, snapshots, ...)
    label_shuffled: Trained | None = None  # with proxies "label_randomisation": the shuffled-label members


#: `cell_stream` purpose of each cell's label permutation (label randomisation; 1-5 are init, training, attribution,
#: re-initialisation and the proxies' keys).
_LABEL_SHUFFLE_STREAM = 6


def shuffle_labels(grid: Grid) -> Grid:
    """The grid with each cell's training labels permuted by a fixed per-cell key (`cell_stream(cell, 6)`): the data of
    the label-randomisation sanity check (Adebayo et al. 2018). Inputs, test split and mask are the cell's own, so a
    model trained on it has every input statistic of the real one and nothing that ties a row's label to its row."""
    keys = jnp.stack([cell_stream(c, _LABEL_SHUFFLE_STREAM) for c in grid.cells])
    y_train = jax.vmap(lambda k, y: jax.random.permutation(k, y, axis=0))(keys, grid.y_train)
    return dataclasses.replace(grid, y_train=y_train)


def _fit_cells(config: SymbolicConfig, grid: Grid, place) -> Trained:
    place = place or (lambda tree: tree)
    model = model_of(config)
    params = init_cells(config, grid.cells)
    keys = jnp.stack([cell_stream(c, 2) for c in grid.cells])
    params, x, y, keys = place((params, grid.x_train, grid.y_train, keys))
    start = time.perf_counter()
    result = fit_grid(
        model.apply, params, x, y, keys,
        optimizer=config.optimizer, learning_rate=config.learning_rate, epochs=config.epochs,
        batch_size=config.train_batch_size, loss="mse", dropout=config.dropout > 0,
        group=1 if _cell_by_cell(x) else "auto",
        snapshot_every=config.convergence_every or None,
    )
    jax.block_until_ready(result)
    return Trained(result.params, result.losses, time.perf_counter() - start, result.snapshots)


def train_grid(config: SymbolicConfig, grid: Grid, place=None) -> Trained:
    """Trains every cell's model in one `fit_grid` program. `place(tree)` may put the stacked inputs on
    devices (e.g. sharded along the cell axis); the computation follows the inputs' placement.

    With the proxy "label_randomisation", each cell also gets its shuffled-label member (`train_label_shuffled`) in
    `label_shuffled`: a second call of the same compiled program, so the real cells' numbers are those of a run
    without it, bit for bit (`seconds` stays theirs alone)."""
    trained = _fit_cells(config, grid, place)
    if proxy_bench.LABEL_RANDOMISATION in config.proxies:
        trained = trained._replace(label_shuffled=train_label_shuffled(config, grid, place))
    return trained


def train_label_shuffled(config: SymbolicConfig, grid: Grid, place=None) -> Trained:
    """Each cell's model trained on its own training labels permuted (`shuffle_labels`): the same architecture,
    initialisation, training stream and program as the real cell, so the labels are the only difference. Its
    snapshots (with `convergence_every`) are dropped: nothing measures them."""
    return _fit_cells(config, shuffle_labels(grid), place)._replace(snapshots=None)


def attribute_grid(config: SymbolicConfig, grid: Grid, trained: Trained, *, sweep_axis: str = "",
                   on_method=None, place=None) -> list[dict[str, Any]]:
    """Every method on every cell's test rows, scored; one row per cell x method.

    Per method: `seconds` is the wall time of everything the method's scores needed (trace, compile, every pass;
    under "paper" IG runs twice, 10 steps for functional precision and consistency, 20 for the uniform score),
    per cell. `attr_peak_bytes` and `attr_run_seconds` describe one attribution pass (IG: the `ig_steps` one) per
    cell, as the study's timing notebook measured them: the compiled grid program's peak memory (XLA's memory
    analysis, free) and, with `time_passes`, its steady-state run time (one more run), each divided by the cells.
    With snapshots (`convergence_every`), each snapshot is attributed too and compared with the trained model's
    global top-m (`topm_*` columns). With `config.proxies`, each method's proxy columns too (`proxy_bench.score_grid`);
    "label_randomisation" scores the shuffled-label members of `trained.label_shuffled`, trained here when absent (a
    sweep restores only the real cells from its checkpoints). ``on_method(name)`` is called before each method
    (progress)."""
    place = place or (lambda tree: tree)
    model = model_of(config)
    size = len(grid.cells)
    params, x_test = place((trained.params, grid.x_test))
    one_at_a_time = _cell_by_cell(x_test)
    mae, pred_score = _predictions(model.apply, params, x_test, *place((grid.y_test, grid.y_test_clean)),
                                   cell_by_cell=one_at_a_time)
    initial_loss, final_loss = trained.losses[:, 0], trained.losses[:, -1]
    refs = place(grid.x_train[:, :64])  # GradientSHAP's baseline distribution: training rows
    attr_keys = place(jnp.stack([cell_stream(c, 3) for c in grid.cells]))
    m = jnp.asarray(grid.m)
    # A model whose training loss went non-finite has NaN (or arbitrary) attributions: it scores NaN, never a number.
    dead = diverged(trained.losses)
    snapshots = place(trained.snapshots) if trained.snapshots is not None else None
    every = config.convergence_every if snapshots is not None else 0
    if config.proxies:  # proxy metrics (issue 17) on each cell's first PROXY_ROWS test rows
        proxy_rows = min(proxy_bench.PROXY_ROWS, grid.x_test.shape[1])
        random_params = place(jax.vmap(model.init)(jnp.stack([cell_stream(c, 4) for c in grid.cells])))
        proxy_keys = place(jnp.stack([cell_stream(c, 5) for c in grid.cells]))
        shuffled_params, shuffled_dead = None, np.zeros(size, bool)
        if proxy_bench.LABEL_RANDOMISATION in config.proxies:
            # A sweep restores only the real cells from its checkpoints: their shuffled-label members train here.
            shuffled = trained.label_shuffled
            if shuffled is None:
                shuffled = train_label_shuffled(config, grid, place)
            shuffled_params, shuffled_dead = place(shuffled.params), diverged(shuffled.losses)
    rows = []
    truths: dict[str, jax.Array] = {}  # methods that share a truth compute it once
    for method in config.method_names():
        if on_method is not None:
            on_method(method)
        options = tuple(sorted(method_options(config, method).items()))
        args = (model.apply, params, x_test, refs, attr_keys)
        start = time.perf_counter()
        attr, run_seconds, peak_bytes = _measured_pass(args, method, options, repeat=config.time_passes,
                                                       cell_by_cell=one_at_a_time)
        uniform_attr = attr
        if method == "integrated_gradients" and config.uniform_ig_steps() != config.ig_steps:
            # A second IG pass for the uniform score (paper: 20 steps; functional precision and consistency: 10).
            uniform_options = tuple(sorted({**dict(options), "steps": config.uniform_ig_steps()}.items()))
            uniform_attr = attribute_program(*args, method=method, options=uniform_options, cell_by_cell=one_at_a_time)
            jax.block_until_ready(uniform_attr)
        seconds = time.perf_counter() - start
        kind, background = TRUTH_FOR[method], None
        if method == "deeplift_shap":  # the Shapley values against the baselines the method averaged over
            kind, background = "shapley/background", grid.x_train[:, :DEEPLIFT_SHAP_BASELINES]
        elif method == "feature_permutation":  # the expectation over permutations of the test rows
            background = grid.x_test
        if kind not in truths:
            truths[kind] = ground_truths(grid, kind.split("/")[0], config.protocol, background)
        truth = truths[kind]

        def score(a):
            return (np.where(dead, np.nan, s) for s in jax.device_get(
                _scores(a, truth, m, grid.mask, protocol=config.protocol, cell_by_cell=one_at_a_time)))

        precision, uniform, consistency = score(attr)
        if uniform_attr is not attr:
            uniform = list(score(uniform_attr))[1]
        proxy_values: dict[str, Any] = {}
        if config.proxies:
            start = time.perf_counter()
            values = proxy_bench.score_grid(
                model.apply, params, random_params, x_test[:, :proxy_rows], attr[:, :proxy_rows], m, place(grid.mask),
                refs, proxy_keys, attribute=_CellMethod(method, options), names=tuple(config.proxies),
                cell_by_cell=one_at_a_time, shuffled_params=shuffled_params)
            proxy_values = {c: np.where(dead, np.nan, v) for c, v in jax.device_get(values).items()}
            if proxy_bench.LABEL_RANDOMISATION in config.proxies:  # a diverged shuffled-label member scores NaN
                column = proxy_bench.PROXIES[proxy_bench.LABEL_RANDOMISATION][0]
                proxy_values[column] = np.where(shuffled_dead, np.nan, proxy_values[column])
            proxy_values["proxy_seconds"] = np.full(size, (time.perf_counter() - start) / size)
        overlap = None
        if snapshots is not None:
            overlap = _convergence(snapshots, args, method, options, _global_top_m(attr, m, grid.mask), m, grid.mask,
                                   cell_by_cell=one_at_a_time)
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
                "ig_steps_uniform": config.uniform_ig_steps(),
                "attr_run_seconds": run_seconds / size,
                "attr_peak_bytes": peak_bytes / size,
                "convergence_every": every,
                "topm_mean_overlap": float(np.mean(overlap[g]) / grid.m[g]) if overlap is not None else np.nan,
                "topm_settled_epoch": (_settled_epoch(overlap[g], int(grid.m[g]), every, config.epochs)
                                       if overlap is not None else np.nan),
                "topm_overlap_trace": ";".join(str(int(c)) for c in overlap[g]) if overlap is not None else "",
                **{column: float(v[g]) for column, v in proxy_values.items()},
            })
    return rows


def ground_truths(grid: Grid, method: str, protocol: str, background: jax.Array | None = None) -> jax.Array:
    """Each cell's ground truth on its test rows ``(cells, rows, W)``, computed on blocks of `_TRUTH_ROWS` rows
    (the last one padded with copies of the final row), so that one compiled program per (formula, method)
    serves every row count: an `n` ablation compiles its ground truth once, not once per `n`. `background`
    ``(cells, K, W)``: each cell's rows for the truths that average over rows (`ground_truth`'s `background`).

    Not one program for the whole grid: measured on the default grid, it compiled the nine truths in 41 s instead of
    54 s, but a cell's truth then moved by an ulp with the grid around it (one seed of a formula or two; XLA compiles
    a loop body, a `lax.switch` branch and a lone program differently), and a sweep's chunks must reproduce the
    `symbolic` command's numbers exactly."""
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


def run_setting(config: SymbolicConfig, *, sweep_axis: str = "", progress: Progress | None = None
                ) -> list[dict[str, Any]]:
    """Trains and attributes one setting's grid (formulas x seeds); returns one row per cell x method.
    ``progress``: a `chaosjax.Progress` to report the phases to (data, training, attribution)."""
    progress = progress or Progress(enabled=False)
    with progress.phase("data"):
        grid = build_grid(config, cells_of(config))
    models, epochs = len(grid.cells), config.epochs

    def train(what: str, fit):
        with progress.phase(f"train {count(models, what)} x {epochs} epochs", total=models * epochs, unit="epochs",
                            compiling=True) as phase:
            # Training ticks report (epoch, of) across the grid's groups; as epochs of all models together.
            with progress_to(lambda epoch, of: phase.set(epoch * models * epochs // of)):
                result = fit()
            phase.set(models * epochs)  # the ticks fall every ~2% of a run, not necessarily on its last epoch
        return result

    # What `train_grid` does, one phase per training program: the shuffled-label models have a bar of their own.
    trained = train("model", lambda: _fit_cells(config, grid, None))
    if proxy_bench.LABEL_RANDOMISATION in config.proxies:
        trained = trained._replace(label_shuffled=train("shuffled-label model",
                                                        lambda: train_label_shuffled(config, grid)))
    methods = config.method_names()
    with progress.phase(f"attribute {count(models, 'model')}", total=len(methods), unit="methods") as phase:
        return attribute_grid(config, grid, trained, sweep_axis=sweep_axis, on_method=phase.item)


# ----------------------------------------------------------------------------------------------- a run


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
    path = check_out_dir(out, overwrite=overwrite) if out is not None else None
    settings = config.settings()
    axis = config.sweep[0] if config.sweep else ""
    rows: list[dict[str, Any]] = []
    walls = []
    started = time.time()
    for i, setting in enumerate(settings):
        prefix = f"[{axis}={config.sweep[1][i]}] " if axis else ""
        start = time.perf_counter()
        rows.extend(run_setting(setting, sweep_axis=axis, progress=Progress(enabled=progress, prefix=prefix)))
        walls.append(time.perf_counter() - start)
    frame = pd.DataFrame(rows, columns=list(COLUMNS) + list(proxy_bench.proxy_columns(config.proxies)))
    _check_training(frame, config)
    if path is not None:
        write_results(path, frame, track="symbolic", config=config.to_json(), started=started,
                      walls={"per_setting": walls})
    return frame


def _check_training(frame, config: SymbolicConfig) -> None:
    """Refuses a run whose every model diverged (non-finite training loss), and warns, naming them, when some did:
    their scores are NaN."""
    from chaosjax.checks import BadInput

    models = frame.drop_duplicates(["formula", "seed", "lr", "optimizer", "noise_features", "n", "depth", "width",
                                    "dropout", "label_noise"])
    dead = models[~np.isfinite(models["final_loss"].to_numpy(np.float64))]
    if not len(dead):
        return
    where = ", ".join(f"formula {r.formula} seed {r.seed} (lr {r.lr:g}, {r.optimizer})"
                      for r in dead.head(3).itertuples())
    where += f" and {len(dead) - 3} more" if len(dead) > 3 else ""
    if len(dead) == len(models):
        raise BadInput(f"training diverged: the loss of every model became non-finite ({where}); lower the learning "
                       f"rate (lr {config.learning_rate:g}) and run again")
    warnings.warn(f"training diverged in {len(dead)} of {len(models)} models ({where}): their scores are NaN",
                  stacklevel=2)


def summary_table(frame, by: Sequence[str] | None = None) -> str:
    """A markdown table per method (and sweep value): functional precision and uniform score, mean and
    95% CI over formulas x seeds (`format_mean_ci`: below 3 cells, the count instead), and the attribution wall
    time. `by`: result columns to split by (default: the CLI sweep's axis, if any)."""
    if by is None:
        first = frame["sweep_axis"].iloc[0] if len(frame) else ""
        axis = first if isinstance(first, str) else ""  # read back from CSV, an empty axis is NaN
        by = [{"noise": "noise_features", "label-noise": "label_noise"}.get(axis, axis)] if axis else []
    lines = [summary_rows(frame, [*by, "method"], {"functional precision": "functional_precision",
                                                   "uniform score": "uniform_score"}, count="cells")]
    train = frame.drop_duplicates(["formula", "seed"] + list(by))["train_seconds"].sum()
    lines.append(f"\ntraining: {train:.1f} s for {len(frame.drop_duplicates(['formula', 'seed']))} models per setting")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------- sweeps and the CLI

#: A sweep's TOML keys that are not field names, and the keys whose lists make axes of the grid.
_TOML_KEYS = {"noise": "noise_features", "lr": "learning_rate"}  # short keys, kept from the first sweeps
_TOML_AXES = ("noise", "noise_features", "n", "depth", "width", "activation", "lr", "learning_rate", "optimizer",
              "dropout", "label_noise", "epochs")
_RESULT_COLUMN = {"noise": "noise_features", "activation": "model", "learning_rate": "lr"}  # TOML axis -> column
# TOML axis -> its name in the sweep_axis column (the CLI's --sweep)
_SWEEP_AXIS = {"label_noise": "label-noise", "noise_features": "noise", "learning_rate": "lr"}


def _split(setting: SymbolicConfig, index: int, *, chunk_size: int, axes: Sequence[str],
           sweep_axes: Sequence[str]) -> list[Chunk]:
    """A setting's cells cut into chunks of `chunk_size` (its rows already name every swept field)."""
    cells = cells_of(setting)
    on_axes = tuple(_SWEEP_AXIS.get(a, a) for a in sweep_axes)
    return [Chunk(f"s{index}-c{c // chunk_size}", setting, tuple(cells[c:c + chunk_size]), sweep_axes=on_axes,
                  setting_index=index)
            for c in range(0, len(cells), chunk_size)]


def chunk_template(chunk: Chunk) -> dict[str, Any]:
    """What a sweep chunk's checkpoint holds (its real cells' params and losses); traced for shapes only."""
    return {"params": init_cells(chunk.setting, chunk.cells),
            "losses": jnp.zeros((len(chunk.cells), chunk.setting.epochs), jnp.float32)}


def compute_chunk(chunk: Chunk, chunk_run: ChunkRun) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Trains (or restores) and attributes a sweep chunk, its cells padded to the device count. A cell's rows do
    not depend on its chunk (see `chaosjax.sweep`)."""
    cells = chunk_run.place.pad(chunk.cells)
    real = len(chunk.cells)
    t0 = time.perf_counter()
    grid = build_grid(chunk.setting, cells)

    def train():
        trained = train_grid(chunk.setting, grid, place=chunk_run.place)
        return {"params": trained.params, "losses": trained.losses}, trained.seconds

    tree, seconds, restored = chunk_run.trained(functools.partial(chunk_template, chunk), train, real, len(cells))
    trained = Trained(tree["params"], tree["losses"], seconds)
    t1 = time.perf_counter()
    rows = unpadded(attribute_grid(chunk.setting, grid, trained, place=chunk_run.place), len(cells), real)
    if chunk.sweep_axes:  # combine = "each": the rows of every axis this setting lies on, as separate sweeps give
        rows = [{**r, "sweep_axis": axis} for axis in chunk.sweep_axes for r in rows]
    return rows, {"train": t1 - t0, "attribute": time.perf_counter() - t1, "restored": restored}


def sweep_summary(rows, spec: dict[str, Any]) -> str:
    """The tables `chaosjax sweep` prints: by the swept columns, or with ``combine = "each"`` one per axis (the
    shared setting in place), as that axis's own sweep would print it."""
    columns = list(COLUMNS)
    if spec.get("combine") != "each":
        return summary_table(rows[columns], by=[_RESULT_COLUMN.get(k, k) for k in spec["axes"]])
    tables = []
    for axis in spec["axes"]:
        column = _RESULT_COLUMN.get(axis, axis)
        one = rows.loc[rows["sweep_axis"] == _SWEEP_AXIS.get(axis, axis)].sort_values(column, kind="stable")
        tables.append(summary_table(one[columns], by=[column]))
    return "\n".join(tables)


def _toml_methods(value: Any, where: str) -> tuple[str, ...] | None:
    if value == "all":
        return None
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"sweep: {where} must be a list of strings, got {value!r}")
    return tuple(names)


#: The fields `chaosjax symbolic` has a flag for, in --help order.
_FLAGS = ("formulas", "noise_features", "seeds", "methods", "epochs", "n", "depth", "width", "learning_rate",
          "optimizer", "dropout", "label_noise", "ig_steps", "ig_steps_uniform", "convergence_every", "time_passes",
          "proxies", "protocol", "sweep")


def add_cli(sub) -> None:
    """The `chaosjax symbolic` subcommand."""
    from chaosjax import tracks

    p = sub.add_parser(
        "symbolic",
        help=tracks.help_line("symbolic"),
        description=(
            "Train an MLP per formula x seed x setting (one compiled grid), attribute the test split with "
            "every method, and score functional precision and uniform score against the true function. "
            "Defaults are the study's protocol."
        ),
    )
    add_flags(p, SymbolicConfig, _FLAGS)
    p.add_argument("--out", default="runs/symbolic", help="results directory (default runs/symbolic)")
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress lines (stderr)")
    p.set_defaults(prepare=prepare_cli)


def config_from_args(args) -> SymbolicConfig:
    """The config a parsed `chaosjax symbolic` command line asks for."""
    return SymbolicConfig(**from_args(args, SymbolicConfig, _FLAGS))


def prepare_cli(args):
    """Checks a `chaosjax symbolic` command line (config and --out) without touching anything; returns its job."""
    return checked_job(args, config_from_args(args), run, summary_table)


def run_cli(args) -> int:
    """Runs a `chaosjax symbolic` command line; prints the summary table."""
    return prepare_cli(args)()


TRACK = Track(
    name="symbolic",
    help=help_line("symbolic"),
    config=SymbolicConfig,
    columns=tuple(COLUMNS),
    compute=compute_chunk,
    summary_table=sweep_summary,
    draw="chaosjax.report.symbolic:draw",
    required=("formula", "m", "noise_features", "seed", "method", "functional_precision", "uniform_score"),
    add_cli=add_cli,
    keys={**_TOML_KEYS},
    list_fields=("formulas", "seeds", "methods", "proxies"),
    cli_only=("sweep",),
    axes=_TOML_AXES,
    parsers={"methods": _toml_methods,
             "proxies": lambda value, where: proxy_bench.resolve_proxies(value, where)},
    split=_split,
    setting_columns=lambda setting: proxy_bench.proxy_columns(setting.proxies),
    chunk_size=lambda chunk: len(chunk.cells),
    chunk_label=lambda chunk: (f"{chunk.cells[0].label}..{chunk.cells[-1].label} "
                               f"seeds {sorted({c.seed for c in chunk.cells})}"),
)
