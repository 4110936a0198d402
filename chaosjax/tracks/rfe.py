"""RFEwNA as a benchmark: neural-attribution eliminations against scikit-learn's RFE, per round.

Datasets: the study's symbolic setting (formulas with many noise columns, truth known), tabular data
that ships with scikit-learn (breast cancer: binary classification; diabetes: regression), optionally
with appended noise columns to lower the signal-to-noise ratio, or any numeric CSV. Every
elimination of every dataset x seed x method x schedule runs in one compiled program
(`chaosjax.rfe.eliminate`); the baselines run scikit-learn's RFE on the same schedule, and their final
feature sets are then scored the same way as the neural ones: a fresh network of the same
architecture trained on them, evaluated on the test split (`mlp_*` columns).
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from chaosjax import attribution, rfe
from chaosjax._progress import Progress, count
from chaosjax.checks import (BadInput, as_bad_input, check_distinct, check_out_dir,
                             refuse_or_warn_diverged)
from chaosjax.data import symbolic as data
from chaosjax.models import mlp
from chaosjax.models.mlp import ACTIVATIONS
from chaosjax.runs import format_mean_ci, write_results
from chaosjax._fields import add_flags, check_fields, from_args, integer, number, one_of, option, seed_list
from chaosjax._parse import parse_formulas, parse_int_range, parse_names
from chaosjax.tracks import Track, help_line
from chaosjax.tracks._cli import checked_job
from chaosjax.train import OPTIMIZERS

DATASETS = ("symbolic", "breast_cancer", "diabetes", "csv")
DEFAULT_METHODS = ("saliency", "integrated_gradients", "deeplift", "feature_ablation")
COLUMNS = (
    "track", "dataset", "formula", "task", "seed", "kind", "method", "schedule", "protocol", "round",
    "features_kept", "test_mae", "balanced_accuracy", "roc_auc", "functional_precision", "mlp_test_mae",
    "mlp_balanced_accuracy", "mlp_roc_auc", "final", "selected", "seconds",
)


def _methods(text: str, flag: str) -> tuple[str, ...]:
    return () if text.strip() == "none" else (parse_names(text, flag) or tuple(attribution.METHODS))


def _baselines(text: str, flag: str) -> tuple[str, ...] | None:
    return None if text == "all" else (() if text == "none" else parse_names(text, flag))


def _schedules(text: str, flag: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


@dataclasses.dataclass(frozen=True)
class RFEConfig:
    """An RFE benchmark run; defaults are the study's simulation setting (docs/protocol.md, "RFE")."""

    dataset: str = option("symbolic", "symbolic (the formulas), breast_cancer, diabetes or csv",
                          check=one_of(*DATASETS))
    formulas: tuple[int | str, ...] = option((10, 11, 12, 13, 14), "symbolic formulas (indices or a formula text)",
                                             parse=lambda text, flag: parse_formulas(text), text="10-14")
    noise_features: int = option(150, "noise columns for the symbolic formulas", check=integer(0),
                                 flags=("--noise-features", "--noise"), metavar="NOISE")
    n: int = option(10_000, "rows of the symbolic tables", check=integer(1))
    csv: str | None = option(None, "a numeric CSV file instead of the formulas")
    target: str | None = option(None, "the CSV's target column (0/1 means classification)")
    add_noise: int = option(0, "append this many N(0,1) noise columns", check=integer(0))
    methods: tuple[str, ...] = option(DEFAULT_METHODS, "attribution methods, 'all' or 'none'", parse=_methods)
    baselines: tuple[str, ...] | None = option(  # None: all three of the task; () for none
        None, "scikit-learn baselines (linear,svr,tree or logistic,svc,tree), 'all' or 'none'", parse=_baselines,
        text="all")
    schedules: tuple[str, ...] = option(("halve",), "halve, fraction:F or step:N; several comma-separated",
                                        flags=("--schedule",), parse=_schedules, metavar="SCHEDULE")
    k: int | None = option(  # None: m for formulas, 3 for tabular data (the study's real-data setting)
        None, "features to keep (default: m, or 3 for tabular data)", check=integer(1, optional=True))
    seeds: tuple[int, ...] = option((0,), "seeds, e.g. '0-2'", check=seed_list,
                                    parse=parse_int_range, text="0")
    epochs: int = option(1000, "training epochs of each round's network", check=integer(1))
    learning_rate: float = option(1e-3, "Adam learning rate", check=number(positive=True),
                                  flags=("--learning-rate", "--lr"), metavar="LR")
    depth: int = option(3, "hidden layers of the MLP", check=integer(1))
    width: int = option(100, "units per hidden layer", check=integer(1))
    activation: str | None = option(  # None: GELU for regression (the study's MLP), ReLU for classification
        None, "the MLP's activation (default: GELU for regression, ReLU for classification)",
        check=one_of(*ACTIVATIONS, optional=True))
    optimizer: str = option("adam", "the optimizer", check=one_of(*OPTIMIZERS))
    protocol: str = option("corrected", "paper: rank on the test split as the study did; corrected: on a "
                           "validation split", check=one_of(*data.PROTOCOLS), choices=data.PROTOCOLS)
    early_stop: bool = option(False, "stop when the ranking-split loss rises")
    ig_steps: int | None = option(  # None: 50 under paper (Captum's default, as the study), 10 under corrected
        None, "integrated-gradients steps of the ranking (default: 50 under paper, 10 under corrected)",
        check=integer(1, optional=True))

    def resolved_ig_steps(self) -> int:
        """IG steps of the ranking. The study's RFE notebooks call Captum's IntegratedGradients with its default
        50 Gauss-Legendre steps; "corrected" uses 10, as on the symbolic track: on these smooth MLPs the 10-node
        rule ranks the features as 50 do (docs/protocol.md: measured) at a fifth of the cost."""
        if self.ig_steps is not None:
            return self.ig_steps
        return 50 if self.protocol == "paper" else 10

    def method_options(self) -> dict[str, dict[str, Any]]:
        """Per-method options of the ranking under the protocol (draws are chunked by `rfe.draw_batch_size()`)."""
        return {
            "integrated_gradients": {"steps": self.resolved_ig_steps()},
            # paper: Captum's DeepLift, which has no GELU rule (input x gradient on the study's GELU MLPs).
            "deeplift": {"rescale": "captum" if self.protocol == "paper" else "all"},
        }

    def validate(self) -> None:
        """Raises ValueError/TypeError naming the bad field, before any expensive work (a CSV is read and checked
        here too)."""
        check_fields(self)
        if self.dataset == "csv" and (not self.csv or not self.target):
            raise ValueError("--csv FILE and --target COLUMN are both needed for a CSV dataset")
        for name in ("methods", "schedules", "seeds", "formulas") + (() if self.baselines is None else ("baselines",)):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
                raise TypeError(f"{name}: expected a sequence, got {value!r}")
        unknown = [m for m in self.methods if m not in attribution.METHODS]
        if unknown:
            raise ValueError(f"methods: unknown {unknown!r}; expected names from {', '.join(attribution.METHODS)}")
        check_distinct(self.methods, "methods")
        if self.baselines is not None:
            known = sorted(set(rfe.BASELINES["regression"] + rfe.BASELINES["classification"]))
            unknown = [b for b in self.baselines if b not in known]
            if unknown:
                raise ValueError(f"baselines: unknown {unknown!r}; expected names from {', '.join(known)} or 'none'")
            check_distinct(self.baselines, "baselines")
        if not self.methods and self.baselines == ():
            raise ValueError("methods: nothing to run (no methods and no baselines)")
        if not self.schedules:
            raise ValueError("schedule: none given")
        check_distinct([str(rfe.parse_schedule(s)) for s in self.schedules], "schedule")
        if not isinstance(self.early_stop, bool):
            raise TypeError(f"early_stop: expected true or false, got {self.early_stop!r}")
        if self.dataset == "symbolic":
            self.resolved_formulas()
            if self.n < MIN_CSV_ROWS:
                raise ValueError(f"n: {self.n} rows are too few; need at least {MIN_CSV_ROWS} (train, ranking and "
                                 "test splits)")
        elif self.dataset == "csv":
            _load_csv(self.csv, self.target)

    def resolved_formulas(self) -> list[tuple[str, data.Formula]]:
        """(label, Formula) per entry of `formulas`: an index among the protocol's 15, or a formula text (checked
        on the sampled range: defined and not constant)."""
        if not self.formulas:
            raise ValueError("formulas: none given")
        table = data.formulas(self.protocol)
        chosen = []
        for entry in self.formulas:
            if isinstance(entry, (int, np.integer)) and not isinstance(entry, bool):
                if not 0 <= entry < len(table):
                    raise ValueError(f"formulas: index {entry} out of range 0-{len(table) - 1}")
                chosen.append((str(int(entry)), table[int(entry)]))
            elif isinstance(entry, str):
                f = data.formula(entry, name="custom")
                for message in data.check_on_range(f):
                    warnings.warn(message, stacklevel=3)
                chosen.append((entry, f))
            else:
                raise TypeError(f"formulas: expected indices or formula texts, got {entry!r}")
        check_distinct([f.text for _, f in chosen], "formulas")
        return chosen

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------------------- datasets


