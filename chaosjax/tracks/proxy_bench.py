"""The meta-benchmark: do proxy metrics rank attribution methods as the ground truth does?

Two halves. `score_grid` computes the proxy metrics of `chaosjax.proxies` for one method over a symbolic grid (every
cell's model, a fixed subsample of its test rows, one compiled program per method, cells one at a time or side by
side as the attribution grid), which `chaosjax symbolic --proxies` writes as results columns; `classifier_proxies`
does the same for one classifier inside the vision and audio tracks' programs (`chaosjax vision --proxies`,
`chaosjax audio --proxies`: `VISION_PROXIES`, `AUDIO_PROXIES`).
`proxy_agreement` reads such a results table back and scores each proxy's ranking of the methods against the
ground truth's (Kendall's tau-b with a bootstrap CI over formulas x seeds, or conditions x models x seeds,
`chaosjax.proxies.kendall_agreement`).

Which proxies fit a table (docs/proxies.md, "The meta-benchmark"): deletion and insertion AUC (one column per
step), infidelity, max-sensitivity, faithfulness correlation, sparseness and complexity. Left out: ROAD (its
imputation interpolates from a pixel's neighbours; a table's columns have no neighbours), random logit (the
symbolic models regress one output: there is no other class) and the cascading, layer-by-layer
model-parameter randomisation (a similarity per layer, not a score that ranks methods). Its endpoint is kept as a
sanity row instead: `randomisation` re-initialises every layer and scores the method's functional precision on
that untrained model, which must fall to chance (Adebayo et al. 2018). Its data counterpart is the second sanity
row: `label_randomisation` scores the method on a model trained exactly as the cell's but on its training labels
permuted (`chaosjax.tracks.symbolic.train_label_shuffled`), which has nothing to learn about which columns matter.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from chaosjax import metrics, proxies

__all__ = [
    "GRADIENT_METHODS",
    "LABEL_RANDOMISATION",
    "PROXIES",
    "PROXY_CANVASES",
    "PROXY_ROWS",
    "TRACK_PROXIES",
    "AUDIO_PROXIES",
    "VISION_PROXIES",
    "classifier_proxies",
    "proxy_agreement",
    "proxy_columns",
    "resolve_proxies",
    "score_grid",
]

#: Proxy name (`--proxies`) -> (results column, whether higher is better; None for the sanity rows, which rank
#: nothing).
PROXIES: dict[str, tuple[str, bool | None]] = {
    "deletion_auc": ("proxy_deletion_auc", False),
    "insertion_auc": ("proxy_insertion_auc", True),
    "infidelity": ("proxy_infidelity", False),
    "max_sensitivity": ("proxy_max_sensitivity", False),
    "faithfulness_correlation": ("proxy_faithfulness_correlation", True),
    "sparseness": ("proxy_sparseness", True),
    "complexity": ("proxy_complexity", False),
    "randomisation": ("randomised_functional_precision", None),
    "label_randomisation": ("label_randomised_functional_precision", None),
}
#: The classifier tracks' ranked proxies (`classifier_proxies`): the symbolic track's and ROAD (an image has
#: neighbours to impute from), scored on the predicted class's logit, the function the methods explain.
_CLASSIFIER_RANKED: dict[str, tuple[str, bool | None]] = {
    "deletion_auc": ("proxy_deletion_auc", False),
    "insertion_auc": ("proxy_insertion_auc", True),
    "road_auc": ("proxy_road_auc", False),
    "infidelity": ("proxy_infidelity", False),
    "max_sensitivity": ("proxy_max_sensitivity", False),
    "faithfulness_correlation": ("proxy_faithfulness_correlation", True),
    "sparseness": ("proxy_sparseness", True),
    "complexity": ("proxy_complexity", False),
}
#: The vision track's (`chaosjax vision --proxies`): the ranked proxies and the model-parameter randomisation row,
#: scored by the track's own truth (mass in box, chance 1/49). Label randomisation would retrain every (model,
#: condition); it is the symbolic track's alone.
VISION_PROXIES: dict[str, tuple[str, bool | None]] = {
    **_CLASSIFIER_RANKED, "randomisation": ("randomised_mass_in_box", None)}
#: The audio track's (`chaosjax audio --proxies`): as the vision track's but ROAD (its imputation is an image's),
#: the sanity row scored by channel mass (chance 1 / channels).
AUDIO_PROXIES: dict[str, tuple[str, bool | None]] = {
    **{k: v for k, v in _CLASSIFIER_RANKED.items() if k != "road_auc"},
    "randomisation": ("randomised_channel_mass", None)}
#: Each track's proxies: the names its `--proxies` takes.
TRACK_PROXIES: dict[str, dict[str, tuple[str, bool | None]]] = {
    "symbolic": PROXIES, "vision": VISION_PROXIES, "audio": AUDIO_PROXIES}
#: The sanity row that needs a second trained model per cell (the symbolic track trains it when asked).
LABEL_RANDOMISATION = "label_randomisation"
#: Test rows each cell's proxies are computed on: its first `PROXY_ROWS` (the split is already random).
PROXY_ROWS = 128
#: Settings (docs/proxies.md): infidelity's Gaussian draws and std (Captum's `normalize=True`, so a method's scale
#: does not count), max-sensitivity's draws and L_inf radius (features lie in [-1, 1]), faithfulness correlation's
#: subsets (a quarter of the columns each).
INFIDELITY_SAMPLES, INFIDELITY_STDEV = 32, 0.1
SENSITIVITY_SAMPLES, SENSITIVITY_RADIUS = 8, 0.2
FAITHFULNESS_RUNS = 64
#: Validation canvases (clips) each vision (audio) (model, condition, seed)'s proxies are computed on: the first
#: `PROXY_CANVASES`.
PROXY_CANVASES = 32
#: Classifier settings (docs/proxies.md): deletion and insertion move groups (the vision grid's 7 x 7 cells, the
#: occlusion cells, so a curve has 50 points; the audio channels), ROAD removes 5, 15, ..., 95% of the pixels,
#: infidelity's std and max-sensitivity's radius suit inputs in [0, 1], max-sensitivity re-attributes 4 times (a
#: Shapley method costs ~200 passes a canvas), and faithfulness correlation's subsets hold a group's worth of
#: features (8 x 8 x 3 of 56 x 56 x 3; one channel's samples).
CLASSIFIER_ROAD_PERCENTAGES = tuple(range(5, 100, 10))
CLASSIFIER_INFIDELITY_SAMPLES, CLASSIFIER_INFIDELITY_STDEV = 32, 0.1
CLASSIFIER_SENSITIVITY_SAMPLES, CLASSIFIER_SENSITIVITY_RADIUS = 4, 0.1
CLASSIFIER_FAITHFULNESS_RUNS = 32
#: The classifier proxies that run the method again (max-sensitivity's re-attribution; the sanity row's attribution
#: of the re-initialised model): a track compiles them once per method. The others score the maps they are given,
#: so one compiled program serves every method of a (model, condition).
REATTRIBUTING = ("max_sensitivity", "randomisation")


def split_reattributing(names: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`names` as (those that score the given maps alone, those that re-run the method: `REATTRIBUTING`)."""
    return (tuple(n for n in names if n not in REATTRIBUTING), tuple(n for n in names if n in REATTRIBUTING))


