"""The RFE section of a report: scores per round, the final features, time per method."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from chaosjax.attribution import METHODS
from chaosjax.report._common import (
    _RFE_METRICS,
    _fmt,
    _fmt_values,
    _image,
    _label,
    _legend,
    _ordered,
    _present_metrics,
    _save,
    _seconds,
    _stats,
    _style,
    _table,
    method_colors,
)


# ----------------------------------------------------------------------------------------------------- RFE


def _run_seconds(frame: pd.DataFrame, run_keys: list[str]) -> pd.DataFrame:
    """Wall seconds per elimination run: the run's time when every round row repeats it, else the rounds' sum."""
    grouped = frame.groupby(run_keys, sort=False, dropna=False)["seconds"]
    repeated = (grouped.nunique(dropna=False) <= 1).all()
    return (grouped.first() if repeated else grouped.sum()).reset_index()


def draw(frame: pd.DataFrame, meta: dict[str, Any], figdir: Path, *,
                formats: Sequence[str]) -> tuple[str, list[Path]]:
    """The RFE section: each metric at each round (one column of panels per dataset and schedule), the final
    features of each run, and the time per method."""
    names = _ordered(frame["method"])
    colors = method_colors(names)
    metrics = _present_metrics(frame, _RFE_METRICS)
    units = [c for c in ("dataset", "formula") if c in frame.columns]
    facet_cols = [c for c in ("dataset", "schedule") if c in frame.columns and frame[c].nunique() > 1]
    facets = ([None] if not facet_cols else
              [tuple(row) for row in frame[facet_cols].drop_duplicates().itertuples(index=False)])
    run_keys = units + [c for c in ("seed", "schedule", "method") if c in frame.columns]
    step = "round" if "round" in frame.columns else "features_kept"
    n_units = len(frame.drop_duplicates(units))
    over = "/".join(f"{u}s" for u in units) + (" x seeds" if "seed" in frame else "")
    md = ["## Recursive feature elimination", "",
          f"{n_units} dataset/formula{'s' * (n_units != 1)}"
          + (f" x {frame['seed'].nunique()} seeds" if "seed" in frame else "")
          + (f" x schedules {', '.join(map(str, pd.unique(frame['schedule'])))}" if "schedule" in frame else "")
          + f"; {len(names)} methods and baselines; intervals over {over}.", ""]

    curves, curve_paths = _curves_section(frame, names, colors, metrics, facet_cols, facets, step, figdir, formats)
    timing, time_paths = _time_section(frame, names, colors, run_keys, over, figdir, formats)
    md += curves + _final_table(frame, names, metrics, run_keys) + timing
    return "\n".join(md), curve_paths + time_paths


def _curves_section(frame, names, colors, metrics, facet_cols, facets, step, figdir, formats
                    ) -> tuple[list[str], list[Path]]:
    """Each metric against the features kept, one line per method (dodged sideways), one panel column per facet."""
    fig = Figure(figsize=(3.2 + 4.2 * len(facets), 0.8 + 3.0 * len(metrics)), layout="constrained")
    panels = fig.subplots(len(metrics), len(facets), squeeze=False)
    for j, facet in enumerate(facets):
        sub = frame
        if facet is not None:
            for column, value in zip(facet_cols, facet):
                sub = sub[sub[column] == value]
        kept_all = sorted(set(np.round(sub["features_kept"].astype(float), 1)))
        log_x = len(kept_all) > 1 and min(kept_all) > 0 and max(kept_all) / min(kept_all) >= 4
        for i, metric in enumerate(metrics):
            ax = panels[i, j]
            for k, name in enumerate(names):
                rows = sub[sub["method"] == name]
                stats = _stats(rows, [step], metric)
                # x: the mean number of features kept at that round (formulas differ by a feature or two)
                kept = rows.groupby(step, sort=False)["features_kept"].mean()
                stats["kept"] = stats[step].map(kept)
                stats = stats[np.isfinite(stats["mean"])].sort_values("kept")
                if stats.empty:
                    continue
                # Methods often agree round for round: dodge each sideways (a few % of the axis) so that equal
                # curves and their error bars stay visible side by side instead of hiding one another.
                shift = (k - (len(names) - 1) / 2) * 0.012
                xs = stats["kept"].astype(float)
                if log_x:
                    xs = xs * 10 ** (shift * math.log10(max(kept_all) / min(kept_all)))
                elif len(kept_all) > 1:
                    xs = xs + shift * (max(kept_all) - min(kept_all))
                ax.errorbar(xs, stats["mean"], yerr=np.nan_to_num(stats["ci"]), color=colors[name], linewidth=1.6,
                            markersize=5, capsize=2, elinewidth=0.8, alpha=0.9, **_style(name))
            ticks = kept_all
            if log_x:
                ax.set_xscale("log")
            if ticks:
                shown = ticks if len(ticks) <= 10 else ticks[:: math.ceil(len(ticks) / 10)]
                ax.set_xticks(shown, [f"{k:.3g}" for k in shown], rotation=45 if len(shown) > 6 else 0)
                ax.minorticks_off()
            ax.invert_xaxis()  # elimination proceeds left to right
            if metric in ("functional_precision", "balanced_accuracy", "roc_auc"):
                ax.set_ylim(0, 1.02)
            else:  # an error (MAE) is never negative, whatever a t interval over two runs says
                ax.set_ylim(bottom=0)
            ax.set_ylabel(_label(metric))
            ax.grid(alpha=0.3)
            if i == 0 and facet is not None:
                ax.set_title(" / ".join(str(v) for v in facet))
            if i == len(metrics) - 1:
                ax.set_xlabel("features kept (elimination →)")
    _legend(fig, names, colors)
    fig.suptitle("RFE: score at each round (mean ± 95% CI; methods dodged sideways)")
    paths = _save(fig, figdir, "rfe_curves", formats)
    return [_image(paths, "metric vs number of kept features"), ""], paths



def _final_table(frame, names, metrics, run_keys) -> list[str]:
    """The final features of each run and their scores (the network retrained on them, where measured)."""
    if "final" in frame.columns and frame["final"].astype(bool).any():
        final = frame[frame["final"].astype(bool)]
    else:
        final = frame.loc[frame.groupby(run_keys, sort=False)["features_kept"].idxmin()]
    final_metrics = _present_metrics(final, ("mlp_test_mae", "mlp_balanced_accuracy", "mlp_roc_auc")) + metrics
    labels = {"mlp_test_mae": "network test MAE", "mlp_balanced_accuracy": "network balanced accuracy",
              "mlp_roc_auc": "network ROC-AUC"}
    labels.update({m: f"{_label(m)} (the round's model)" for m in ("test_mae", "balanced_accuracy", "roc_auc")})
    rows = []
    for name in names:
        group = final[final["method"] == name]
        rows.append([f"`{name}`", _fmt(float(group["features_kept"].mean()), digits=1)]
                    + [_fmt_values(group[m]) for m in final_metrics])
    return ["Final features of each run" + (" (network: the same MLP retrained on them)" if any(
        m.startswith("mlp_") for m in final_metrics) else "") + ":", "",
           _table(["method", "features kept"] + [labels.get(m, _label(m)) for m in final_metrics], rows), ""]



def _time_section(frame, names, colors, run_keys, over, figdir, formats) -> tuple[list[str], list[Path]]:
    """Wall seconds per elimination and method: a bar chart and its table."""
    totals = _run_seconds(frame, run_keys)
    stats = _stats(totals, ["method"], "seconds").set_index("method").reindex(names)
    fig = Figure(figsize=(8, 0.45 * len(names) + 1.8), layout="constrained")
    ax = fig.subplots()
    ys = np.arange(len(names))[::-1]
    means = stats["mean"].to_numpy(dtype=np.float64)
    cis = np.nan_to_num(stats["ci"].to_numpy(dtype=np.float64))
    counts = stats["count"].fillna(0).astype(int).to_numpy()
    lower = np.minimum(cis, means * 0.999)  # a log axis cannot show bars below zero
    ax.barh(ys, means, xerr=[lower, cis], color=[colors[n] for n in names], edgecolor="black", linewidth=0.4,
            capsize=3, height=0.7, hatch=[None if n in METHODS else "//" for n in names])
    for y, v, c in zip(ys, means, cis):
        if np.isfinite(v):
            ax.text((v + c) * 1.1, y, _seconds(v), va="center", fontsize=8)
    positive = means[np.isfinite(means) & (means > 0)]
    if positive.size and positive.max() / positive.min() >= 20:
        ax.set_xscale("log")
        ax.set_xlim(positive.min() / 2, positive.max() * 6)
    else:
        ax.set_xlim(0, (np.nanmax(means + cis) if positive.size else 1) * 1.3)
    ax.set_yticks(ys, names)
    ax.set_xlabel(f"wall seconds per elimination, all rounds (mean ± 95% CI over {over})")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    fig.suptitle("RFE: time per method")
    paths = _save(fig, figdir, "rfe_time", formats)
    return ["### Time", "", _image(paths, "time per method"), "",
           "A neural method's eliminations (every dataset x seed x schedule) run as one compiled program of its "
           "own, so its time per elimination is that program's wall time, compilation included, divided by its "
           "runs: the same for each of them, hence no interval. A scikit-learn baseline is timed run by run.", "",
           _table(["method", "seconds per elimination"],
                  [[f"`{n}`", _fmt(m, c, 2, n=k)] for n, m, c, k in zip(names, means, cis, counts)]), ""], paths
