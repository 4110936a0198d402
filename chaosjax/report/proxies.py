"""The proxy sections of the symbolic, vision and audio reports: do proxy metrics rank the methods as the ground truth does?

Drawn when a track's results table has proxy columns (`chaosjax symbolic|vision|audio --proxies`):
the agreement table and a heat map (proxy x ground truth, Kendall's tau with its bootstrap CI) from
`chaosjax.tracks.proxy_bench.proxy_agreement`, and the sanity table when the table has a sanity row
(`randomised_functional_precision` or `label_randomised_functional_precision` on the symbolic track,
`randomised_mass_in_box` on the vision track, `randomised_channel_mass` on the audio track). When a results directory holds several tracks with proxies (a
sweep), `draw_across` adds the proxy x track heat map.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from chaosjax.report._common import _fmt, _image, _label, _save, _table

#: Randomised models' functional precision must land this close to chance (issue 17's acceptance).
SANITY_TOLERANCE = 0.05
#: The sanity rows: column -> (its heading in the sanity table, the check's name, what was done to the model).
SANITY_CHECKS = {
    "randomised_functional_precision": (
        "randomised model", "model-parameter randomisation",
        "every layer of each model re-initialised (a fresh draw of its initialiser; column \"randomised model\")"),
    "label_randomised_functional_precision": (
        "shuffled labels", "label randomisation",
        ("each model retrained from the same initialisation and training stream on its training labels permuted "
         "(column \"shuffled labels\")")),
    "randomised_mass_in_box": (
        "randomised model", "model-parameter randomisation",
        "every layer of each classifier re-initialised (a fresh draw of its initialiser; column \"randomised model\")"),
    "randomised_channel_mass": (
        "randomised model", "model-parameter randomisation",
        "every layer of each classifier re-initialised (a fresh draw of its initialiser; column \"randomised model\")"),
}
#: Each track's sanity truth: the score its sanity rows re-measure, and what a replicate is called.
_TRACK_WORDS = {"symbolic": ("functional precision", "formulas x seeds", "test rows"),
                "vision": ("mass in box", "(condition, model, seed) replicates", "validation canvases"),
                "audio": ("channel mass", "(condition, model, seed) replicates", "attributed clips")}
#: Fewer replicates than this and the report says that the bootstrap CI says little.
FEW_REPLICATES = 5


def has_proxies(frame: pd.DataFrame) -> bool:
    """Whether the table holds any proxy (or sanity) scores (checked by name, so that a report without them
    does not import JAX)."""
    return any((col.startswith("proxy_") and col != "proxy_seconds" or col in SANITY_CHECKS)
               and frame[col].notna().any() for col in frame.columns)


def _proxy_label(name: str, track: str = "symbolic") -> str:
    from chaosjax.tracks.proxy_bench import TRACK_PROXIES

    better = TRACK_PROXIES[track][name][1]
    return f"{name.replace('_', ' ')} ({'higher' if better else 'lower'} better)"


def _ranked(frame: pd.DataFrame, track: str) -> list[str]:
    """The ranked proxy columns of `track` that `frame` fills."""
    from chaosjax.tracks.proxy_bench import TRACK_PROXIES

    return [c for name, (c, better) in TRACK_PROXIES[track].items() if better is not None and c in frame.columns
            and frame[c].notna().any()]


def draw(frame: pd.DataFrame, figdir: Path, *, formats: Sequence[str], track: str = "symbolic"
         ) -> tuple[str, list[Path]]:
    """The section's markdown and figures for one track's rows."""
    from chaosjax.tracks.proxy_bench import PROXY_CANVASES, PROXY_ROWS, TRACK_PROXIES, proxy_agreement

    known = TRACK_PROXIES[track]
    truth_words, replicate_words, sample_words = _TRACK_WORDS[track]
    sample_words = f"{PROXY_ROWS if track == 'symbolic' else PROXY_CANVASES} {sample_words}"
    md = ["### Do proxy metrics agree with the truth?", ""]
    figures: list[Path] = []
    ranked = _ranked(frame, track)
    if ranked:
        usable = frame.drop(columns=[c for c, _ in known.values() if c in frame.columns and c not in ranked])
        table = proxy_agreement(usable)
        names = list(dict.fromkeys(table["proxy"]))
        truths = list(dict.fromkeys(table["truth"]))
        fig = Figure(figsize=(2.3 * len(truths) + 4.2, 0.62 * len(names) + 1.9), layout="constrained")
        ax = fig.subplots()
        grid = table.pivot(index="proxy", columns="truth", values="tau").reindex(index=names, columns=truths)
        image = ax.imshow(grid.to_numpy(np.float64), cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
        for (i, j), tau in np.ndenumerate(grid.to_numpy(np.float64)):
            row = table[(table["proxy"] == names[i]) & (table["truth"] == truths[j])].iloc[0]
            text = "–" if not np.isfinite(tau) else f"τ {tau:+.2f}\n[{row['low']:+.2f}, {row['high']:+.2f}]"
            ax.text(j, i, text, ha="center", va="center", fontsize=8.5,
                    color="white" if np.isfinite(tau) and abs(tau) > 0.6 else "black")
        ax.set_xticks(range(len(truths)), [_label(t) for t in truths])
        ax.xaxis.tick_top()
        ax.set_yticks(range(len(names)), [_proxy_label(n, track) for n in names])
        fig.colorbar(image, ax=ax, shrink=0.8, label="Kendall τ with the ground truth's ranking")
        n_methods, n_reps = int(table["methods"].max()), int(table["replicates"].max())
        fig.suptitle(f"Proxy vs ground-truth ranking of {n_methods} methods\n"
                     f"(τ over mean scores; 95% bootstrap CI over {n_reps} {replicate_words})", fontsize=10)
        paths = _save(fig, figdir, f"{track}_proxy_agreement", formats)
        figures += paths
        md += [
            ("Each proxy ranks the methods by its mean score over the cells; Kendall's tau-b compares that ranking "
             "with the ground truth's (1: the same order, -1: reversed, 0: unrelated; a proxy where lower is better "
             f"is negated first). The 95% CI resamples {replicate_words}; `pairs` is the share of method pairs "
             "the proxy orders as the truth does."), "",
            _image(paths, "proxy x ground truth agreement (Kendall tau)"), "",
        ]
        rows = []
        for name in names:
            cells = [f"`{name}`", "higher" if known[name][1] else "lower"]
            for truth in truths:
                r = table[(table["proxy"] == name) & (table["truth"] == truth)].iloc[0]
                cells += [f"{r['tau']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}]", f"{r['pairs']:.2f}"]
            rows.append(cells)
        head = ["proxy", "better"]
        for truth in truths:
            head += [f"τ with {_label(truth)} [95% CI]", "pairs"]
        few = (f" Only {n_reps} replicates: the CI resamples too few to say much; run more seeds."
               if n_reps < FEW_REPLICATES else "")
        md += [_table(head, rows), "",
               (f"{n_methods} methods, {n_reps} {replicate_words}; proxies on each cell's first {sample_words} "
                f"(docs/proxies.md, \"The meta-benchmark\").{few}"), ""]
    if any(col in frame.columns and frame[col].notna().any() for col in SANITY_CHECKS):
        md += _sanity(frame) if track == "symbolic" else _sanity_classifier(frame, track)
    return "\n".join(md), figures


def draw_across(frames: dict[str, pd.DataFrame], figdir: Path, *, formats: Sequence[str]) -> tuple[str, list[Path]]:
    """The proxy x track heat map of a directory holding several tracks with proxies: each proxy's Kendall tau
    with each track's first ground truth (`proxy_bench.TRACK_TRUTHS`), its bootstrap CI in the cell ("–" where the
    track lacks the proxy)."""
    from chaosjax.tracks.proxy_bench import TRACK_PROXIES, TRACK_TRUTHS, proxy_agreement

    tables = {track: proxy_agreement(frame, truths=TRACK_TRUTHS[track][:1]) for track, frame in frames.items()
              if track in TRACK_PROXIES and _ranked(frame, track)}  # a registered track of your own has none
    if len(tables) < 2:
        return "", []
    names = list(dict.fromkeys(n for track in tables for n in TRACK_PROXIES[track] if n in set(tables[track]["proxy"])))
    columns = list(tables)
    tau = np.full((len(names), len(columns)), np.nan)
    cells = [["–"] * len(columns) for _ in names]
    for j, track in enumerate(columns):
        for _, r in tables[track].iterrows():
            i = names.index(r["proxy"])
            tau[i, j] = r["tau"]
            cells[i][j] = f"{r['tau']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}]"
    fig = Figure(figsize=(2.4 * len(columns) + 4.2, 0.62 * len(names) + 1.9), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(tau, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    for (i, j), value in np.ndenumerate(tau):
        ax.text(j, i, cells[i][j].replace(" [", "\n["), ha="center", va="center", fontsize=8.5,
                color="white" if np.isfinite(value) and abs(value) > 0.6 else "black")
    ax.set_xticks(range(len(columns)), [f"{t}\n({_label(TRACK_TRUTHS[t][0])})" for t in columns])
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(names)), [n.replace("_", " ") for n in names])
    fig.colorbar(image, ax=ax, shrink=0.8, label="Kendall τ with the ground truth's ranking")
    fig.suptitle("Proxy vs ground-truth ranking of the methods, per track\n(τ over mean scores; 95% bootstrap CI)",
                 fontsize=10)
    paths = _save(fig, figdir, "proxy_agreement_by_track", formats)
    head = ["proxy"] + [f"τ on {t} (with {_label(TRACK_TRUTHS[t][0])}) [95% CI]" for t in columns]
    md = ["## Proxy metrics across tracks", "",
          ("Each proxy's Kendall tau with each track's ground truth, as in the tracks' own sections (1: ranks the "
           "methods as the truth does; a proxy where lower is better is negated first)."), "",
          _image(paths, "proxy x track agreement (Kendall tau)"), "",
          _table(head, [[f"`{n}`"] + cells[i] for i, n in enumerate(names)]), ""]
    return "\n".join(md), paths


def _sanity_classifier(frame: pd.DataFrame, track: str) -> list[str]:
    """The vision or audio track's model-parameter randomisation row: each method's truth (mass in box, channel
    mass) on the re-initialised classifiers against chance (the box's share of the canvas; 1 / channels) and
    against the trained classifiers'."""
    from chaosjax.tracks.proxy_bench import GRADIENT_METHODS, TRACK_PROXIES, TRACK_TRUTHS

    col, truth = TRACK_PROXIES[track]["randomisation"][0], TRACK_TRUTHS[track][0]
    if track == "vision":
        from chaosjax.data import vision as V

        chance = float(np.mean([V.preset(p).foreground ** 2 / V.preset(p).canvas ** 2 for p in frame["preset"]]))
        lost = "the object, so its mass in the box falls to chance (the box's share of the canvas)"
    else:
        chance = float(np.mean(1.0 / frame["channels"]))
        lost = "the word's channel, so its channel mass falls to chance (1 / channels)"
    rows = []
    for method, group in frame.groupby("method", sort=False):
        values = group[col].to_numpy(np.float64)
        if not np.isfinite(values).any():
            continue
        trained, score = float(group[truth].mean()), float(np.nanmean(values))
        rows.append([f"`{method}`", _fmt(trained, digits=3), f"{chance:.3f}", _fmt(score, digits=3),
                     f"{score - chance:+.3f}", _verdict(score, chance, trained) if method in GRADIENT_METHODS else "–"])
    truth_words = _TRACK_WORDS[track][0]
    return [
        "#### Sanity check: model-parameter randomisation", "",
        (f"{SANITY_CHECKS[col][2][0].upper()}{SANITY_CHECKS[col][2][1:]}: a method that explains the model must "
         f"lose {lost}; the gradient methods must land within {SANITY_TOLERANCE} of it (Adebayo et al. 2018). "
         "\"FAILS: unchanged\" marks a method that scores as on the trained model. Methods that do not use "
         "gradients are listed without a verdict."), "",
        _table(["method", f"{truth_words} (trained)", "chance", "randomised model", "gap", "check"], rows), "",
    ]


def _sanity(frame: pd.DataFrame) -> list[str]:
    """The sanity rows present in the table: model-parameter randomisation (every layer re-initialised) and label
    randomisation (retrained on permuted labels). Under either, the gradient methods' functional precision must fall
    to chance (within `SANITY_TOLERANCE`); a method that stays as high as on the trained model fails "unchanged"."""
    from chaosjax.tracks.proxy_bench import GRADIENT_METHODS

    checks = [col for col in SANITY_CHECKS if col in frame.columns and frame[col].notna().any()]
    rows = []
    for method, group in frame.groupby("method", sort=False):
        values = {col: group[col].to_numpy(np.float64) for col in checks}
        if not any(np.isfinite(v).any() for v in values.values()):
            continue
        trained = float(group["functional_precision"].mean())
        chance = float(np.mean(group["m"] / (group["m"] + group["noise_features"])))
        cells = [f"`{method}`", _fmt(trained, digits=3), f"{chance:.3f}"]
        for col in checks:
            score = float(np.nanmean(values[col])) if np.isfinite(values[col]).any() else float("nan")
            gap = score - chance
            cells += [_fmt(score, digits=3), f"{gap:+.3f}" if np.isfinite(gap) else "–",
                      _verdict(score, chance, trained) if method in GRADIENT_METHODS else "–"]
        rows.append(cells)
    head = ["method", "functional precision (trained)", "chance"]
    for col in checks:
        head += [SANITY_CHECKS[col][0], "gap", "check"]
    title = " and ".join(SANITY_CHECKS[col][1] for col in checks)
    setups = "; or ".join(SANITY_CHECKS[col][2] for col in checks)
    return [
        f"#### Sanity check{'s' if len(checks) > 1 else ''}: {title}", "",
        (f"{setups[0].upper()}{setups[1:]}: a method that explains the model must lose "
         "the predictive columns, so its functional precision falls to chance; the gradient methods must land within "
         f"{SANITY_TOLERANCE} of it (Adebayo et al. 2018). \"FAILS: unchanged\" marks a method that scores as on the "
         "trained model. Methods that do not use gradients are listed without a verdict."), "",
        _table(head, rows), "",
    ]


def _verdict(score: float, chance: float, trained: float) -> str:
    """A gradient method's check: passes within `SANITY_TOLERANCE` of chance; fails, and says when its score did
    not move from the trained model's."""
    if not np.isfinite(score):
        return "–"
    if abs(score - chance) <= SANITY_TOLERANCE:
        return "passes"
    return "FAILS: unchanged" if abs(score - trained) <= SANITY_TOLERANCE else "FAILS"