#: Methods computed from gradients of the model: the randomisation checks' subjects.
GRADIENT_METHODS = ("saliency", "smoothgrad", "input_x_gradient", "integrated_gradients", "gradient_shap",
                    "deeplift", "guided_backprop", "deeplift_shap")


def resolve_proxies(names: Any, argname: str = "proxies", *, track: str = "symbolic") -> tuple[str, ...]:
    """The proxy names of `names` for `track` (`TRACK_PROXIES`): None or "none" -> (); "all" -> every name the
    track has; a comma-separated string or a sequence -> those names, checked. Raises ValueError naming `argname`
    for an unknown or repeated name."""
    known = TRACK_PROXIES[track]
    if names is None:
        return ()
    if isinstance(names, str):
        text = names.strip()
        if text in ("", "none"):
            return ()
        if text == "all":
            return tuple(known)
        names = [s.strip() for s in text.split(",") if s.strip()]
    if not isinstance(names, (tuple, list)):
        raise TypeError(f"{argname}: expected proxy names (a sequence, 'all' or 'none'), got {names!r}")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"{argname}: unknown proxy {', '.join(map(repr, unknown))}; expected 'all', 'none' or "
                         f"names from {', '.join(known)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{argname}: a proxy is named twice in {', '.join(names)}")
    return tuple(names)