@dataclasses.dataclass
class _Dataset:
    label: str
    formula: str
    task: str
    problem: rfe.Problem  # numpy arrays, one problem
    k: int
    y_scale: float  # test MAE is reported in the target's units


def _split_rows(n: int, seed: int, test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(n * test_fraction))
    return order[n_test:], order[:n_test]


def _problem(x_train, y_train, x_test, y_test, predictive, protocol, seed, valid=None) -> rfe.Problem:
    """Carves the ranking split: a validation split of the training rows (corrected) or the test split (paper)."""
    if protocol == "paper":
        x_rank, y_rank = x_test, y_test  # the study ranks on the split it reports (leakage, kept as published)
    else:
        fit_rows, val_rows = _split_rows(x_train.shape[0], seed + 7_919)
        x_rank, y_rank = x_train[val_rows], y_train[val_rows]
        x_train, y_train = x_train[fit_rows], y_train[fit_rows]
    width = x_train.shape[1]
    valid = np.ones(width, bool) if valid is None else valid
    return rfe.Problem(x_train, y_train, x_rank, y_rank, x_test, y_test, valid, predictive)


def _standardise(values: np.ndarray, rows: np.ndarray, what: str, names: list[str] | None = None) -> np.ndarray:
    """``(values - mean) / std`` over the training `rows`, column by column, in float64; a column whose statistics
    or standardised values are not finite (numbers near float64's limit, 1e308) is bad input: it would turn into
    NaN or inf and silently drop out of the ranking."""
    with np.errstate(all="ignore"):
        mean, std = values[rows].mean(0), values[rows].std(0)
        out = (values - mean) / (std + 1e-12)
        # float32 is what the network sees
        bad = ~(np.isfinite(mean) & np.isfinite(std) & np.isfinite(out.astype(np.float32)).all(0))
    if np.any(bad):
        j = int(np.flatnonzero(np.atleast_1d(bad))[0])
        name = names[j] if names is not None else what
        raise BadInput(f"{what}: column {name!r} cannot be standardised in floating point (values up to "
                       f"{np.max(np.abs(np.atleast_2d(values.T)[j])):.3g}); rescale it")
    return out


