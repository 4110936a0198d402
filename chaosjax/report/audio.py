"""The audio track's section of a report: channel scores and example clips."""

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


def draw(frame: pd.DataFrame, meta: dict[str, Any], figdir: Path, *, formats: Sequence[str],
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
    if proxies.has_proxies(frame):  # `chaosjax audio --proxies`
        text, paths = proxies.draw(frame, figdir, formats=formats, track="audio")
        md += [text, ""]
        figures += paths
    if examples is None:
        md += ["No `examples.npz` in the results directory: example clips skipped.", ""]
    else:
        rates = frame["sample_rate"].dropna().unique() if "sample_rate" in frame else []
        rate = float(rates[0]) if len(rates) == 1 else None
        paths = _save(_audio_examples(examples, rate), figdir, "audio_examples", formats)
        figures += paths
        md += ["### Examples", "", _image(paths, "example clips with per-channel attribution"), ""]
    return "\n".join(md), figures
