"""The symbolic track's section of a report: methods, ablation curves, the per-formula table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from chaosjax.report import proxies
from chaosjax.report._common import (
    _fmt,
    _fmt_values,
    _image,
    _label,
    _legend,
    _ordered,
    _save,
    _stats,
    _style,
    _table,
    method_colors,
)


# ------------------------------------------------------------------------------------------------ symbolic

#: Sweep axis (``--sweep`` name) -> results column, and a readable axis label.
_AXES = {
    "noise": ("noise_features", "noise columns"),
    "n": ("n", "rows (n)"),
    "depth": ("depth", "hidden layers"),
    "width": ("width", "hidden width"),
    "lr": ("lr", "learning rate"),
    "dropout": ("dropout", "dropout rate"),
    "label-noise": ("label_noise", "label-noise std"),
    "optimizer": ("optimizer", "optimizer"),
}
_SYMBOLIC_METRICS = ("functional_precision", "uniform_score")


def _formula_key(label: str) -> tuple:
    return (0, int(label), "") if str(label).isdigit() else (1, 0, str(label))


def _formula_label(label: str, text: str | None, width: int = 34) -> str:
    if str(label).isdigit():
        text = str(text) if isinstance(text, str) and text else ""
        text = text if len(text) <= width else text[: width - 1] + "…"
        return f"f{label}: {text}" if text else f"f{label}"
    label = str(label)
    return label if len(label) <= width else label[: width - 1] + "…"


def _sweep_axes(frame: pd.DataFrame) -> list[str]:
    """The ablation axes of a symbolic results table: the recorded sweep axes, else any setting that varies."""
    if "sweep_axis" in frame.columns:
        axes = [a for a in pd.unique(frame["sweep_axis"]) if a in _AXES]
        if axes:
            return axes
    return [a for a, (col, _) in _AXES.items() if col in frame.columns and frame[col].nunique(dropna=True) > 1]


def _axis_rows(frame: pd.DataFrame, axis: str) -> pd.DataFrame:
    if "sweep_axis" in frame.columns and (frame["sweep_axis"] == axis).any():
        return frame[frame["sweep_axis"] == axis]
    return frame


def _chance(frame: pd.DataFrame) -> float:
    """Mean chance level of functional precision, ``m / (m + noise)``."""
    return float(np.mean(frame["m"] / (frame["m"] + frame["noise_features"])))


def _setting_text(frame: pd.DataFrame, axes: list[str]) -> str:
    swept = {_AXES[a][0] for a in axes}

    def value(col, fmt=str):
        if col not in frame.columns:
            return None
        vals = pd.unique(frame[col].dropna())
        if col in swept or len(vals) > 1:
            return "swept (" + ", ".join(fmt(v) for v in sorted(vals, key=lambda v: (isinstance(v, str), v))) + ")"
        return fmt(vals[0]) if len(vals) else None

    n_formulas = frame["formula"].nunique()
    n_seeds = frame["seed"].nunique()
    parts = [f"{n_formulas} formula{'s' * (n_formulas != 1)} x {n_seeds} seed{'s' * (n_seeds != 1)}"]
    for col, name, fmt in (
        ("protocol", "protocol", str), ("model", "model", str), ("noise_features", "noise columns", str),
        ("n", "rows", str), ("epochs", "epochs", str), ("optimizer", "optimizer", str), ("lr", "lr", lambda v: f"{v:g}"),
        ("dropout", "dropout", lambda v: f"{v:g}"), ("label_noise", "label noise", lambda v: f"{v:g}"),
        ("ig_steps", "IG steps", str),
    ):
        v = value(col, fmt)
        if v is not None:
            parts.append(f"{name} {v}")
    return "; ".join(parts) + "."


def draw(frame: pd.DataFrame, meta: dict[str, Any], figdir: Path, *,
                     formats: Sequence[str]) -> tuple[str, list[Path]]:
    """The symbolic section: the methods, an ablation per swept axis, the per-formula table and, with proxy
    columns, the proxies against the truth."""
    names = _ordered(frame["method"])
    colors = method_colors(names)
    axes = _sweep_axes(frame)
    md = ["## Symbolic functional track", "", _setting_text(frame, axes), ""]
    figures: list[Path] = []
    for section in (_methods_section(frame, names, colors, axes, figdir, formats),
                    *(_ablation_section(frame, axis, names, colors, figdir, formats) for axis in axes),
                    _formulas_section(frame, names, axes, figdir, formats)):
        md += section[0]
        figures += section[1]
    if proxies.has_proxies(frame):  # `chaosjax symbolic --proxies`
        text, paths = proxies.draw(frame, figdir, formats=formats)
        md += [text]
        figures += paths
    return "\n".join(md), figures


def _methods_section(frame, names, colors, axes, figdir, formats) -> tuple[list[str], list[Path]]:
    """Functional precision and uniform score per method with 95% CIs over formulas x seeds, and their table."""
    pooled = " (pooled over every setting)" if axes else ""
    chance = _chance(frame)
    md: list[str] = []
    fig = Figure(figsize=(11, 0.5 * len(names) + 2.2), layout="constrained")
    panels = fig.subplots(1, 2, sharey=True)
    for ax, metric in zip(panels, _SYMBOLIC_METRICS):
        stats = _stats(frame, ["method"], metric).set_index("method").reindex(names)
        ys = np.arange(len(names))[::-1]
        ax.barh(ys, np.nan_to_num(stats["mean"]), xerr=np.nan_to_num(stats["ci"]), color=[colors[n] for n in names],
                edgecolor="black", linewidth=0.4, capsize=3, height=0.7)
        for y, (mean, ci) in zip(ys, zip(stats["mean"], stats["ci"])):
            if np.isfinite(mean):
                ax.text(mean + np.nan_to_num(ci) + 0.015, y, f"{mean:.2f}", va="center", fontsize=9)
        if metric == "functional_precision":
            ax.axvline(chance, color="black", linestyle=":", linewidth=1.2)
            ax.text(chance, len(names) - 0.45, f" chance {chance:.2f}", fontsize=8, va="bottom")
        ax.set_yticks(ys, names)
        ax.set_xlim(0, 1.12)
        ax.set_xticks(np.linspace(0, 1, 6))
        ax.set_ylim(-0.6, len(names) - 0.1)
        ax.set_xlabel(_label(metric) + " (mean ± 95% CI)")
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
    n_formulas, n_seeds = frame["formula"].nunique(), frame["seed"].nunique()
    fig.suptitle(f"Attribution methods vs the true function: {n_formulas} formula{'s' * (n_formulas != 1)} x "
                 f"{n_seeds} seed{'s' * (n_seeds != 1)}{pooled}")
    paths = _save(fig, figdir, "symbolic_methods", formats)
    figures = paths
    md += [_image(paths, "functional precision and uniform score per method"), ""]
    rows = []
    for name in names:
        group = frame[frame["method"] == name]
        cells = [f"`{name}`"]
        for metric in ("functional_precision", "uniform_score", "consistency"):
            cells.append(_fmt_values(group[metric]) if metric in group else "–")
        cells.append(_fmt(float(group["seconds"].sum()), digits=1) if "seconds" in group else "–")
        rows.append(cells)
    md += [_table(["method", "functional precision", "uniform score", "consistency", "attribution seconds (total)"],
                  rows),
           "", f"Chance functional precision (m / (m + noise), averaged): {chance:.3f}.", ""]
    if "test_mae" in frame.columns:
        models = frame.drop_duplicates([c for c in ("formula", "seed", *[_AXES[a][0] for a in axes])
                                        if c in frame.columns])
        extra = [f"test MAE {_fmt_values(models['test_mae'])}"]
        if "pred_score" in models:
            extra.append(f"Pred score {_fmt_values(models['pred_score'])}")
        md += [f"Models ({len(models)}): " + ", ".join(extra) + ".", ""]

    return md, figures


def _ablation_section(frame, axis, names, colors, figdir, formats) -> tuple[list[str], list[Path]]:
    """One swept axis: each metric against the axis, one line per method, and its tables."""
    md: list[str] = []
    column, axis_label = _AXES[axis]
    sub = _axis_rows(frame, axis)
    values = sorted(pd.unique(sub[column].dropna()), key=lambda v: (isinstance(v, str), v))
    categorical = any(isinstance(v, str) for v in values)
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    panels = fig.subplots(1, 2)
    position = {v: i for i, v in enumerate(values)}
    for ax, metric in zip(panels, _SYMBOLIC_METRICS):
        for k, name in enumerate(names):
            stats = _stats(sub[sub["method"] == name], [column], metric)
            stats = stats.sort_values(column, key=lambda s: s.map(position))
            xs = stats[column].map(position) if categorical else stats[column].astype(float)
            # Dodge the error bars sideways so that methods with equal means stay readable.
            shift = (k - (len(names) - 1) / 2) * 0.012
            if categorical:
                xs = xs + shift * len(values)
            elif axis == "lr" and min(values) > 0:
                xs = xs * 10 ** (shift * math.log10(max(values) / min(values)))
            else:
                xs = xs + shift * (float(max(values)) - float(min(values)))
            ax.errorbar(xs, stats["mean"], yerr=np.nan_to_num(stats["ci"]), color=colors[name], linewidth=1.6,
                        markersize=5, capsize=2, elinewidth=0.8, **_style(name))
        if metric == "functional_precision":
            ch = (sub["m"] / (sub["m"] + sub["noise_features"])).groupby(sub[column]).mean()
            ch = ch.sort_index(key=lambda s: s.map(position))
            xs = ch.index.map(position) if categorical else ch.index.astype(float)
            ax.plot(xs, ch.to_numpy(), color="black", linestyle=":", linewidth=1.2)
        if categorical:
            ax.set_xticks(range(len(values)), values)
        elif axis == "lr" and min(values) > 0:
            ax.set_xscale("log")
        elif len(values) <= 8:
            ax.set_xticks([float(v) for v in values], [f"{v:g}" for v in values])
        ax.set_xlabel(axis_label)
        ax.set_ylabel(_label(metric))
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    _legend(fig, names, colors, extra=[(Line2D([], [], color="black", linestyle=":"), "chance (FP)")])
    fig.suptitle(f"Ablation over {axis_label}: mean over formulas x seeds, bars = 95% CI")
    paths = _save(fig, figdir, f"symbolic_ablation_{axis.replace('-', '_')}", formats)
    figures = paths
    md += [f"### Ablation: {axis_label}", "", _image(paths, f"metrics vs {axis_label}"), ""]
    for metric in _SYMBOLIC_METRICS:
        stats = _stats(sub, [column, "method"], metric)
        head = [axis_label] + [f"`{n}`" for n in names]
        rows = []
        for v in values:
            s = stats[stats[column] == v].set_index("method")
            rows.append([f"{v:g}" if isinstance(v, (float, np.floating)) else v]
                        + [_fmt(s["mean"].get(n, np.nan), s["ci"].get(n, np.nan), 2, n=s["count"].get(n, 0)) for n in names])
        md += [f"{_label(metric).capitalize()}:", "", _table(head, rows), ""]
    return md, figures


def _formulas_section(frame, names, axes, figdir, formats) -> tuple[list[str], list[Path]]:
    """The per-formula heat table of both metrics, and functional precision per formula and method."""
    md: list[str] = []
    labels = sorted(pd.unique(frame["formula"]), key=_formula_key)
    texts = (frame.drop_duplicates("formula").set_index("formula")["formula_text"]
             if "formula_text" in frame.columns else pd.Series(dtype=str))
    ylabels = [_formula_label(f, texts.get(f)) for f in labels]
    # Rows of 0.42 in, plus room for the titles, the rotated method names and the colour bar beneath them (a
    # vertical one beside a two-formula table collapsed to a sliver).
    fig = Figure(figsize=(6 + 1.2 * len(names), 2.6 + 0.42 * len(labels)), layout="constrained")
    panels = fig.subplots(1, 2, sharey=True)
    image = None
    for ax, metric in zip(panels, _SYMBOLIC_METRICS):
        table = frame.pivot_table(index="formula", columns="method", values=metric, aggfunc="mean")
        table = table.reindex(index=labels, columns=names)
        values = table.to_numpy(dtype=np.float64)
        image = ax.imshow(values, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7.5,
                        color="white" if v < 0.6 else "black")
        ax.set_xticks(range(len(names)), names, rotation=40, ha="right")
        ax.set_yticks(range(len(labels)), ylabels)
        ax.set_title(_label(metric))
    fig.colorbar(image, ax=panels, location="bottom", shrink=0.5, aspect=40, fraction=0.04,
                 label="score: mean over seeds" + (" and settings" if axes else ""))
    fig.suptitle("Per formula and method")
    paths = _save(fig, figdir, "symbolic_formulas", formats)
    figures = paths
    md += ["### Per formula", "", _image(paths, "per-formula heat table"), ""]
    head = ["formula", "m"] + (["test MAE"] if "test_mae" in frame.columns else []) + [f"`{n}`" for n in names]
    fp = frame.pivot_table(index="formula", columns="method", values="functional_precision", aggfunc="mean")
    rows = []
    for label in labels:
        group = frame[frame["formula"] == label]
        text = texts.get(label) if str(label).isdigit() else None
        row = [f"f{label} `{text}`" if text else f"`{label}`", int(group["m"].iloc[0])]
        if "test_mae" in frame.columns:
            row.append(_fmt(float(group["test_mae"].mean()), digits=4))
        row += [_fmt(fp.loc[label].get(n, np.nan), digits=2) for n in names]
        rows.append(row)
    md += ["Functional precision per formula (mean over seeds" + (" and settings" if axes else "") + "):", "",
           _table(head, rows), ""]
    return md, figures