def _tabular(x: np.ndarray, y: np.ndarray, task: str, label: str, config: RFEConfig, seed: int,
             names: list[str] | None = None) -> _Dataset:
    x = np.asarray(x, np.float64)
    rng = np.random.default_rng(seed)
    predictive = np.zeros(x.shape[1] + config.add_noise, bool)
    if config.add_noise:
        predictive[: x.shape[1]] = True  # the appended columns are known noise
        x = np.concatenate([x, rng.normal(size=(x.shape[0], config.add_noise))], axis=1)
        names = None if names is None else names + [f"noise{i}" for i in range(config.add_noise)]
    train, test = _split_rows(x.shape[0], seed)
    x = _standardise(x, train, "--csv" if config.dataset == "csv" else config.dataset, names).astype(np.float32)
    y = np.asarray(y, np.float64)
    y_scale = 1.0
    if task == "regression":
        standardised = _standardise(y[:, None], train, "--target", [config.target or "target"])[:, 0]
        y, y_scale = standardised, float(y[train].std() + 1e-12)
    y = y.astype(np.float32)
    if task == "classification":
        for split, rows in (("training", train), ("test", test)):
            if np.unique(y[rows]).size < 2:
                raise BadInput(f"--target: the {split} split of seed {seed} holds one class only; the data needs more "
                               "rows of each class")
    k = config.k if config.k is not None else 3
    problem = _problem(x[train], y[train], x[test], y[test], predictive, config.protocol, seed)
    return _Dataset(label, "", task, problem, k, y_scale)


#: Fewest rows of a dataset: a test split, and training rows to carve a ranking split from.
MIN_CSV_ROWS = 10