def proxy_columns(names: Sequence[str], *, track: str = "symbolic") -> tuple[str, ...]:
    """The results columns `names` add to `track`'s (in `TRACK_PROXIES[track]` order), and `proxy_seconds` when
    there are any."""
    cols = tuple(col for name, (col, _) in TRACK_PROXIES[track].items() if name in names)
    return cols + ("proxy_seconds",) if cols else ()


def _distance(f, f0, z):
    return jnp.abs(f(z) - f0)


@functools.partial(jax.jit, static_argnames=("apply_fn", "attribute", "names", "cell_by_cell"))
def score_grid(apply_fn: Callable, params: Any, random_params: Any, x: jax.Array, attributions: jax.Array,
               m: jax.Array, mask: jax.Array, refs: jax.Array, keys: jax.Array, *, attribute: Callable,
               names: tuple[str, ...], cell_by_cell: bool, shuffled_params: Any = None) -> dict[str, jax.Array]:
    """The proxies `names` of one method on every cell: `{column: (cells,)}`, each the mean over the rows.

    Args:
      apply_fn: the model, `(params, x) -> (rows, 1)`.
      params, random_params: each cell's trained parameters and a fresh initialisation (leading axis: cells).
      x: each cell's rows `(cells, rows, W)`; attributions: the method's attributions of them, same shape.
      m: predictive columns per cell `(cells,)`; mask: real (not padding) columns `(cells, W)`.
      refs, keys: each cell's reference rows and PRNG key, as the attribution grid passes them.
      attribute: `(params, x, refs, key) -> attributions`, the method as the grid runs it (hashable).
      names: proxies of `PROXIES`.
      cell_by_cell: cells one at a time (a `lax.map`, CPU) or side by side (a `vmap`).
      shuffled_params: each cell's model trained on permuted labels (leading axis: cells); needed by (only)
        "label_randomisation".

    Rows where a metric is undefined (not finite: the relative change of an all-zero attribution) are left out of
    its mean. Padding columns (a grid pads narrower formulas with zero columns) get attribution 0, so they are never ranked
    above a real column, and removing one (value 0, baseline 0) changes nothing.
    """
    if LABEL_RANDOMISATION in names and shuffled_params is None:
        raise ValueError("score_grid: the proxy 'label_randomisation' needs `shuffled_params` (each cell's model "
                         "trained on permuted labels)")

    def one(p, rp, sp, xg, ag, mm, valid, rg, key):
        f = lambda z: apply_fn(p, z)[:, 0]
        a = jnp.where(valid[None, :], ag, 0.0)

        def method(g, z, k):  # the method as the grid ran it, on another function of the same inputs
            return jnp.where(valid[None, :], attribute(g, z, rg, k), 0.0)

        out = {}
        k = lambda i: jax.random.fold_in(key, i)
        for name in names:
            if name in ("deletion_auc", "insertion_auc"):
                # A regression output has no "class score" to fall: the curve follows the output's distance from
                # the baseline's, |f(z) - f(0)|, with the columns moved in order of |a| (which columns matter, as
                # functional precision asks). Deletion falls to 0, insertion rises from 0.
                f0 = f(jnp.zeros_like(xg[:1]))
                distance = functools.partial(_distance, f, f0)
                curve = proxies.deletion_auc if name == "deletion_auc" else proxies.insertion_auc
                v = curve(distance, xg, jnp.abs(a), baseline=0.0)
            elif name == "infidelity":
                v = proxies.infidelity(f, xg, a, key=k(0), samples=INFIDELITY_SAMPLES, stdev=INFIDELITY_STDEV,
                                       normalize=True)
            elif name == "max_sensitivity":
                # Every re-attribution with one key, the one of the reference at x: the score is the change the
                # input moves, not the method's own sampling noise (a fresh draw would count that as sensitivity).
                fixed = functools.partial(method, k=k(4))
                v = proxies.max_sensitivity(f, xg, fixed(f, xg), fixed, key=k(1), samples=SENSITIVITY_SAMPLES,
                                            radius=SENSITIVITY_RADIUS, batch_size=1)
            elif name == "faithfulness_correlation":
                v = proxies.faithfulness_correlation(f, xg, a, key=k(2), runs=FAITHFULNESS_RUNS,
                                                     subset_size=max(1, xg.shape[1] // 4))
            elif name == "sparseness":
                v = proxies.sparseness(a)
            elif name == "complexity":
                v = proxies.complexity(a)
            elif name == "randomisation":
                moved = method(lambda z: apply_fn(rp, z)[:, 0], xg, k(3))
                v = metrics.functional_precision(moved, mm, valid=valid)[None]
            elif name == LABEL_RANDOMISATION:
                moved = method(lambda z: apply_fn(sp, z)[:, 0], xg, k(5))
                v = metrics.functional_precision(moved, mm, valid=valid)[None]
            else:  # resolve_proxies guards the names
                raise ValueError(f"unknown proxy {name!r}")
            # A row where the metric is undefined (max-sensitivity or complexity of an all-zero attribution, which
            # LIME returns for some rows; a faithfulness correlation without variance) is left out of the mean.
            out[PROXIES[name][0]] = finite_mean(v)
        return out

    args = (params, random_params, shuffled_params, x, attributions, m, mask, refs, keys)
    if cell_by_cell:
        return jax.lax.map(lambda a: one(*a), args)
    return jax.vmap(one)(*args)


def classifier_proxies(f: Callable, x: jax.Array, attributions: jax.Array, reattribute: Callable | None,
                       key: jax.Array, *, names: Sequence[str], groups: np.ndarray) -> dict[str, jax.Array]:
    """The ranked proxies `names` (of `VISION_PROXIES` or `AUDIO_PROXIES`) for one classifier, `{column: (B,)}` per
    input; call it inside the track's jitted program (the sanity row, which needs the track's truth, is the
    track's own).

    Args:
      f: inputs (canvases `(B, H, W, C)`, clips `(B, channels, samples)`) -> the predicted class's logit `(B,)`
        (classes fixed at `x`'s predictions).
      x: the inputs; attributions: the method's maps of them, shaped like `x`.
      reattribute: `(z, key) -> maps` of canvases `z` w.r.t. the same classes, the method as the track runs it
        (max-sensitivity's re-attribution); None when `names` lacks max-sensitivity.
      key: PRNG key of the proxies' draws.
      names: ranked proxies; groups: the features' groups (the grid's cells, the channels), int labels shaped like
        one input (numpy).

    Deletion, insertion and ROAD rank by `|a|` (which features matter, as the truth asks) and remove to 0 (black,
    silence);
    max-sensitivity compares re-attributions under one key with the one at `x` under that key, so a sampling
    method's own noise is not counted as sensitivity.
    """
    out = {}
    k = lambda i: jax.random.fold_in(key, i)
    magnitude = jnp.abs(attributions)
    num_groups = int(np.unique(groups).size)
    for name in names:
        if name in ("deletion_auc", "insertion_auc"):
            curve = proxies.deletion_auc if name == "deletion_auc" else proxies.insertion_auc
            v = curve(f, x, magnitude, groups=groups, baseline=0.0, batch_size=10)
        elif name == "road_auc":
            v = jnp.mean(proxies.road_curve(f, x, magnitude, key=k(6), percentages=CLASSIFIER_ROAD_PERCENTAGES), axis=1)
        elif name == "infidelity":
            v = proxies.infidelity(f, x, attributions, key=k(0), samples=CLASSIFIER_INFIDELITY_SAMPLES,
                                   stdev=CLASSIFIER_INFIDELITY_STDEV, normalize=True, batch_size=8)
        elif name == "max_sensitivity":
            if reattribute is None:
                raise ValueError("classifier_proxies: max_sensitivity re-attributes; pass `reattribute`")
            fixed = lambda g, z: reattribute(z, k(4))  # noqa: E731 - the classes are fixed by the track, not `g`
            v = proxies.max_sensitivity(f, x, fixed(f, x), fixed, key=k(1), samples=CLASSIFIER_SENSITIVITY_SAMPLES,
                                        radius=CLASSIFIER_SENSITIVITY_RADIUS, batch_size=1)
        elif name == "faithfulness_correlation":
            v = proxies.faithfulness_correlation(f, x, attributions, key=k(2), runs=CLASSIFIER_FAITHFULNESS_RUNS,
                                                 subset_size=max(1, x[0].size // num_groups), batch_size=16)
        elif name == "sparseness":
            v = proxies.sparseness(attributions)
        elif name == "complexity":
            v = proxies.complexity(attributions)
        else:
            raise ValueError(f"classifier_proxies: {name!r} is not a ranked proxy of a classifier")
        out[_CLASSIFIER_RANKED[name][0]] = v
    return out


def finite_mean(v: jax.Array) -> jax.Array:
    """The mean of `v`'s finite entries (NaN if none): a row where a metric is undefined is left out."""
    return jnp.nanmean(jnp.where(jnp.isfinite(v), v, jnp.nan))


# ------------------------------------------------------------------------------------------- the meta-benchmark

#: Ground-truth scores the proxies are scored against, per track (the first is the heat maps' across tracks).
TRUTHS = ("functional_precision", "uniform_score")
TRACK_TRUTHS: dict[str, tuple[str, ...]] = {"symbolic": TRUTHS, "vision": ("mass_in_box", "iou_corrected"),
                                             "audio": ("channel_mass", "channel_hit")}
#: Columns that make a replicate (a cell of the grid; a seed of a vision (model, condition)); the rows of
#: `kendall_agreement`.
_REPLICATE = ("formula", "seed", "noise_features", "n", "depth", "width", "lr", "optimizer", "dropout",
              "label_noise", "epochs", "protocol")
TRACK_REPLICATES: dict[str, tuple[str, ...]] = {
    "symbolic": _REPLICATE,
    "vision": ("condition", "model", "seed", "protocol", "preset", "source", "background", "train_size",
               "val_size", "epochs", "learning_rate"),
    "audio": ("condition", "model", "seed", "protocol", "preset", "source", "sample_rate", "channels", "steps",
              "batch_size", "lr", "n_val", "n_attr", "ig_steps", "background_gain"),
}


def _track_of(frame: Any) -> str:
    """The one track of a results table (a table without a `track` column is symbolic's, as before tracks)."""
    if "track" not in frame.columns:
        return "symbolic"
    present = list(dict.fromkeys(frame["track"].dropna()))
    if len(present) != 1 or present[0] not in TRACK_PROXIES:
        raise ValueError(f"proxy_agreement: expected the rows of one track of {', '.join(TRACK_PROXIES)}, got "
                         f"{present or 'none'} (select one track's rows first)")
    return present[0]


def proxy_agreement(frame: Any, *, truths: Sequence[str] | None = None, resamples: int = 1000, seed: int = 0,
                    level: float = 0.95):
    """Per proxy column of one track's results table and per ground truth: does the proxy rank the methods as the
    truth does? A DataFrame with one row per (proxy, truth): `proxy` (the name of `TRACK_PROXIES[track]`), `truth`,
    `higher_is_better`, `tau` (Kendall's tau-b between the methods' mean proxy and mean truth score), `low`,
    `high` (bootstrap percentile CI at `level` over replicates: formulas x seeds x settings on the symbolic track,
    conditions x models x seeds on the vision and audio tracks), `pairs` (share of method pairs ordered alike, ties half) and
    `methods`, `replicates`. A proxy where lower is better (deletion AUC, infidelity, max-sensitivity,
    complexity) has its sign flipped first, so tau 1 always means "agrees". `truths` defaults to the track's
    (`TRACK_TRUTHS`). Methods without a ground truth of their own (`random_baseline`) are kept: a proxy should rank
    them last too. Raises ValueError if the table has no proxy columns or fewer than 2 methods."""
    import pandas as pd

    track = _track_of(frame)
    truths = TRACK_TRUTHS[track] if truths is None else tuple(truths)
    present = [(name, col, better) for name, (col, better) in TRACK_PROXIES[track].items()
               if better is not None and col in frame.columns]
    if not present:
        raise ValueError(f"proxy_agreement: the table has no proxy columns (run `chaosjax {track} --proxies all`)")
    missing = [t for t in truths if t not in frame.columns]
    if missing or "method" not in frame.columns:
        raise ValueError(f"proxy_agreement: the table lacks {missing or ['method']}")
    keys = [c for c in TRACK_REPLICATES[track] if c in frame.columns]
    rows = []
    for name, col, better in present:
        for truth in truths:
            wide_p = frame.pivot_table(index=keys, columns="method", values=col, aggfunc="mean", dropna=False)
            wide_t = frame.pivot_table(index=keys, columns="method", values=truth, aggfunc="mean", dropna=False)
            wide_t = wide_t.reindex(index=wide_p.index, columns=wide_p.columns)
            result = proxies.kendall_agreement(wide_p.to_numpy(np.float64), wide_t.to_numpy(np.float64),
                                               higher_is_better=better, resamples=resamples, seed=seed, level=level)
            rows.append({"proxy": name, "truth": truth, "higher_is_better": better, **result})
    return pd.DataFrame(rows)
