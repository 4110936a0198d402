"""Recursive feature elimination with neural attributions (RFEwNA), as jitted masked retraining.

Each round trains a fresh network on the features still kept, attributes held-out rows, ranks the
features by mean |attribution| and keeps the best `n_{r+1}` of them. Features are never sliced
away: a round is a fixed-width 0/1 mask over the columns (the network sees `x * mask`), so every
round of every elimination has the same shapes and reuses one compiled train-and-attribute program.
All rounds run inside one `jit` (a `lax.scan` over rounds), and a grid of eliminations
(datasets x seeds x methods x schedules) is one program: its members are grouped by method
statically, one `vmap` over that scan per method. (A `lax.switch` over methods under `vmap` would
become a select, and every member would compute every method in every round.)

    counts = keep_counts(160, 10, parse_schedule("halve"))   # (160, 80, 40, 20, 10)
    result = eliminate(problems, counts, method_ids, keys, methods=("saliency", "deeplift"), ...)

The study's weakness, "each round retrains a network, ~10 minutes per formula on a GPU", is what
this removes: rounds and grid members share one compiled program and run back to back on device.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from chaosjax import attribution
from chaosjax.models import Functional
from chaosjax.train import fit_traced

TASKS = ("regression", "classification")


# --------------------------------------------------------------------------------------------- schedules


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How many features a round drops: `halve`, a `fraction` of those kept, or a fixed `step` count.

    `halve` drops `n // 2` of `n` features (keeps the larger half, `ceil(n / 2)`), as the study's RFE removes
    `int(n * 0.5)` per round (notebooks/RFEwNA_iter.ipynb; docs/protocol.md): with m=6 and 150 noise columns the
    rounds keep 156, 78, 39, 20, 10, 6. Both protocols use it: rounding is a convention, not a flaw, and keeping
    the larger half never drops more than half of what is left. No schedule drops below the target `k`.
    """

    kind: str
    value: float = 0.0

    def __str__(self) -> str:
        if self.kind == "halve":
            return "halve"
        if self.kind == "fraction":
            return f"fraction:{self.value:g}"
        return f"step:{int(self.value)}"

    def next_count(self, n: int, k: int) -> int:
        if self.kind == "halve":
            drop = n // 2  # the study's int(n * 0.5)
        elif self.kind == "fraction":
            drop = max(1, math.floor(self.value * n))
        else:
            drop = int(self.value)
        return max(k, n - drop)


def parse_schedule(text: str | Schedule) -> Schedule:
    """'halve', 'fraction:0.2' (drop 20% of the kept features per round) or 'step:N' (drop N)."""
    if isinstance(text, Schedule):
        return text
    text = str(text).strip()
    if text == "halve":
        return Schedule("halve")
    m = re.fullmatch(r"fraction:([0-9.eE+-]+)", text)
    if m:
        try:
            value = float(m.group(1))
        except ValueError:
            value = float("nan")
        if not 0.0 < value < 1.0:
            raise ValueError(f"schedule: the fraction must be in (0, 1), got {m.group(1)!r}")
        return Schedule("fraction", value)
    m = re.fullmatch(r"step:(\d+)", text)
    if m:
        if int(m.group(1)) < 1:
            raise ValueError("schedule: the step must be >= 1")
        return Schedule("step", int(m.group(1)))
    raise ValueError(f"schedule: expected 'halve', 'fraction:F' with 0 < F < 1, or 'step:N', got {text!r}")


def keep_counts(num_features: int, k: int, schedule: Schedule | str) -> tuple[int, ...]:
    """Features kept before each round: `(num_features, ..., k)`; the last entry is the final set."""
    schedule = parse_schedule(schedule)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k < num_features:
        raise ValueError(f"k: the target count must be an integer in [1, {num_features - 1}] "
                         f"(fewer than the {num_features} features), got {k!r}")
    counts = [int(num_features)]
    while counts[-1] > k:
        counts.append(schedule.next_count(counts[-1], k))
    return tuple(counts)


def pad_counts(counts: Sequence[Sequence[int]]) -> np.ndarray:
    """Stacks per-member count sequences, repeating each final count up to the longest schedule."""
    rounds = max(len(c) for c in counts)
    return np.array([list(c) + [c[-1]] * (rounds - len(c)) for c in counts], np.int32)


# ------------------------------------------------------------------------------------------ the program