def _load_csv(path: str, target: str) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """The CSV's features, target, task and feature names; `BadInput` for anything the benchmark cannot use."""
    import pandas as pd

    if not os.path.isfile(path):
        raise BadInput(f"--csv: no such file {path!r}")
    try:
        frame = pd.read_csv(path)
    except Exception as err:  # noqa: BLE001 - any parse failure is bad input
        raise BadInput(f"--csv: cannot read {path!r} as CSV: {err}") from None
    if target not in frame.columns:
        raise BadInput(f"--target: column {target!r} not in {path} (columns: {', '.join(map(str, frame.columns))})")
    non_numeric = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])
                   or pd.api.types.is_bool_dtype(frame[c])]
    if non_numeric:
        raise BadInput(f"--csv: non-numeric columns {non_numeric}; encode them as numbers first")
    if frame.isna().any().any():
        bad = [c for c in frame.columns if frame[c].isna().any()]
        raise BadInput(f"--csv: missing values (NaN) in columns {bad}")
    infinite = [c for c in frame.columns if not np.isfinite(frame[c].to_numpy(np.float64)).all()]
    if infinite:
        raise BadInput(f"--csv: infinite values in columns {infinite}")
    if len(frame) < MIN_CSV_ROWS:
        raise BadInput(f"--csv: {len(frame)} rows; need at least {MIN_CSV_ROWS} (train, ranking and test splits)")
    y = frame[target].to_numpy()
    features = frame.drop(columns=[target])
    x = features.to_numpy()
    if x.shape[1] < 2:
        raise BadInput("--csv: need at least two feature columns besides the target")
    values = np.unique(y)
    if values.size < 2:
        raise BadInput(f"--target: column {target!r} holds the single value {values[0]!r}; there is nothing to "
                       "predict")
    task = "classification" if set(values) <= {0, 1} else "regression"
    if task == "classification" and min(np.sum(y == 0), np.sum(y == 1)) < 2:
        raise BadInput(f"--target: column {target!r} has fewer than 2 rows of one class; there is nothing to learn")
    return x, y, task, [str(c) for c in features.columns]


def load_datasets(config: RFEConfig, seed: int) -> list[_Dataset]:
    """The config's datasets for one seed (each with its own split and, for formulas, its own draw)."""
    if config.dataset == "symbolic":
        with warnings.catch_warnings():  # validate() warned already
            warnings.simplefilter("ignore")
            chosen = config.resolved_formulas()
        width = max(f.m for _, f in chosen) + config.noise_features
        out = []
        for i, (label, f) in enumerate(chosen):
            d = data.make_dataset(jax.random.fold_in(jax.random.key(seed), i), f,
                                  noise_features=config.noise_features, n=config.n, pad_to=width)
            predictive = np.arange(width) < f.m
            problem = _problem(*map(np.asarray, (d.x_train, d.y_train, d.x_test, d.y_test)), predictive,
                               config.protocol, seed, valid=np.asarray(d.column_mask))
            out.append(_Dataset("symbolic", label, "regression", problem, f.m if config.k is None else config.k, 1.0))
        return out
    if config.dataset == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        bunch = load_breast_cancer()
        return [_tabular(bunch.data, bunch.target, "classification", "breast_cancer", config, seed)]
    if config.dataset == "diabetes":
        from sklearn.datasets import load_diabetes

        bunch = load_diabetes()
        return [_tabular(bunch.data, bunch.target, "regression", "diabetes", config, seed)]
    x, y, task, names = _load_csv(config.csv, config.target)
    return [_tabular(x, y, task, Path(config.csv).stem, config, seed, names)]


def stack_problems(problems: list[rfe.Problem]) -> rfe.Problem:
    """Stacks problems, padding rows of unequal splits by repetition-free truncation to the smallest size."""
    sizes = {name: min(np.shape(getattr(p, name))[0] for p in problems)
             for name in ("x_train", "x_rank", "x_test")}
    def rows(p, name):
        key = {"y_train": "x_train", "y_rank": "x_rank", "y_test": "x_test"}.get(name, name)
        arr = np.asarray(getattr(p, name))
        return arr[: sizes[key]] if key in sizes else arr
    return rfe.Problem(*[jnp.stack([rows(p, name) for p in problems]) for name in rfe.Problem._fields])


# ------------------------------------------------------------------------------------------------ a run


