"""Figures and a markdown report from a results directory: ``chaosjax report DIR`` or ``report(DIR)``.

``report(DIR)`` reads ``DIR/results.csv`` (and ``DIR/config.json`` when present), dispatches on the ``track``
column (each track's ``draw(frame, meta, figdir, ...)``, found through the track registry, ``chaosjax.tracks``;
the built-in tracks' are one module each, ``chaosjax.report.<track>``, over the shared helpers of
``chaosjax.report._common``), writes the figures to ``DIR/figures/``
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

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from chaosjax import tracks
from chaosjax.report._common import (
    EXTRA_COLORS,
    MAX_EXAMPLES,
    METHOD_COLORS,
    METHOD_MARKERS,
    OKABE_ITO,
    Report,
    _FONT,
    _checked,
    _present,
    _seconds,
    load,
    method_colors,
)

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


# ----------------------------------------------------------------------------------------------- the driver


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
    present = _present(frame)
    figdir = root / "figures"
    created = not figdir.exists()
    figdir.mkdir(exist_ok=True)
    before = set(figdir.iterdir())

    import matplotlib

    from chaosjax.report import proxies as _proxies

    sections, figures = [], []
    try:
        with matplotlib.rc_context(_FONT):
            with_proxies = {}  # each track's rows that hold proxy scores: the proxy x track heat map's input
            for track in present:
                sub = frame[frame["track"] == track].reset_index(drop=True)
                sub = sub.dropna(axis=1, how="all")  # columns another track filled
                draw = tracks.get(track).drawer()  # (frame, meta, figdir, *, formats[, examples])
                kwargs = {"examples": examples[track]} if track in examples else {}
                text, paths = draw(sub, meta, figdir, formats=formats, **kwargs)
                sections.append(text)
                figures.extend(paths)
                if _proxies.has_proxies(sub):
                    with_proxies[track] = sub
            if len(with_proxies) > 1:  # several tracks with proxies (a sweep): proxy x track
                text, paths = _proxies.draw_across(with_proxies, figdir, formats=formats)
                if text:
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
    return Report(out, tuple(figures), tuple(present))


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