class Problem(NamedTuple):
    """One elimination problem's arrays; a grid stacks them with a leading axis.

    `x_rank`/`y_rank` are the held-out rows the attributions are computed on (a validation split
    under the corrected protocol, the test split under the study's). `valid` marks real columns
    (padding is False); `predictive` marks the columns known to carry signal (all False if unknown).
    """

    x_train: jax.Array
    y_train: jax.Array
    x_rank: jax.Array
    y_rank: jax.Array
    x_test: jax.Array
    y_test: jax.Array
    valid: jax.Array
    predictive: jax.Array


class RoundRecord(NamedTuple):
    """Per round (leading axis: rounds): the mask the round trained on and how that model did."""

    mask: jax.Array  # (W,) bool
    kept: jax.Array  # features in the mask
    test_mae: jax.Array  # regression: mean |prediction - y| on the test split
    balanced_accuracy: jax.Array  # classification, threshold 0.5 on the sigmoid
    roc_auc: jax.Array  # classification
    kept_precision: jax.Array  # share of the kept features that are predictive (NaN if unknown)
    rank_loss: jax.Array  # loss on the ranking split (early stopping watches it)
    importance: jax.Array  # (W,) mean |attribution| over the ranking rows (0 on dropped columns)


def _keep_top(score: jax.Array, n: jax.Array, key: jax.Array | None = None,
              eligible: jax.Array | None = None) -> jax.Array:
    """Mask of the `n` highest scores among the `eligible` columns (default: all); `n` may be traced.

    A non-finite score (a NaN attribution of a diverged model) ranks below every finite one. Ties are broken at
    random with `key`: a fixed order would hand them to the lower column indices, which for the symbolic data are
    the predictive ones by construction, so a dead model (all scores tied) would look perfect. Without `key`,
    ties go to the lower column index.
    """
    eligible = jnp.ones(score.shape, bool) if eligible is None else eligible
    finite = jnp.where(jnp.isfinite(score), score, -jnp.inf)
    tie = jnp.arange(score.shape[0]) if key is None else jax.random.permutation(key, score.shape[0])
    order = jnp.lexsort((tie, -finite, ~eligible))  # eligible first, then by score, then the tie-break
    rank = jnp.argsort(order, stable=True)
    return (rank < n) & eligible


def roc_auc(score: jax.Array, label: jax.Array) -> jax.Array:
    """Area under the ROC curve: the Mann-Whitney probability that a positive outscores a negative
    (ties count one half). O(n^2) memory-free via sorting: fine for held-out splits."""
    label = label.astype(bool)
    order = jnp.argsort(score)
    sorted_score = score[order]
    # Average ranks (1-based) with ties shared.
    lo = jnp.searchsorted(sorted_score, score, side="left")
    hi = jnp.searchsorted(sorted_score, score, side="right")
    rank = (lo + hi + 1) / 2.0
    n_pos = jnp.sum(label)
    n_neg = label.shape[0] - n_pos
    u = jnp.sum(jnp.where(label, rank, 0.0)) - n_pos * (n_pos + 1) / 2.0
    return u / jnp.maximum(n_pos * n_neg, 1)


def balanced_accuracy(logit: jax.Array, label: jax.Array) -> jax.Array:
    """Mean of the true-positive and true-negative rates at probability 0.5 (logit 0)."""
    label = label.astype(bool)
    pred = logit > 0
    tpr = jnp.sum(pred & label) / jnp.maximum(jnp.sum(label), 1)
    tnr = jnp.sum(~pred & ~label) / jnp.maximum(jnp.sum(~label), 1)
    return (tpr + tnr) / 2


def _method_fn(model: Functional, name: str, options: tuple):
    """The `(params, mask, x, key, refs) -> attr` function of method `name`."""
    fn = attribution.METHODS[name]
    kwargs = dict(dict(options).get(name, ()))

    def call(params, mask, x, key, refs):
        f = lambda z: model.apply(params, z * mask)[:, 0]  # noqa: E731
        extra = {}
        if name in attribution.NEEDS_KEY:
            extra["key"] = key
        if name in attribution.NEEDS_BASELINES:
            extra["baselines"] = refs
        return fn(f, x, **kwargs, **extra)

    return call