def _prepare(config: RFEConfig):
    """The datasets (per seed), baselines, schedules and each run's keep counts, checked against the data."""
    datasets = [(seed, d) for seed in config.seeds for d in load_datasets(config, seed)]
    task = datasets[0][1].task
    if any(d.task != task for _, d in datasets):
        raise ValueError("datasets: cannot mix regression and classification in one run")
    baselines = rfe.BASELINES[task] if config.baselines is None else tuple(config.baselines)
    for name in baselines:
        if name not in rfe.BASELINES[task]:
            raise ValueError(f"baselines: unknown {name!r} for {task}; expected some of "
                             f"{', '.join(rfe.BASELINES[task])} or 'none'")
    schedules = [rfe.parse_schedule(s) for s in config.schedules]
    counts_of = {}
    for seed, d in datasets:
        n_valid = int(np.sum(d.problem.valid))
        for s in schedules:
            counts_of[(seed, d.formula, str(s))] = rfe.keep_counts(n_valid, d.k, s)  # validates k
    return datasets, baselines, schedules, counts_of


def run(config: RFEConfig, *, out=None, overwrite: bool = False, progress: bool = True, place=None):
    """Runs the benchmark and returns one row per dataset x seed x method/baseline x schedule x round.

    ``place``: a ``GridPlacement`` (``chaosjax.sweep`` passes one) to split the neural eliminations across its
    devices, padded to the device count; by default they run on JAX's default device.
    """
    import pandas as pd

    config.validate()
    path = check_out_dir(out, overwrite=overwrite) if out is not None else None
    with as_bad_input():  # what only the data tells (k against the columns, baselines against the task)
        datasets, baselines, schedules, counts_of = _prepare(config)
    task = datasets[0][1].task

    activation = config.activation or ("gelu" if task == "regression" else "relu")
    width = datasets[0][1].problem.x_train.shape[1]
    model = mlp(width, depth=config.depth, width=config.width, activation=activation)
    options = {  # draws chunked by rfe.draw_batch_size()
        **config.method_options(),
        "occlusion": {"window": 1},  # single columns: a table's column order carries no meaning
        "shapley_sampling": {"permutations": 2, "antithetic": True},  # 2 (W - 1) passes per round
        "kernel_shap": {"samples": 2 * width},
        "lime": {"samples": 2 * width},
    }
    if "shapley_exact" in config.methods and width > attribution.MAX_EXACT_GROUPS:
        raise ValueError(f"methods: shapley_exact enumerates every coalition of the {width} columns (2^{width}); "
                         f"its limit is {attribution.MAX_EXACT_GROUPS} columns. Use shapley_sampling or kernel_shap")
    bar = Progress(enabled=progress)
    rows: list[dict[str, Any]] = []
    dead, labels = [], []  # per method: which of its runs diverged
    started = time.time()

    def row(seed, d, kind, method, schedule, r, record, final, seconds, mlp_record=None):
        kept_mask = np.asarray(record["mask"])
        out_row = {
            "track": "rfe", "dataset": d.label, "formula": d.formula, "task": d.task, "seed": seed, "kind": kind,
            "method": method, "schedule": str(schedule), "protocol": config.protocol, "round": r,
            "features_kept": int(record["kept"]),
            "test_mae": float(record.get("test_mae", np.nan)) * d.y_scale,
            "balanced_accuracy": float(record.get("balanced_accuracy", np.nan)),
            "roc_auc": float(record.get("roc_auc", np.nan)),
            "functional_precision": float(record["kept_precision"]),
            "mlp_test_mae": np.nan, "mlp_balanced_accuracy": np.nan, "mlp_roc_auc": np.nan,
            "final": final, "selected": ";".join(map(str, np.flatnonzero(kept_mask))) if final else "",
            "seconds": seconds,
        }
        if mlp_record is not None:
            out_row["mlp_test_mae"] = float(mlp_record["test_mae"]) * d.y_scale
            out_row["mlp_balanced_accuracy"] = float(mlp_record["balanced_accuracy"])
            out_row["mlp_roc_auc"] = float(mlp_record["roc_auc"])
        return out_row

    def record_at(records, g, r):
        return {name: np.asarray(getattr(records, name)[g, r]) for name in rfe.RoundRecord._fields}

    # Neural eliminations: one program per method (all its datasets x seeds x schedules), so that no member
    # computes another method's attributions and each method's wall time is its own.
    members = [(seed, d, mi, s) for seed, d in datasets for mi in range(len(config.methods)) for s in schedules]
    by_member: dict[int, list[dict[str, Any]]] = {}
    for mi, method in enumerate(config.methods):
        with bar.phase(f"eliminate with {method}: {count(len(datasets) * len(schedules), 'run')}"):
            mine = [(g, member) for g, member in enumerate(members) if member[2] == mi]
            # Padded to the device count with copies of the last member, whose records are never read.
            grid = place.pad(mine) if place is not None else mine
            counts = jnp.asarray(rfe.pad_counts([counts_of[(seed, d.formula, str(s))] for _, (seed, d, _, s) in grid]),
                                 jnp.int32)
            problems = stack_problems([d.problem for _, (_, d, _, _) in grid])
            # A member's key follows its place in the whole grid, whichever program runs it.
            keys = jnp.stack([jax.random.fold_in(jax.random.key(seed), 50_000 + g) for g, (seed, *_) in grid])
            method_ids = np.zeros(len(grid), np.int32)
            if place is not None:
                problems, counts, keys = place((problems, counts, keys))
            start = time.perf_counter()
            records = rfe.eliminate(problems, counts, method_ids, keys, model=model, methods=(method,), task=task,
                                    epochs=config.epochs, learning_rate=config.learning_rate,
                                    optimizer=config.optimizer, early_stop=config.early_stop, method_options=options)
            jax.block_until_ready(records)
            seconds = (time.perf_counter() - start) / len(mine)
            dead.append(np.asarray(~np.isfinite(records.rank_loss[:len(mine)])).any(axis=1))
            labels.append(method)
            for i, (g, (seed, d, _, s)) in enumerate(mine):
                n_rounds = len(counts_of[(seed, d.formula, str(s))]) + int(config.early_stop)
                by_member[g] = [row(seed, d, "attribution", method, s, r, record_at(records, i, r), r == n_rounds - 1,
                                    seconds, mlp_record=record_at(records, i, r) if r == n_rounds - 1 else None)
                                for r in range(n_rounds)]
    for g in range(len(members)):  # rows in grid order, whatever the programs' order
        rows.extend(by_member[g])
    if dead:
        refuse_or_warn_diverged(dead, labels, "lr", config.learning_rate,
                                consequence="their rounds ranked the features at random")

    # Baselines: scikit-learn RFE on the same schedule, then the same network on their final sets.
    finals = []
    baseline_phase = bar.phase("scikit-learn baselines", total=len(datasets) * len(baselines) * len(schedules),
                               unit="runs")
    with baseline_phase as phase:
        for seed, d in datasets:
            for name in baselines:
                for s in schedules:
                    phase.note(f"{name} on {d.label} {d.formula}")
                    start = time.perf_counter()
                    recs = rfe.sklearn_eliminate(d.problem, counts_of[(seed, d.formula, str(s))], name, d.task, seed)
                    seconds = time.perf_counter() - start
                    for r, rec in enumerate(recs):
                        rows.append(row(seed, d, "baseline", f"sklearn_{name}", s, r, rec, r == len(recs) - 1,
                                        seconds))
                    finals.append((len(rows) - 1, seed, d, recs[-1]["mask"]))
                    phase.update(1)
    if finals:
        with bar.phase(f"train the network on the {len(finals)} baseline selections"):
            # Split across the devices like the eliminations (padded with copies of the last, never read).
            grid = place.pad(list(enumerate(finals))) if place is not None else list(enumerate(finals))
            problems = stack_problems([d.problem for _, (_, _, d, _) in grid])
            keys = jnp.stack([jax.random.fold_in(jax.random.key(seed), 90_000 + i) for i, (_, seed, _, _) in grid])
            k_counts = jnp.asarray([[int(mask.sum())] for _, (*_, mask) in grid], jnp.int32)
            masks = jnp.asarray(np.stack([mask for _, (*_, mask) in grid]))
            if place is not None:
                problems, k_counts, keys, masks = place((problems, k_counts, keys, masks))
            scored = rfe.eliminate(problems, k_counts, np.zeros(len(grid), np.int32), keys, model=model,
                                   methods=("saliency",), initial_masks=masks, task=task, epochs=config.epochs,
                                   learning_rate=config.learning_rate, optimizer=config.optimizer)
            for g, (index, _, d, _) in enumerate(finals):
                rec = record_at(scored, g, 0)
                rows[index]["mlp_test_mae"] = float(rec["test_mae"]) * d.y_scale
                rows[index]["mlp_balanced_accuracy"] = float(rec["balanced_accuracy"])
                rows[index]["mlp_roc_auc"] = float(rec["roc_auc"])

    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    if path is not None:
        write_results(path, frame, track="rfe", config=config.to_json(), started=started)
    return frame


