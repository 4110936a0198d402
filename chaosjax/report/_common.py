"""What every track's report section shares: the palette, loading and checking a results directory, statistics,
tables and the plotting helpers. A private module: `chaosjax.report` re-exports its public names."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from chaosjax import tracks
from chaosjax.attribution import METHODS
from chaosjax.runs import MIN_CI_SAMPLES, SCHEMA_VERSION, markdown_table, mean_ci

#: The Okabe-Ito colour-blind-safe palette.
OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish_purple": "#CC79A7",
}
#: A fixed colour per method of ``chaosjax.attribution.METHODS`` (the control in neutral grey).
METHOD_COLORS = {
    "saliency": OKABE_ITO["blue"],
    "input_x_gradient": OKABE_ITO["sky_blue"],
    "integrated_gradients": OKABE_ITO["vermillion"],
    "smoothgrad": OKABE_ITO["bluish_green"],
    "deeplift": OKABE_ITO["reddish_purple"],
    "gradient_shap": OKABE_ITO["orange"],
    "feature_ablation": OKABE_ITO["black"],
    "random_baseline": "#999999",
    # The perturbation family: Paul Tol's high-contrast, vibrant and bright colours and a dark brown (none in
    # EXTRA_COLORS), each with its own marker (METHOD_MARKERS): hue is never the only cue among sixteen methods.
    "occlusion": "#997700",
    "shapley_exact": "#004488",
    "shapley_sampling": "#EE3377",
    "kernel_shap": "#AA3377",
    "lime": "#BBCC33",
    "feature_permutation": "#8C510A",
    "guided_backprop": "#555555",
    "deeplift_shap": "#EE7733",
}
#: Markers of the perturbation family's lines (the other methods: round markers; other names: squares).
METHOD_MARKERS = {
    "occlusion": "D", "shapley_exact": "^", "shapley_sampling": "v", "kernel_shap": "<", "lime": ">",
    "feature_permutation": "P", "guided_backprop": "X", "deeplift_shap": "*",
}
#: Colours of other names (baselines, user methods), in their sorted order: Paul Tol's colour-blind-safe "muted".
EXTRA_COLORS = ("#332288", "#44AA99", "#882255", "#DDCC77", "#117733", "#88CCEE", "#CC6677", "#999933", "#AA4499")
#: Tracks this module reports, in the order their sections appear.
#: Most examples drawn in a gallery.
MAX_EXAMPLES = 4
_FORMATS = ("png", "svg", "pdf")
_CONDITIONS = ("RBFP", "RBRP", "SBFP", "SBRP")
_DPI = 150
_FONT = {"font.size": 10}


class Report(NamedTuple):
    """What ``report`` wrote: ``markdown`` is ``DIR/report.md``; ``figures`` every figure file, in order."""

    markdown: Path
    figures: tuple[Path, ...]
    tracks: tuple[str, ...]

    @property
    def figure_dir(self) -> Path:
        return self.markdown.parent / "figures"


# ------------------------------------------------------------------------------------------------- colours


def _ordered(names: Iterable[str]) -> list[str]:
    """METHODS order first, then other names sorted."""
    names = set(names)
    return [m for m in METHODS if m in names] + sorted(n for n in names if n not in METHODS)


def method_colors(names: Iterable[str]) -> dict[str, str]:
    """A colour per name: ``METHOD_COLORS`` for methods, ``EXTRA_COLORS`` in sorted order for other names."""
    names = _ordered(names)
    extra = [n for n in names if n not in METHOD_COLORS]
    colors = {n: METHOD_COLORS[n] for n in names if n in METHOD_COLORS}
    colors.update({n: EXTRA_COLORS[i % len(EXTRA_COLORS)] for i, n in enumerate(extra)})
    return colors


def _style(name: str) -> dict[str, Any]:
    """Line style: methods solid with round markers (the perturbation family its own markers), other names
    (baselines) dashed with squares."""
    if name in METHODS:
        return {"linestyle": "-", "marker": METHOD_MARKERS.get(name, "o")}
    return {"linestyle": "--", "marker": "s"}


# ------------------------------------------------------------------------------------------------- loading

_STR_COLUMNS = ("track", "formula", "formula_text", "dataset", "condition", "model", "method", "protocol",
                "optimizer", "sweep_axis")
_RFE_METRICS = ("functional_precision", "test_mae", "balanced_accuracy", "roc_auc")
_NUMERIC = {
    "symbolic": ("m", "noise_features", "functional_precision", "uniform_score"),
    "vision": ("iou", "mass_in_box"),
    "audio": ("channel_mass",),
    "rfe": ("features_kept", "seconds"),
}


#: Columns that hold what a run measured; every other column is part of a row's identity (two rows equal on all of
#: them describe the same cell: a duplicate).
_MEASURED = frozenset({
    "functional_precision", "uniform_score", "consistency", "test_mae", "pred_score", "initial_loss", "final_loss",
    "seconds", "train_seconds", "accuracy", "top5", "iou", "iou_corrected", "mass_in_box", "pointing",
    "channel_mass", "channel_hit", "balanced_accuracy", "roc_auc", "mlp_test_mae", "mlp_balanced_accuracy",
    "mlp_roc_auc", "features_kept", "final", "selected",
})


def _data_lines(results: Path) -> list[int]:
    """The file line of each data row (the header is line 1); refuses a row cut mid-way: a last line without its
    end of line (chaosjax ends every row with one), or a row with another number of fields than the header."""
    try:
        text = results.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"report: {results} is not a CSV table (not UTF-8 text: {err.reason})") from None
    if text and not text.endswith("\n"):
        last = text.count("\n") + 1
        raise ValueError(f"report: {results}: line {last} is cut off (no end of line): the file was truncated "
                         "mid-row; rerun the track (or a sweep, which resumes) to rewrite it")
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    lines = []
    for row in reader:
        if not row:  # a blank line, which the CSV reader skips too
            continue
        if header is not None and len(row) != len(header):
            raise ValueError(f"report: {results}: line {reader.line_num} has {len(row)} fields, the header "
                             f"{len(header)}: a row cut mid-way or an edited one")
        lines.append(reader.line_num)
    return lines


def _check_rows(frame: pd.DataFrame, results: Path, lines: list[int]) -> None:
    """Refuses rows that cannot be a cell of a run: no identity, twice the same cell, an infinite number."""
    def line(i: int) -> int:
        return lines[i] if i < len(lines) else i + 2

    empty = frame["track"].isna() | (frame["track"].astype(str).str.strip() == "")
    if empty.any():
        raise ValueError(f"report: {results}: line {line(int(np.argmax(empty.to_numpy())))} has no track")
    for track in _present(frame):
        sub = frame[frame["track"] == track]
        for column in [c for c in _required(track) if c not in _MEASURED and c in sub.columns]:
            empty = (sub[column].isna() | (sub[column].astype(str).str.strip() == "")).to_numpy()
            if empty.any():
                raise ValueError(f"report: {results}: line {line(int(sub.index[np.argmax(empty)]))} has no {column} "
                                 f"(a {track} row needs one)")
    numeric = frame.select_dtypes(include="number")
    infinite = np.isinf(numeric.to_numpy(np.float64))
    if infinite.any():
        i, j = np.argwhere(infinite)[0]
        raise ValueError(f"report: {results}: line {line(int(i))}: {numeric.columns[j]} is {numeric.iat[i, j]}; "
                         "a number there must be finite (or empty, NaN, when not measured)")
    identity = [c for c in frame.columns if c not in _MEASURED]
    seen: dict[tuple, int] = {}
    for i, key in enumerate(frame[identity].astype(str).itertuples(index=False, name=None)):
        if key in seen:
            raise ValueError(f"report: {results}: line {line(i)} repeats the cell of line {line(seen[key])}; a table "
                             "holds each cell once (rows written twice by an interrupted run?)")
        seen[key] = i


def _check_schema(version: Any, where: Path) -> None:
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)):
        raise ValueError(f"report: {where}: schema_version must be an integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise ValueError(
            f"report: {where} was written by a newer chaosjax (results schema {int(version)}; this chaosjax reads "
            f"up to {SCHEMA_VERSION}); upgrade chaosjax to report it"
        )


def load(path: str | os.PathLike) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Reads and checks a results directory: ``(results.csv as a DataFrame, config.json as a dict or {})``.

    Raises a one-line ``ValueError`` for a missing directory or results file, an empty, malformed or corrupt
    table (naming the line: a row cut mid-way, a cell without its identity or twice, an infinite number), a newer
    ``schema_version``, an unknown track or missing columns.
    """
    root = Path(path)
    if not root.exists():
        raise ValueError(f"report: {root} does not exist")
    if not root.is_dir():
        raise ValueError(f"report: {root} is not a directory")
    results = root / "results.csv"
    if not results.is_file():
        raise ValueError(f"report: no results in {root} (no results.csv); run a track with --out {root} first")
    meta: dict[str, Any] = {}
    config = root / "config.json"
    if config.is_file():
        try:
            meta = json.loads(config.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"report: {config} is not valid JSON ({err})") from None
        if not isinstance(meta, dict):
            raise ValueError(f"report: {config} must hold a JSON object, got {type(meta).__name__}")
        if "schema_version" in meta:
            _check_schema(meta["schema_version"], results)
    lines = _data_lines(results)
    try:
        frame = pd.read_csv(results, dtype={c: str for c in _STR_COLUMNS})
    except pd.errors.EmptyDataError:
        raise ValueError(f"report: {results} is empty; no results to report") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"report: {results} is not a CSV table ({str(err).splitlines()[0]})") from None
    if "schema_version" in frame.columns and len(frame):
        for version in pd.unique(frame["schema_version"].dropna()):
            _check_schema(version.item() if hasattr(version, "item") else version, results)
    if "track" not in frame.columns:
        raise ValueError(f"report: {results} has no 'track' column; it is not a chaosjax results table")
    if frame.empty:
        raise ValueError(f"report: {results} holds no result rows")
    unknown = sorted(set(frame["track"].dropna()) - set(tracks.names()))
    if unknown:
        raise ValueError(f"report: {results}: unknown track {unknown}; this chaosjax reports "
                         f"{', '.join(tracks.names())}")
    for track in _present(frame):
        sub = frame[frame["track"] == track]
        missing = [c for c in _required(track) if c not in sub.columns]
        if track == "rfe":
            if "dataset" not in sub.columns and "formula" not in sub.columns:
                missing.append("dataset or formula")
            if not any(c in sub.columns for c in _RFE_METRICS):
                missing.append(" or ".join(_RFE_METRICS))
        if missing:
            raise ValueError(f"report: {results}: the {track} rows lack the columns {', '.join(missing)}")
        for column in _NUMERIC.get(track, ()):
            if not pd.api.types.is_numeric_dtype(sub[column]):
                raise ValueError(f"report: {results}: column {column} of the {track} rows must be numeric")
    _check_rows(frame, results, lines)
    for column in ("sweep_axis", "method"):
        if column in frame.columns:
            frame[column] = frame[column].fillna("")
    return frame, meta