def _eliminate_one(problem: Problem, counts, key, initial_mask, *, model, method, options, task,
                   epochs, learning_rate, optimizer, early_stop, train_batch_size):
    loss = "mse" if task == "regression" else "bce"
    attribute = _method_fn(model, method, options)
    dtype = problem.x_train.dtype
    num_rounds = counts.shape[0]

    def train_and_score(mask, r):
        kr = jax.random.fold_in(key, r)
        as_float = mask.astype(dtype)[None]

        def apply_masked(p, x, **kw):
            return model.apply(p, x * as_float, **kw)  # a dropped column never reaches the network

        params = model.init(jax.random.fold_in(kr, 0))
        fitted = fit_traced(apply_masked, params, problem.x_train, problem.y_train, jax.random.fold_in(kr, 1),
                            learning_rate, optimizer=optimizer, epochs=epochs, batch_size=train_batch_size, loss=loss)
        p = fitted.params
        out_test = apply_masked(p, problem.x_test)[:, 0]
        out_rank = apply_masked(p, problem.x_rank)[:, 0]
        if task == "regression":
            rank_loss = jnp.mean(jnp.square(out_rank - problem.y_rank))
            test_mae = jnp.mean(jnp.abs(out_test - problem.y_test))
            bal, auc = jnp.nan, jnp.nan
        else:
            logits, y = out_rank, problem.y_rank.astype(dtype)
            rank_loss = jnp.mean(jnp.maximum(logits, 0) - logits * y + jnp.log1p(jnp.exp(-jnp.abs(logits))))
            test_mae = jnp.nan
            bal, auc = balanced_accuracy(out_test, problem.y_test), roc_auc(out_test, problem.y_test)

        refs = problem.x_train[:32]
        attr = attribute(p, as_float, problem.x_rank, jax.random.fold_in(kr, 2), refs)
        importance = jnp.where(mask, jnp.mean(jnp.abs(attr), axis=0), 0.0)
        kept = jnp.sum(mask)
        n_true = jnp.sum(problem.predictive)
        precision = jnp.where(n_true > 0, jnp.sum(mask & problem.predictive) / jnp.maximum(kept, 1), jnp.nan)
        record = RoundRecord(mask, kept, jnp.asarray(test_mae, dtype), jnp.asarray(bal, dtype),
                             jnp.asarray(auc, dtype), jnp.asarray(precision, dtype), rank_loss, importance)
        return record

    def round_step(carry, r):
        mask, previous_mask, previous_loss, stopped = carry
        record = train_and_score(mask, r)
        rose = (r > 0) & (record.rank_loss > previous_loss)
        stop_now = early_stop & rose & ~stopped
        # Eliminate: rank the kept features (dropped ones score -inf) and keep the next count.
        next_count = counts[jnp.minimum(r + 1, num_rounds - 1)]
        eliminated = _keep_top(record.importance, next_count, jax.random.fold_in(jax.random.fold_in(key, r), 3),
                               eligible=mask)
        halted = stopped | stop_now
        # Once the loss rises, go back to the features before the rise and keep them.
        next_mask = jnp.where(stop_now, previous_mask, jnp.where(halted, mask, eliminated))
        return (next_mask, mask, record.rank_loss, halted), record

    carry0 = (initial_mask, initial_mask, jnp.asarray(jnp.inf, dtype), jnp.asarray(False))
    _, records = jax.lax.scan(round_step, carry0, jnp.arange(num_rounds))
    return records


@functools.partial(
    jax.jit,
    static_argnames=("model", "methods", "groups", "options", "task", "epochs", "optimizer", "early_stop",
                     "train_batch_size"),
)
def _eliminate_grid(problems, counts, keys, initial_masks, learning_rate, *, model, methods, groups, options,
                    task, epochs, optimizer, early_stop, train_batch_size):
    """`groups[i]`: the members (grid indices) ranked by `methods[i]`; each group is one `vmap` of its own
    method, and the records are put back in grid order."""
    _TRACES["eliminate"] += 1
    size = keys.shape[0]
    parts = []
    for method, members in zip(methods, groups):
        if not members:
            continue
        one = functools.partial(_eliminate_one, model=model, method=method, options=options, task=task,
                                epochs=epochs, learning_rate=learning_rate, optimizer=optimizer,
                                early_stop=early_stop, train_batch_size=train_batch_size)
        args = (problems, counts, keys, initial_masks)
        if members != tuple(range(size)):  # a whole grid of one method is used in place, without a gather
            index = np.asarray(members)
            args = jax.tree.map(lambda a: a[index], args)
        parts.append((members, jax.vmap(one)(*args)))
    if len(parts) == 1:
        return parts[0][1]
    inverse = np.argsort(np.concatenate([np.asarray(m) for m, _ in parts]))
    return jax.tree.map(lambda *xs: jnp.concatenate(xs)[inverse], *[r for _, r in parts])


