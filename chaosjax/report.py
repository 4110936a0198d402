"""Figures and a markdown report from a results directory: ``chaosjax report DIR`` or ``report(DIR)``.

``report(DIR)`` reads ``DIR/results.csv`` (and ``DIR/config.json`` when present), dispatches on the ``track``
column (one ``_report_<track>(frame, meta, figdir, ...)`` per track), writes the figures to ``DIR/figures/``
(PNG, plus SVG with ``formats=("png", "svg")``) and a ``DIR/report.md`` that shows them with tables of the
numbers behind them. Figures are drawn on ``matplotlib.figure.Figure`` objects rendered by the Agg canvas, so
no display is needed and pyplot's global state (a notebook's backend) is never touched. Every method has a
fixed colour (``METHOD_COLORS``: the Okabe-Ito palette, and for the perturbation family other colour-blind-safe
colours with a marker of their own, ``METHOD_MARKERS``); other names (RFE baselines, your own methods) take Paul
Tol's "muted" colours in sorted order and are drawn dashed. Method names are shown as in
``chaosjax.attribution.METHODS``.

Bad input -- a directory without ``results.csv``, an empty or malformed table, an unknown track, missing
columns, a ``config.json`` with a ``schema_version`` newer than this chaosjax reads, a malformed
``examples.npz`` -- raises a one-line ``ValueError`` before anything is written. A corrupt table is refused
with the file and line named: a row cut mid-way (a last line without its end of line, or a row with fewer
or more fields than the header), a row without the identity of its cell (a track, method, formula or
condition left empty), the same cell twice (rows equal in every column but the measured ones), or an
infinite number. Metrics may be NaN (not measured; a model whose training diverged).

The contract for tracks (what each track writes so that this module can report it)
----------------------------------------------------------------------------------

``DIR/results.csv``: one row per cell, a ``track`` column, and the columns below (extra columns are kept
and ignored). ``DIR/config.json``: ``{"schema_version": int, "track": str, "config": {...}, "environment":
{...}, "wall_seconds": {...}}``; ``schema_version`` is compared with
``chaosjax.runs.SCHEMA_VERSION`` (newer: refused). Metrics may be NaN; means and 95% Student-t
confidence intervals skip NaN and run over the cells named.

================ ==============================================================================================
track            required columns (optional ones in brackets)
================ ==============================================================================================
``symbolic``     ``formula, m, noise_features, seed, method, functional_precision, uniform_score`` [``formula_text,
                 model, protocol, n, depth, width, lr, optimizer, dropout, label_noise, epochs, sweep_axis,
                 consistency, test_mae, pred_score, seconds``]; CIs over formulas x seeds.
``vision``       ``condition, model, method, iou, mass_in_box`` [``seed, accuracy, iou_corrected, pointing,
                 seconds``]; CIs over seeds.
``audio``        ``condition, model, method, channel_mass`` [``seed, accuracy, channel_hit, seconds``]; CIs
                 over seeds; chance ``1 / channels`` (channels from ``examples.npz``, else
                 ``config.json["config"]["channels"]``, else 10).
``rfe``          ``method, features_kept, seconds`` and ``dataset`` or ``formula``, and at least one of
                 ``functional_precision, test_mae, balanced_accuracy, roc_auc`` [``seed, round, schedule,
                 final, mlp_test_mae, mlp_balanced_accuracy, mlp_roc_auc``]. ``method`` holds attribution
                 methods and baselines (e.g. ``sklearn_linear``); a run is one dataset x formula x seed x
                 schedule x method; ``features_kept`` is the number of features the round trained on;
                 ``seconds`` is the run's wall time repeated on each of its rows (or, if it differs between
                 rows, each round's own time, summed). Curves are averaged per ``round`` at the mean
                 ``features_kept``; the final table uses the rows with ``final`` true (else each run's last
                 round). CIs over datasets/formulas x seeds; one column of panels per ``dataset`` and
                 ``schedule`` when those columns have several values.
================ ==============================================================================================

Example galleries (vision and audio) are drawn when the run saved ``DIR/examples.npz`` (or
``DIR/examples_<track>.npz`` when a directory holds several tracks), a plain ``numpy.savez`` file (no
pickled objects) with, for ``N`` examples:

* ``inputs``: vision ``(N, H, W, C)`` or ``(N, H, W)``, any value range (each image is rescaled for display);
  audio ``(N, T, C)``, channels last.
* ``attr_<method>``: one array per method (``attr_saliency``, ``attr_integrated_gradients``, ...) shaped like
  ``inputs`` (vision maps may drop the channel axis).
* vision ``boxes``: int ``(N, 4)`` true boxes ``(row0, col0, row1, col1)`` in pixels, half-open: the box covers
  rows ``row0 .. row1 - 1`` and columns ``col0 .. col1 - 1`` (the study's fixed position is ``(96, 96, 128, 128)``);
  this is ``chaosjax.data.vision.Sample.box`` (``top, left, bottom, right``, exclusive ends).
* audio ``channels``: int ``(N,)`` index of the channel that holds the word.
* optional ``titles``: str ``(N,)`` row labels, e.g. ``"RBRP / resnet18 / label 3"``.

At most ``MAX_EXAMPLES`` examples are drawn. Without the file the report says so and skips the gallery.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from chaosjax.attribution import METHODS
from chaosjax.runs import MIN_CI_SAMPLES, SCHEMA_VERSION, mean_ci

__all__ = [
    "EXTRA_COLORS",
    "MAX_EXAMPLES",
    "METHOD_COLORS",
    "METHOD_MARKERS",
    "OKABE_ITO",
    "TRACKS",
    "Report",
    "check",
    "load",
    "method_colors",
    "report",
]

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
TRACKS = ("symbolic", "vision", "audio", "rfe")
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
_REQUIRED = {
    "symbolic": ("formula", "m", "noise_features", "seed", "method", "functional_precision", "uniform_score"),
    "vision": ("condition", "model", "method", "iou", "mass_in_box"),
    "audio": ("condition", "model", "method", "channel_mass"),
    "rfe": ("method", "features_kept", "seconds"),
}
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
        for column in [c for c in _REQUIRED[track] if c not in _MEASURED and c in sub.columns]:
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
    unknown = sorted(set(frame["track"].dropna()) - set(TRACKS))
    if unknown:
        raise ValueError(f"report: {results}: unknown track {unknown}; this chaosjax reports {', '.join(TRACKS)}")
    for track in _present(frame):
        sub = frame[frame["track"] == track]
        missing = [c for c in _REQUIRED[track] if c not in sub.columns]
        if track == "rfe":
            if "dataset" not in sub.columns and "formula" not in sub.columns:
                missing.append("dataset or formula")
            if not any(c in sub.columns for c in _RFE_METRICS):
                missing.append(" or ".join(_RFE_METRICS))
        if missing:
            raise ValueError(f"report: {results}: the {track} rows lack the columns {', '.join(missing)}")
        for column in _NUMERIC[track]:
            if not pd.api.types.is_numeric_dtype(sub[column]):
                raise ValueError(f"report: {results}: column {column} of the {track} rows must be numeric")
    _check_rows(frame, results, lines)
    for column in ("sweep_axis", "method"):
        if column in frame.columns:
            frame[column] = frame[column].fillna("")
    return frame, meta


def _present(frame: pd.DataFrame) -> list[str]:
    tracks = set(frame["track"])
    return [t for t in TRACKS if t in tracks]


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


# ----------------------------------------------------------------------------------------------- the driver


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


def check(path: str | os.PathLike, *, formats: Sequence[str] = ("png",)) -> None:
    """Runs every check of `report` (the results table, config.json, the example galleries, the formats) without
    drawing or writing anything; raises the same one-line ``ValueError``."""
    _checked(Path(path), formats)


def report(
    path: str | os.PathLike,
    *,
    formats: Sequence[str] = ("png",),
) -> Report:
    """Writes ``path/figures/*`` and ``path/report.md`` from ``path/results.csv``; returns what it wrote.

    Args:
      path: a results directory written by a chaosjax track (``chaosjax symbolic --out DIR``, ...).
      formats: figure file formats; ``"png"`` always comes first (report.md shows the PNGs); ``"svg"`` and
        ``"pdf"`` add vector copies.

    Raises:
      ValueError: one line naming the problem (see the module docstring), before anything is written.
    """
    root = Path(path)
    formats, frame, meta, examples = _checked(root, formats)
    tracks = _present(frame)
    figdir = root / "figures"
    created = not figdir.exists()
    figdir.mkdir(exist_ok=True)
    before = set(figdir.iterdir())

    import matplotlib

    sections, figures = [], []
    try:
        with matplotlib.rc_context(_FONT):
            for track in tracks:
                sub = frame[frame["track"] == track].reset_index(drop=True)
                sub = sub.dropna(axis=1, how="all")  # columns another track filled
                draw = _REPORTERS[track]
                kwargs = {"examples": examples[track]} if track in examples else {}
                text, paths = draw(sub, meta, figdir, formats=formats, **kwargs)
                sections.append(text)
                figures.extend(paths)
    except BaseException:  # a failed report leaves the directory as it found it
        for new in set(figdir.iterdir()) - before:
            new.unlink()
        if created:
            figdir.rmdir()
        raise

    lines = [f"# chaosjax report: `{root.resolve().name}`", "", _provenance(root, frame, meta), ""]
    markdown = "\n".join(lines + sections).rstrip() + "\n"
    out = root / "report.md"
    tmp = root / "report.md.tmp"
    tmp.write_text(markdown)
    os.replace(tmp, out)
    return Report(out, tuple(figures), tuple(tracks))


def _provenance(root: Path, frame: pd.DataFrame, meta: dict[str, Any]) -> str:
    parts = [f"Drawn by `chaosjax report` from `results.csv` ({len(frame)} rows"]
    env = meta.get("environment") or {}
    if env:
        versions = ", ".join(f"{k} {env[k]}" for k in ("chaosjax", "jax", "flax", "optax") if k in env)
        parts.append(f"; {versions}")
        if "backend" in env:
            devices = env.get("devices") or []
            parts.append(f"; backend {env['backend']}" + (f" ({len(devices)} device{'s' * (len(devices) != 1)})"
                                                           if devices else ""))
    wall = (meta.get("wall_seconds") or {}).get("total") if isinstance(meta.get("wall_seconds"), dict) else None
    if isinstance(wall, (int, float)):
        parts.append(f"; run wall time {_seconds(wall)}")
    if meta.get("started"):
        parts.append(f"; started {meta['started']}")
    return "".join(parts) + "). Intervals are 95% Student-t confidence intervals of the mean."


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


def _table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


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


def _report_symbolic(frame: pd.DataFrame, meta: dict[str, Any], figdir: Path, *,
                     formats: Sequence[str]) -> tuple[str, list[Path]]:
    names = _ordered(frame["method"])
    colors = method_colors(names)
    axes = _sweep_axes(frame)
    pooled = " (pooled over every setting)" if axes else ""
    chance = _chance(frame)
    figures: list[Path] = []
    md = ["## Symbolic functional track", "", _setting_text(frame, axes), ""]

    # 1. Methods: functional precision and uniform score with 95% CIs over formulas x seeds.
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
    figures += paths
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

    # 2. Ablation curves: metric vs the swept axis, one line per method.
    for axis in axes:
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
        figures += paths
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

    # 3. Per-formula heat table.
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
    figures += paths
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
    return "\n".join(md), figures


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


def _display(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img, np.float64)
    lo, hi = np.nanmin(img), np.nanmax(img)
    img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    return img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img


def _vision_gallery(examples: dict[str, Any]) -> Figure:
    attrs: dict[str, np.ndarray] = examples["_attrs"]
    names = _ordered(attrs)
    inputs, boxes = examples["inputs"], examples["boxes"]
    n = min(len(inputs), MAX_EXAMPLES)
    titles = _titles(examples, n)
    cols = 1 + len(names)
    fig = Figure(figsize=(1.9 * cols + 0.8, 2.05 * n + 0.6), layout="constrained")
    panels = fig.subplots(n, cols, squeeze=False)
    image = None
    for i in range(n):
        shown = _display(inputs[i])
        gray = shown.mean(axis=-1) if shown.ndim == 3 else shown
        r0, c0, r1, c1 = (int(v) for v in boxes[i])
        for j in range(cols):
            ax = panels[i, j]
            if j == 0:
                ax.imshow(shown, cmap=None if shown.ndim == 3 else "gray", interpolation="nearest")
                ax.set_ylabel(titles[i], fontsize=8)
                if i == 0:
                    ax.set_title("input", fontsize=9)
            else:
                a = np.abs(np.asarray(attrs[names[j - 1]][i], np.float64))
                a = a.mean(axis=-1) if a.ndim == 3 else a
                top = np.nanpercentile(a, 99.5)
                a = np.clip(a / top, 0, 1) if top > 0 else np.zeros_like(a)
                ax.imshow(gray, cmap="gray", interpolation="nearest")
                image = ax.imshow(a, cmap="magma", alpha=0.75, vmin=0, vmax=1, interpolation="nearest")
                if i == 0:
                    ax.set_title(names[j - 1], fontsize=9)
            ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False,
                                   edgecolor=OKABE_ITO["sky_blue"], linewidth=1.8))
            ax.set_xticks([])
            ax.set_yticks([])
    if image is not None:
        fig.colorbar(image, ax=panels, shrink=0.6, label="|attribution| (channel mean, / 99.5th pct.)")
    fig.suptitle("Attribution maps over the input; blue box = true object")
    return fig


def _report_vision(frame: pd.DataFrame, meta: dict[str, Any], figdir: Path, *, formats: Sequence[str],
                   examples: dict[str, Any] | None) -> tuple[str, list[Path]]:
    metrics = _present_metrics(frame, ("iou", "iou_corrected", "mass_in_box", "pointing"))
    figures: list[Path] = []
    md = ["## Vision track", "",
          f"{frame['condition'].nunique()} conditions x {frame['model'].nunique()} models x "
          f"{frame['method'].nunique()} methods"
          + (f" x {frame['seed'].nunique()} seeds" if "seed" in frame else "") + "; intervals over seeds.", ""]
    fig = _score_bars(frame, metrics, "Localisation of the object per condition, model and method (mean ± 95% CI)")
    paths = _save(fig, figdir, "vision_scores", formats)
    figures += paths
    md += [_image(paths, "IoU and mass in box per condition x model x method"), "", _score_table(frame, metrics), ""]
    if examples is None:
        md += ["No `examples.npz` in the results directory: gallery skipped.", ""]
    else:
        paths = _save(_vision_gallery(examples), figdir, "vision_gallery", formats)
        figures += paths
        md += ["### Examples", "", _image(paths, "gallery of attribution maps"), ""]
    return "\n".join(md), figures


def _audio_examples(examples: dict[str, Any], sample_rate: float | None = None) -> Figure:
    """Each example clip (time in seconds, as the track's own figures; in samples when the rate is unknown) and every
    method's share of |attribution| per channel."""
    attrs: dict[str, np.ndarray] = examples["_attrs"]
    names = _ordered(attrs)
    inputs, channels = examples["inputs"], examples["channels"]
    n = min(len(inputs), MAX_EXAMPLES)
    n_channels = inputs.shape[2]
    titles = _titles(examples, n)
    fig = Figure(figsize=(12, 2.3 * n + 0.8), layout="constrained")
    panels = fig.subplots(n, 2, squeeze=False, width_ratios=[1.4, 1.0])
    image = None
    for i in range(n):
        wave, true = np.asarray(inputs[i], np.float64), int(channels[i])
        scale = np.nanmax(np.abs(wave)) or 1.0
        ax = panels[i, 0]
        t = np.arange(wave.shape[0]) / (sample_rate or 1.0)
        for c in range(n_channels):
            color = OKABE_ITO["vermillion"] if c == true else "#7f7f7f"
            ax.plot(t, c + 0.45 * wave[:, c] / scale, color=color, linewidth=0.5 if c != true else 0.7)
        ax.set_yticks(range(n_channels), [f"ch {c}" for c in range(n_channels)], fontsize=7)
        ax.set_ylim(n_channels - 0.4, -0.6)
        ax.set_xlim(0, t[-1])
        ax.set_ylabel(titles[i], fontsize=8)
        if i == 0:
            ax.set_title("clip (red: channel with the word)", fontsize=9)
        if i == n - 1:
            ax.set_xlabel("time (s)" if sample_rate else "time step")
        mass = np.stack([np.abs(np.asarray(attrs[name][i], np.float64)).mean(axis=0) for name in names])
        mass = mass / np.maximum(mass.sum(axis=1, keepdims=True), 1e-30)
        ax = panels[i, 1]
        image = ax.imshow(mass, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        for (r, c), v in np.ndenumerate(mass):
            if n_channels <= 16:
                ax.text(c, r, f"{v:.2f}"[1:] if v < 1 else "1", ha="center", va="center", fontsize=6,
                        color="white" if v < 0.6 else "black")
        ax.add_patch(Rectangle((true - 0.5, -0.5), 1, len(names), fill=False, edgecolor=OKABE_ITO["vermillion"],
                               linewidth=2))
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_xticks(range(n_channels), [str(c) for c in range(n_channels)], fontsize=7)
        if i == 0:
            ax.set_title("share of |attribution| per channel (red: true channel)", fontsize=9)
        if i == n - 1:
            ax.set_xlabel("channel")
    if image is not None:
        fig.colorbar(image, ax=panels[:, 1], shrink=0.7, label="share of mean |attribution|")
    fig.suptitle("Example clips and each method's attribution per channel")
    return fig


def _report_audio(frame: pd.DataFrame, meta: dict[str, Any], figdir: Path, *, formats: Sequence[str],
                  examples: dict[str, Any] | None) -> tuple[str, list[Path]]:
    metrics = _present_metrics(frame, ("channel_mass", "channel_hit"))
    if examples is not None:
        n_channels = int(examples["inputs"].shape[2])
    else:
        config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
        n_channels = int(config.get("channels", 10)) if str(config.get("channels", 10)).isdigit() else 10
    chance = {m: 1.0 / n_channels for m in metrics}
    figures: list[Path] = []
    md = ["## Audio track", "",
          f"{frame['condition'].nunique()} conditions x {frame['model'].nunique()} models x "
          f"{frame['method'].nunique()} methods"
          + (f" x {frame['seed'].nunique()} seeds" if "seed" in frame else "")
          + f"; intervals over seeds; chance {1.0 / n_channels:.2f} ({n_channels} channels).", ""]
    fig = _score_bars(frame, metrics, "Attribution on the channel that holds the word (mean ± 95% CI)", chance)
    paths = _save(fig, figdir, "audio_scores", formats)
    figures += paths
    md += [_image(paths, "channel mass per condition x model x method"), "", _score_table(frame, metrics), ""]
    if examples is None:
        md += ["No `examples.npz` in the results directory: example clips skipped.", ""]
    else:
        rates = frame["sample_rate"].dropna().unique() if "sample_rate" in frame else []
        rate = float(rates[0]) if len(rates) == 1 else None
        paths = _save(_audio_examples(examples, rate), figdir, "audio_examples", formats)
        figures += paths
        md += ["### Examples", "", _image(paths, "example clips with per-channel attribution"), ""]
    return "\n".join(md), figures


# ----------------------------------------------------------------------------------------------------- RFE


def _run_seconds(frame: pd.DataFrame, run_keys: list[str]) -> pd.DataFrame:
    """Wall seconds per elimination run: the run's time when every round row repeats it, else the rounds' sum."""
    grouped = frame.groupby(run_keys, sort=False, dropna=False)["seconds"]
    repeated = (grouped.nunique(dropna=False) <= 1).all()
    return (grouped.first() if repeated else grouped.sum()).reset_index()


def _report_rfe(frame: pd.DataFrame, meta: dict[str, Any], figdir: Path, *,
                formats: Sequence[str]) -> tuple[str, list[Path]]:
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
    figures: list[Path] = []
    md = ["## Recursive feature elimination", "",
          f"{n_units} dataset/formula{'s' * (n_units != 1)}"
          + (f" x {frame['seed'].nunique()} seeds" if "seed" in frame else "")
          + (f" x schedules {', '.join(map(str, pd.unique(frame['schedule'])))}" if "schedule" in frame else "")
          + f"; {len(names)} methods and baselines; intervals over {over}.", ""]

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
    figures += paths
    md += [_image(paths, "metric vs number of kept features"), ""]

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
    md += ["Final features of each run" + (" (network: the same MLP retrained on them)" if any(
        m.startswith("mlp_") for m in final_metrics) else "") + ":", "",
           _table(["method", "features kept"] + [labels.get(m, _label(m)) for m in final_metrics], rows), ""]

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
    figures += paths
    md += ["### Time", "", _image(paths, "time per method"), "",
           "A neural method's eliminations (every dataset x seed x schedule) run as one compiled program of its "
           "own, so its time per elimination is that program's wall time, compilation included, divided by its "
           "runs: the same for each of them, hence no interval. A scikit-learn baseline is timed run by run.", "",
           _table(["method", "seconds per elimination"],
                  [[f"`{n}`", _fmt(m, c, 2, n=k)] for n, m, c, k in zip(names, means, cis, counts)]), ""]
    return "\n".join(md), figures


_REPORTERS = {
    "symbolic": _report_symbolic,
    "vision": _report_vision,
    "audio": _report_audio,
    "rfe": _report_rfe,
}