def _present(frame: pd.DataFrame) -> list[str]:
    """The tracks the table holds, in the registry's order."""
    present = set(frame["track"])
    return [t for t in tracks.names() if t in present]


def _required(track: str) -> tuple[str, ...]:
    """The columns a report of `track` needs (`chaosjax.tracks.Track.required`)."""
    return tracks.get(track).required


def _load_examples(root: Path, track: str, several: bool) -> dict[str, np.ndarray] | None:
    """The track's examples file (see the module docstring), checked; None when there is none."""
    candidates = [root / f"examples_{track}.npz"] + ([] if several else [root / "examples.npz"])
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: np.asarray(npz[k]) for k in npz.files}
    except Exception as err:  # noqa: BLE001 -- any unreadable file is bad input, reported in one line
        raise ValueError(f"report: {path} is not a readable .npz of plain arrays ({type(err).__name__})") from None
    bad = f"report: {path}:"
    if "inputs" not in arrays:
        raise ValueError(f"{bad} no 'inputs' array")
    inputs = arrays["inputs"]
    attrs = {k[5:]: v for k, v in arrays.items() if k.startswith("attr_")}
    if not attrs:
        raise ValueError(f"{bad} no attribution arrays (expected keys attr_<method>)")
    n = inputs.shape[0] if inputs.ndim else 0
    if n == 0:
        raise ValueError(f"{bad} 'inputs' holds no examples")
    if track == "vision":
        if inputs.ndim not in (3, 4):
            raise ValueError(f"{bad} vision 'inputs' must be (N, H, W, C) or (N, H, W), got shape {inputs.shape}")
        for name, a in attrs.items():
            if a.shape != inputs.shape and a.shape != inputs.shape[:3]:
                raise ValueError(f"{bad} attr_{name} has shape {a.shape}; expected {inputs.shape} or {inputs.shape[:3]}")
        boxes = arrays.get("boxes")
        if boxes is None or boxes.shape != (n, 4):
            raise ValueError(f"{bad} vision needs 'boxes' of shape ({n}, 4), got "
                             f"{None if boxes is None else boxes.shape}")
    else:
        if inputs.ndim != 3:
            raise ValueError(f"{bad} audio 'inputs' must be (N, T, C), got shape {inputs.shape}")
        if inputs.shape[2] > inputs.shape[1]:
            raise ValueError(f"{bad} audio 'inputs' must be channels last (N, T, C); shape {inputs.shape} has more "
                             "channels than time steps")
        for name, a in attrs.items():
            if a.shape != inputs.shape:
                raise ValueError(f"{bad} attr_{name} has shape {a.shape}; expected {inputs.shape}")
        channels = arrays.get("channels")
        if channels is None or channels.shape != (n,) or not np.issubdtype(channels.dtype, np.integer) \
                or channels.min() < 0 or channels.max() >= inputs.shape[2]:
            raise ValueError(f"{bad} audio needs integer 'channels' of shape ({n},) in [0, {inputs.shape[2]})")
    titles = arrays.get("titles")
    if titles is not None and (titles.shape != (n,) or titles.dtype.kind not in "US"):
        raise ValueError(f"{bad} 'titles' must be {n} strings")
    arrays["_attrs"] = attrs  # type: ignore[assignment]
    arrays["_path"] = path  # type: ignore[assignment]
    return arrays


