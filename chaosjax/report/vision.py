"""The vision track's section of a report: localisation scores and the gallery of maps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from chaosjax.report import proxies
from chaosjax.report._common import (
    MAX_EXAMPLES,
    OKABE_ITO,
    _image,
    _ordered,
    _present_metrics,
    _save,
    _score_bars,
    _score_table,
    _titles,
)


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


def draw(frame: pd.DataFrame, meta: dict[str, Any], figdir: Path, *, formats: Sequence[str],
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
    if proxies.has_proxies(frame):  # `chaosjax vision --proxies`
        text, paths = proxies.draw(frame, figdir, formats=formats, track="vision")
        md += [text, ""]
        figures += paths
    if examples is None:
        md += ["No `examples.npz` in the results directory: gallery skipped.", ""]
    else:
        paths = _save(_vision_gallery(examples), figdir, "vision_gallery", formats)
        figures += paths
        md += ["### Examples", "", _image(paths, "gallery of attribution maps"), ""]
    return "\n".join(md), figures
