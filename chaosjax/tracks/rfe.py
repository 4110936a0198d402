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
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from chaosjax import attribution, rfe
from chaosjax.data import symbolic as data
from chaosjax.models import mlp
from chaosjax.train import OPTIMIZERS

DATASETS = ("symbolic", "breast_cancer", "diabetes", "csv")
DEFAULT_METHODS = ("saliency", "integrated_gradients", "deeplift", "feature_ablation")
COLUMNS = (
    "track", "dataset", "formula", "task", "seed", "kind", "method", "schedule", "protocol", "round",
    "features_kept", "test_mae", "balanced_accuracy", "roc_auc", "functional_precision", "mlp_test_mae",
    "mlp_balanced_accuracy", "mlp_roc_auc", "final", "selected", "seconds",
)


@dataclasses.dataclass(frozen=True)
class RFEConfig:
    """An RFE benchmark run; defaults are the study's simulation setting (PROTOCOL.md section 4)."""

    dataset: str = "symbolic"
    formulas: tuple[int | str, ...] = (10, 11, 12, 13, 14)
    noise_features: int = 150
    n: int = 10_000
    csv: str | None = None
    target: str | None = None
    add_noise: int = 0
    methods: tuple[str, ...] = DEFAULT_METHODS
    baselines: tuple[str, ...] | None = None  # None: all three of the task; () for none
    schedules: tuple[str, ...] = ("halve",)
    k: int | None = None  # None: m for formulas, 3 for tabular data (the study's real-data setting)
    seeds: tuple[int, ...] = (0,)
    epochs: int = 1000
    learning_rate: float = 1e-3
    depth: int = 3
    width: int = 100
    activation: str | None = None  # None: GELU for regression (the study's MLP), ReLU for classification
    optimizer: str = "adam"
    protocol: str = "corrected"
    early_stop: bool = False
    ig_steps: int = 10

    def validate(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset: expected one of {', '.join(DATASETS)}, got {self.dataset!r}")
        if self.dataset == "csv" and (not self.csv or not self.target):
            raise ValueError("--csv FILE and --target COLUMN are both needed for a CSV dataset")
        if self.protocol not in data.PROTOCOLS:
            raise ValueError(f"protocol: expected one of {data.PROTOCOLS}, got {self.protocol!r}")
        unknown = [m for m in self.methods if m not in attribution.METHODS]
        if unknown:
            raise ValueError(f"methods: unknown {unknown!r}; expected names from {', '.join(attribution.METHODS)}")
        if not self.methods and self.baselines == ():
            raise ValueError("methods: nothing to run (no methods and no baselines)")
        for schedule in self.schedules:
            rfe.parse_schedule(schedule)
        if not self.schedules:
            raise ValueError("schedule: none given")
        for name in ("epochs", "depth", "width", "ig_steps", "n"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
        if self.noise_features < 0 or self.add_noise < 0:
            raise ValueError("noise: the number of noise columns must be >= 0")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: expected distinct integers, got {self.seeds!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: unknown {self.optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")
        if self.k is not None and (isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1):
            raise ValueError(f"k: the target count must be an integer >= 1, got {self.k!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"lr: expected a positive number, got {self.learning_rate!r}")

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


def _tabular(x: np.ndarray, y: np.ndarray, task: str, label: str, config: RFEConfig, seed: int) -> _Dataset:
    x = np.asarray(x, np.float64)
    rng = np.random.default_rng(seed)
    predictive = np.zeros(x.shape[1] + config.add_noise, bool)
    if config.add_noise:
        predictive[: x.shape[1]] = True  # the appended columns are known noise
        x = np.concatenate([x, rng.normal(size=(x.shape[0], config.add_noise))], axis=1)
    train, test = _split_rows(x.shape[0], seed)
    mean, std = x[train].mean(0), x[train].std(0) + 1e-12
    x = ((x - mean) / std).astype(np.float32)
    y = np.asarray(y, np.float64)
    y_scale = 1.0
    if task == "regression":
        y_mean, y_scale = y[train].mean(), float(y[train].std() + 1e-12)
        y = (y - y_mean) / y_scale
    y = y.astype(np.float32)
    k = config.k if config.k is not None else 3
    problem = _problem(x[train], y[train], x[test], y[test], predictive, config.protocol, seed)
    return _Dataset(label, "", task, problem, k, y_scale)


def _load_csv(path: str, target: str) -> tuple[np.ndarray, np.ndarray, str]:
    import pandas as pd

    if not os.path.exists(path):
        raise ValueError(f"--csv: no such file {path!r}")
    try:
        frame = pd.read_csv(path)
    except Exception as err:  # noqa: BLE001 - any parse failure is bad input
        raise ValueError(f"--csv: cannot read {path!r} as CSV: {err}") from None
    if target not in frame.columns:
        raise ValueError(f"--target: column {target!r} not in {path} (columns: {', '.join(map(str, frame.columns))})")
    non_numeric = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise ValueError(f"--csv: non-numeric columns {non_numeric}; encode them as numbers first")
    if frame.isna().any().any():
        bad = [c for c in frame.columns if frame[c].isna().any()]
        raise ValueError(f"--csv: missing values (NaN) in columns {bad}")
    y = frame[target].to_numpy()
    x = frame.drop(columns=[target]).to_numpy()
    if x.shape[1] < 2:
        raise ValueError("--csv: need at least two feature columns besides the target")
    task = "classification" if set(np.unique(y)) <= {0, 1} else "regression"
    return x, y, task


def load_datasets(config: RFEConfig, seed: int) -> list[_Dataset]:
    """The config's datasets for one seed (each with its own split and, for formulas, its own draw)."""
    if config.dataset == "symbolic":
        table = data.formulas(config.protocol)
        chosen = [(str(i), table[i]) if isinstance(i, int) else (i, data.formula(i, name="custom"))
                  for i in config.formulas]
        for label, f in chosen:
            if label.isdigit() and not 0 <= int(label) < len(table):
                raise ValueError(f"formulas: index {label} out of range")
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
    x, y, task = _load_csv(config.csv, config.target)
    return [_tabular(x, y, task, Path(config.csv).stem, config, seed)]


def _stack(problems: list[rfe.Problem]) -> rfe.Problem:
    """Stacks problems, padding rows of unequal splits by repetition-free truncation to the smallest size."""
    sizes = {name: min(np.shape(getattr(p, name))[0] for p in problems)
             for name in ("x_train", "x_rank", "x_test")}
    def rows(p, name):
        key = {"y_train": "x_train", "y_rank": "x_rank", "y_test": "x_test"}.get(name, name)
        arr = np.asarray(getattr(p, name))
        return arr[: sizes[key]] if key in sizes else arr
    return rfe.Problem(*[jnp.stack([rows(p, name) for p in problems]) for name in rfe.Problem._fields])


# ------------------------------------------------------------------------------------------------ a run


def run(config: RFEConfig, *, out=None, overwrite: bool = False, progress: bool = True, place=None):
    """Runs the benchmark and returns one row per dataset x seed x method/baseline x schedule x round.

    ``place``: a ``GridPlacement`` (``chaosjax.sweep`` passes one) to split the neural eliminations across its
    devices, padded to the device count; by default they run on JAX's default device.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    config.validate()
    from chaosjax.tracks.symbolic import _prepare_out

    path = _prepare_out(out, overwrite) if out is not None else None
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

    activation = config.activation or ("gelu" if task == "regression" else "relu")
    width = datasets[0][1].problem.x_train.shape[1]
    model = mlp(width, depth=config.depth, width=config.width, activation=activation)
    options = {  # draws chunked by rfe.draw_batch_size()
        "integrated_gradients": {"steps": config.ig_steps},
        "occlusion": {"window": 1},  # single columns: a table's column order carries no meaning
        "shapley_sampling": {"permutations": 2, "antithetic": True},  # 2 (W - 1) passes per round
        "kernel_shap": {"samples": 2 * width},
        "lime": {"samples": 2 * width},
    }
    if "shapley_exact" in config.methods and width > attribution.MAX_EXACT_GROUPS:
        raise ValueError(f"methods: shapley_exact enumerates every coalition of the {width} columns (2^{width}); "
                         f"its limit is {attribution.MAX_EXACT_GROUPS} columns. Use shapley_sampling or kernel_shap")
    bar = tqdm(total=(1 if config.methods else 0) + len(baselines) * len(schedules) * len(datasets) + 1,
               disable=not progress, unit="step", dynamic_ncols=True)
    rows: list[dict[str, Any]] = []
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

    try:
        # Neural eliminations: every dataset x seed x method x schedule in one program.
        if config.methods:
            bar.set_description(f"eliminate: {len(datasets) * len(config.methods) * len(schedules)} runs")
            members = [(seed, d, mi, s) for seed, d in datasets for mi in range(len(config.methods))
                       for s in schedules]
            # Padded to the device count with copies of the last member, whose records are never read.
            grid = place.pad(members) if place is not None else members
            counts = jnp.asarray(rfe.pad_counts([counts_of[(seed, d.formula, str(s))] for seed, d, _, s in grid]),
                                 jnp.int32)
            problems = _stack([d.problem for _, d, _, _ in grid])
            keys = jnp.stack([jax.random.fold_in(jax.random.key(seed), 50_000 + i)
                              for i, (seed, *_) in enumerate(grid)])
            method_ids = jnp.asarray([mi for _, _, mi, _ in grid], jnp.int32)
            if place is not None:
                problems, counts, method_ids, keys = place((problems, counts, method_ids, keys))
            start = time.perf_counter()
            records = rfe.eliminate(problems, counts, method_ids, keys, model=model,
                                    methods=config.methods, task=task, epochs=config.epochs,
                                    learning_rate=config.learning_rate, optimizer=config.optimizer,
                                    early_stop=config.early_stop, method_options=options)
            jax.block_until_ready(records)
            seconds = (time.perf_counter() - start) / len(members)
            for g, (seed, d, mi, s) in enumerate(members):
                n_rounds = len(counts_of[(seed, d.formula, str(s))]) + int(config.early_stop)
                for r in range(n_rounds):
                    rec = record_at(records, g, r)
                    final = r == n_rounds - 1
                    rows.append(row(seed, d, "attribution", config.methods[mi], s, r, rec, final, seconds,
                                    mlp_record=rec if final else None))
            bar.update(1)

        # Baselines: scikit-learn RFE on the same schedule, then the same network on their final sets.
        finals = []
        for seed, d in datasets:
            for name in baselines:
                for s in schedules:
                    bar.set_description(f"baseline {name} ({d.label} {d.formula})")
                    start = time.perf_counter()
                    recs = rfe.sklearn_eliminate(d.problem, counts_of[(seed, d.formula, str(s))], name, d.task, seed)
                    seconds = time.perf_counter() - start
                    for r, rec in enumerate(recs):
                        rows.append(row(seed, d, "baseline", f"sklearn_{name}", s, r, rec, r == len(recs) - 1,
                                        seconds))
                    finals.append((len(rows) - 1, seed, d, recs[-1]["mask"]))
                    bar.update(1)
        if finals:
            bar.set_description("score baseline selections")
            problems = _stack([d.problem for _, _, d, _ in finals])
            keys = jnp.stack([jax.random.fold_in(jax.random.key(seed), 90_000 + i)
                              for i, (_, seed, _, _) in enumerate(finals)])
            k_counts = np.array([[int(mask.sum())] for *_, mask in finals], np.int32)
            scored = rfe.eliminate(problems, k_counts, np.zeros(len(finals), np.int32), keys, model=model,
                                   methods=("saliency",), initial_masks=np.stack([m for *_, m in finals]),
                                   task=task, epochs=config.epochs, learning_rate=config.learning_rate,
                                   optimizer=config.optimizer)
            for g, (index, _, d, _) in enumerate(finals):
                rec = record_at(scored, g, 0)
                rows[index]["mlp_test_mae"] = float(rec["test_mae"]) * d.y_scale
                rows[index]["mlp_balanced_accuracy"] = float(rec["balanced_accuracy"])
                rows[index]["mlp_roc_auc"] = float(rec["roc_auc"])
        bar.update(1)
    finally:
        bar.close()

    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    if path is not None:
        from chaosjax.tracks.symbolic import write_results

        write_results(path, frame, track="rfe", config=config.to_json(), started=started)
    return frame


def summary_table(frame) -> str:
    """Final-round scores per method and baseline: the network's test metric on the final features
    (mean and 95% CI over datasets x seeds), functional precision of the selected set, seconds."""
    from chaosjax.tracks.symbolic import mean_ci

    final = frame[frame["final"]]
    classification = (final["task"] == "classification").any()
    metric = "mlp_roc_auc" if classification else "mlp_test_mae"
    label = "ROC-AUC (network)" if classification else "test MAE (network)"
    lines = [f"| method | kind | {label} | functional precision | runs | seconds |", "|---|---|---|---|---|---|"]
    for (method, kind), group in final.groupby(["method", "kind"], sort=False):
        m, m_ci = mean_ci(group[metric])
        p, p_ci = mean_ci(group["functional_precision"])
        precision = "n/a" if np.isnan(p) else f"{p:.3f} ± {p_ci:.3f}"
        lines.append(f"| {method} | {kind} | {m:.4f} ± {m_ci:.4f} | {precision} | {len(group)} | "
                     f"{group['seconds'].sum():.1f} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- CLI


def add_cli(sub) -> None:
    from chaosjax._parse import parse_formulas, parse_int_range, parse_names

    p = sub.add_parser(
        "rfe",
        help="recursive feature elimination with neural attributions vs scikit-learn RFE",
        description="Eliminate features round by round with attribution rankings (all runs in one compiled "
                    "program) and compare with scikit-learn's RFE on the same schedule.",
    )
    p.add_argument("--formulas", default="10-14", help="symbolic formulas (indices or a formula text)")
    p.add_argument("--noise", type=int, default=150, help="noise columns for the symbolic formulas")
    p.add_argument("--n", type=int, default=10_000, help="rows of the symbolic tables")
    p.add_argument("--dataset", default=None, choices=("breast_cancer", "diabetes"),
                   help="tabular data shipped with scikit-learn instead of the formulas")
    p.add_argument("--csv", default=None, help="a numeric CSV file instead of the formulas")
    p.add_argument("--target", default=None, help="the CSV's target column (0/1 means classification)")
    p.add_argument("--add-noise", type=int, default=0, help="append this many N(0,1) noise columns")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="attribution methods, or 'none'")
    p.add_argument("--baselines", default="all", help="scikit-learn baselines (linear,svr,tree or "
                   "logistic,svc,tree), 'all' or 'none'")
    p.add_argument("--schedule", default="halve", help="halve, fraction:F or step:N; several comma-separated")
    p.add_argument("--k", type=int, default=None, help="features to keep (default: m, or 3 for tabular data)")
    p.add_argument("--seeds", default="0")
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--protocol", default="corrected", choices=("paper", "corrected"),
                   help="paper: rank on the test split as the study did; corrected: on a validation split")
    p.add_argument("--early-stop", action="store_true", help="stop when the ranking-split loss rises")
    p.add_argument("--out", default="runs/rfe")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")

    def handler(args) -> int:
        dataset = "csv" if args.csv else (args.dataset or "symbolic")
        if args.csv and args.dataset:
            raise ValueError("--csv and --dataset: choose one")
        methods = () if args.methods.strip() == "none" else (parse_names(args.methods, "--methods") or
                                                             tuple(attribution.METHODS))
        baselines = None if args.baselines == "all" else (() if args.baselines == "none" else
                                                          parse_names(args.baselines, "--baselines"))
        config = RFEConfig(
            dataset=dataset, formulas=parse_formulas(args.formulas), noise_features=args.noise, n=args.n,
            csv=args.csv, target=args.target, add_noise=args.add_noise, methods=methods, baselines=baselines,
            schedules=tuple(s.strip() for s in args.schedule.split(",") if s.strip()), k=args.k,
            seeds=parse_int_range(args.seeds, "--seeds"), epochs=args.epochs, learning_rate=args.lr,
            protocol=args.protocol, early_stop=args.early_stop,
        )
        frame = run(config, out=args.out, overwrite=args.overwrite, progress=not args.quiet)
        print(summary_table(frame))
        print(f"\nresults: {args.out}/results.csv")
        return 0

    p.set_defaults(handler=handler)