def summary_table(frame) -> str:
    """Final-round scores per method and baseline: the network's test metric on the final features
    (mean and 95% CI over datasets x seeds), functional precision of the selected set, seconds."""
    final = frame[frame["final"]]
    classification = (final["task"] == "classification").any()
    metric = "mlp_roc_auc" if classification else "mlp_test_mae"
    label = "ROC-AUC (network)" if classification else "test MAE (network)"
    lines = [f"| method | kind | {label} | functional precision | runs | seconds |", "|---|---|---|---|---|---|"]
    for (method, kind), group in final.groupby(["method", "kind"], sort=False):
        precision = format_mean_ci(group["functional_precision"])
        precision = "n/a" if precision == "–" else precision
        lines.append(f"| {method} | {kind} | {format_mean_ci(group[metric], 4)} | {precision} | {len(group)} | "
                     f"{group['seconds'].sum():.1f} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- CLI


#: The fields `chaosjax rfe` has a flag for, in --help order (--dataset, which also follows from --csv, after n).
_FLAGS = ("formulas", "noise_features", "n", "csv", "target", "add_noise", "methods", "baselines", "schedules", "k",
          "seeds", "epochs", "learning_rate", "protocol", "early_stop")


def add_cli(sub) -> None:
    """Registers ``chaosjax rfe`` on an argparse sub-parser set."""

    p = sub.add_parser(
        "rfe",
        help=help_line("rfe"),
        description="Eliminate features round by round with attribution rankings (all runs in one compiled "
                    "program) and compare with scikit-learn's RFE on the same schedule.",
    )
    add_flags(p, RFEConfig, _FLAGS[:3])
    p.add_argument("--dataset", default=None, choices=("breast_cancer", "diabetes"),
                   help="tabular data shipped with scikit-learn instead of the formulas")
    add_flags(p, RFEConfig, _FLAGS[3:])
    p.add_argument("--out", default="runs/rfe", help="results directory")
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress lines (stderr)")

    def prepare(args):
        dataset = "csv" if args.csv else (args.dataset or "symbolic")
        if args.csv and args.dataset:
            raise ValueError("--csv and --dataset: choose one")
        if args.target and not args.csv:
            raise ValueError("--target: names a column of --csv FILE, which is not given")
        config = RFEConfig(dataset=dataset, **from_args(args, RFEConfig, _FLAGS))
        job = checked_job(args, config, run, summary_table, wrote="")
        _prepare(config)  # k, baselines and splits against the data: cheap next to the training
        return job

    p.set_defaults(prepare=prepare)


def compute_chunk(chunk, chunk_run) -> tuple[list[dict], dict]:
    """A sweep chunk: one setting, all its eliminations one program. Not checkpointed (every round retrains and
    ranks): a killed chunk reruns whole."""
    start = time.perf_counter()
    rows = run(chunk.setting, progress=False, place=chunk_run.place).to_dict("records")
    rows = [{**row, **{axis: getattr(chunk.setting, axis) for axis in chunk.axes}} for row in rows]
    return rows, {"train_and_attribute": time.perf_counter() - start, "restored": False}


def _toml_methods(value, where: str) -> tuple[str, ...]:
    """A sweep's ``methods``: names, or ``"all"`` for every attribution method."""
    if value == "all":
        return tuple(attribution.METHODS)
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"sweep: {where} must be a list of strings, got {value!r}")
    return tuple(names)


def _chunk_eliminations(chunk) -> int:
    datasets = len(chunk.setting.formulas) if chunk.setting.dataset == "symbolic" else 1
    return datasets * len(chunk.setting.seeds)


TRACK = Track(
    name="rfe",
    help=help_line("rfe"),
    config=RFEConfig,
    columns=tuple(COLUMNS),
    compute=compute_chunk,
    summary_table=lambda rows, spec: summary_table(rows[list(COLUMNS)]),
    draw="chaosjax.report.rfe:draw",
    required=("method", "features_kept", "seconds"),
    add_cli=add_cli,
    list_fields=("formulas", "methods", "baselines", "schedules", "seeds"),
    parsers={"methods": _toml_methods},
    chunk_size=_chunk_eliminations,
    chunk_label=lambda chunk: f"rfe {chunk.setting.dataset}",
)