_TRACES: dict[str, int] = {"eliminate": 0}


#: Methods that sum over draws (path points, noisy copies, ablated groups): `eliminate` chunks them.
DRAW_METHODS = ("integrated_gradients", "smoothgrad", "gradient_shap", "feature_ablation", "occlusion",
                "shapley_exact", "shapley_sampling", "kernel_shap", "lime", "feature_permutation", "deeplift_shap")


def draw_batch_size(backend: str | None = None) -> int:
    """Draws evaluated at once by the draw methods inside `eliminate` on `backend` (default: JAX's).

    1 on CPU: one draw over the whole table stays in cache, 3-4x faster than all at once. 16 elsewhere: with
    every draw vmapped at once (IG and feature ablation inside the elimination scan), XLA's GPU compiler warned
    "Very slow compile" and took over 150 s on an H200.
    """
    return 1 if (backend or jax.default_backend()) == "cpu" else 16


def eliminate(
    problems: Problem,
    counts: Any,
    method_ids: Any,
    keys: jax.Array,
    *,
    model: Functional,
    methods: Sequence[str],
    initial_masks: Any = None,
    task: str = "regression",
    epochs: int = 1000,
    learning_rate: float = 1e-3,
    optimizer: str = "adam",
    early_stop: bool = False,
    method_options: dict[str, dict[str, Any]] | None = None,
    train_batch_size: int | None = None,
) -> RoundRecord:
    """Runs a grid of `G` eliminations in one compiled program; returns per-round records `(G, R, ...)`.

    Args:
      problems: `Problem` arrays with a leading grid axis `G` (pad formulas to a common width, mark the
        padding in `valid`).
      counts: `(G, R)` features kept before each round (`keep_counts`, stacked by `pad_counts`); round
        `R - 1` is the final model on the final set. Counts are traced: schedules may differ per member.
      method_ids: `(G,)` index into `methods` of each member's ranking method; concrete (not traced): members
        are grouped by method when the program is built, so a member computes its own method only.
      keys: `(G,)` PRNG keys (network inits, training, attribution noise).
      model: the `Functional` network (one output: a regression value or a logit).
      methods: names from `chaosjax.attribution.METHODS`; each one used by a member is compiled into the program.
      initial_masks: `(G, W)` bool starting masks; default `valid`.
      task: `regression` (MSE, test MAE) or `classification` (BCE on a logit; balanced accuracy, ROC-AUC).
      epochs, learning_rate, optimizer, train_batch_size: training of every round (`chaosjax.train.fit`).
      early_stop: stop eliminating once the loss on the ranking split rises, keeping the features of the
        round before the rise; one extra round (`R + 1` records) trains the network on that final set.
      method_options: per-method keyword options, e.g. `{"integrated_gradients": {"steps": 20}}`. Methods
        that evaluate many draws get `batch_size` from `draw_batch_size()` unless it is given here.

    Cost: `R` trainings plus `R` attributions (of its own method) per member; one `vmap` per method.
    """
    if task not in TASKS:
        raise ValueError(f"task: expected one of {TASKS}, got {task!r}")
    methods = tuple(methods)
    unknown = [m for m in methods if m not in attribution.METHODS]
    if unknown or not methods:
        raise ValueError(f"methods: unknown {unknown!r}; expected names from {', '.join(attribution.METHODS)}")
    counts = jnp.asarray(counts, jnp.int32)
    if isinstance(method_ids, jax.core.Tracer):
        raise TypeError("method_ids: must be concrete (members are grouped by method when the program is built), "
                        "got a traced value")
    method_ids = np.asarray(jax.device_get(method_ids))
    size = problems.x_train.shape[0]
    if counts.ndim != 2 or counts.shape[0] != size or method_ids.shape != (size,):
        raise ValueError(f"counts must be (G, R) and method_ids (G,) with G={size}; got {counts.shape}, "
                         f"{method_ids.shape}")
    if not np.issubdtype(method_ids.dtype, np.integer) or method_ids.min() < 0 or method_ids.max() >= len(methods):
        raise ValueError(f"method_ids: expected integers in [0, {len(methods)}), got {method_ids!r}")
    groups = tuple(tuple(int(g) for g in np.flatnonzero(method_ids == i)) for i in range(len(methods)))
    if early_stop:
        # One more round trains the set restored after a rise (or repeats the final one).
        counts = jnp.concatenate([counts, counts[:, -1:]], axis=1)
    if initial_masks is None:
        initial_masks = problems.valid
    merged = {name: dict(opts) for name, opts in (method_options or {}).items()}
    for name in set(methods) & set(DRAW_METHODS):
        merged.setdefault(name, {}).setdefault("batch_size", draw_batch_size())
    options = tuple(sorted((name, tuple(sorted(opts.items()))) for name, opts in merged.items()))
    return _eliminate_grid(problems, counts, keys, jnp.asarray(initial_masks, bool),
                           jnp.asarray(learning_rate, jnp.float32), model=model, methods=methods, groups=groups,
                           options=options,
                           task=task, epochs=int(epochs), optimizer=optimizer, early_stop=bool(early_stop),
                           train_batch_size=train_batch_size)