def _seconds(s: float) -> str:
    if s < 1:
        return f"{s:.2g} s"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


# ----------------------------------------------------------------------------------------------- helpers


def _stats(frame: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    """Mean and 95% CI half-width of ``metric`` per group of ``keys`` (NaN skipped); columns keys, mean, ci, count."""
    rows = []
    for key, group in frame.groupby(keys, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        mean, ci = mean_ci(group[metric].to_numpy(dtype=np.float64))
        rows.append((*key, mean, ci, int(np.isfinite(group[metric].to_numpy(dtype=np.float64)).sum())))
    return pd.DataFrame(rows, columns=[*keys, "mean", "ci", "count"])


def _fmt(mean: float, ci: float | None = None, digits: int = 3, n: int | None = None) -> str:
    """`mean ± ci`; with `n` below `MIN_CI_SAMPLES` values, `mean (n=N)` instead (a CI from two values says nothing)."""
    if not np.isfinite(mean):
        return "–"
    if n is not None and n < MIN_CI_SAMPLES:
        return f"{mean:.{digits}f} (n={n})"
    if ci is None or not np.isfinite(ci):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {ci:.{digits}f}"


def _fmt_values(values, digits: int = 3) -> str:
    """`_fmt` of the mean and 95% CI of the finite `values`."""
    arr = np.asarray(values, np.float64)
    return _fmt(*mean_ci(arr), digits, n=int(np.isfinite(arr).sum()))


_table = markdown_table  # the report's sections' name for it


def _save(fig: Figure, figdir: Path, name: str, formats: Sequence[str]) -> list[Path]:
    paths = []
    for ext in formats:
        path = figdir / f"{name}.{ext}"
        fig.savefig(path, dpi=_DPI if ext == "png" else None, facecolor="white")
        paths.append(path)
    return paths


def _image(paths: list[Path], alt: str) -> str:
    png = next(p for p in paths if p.suffix == ".png")
    return f"![{alt}](figures/{png.name})"


def _legend(fig: Figure, names: Sequence[str], colors: dict[str, str], *, bars: bool = False,
            extra: Sequence[tuple[Any, str]] = ()) -> None:
    handles, labels = [], []
    for name in names:
        if bars:
            handles.append(Rectangle((0, 0), 1, 1, facecolor=colors[name], edgecolor="black", linewidth=0.5,
                                     hatch=None if name in METHODS else "//"))
        else:
            handles.append(Line2D([], [], color=colors[name], linewidth=2, markersize=6, **_style(name)))
        labels.append(name)
    for handle, label in extra:
        handles.append(handle)
        labels.append(label)
    # Centred in the right margin: at the top it met the figure's title, which is centred over the whole figure.
    fig.legend(handles, labels, loc="outside right center", frameon=False, title="method")


def _grouped_bars(ax, stats: pd.DataFrame, group: str, groups: list[str], names: list[str],
                  colors: dict[str, str]) -> None:
    """Bars of ``stats`` (columns group, method, mean, ci): one cluster per group, one bar per method."""
    width = 0.8 / max(len(names), 1)
    for j, name in enumerate(names):
        sub = stats[stats["method"] == name].set_index(group)
        means = np.nan_to_num(np.array([sub["mean"].get(g, np.nan) for g in groups], np.float64))
        cis = np.nan_to_num(np.array([sub["ci"].get(g, 0.0) for g in groups], np.float64))
        # The scores live in [0, 1]: clip the intervals there (a two-seed t interval is wide).
        yerr = np.stack([np.minimum(cis, means), np.minimum(cis, np.maximum(1.0 - means, 0.0))])
        xs = np.arange(len(groups)) - 0.4 + width * (j + 0.5)
        ax.bar(xs, means, width, yerr=yerr, color=colors[name], edgecolor="black",
               linewidth=0.4, capsize=2, error_kw={"linewidth": 0.8}, hatch=None if name in METHODS else "//")
    ax.set_xticks(np.arange(len(groups)), groups, rotation=30 if max(map(len, groups)) > 8 else 0,
                  ha="right" if max(map(len, groups)) > 8 else "center")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _conditions(values: Iterable[str]) -> list[str]:
    values = set(values)
    return [c for c in _CONDITIONS if c in values] + sorted(values - set(_CONDITIONS))


def _label(column: str) -> str:
    return {
        "functional_precision": "functional precision", "uniform_score": "uniform score", "iou": "IoU",
        "iou_corrected": "IoU (corrected)", "mass_in_box": "attribution mass in box", "pointing": "pointing game",
        "channel_mass": "attribution mass on true channel", "channel_hit": "true channel ranked first",
        "test_mae": "test MAE", "balanced_accuracy": "balanced accuracy", "roc_auc": "ROC-AUC",
        "accuracy": "accuracy", "consistency": "consistency", "seconds": "seconds",
    }.get(column, column.replace("_", " "))


def _present_metrics(frame: pd.DataFrame, candidates: Sequence[str]) -> list[str]:
    return [c for c in candidates if c in frame.columns and np.isfinite(frame[c].to_numpy(dtype=np.float64)).any()]


# -------------------------------------------------------------------------------------------- vision / audio


def _score_bars(frame: pd.DataFrame, metrics: list[str], title: str, chance: dict[str, float] | None = None
                ) -> Figure:
    """One panel per metric (rows) x condition (columns); clusters = models, bars = methods, CIs over seeds."""
    names = _ordered(frame["method"])
    colors = method_colors(names)
    conditions = _conditions(frame["condition"])
    models = list(pd.unique(frame["model"]))
    fig = Figure(figsize=(max(7.0, 1.0 + len(conditions) * min(6.5, max(3.0, 0.22 * len(models) * len(names) + 1.0))),
                          1.0 + 2.9 * len(metrics)), layout="constrained")
    panels = np.atleast_2d(fig.subplots(len(metrics), len(conditions), sharey="row", squeeze=False))
    for i, metric in enumerate(metrics):
        stats = _stats(frame, ["condition", "model", "method"], metric)
        for j, condition in enumerate(conditions):
            ax = panels[i, j]
            _grouped_bars(ax, stats[stats["condition"] == condition], "model", models, names, colors)
            if chance and metric in chance:
                ax.axhline(chance[metric], color="black", linestyle=":", linewidth=1.2)
            if i == 0:
                ax.set_title(condition)
            if j == 0:
                ax.set_ylabel(_label(metric))
            ax.set_ylim(0, 1.02)
    extra = [(Line2D([], [], color="black", linestyle=":"), "chance")] if chance else []
    _legend(fig, names, colors, bars=True, extra=extra)
    fig.suptitle(title)
    return fig


def _score_table(frame: pd.DataFrame, metrics: list[str]) -> str:
    names = _ordered(frame["method"])
    stats = {m: _stats(frame, ["condition", "model", "method"], m) for m in metrics}
    rows = []
    for condition in _conditions(frame["condition"]):
        for model in pd.unique(frame["model"]):
            sel = frame[(frame["condition"] == condition) & (frame["model"] == model)]
            if sel.empty:
                continue
            acc = _fmt_values(sel.drop_duplicates([c for c in ("seed",) if c in sel])["accuracy"]) \
                if "accuracy" in sel else "–"
            for name in names:
                cells = [condition, model, acc, f"`{name}`"]
                for m in metrics:
                    s = stats[m]
                    hit = s[(s["condition"] == condition) & (s["model"] == model) & (s["method"] == name)]
                    cells.append(_fmt(hit["mean"].iloc[0], hit["ci"].iloc[0], n=int(hit["count"].iloc[0])) if len(hit) else "–")
                rows.append(cells)
    return _table(["condition", "model", "accuracy", "method"] + [_label(m) for m in metrics], rows)


def _titles(examples: dict[str, Any], n: int) -> list[str]:
    titles = examples.get("titles")
    return [str(t) for t in titles[:n]] if titles is not None else [f"example {i}" for i in range(n)]




def _checked(root: Path, formats: Sequence[str]):
    """Every check `report` makes before it draws: (formats, results frame, config.json, examples per track)."""
    if isinstance(formats, str) or not isinstance(formats, Iterable):
        raise TypeError(f"report: formats: expected a sequence of names, got {formats!r}")
    formats = tuple(dict.fromkeys(["png", *(str(f).lower().lstrip(".") for f in formats)]))
    bad = [f for f in formats if f not in _FORMATS]
    if bad:
        raise ValueError(f"report: formats: unknown {bad}; expected some of {', '.join(_FORMATS)}")
    frame, meta = load(root)
    tracks = _present(frame)
    examples = {t: _load_examples(root, t, len(tracks) > 1) for t in tracks if t in ("vision", "audio")}
    return formats, frame, meta, examples