# ------------------------------------------------------------------------------------------ baselines

BASELINES = {
    "regression": ("linear", "svr", "tree"),
    "classification": ("logistic", "svc", "tree"),
}


def baseline_estimator(name: str, task: str, seed: int):
    """The scikit-learn estimator behind a baseline name (`linear`, `svr`, `tree`; `logistic`, `svc`, `tree`)."""
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.svm import SVC, SVR
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    table = {
        ("regression", "linear"): lambda: LinearRegression(),
        ("regression", "svr"): lambda: SVR(kernel="linear"),
        ("regression", "tree"): lambda: DecisionTreeRegressor(random_state=seed),
        ("classification", "logistic"): lambda: LogisticRegression(max_iter=2000),
        ("classification", "svc"): lambda: SVC(kernel="linear", random_state=seed),
        ("classification", "tree"): lambda: DecisionTreeClassifier(random_state=seed),
    }
    if (task, name) not in table:
        raise ValueError(f"baselines: unknown {name!r} for {task}; expected one of {', '.join(BASELINES[task])}")
    return table[(task, name)]()


def sklearn_eliminate(problem: Problem, counts: Sequence[int], name: str, task: str, seed: int) -> list[dict]:
    """scikit-learn's `RFE` on the same schedule: one `RFE` step per round, from `counts[r]` to `counts[r+1]`.

    Returns one dict per round with the mask the round started from and the estimator's own test score.
    (scikit-learn's RFE takes a fixed step; calling it once per round reproduces halving and fractions.)
    """
    from sklearn.feature_selection import RFE
    from sklearn.metrics import balanced_accuracy_score, mean_absolute_error, roc_auc_score

    x_train, y_train = np.asarray(problem.x_train), np.asarray(problem.y_train)
    x_test, y_test = np.asarray(problem.x_test), np.asarray(problem.y_test)
    predictive = np.asarray(problem.predictive)
    mask = np.asarray(problem.valid).copy()
    records = []
    for r, _ in enumerate(counts):
        columns = np.flatnonzero(mask)
        estimator = baseline_estimator(name, task, seed).fit(x_train[:, columns], y_train)
        record = {"mask": mask.copy(), "kept": int(mask.sum())}
        if task == "regression":
            record["test_mae"] = float(mean_absolute_error(y_test, estimator.predict(x_test[:, columns])))
        else:
            record["balanced_accuracy"] = float(balanced_accuracy_score(y_test, estimator.predict(x_test[:, columns])))
            score = (estimator.decision_function(x_test[:, columns]) if hasattr(estimator, "decision_function")
                     else estimator.predict_proba(x_test[:, columns])[:, 1])
            record["roc_auc"] = float(roc_auc_score(y_test, score))
        record["kept_precision"] = float((mask & predictive).sum() / mask.sum()) if predictive.any() else float("nan")
        records.append(record)
        if r + 1 < len(counts):
            selector = RFE(baseline_estimator(name, task, seed), n_features_to_select=int(counts[r + 1]),
                           step=int(counts[r] - counts[r + 1]))
            selector.fit(x_train[:, columns], y_train)
            mask = np.zeros_like(mask)
            mask[columns[selector.support_]] = True
    return records
