"""The symbolic report's proxy section: do proxy metrics rank the methods as the ground truth does?

Drawn when a symbolic results table has proxy columns (`chaosjax symbolic --proxies`): the agreement table and a
heat map (proxy x ground truth, Kendall's tau with its bootstrap CI) from `chaosjax.tracks.proxy_bench.proxy_agreement`,
and the sanity table when the table has `randomised_functional_precision` (model-parameter randomisation) or
`label_randomised_functional_precision` (label randomisation), or both.
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
}


def has_proxies(frame: pd.DataFrame) -> bool:
    """Whether the table holds any proxy (or sanity) scores (checked by name, so that a report without them
    does not import JAX)."""
    return any((col.startswith("proxy_") and col != "proxy_seconds" or col in SANITY_CHECKS)
               and frame[col].notna().any() for col in frame.columns)


def _proxy_label(name: str) -> str:
    from chaosjax.tracks.proxy_bench import PROXIES

    better = PROXIES[name][1]
    return f"{name.replace('_', ' ')} ({'higher' if better else 'lower'} better)"


def draw(frame: pd.DataFrame, figdir: Path, *, formats: Sequence[str]) -> tuple[str, list[Path]]:
    """The section's markdown and figures."""
    from chaosjax.tracks.proxy_bench import PROXIES, proxy_agreement

    md = ["### Do proxy metrics agree with the truth?", ""]
    figures: list[Path] = []
    ranked = [c for name, (c, better) in PROXIES.items() if better is not None and c in frame.columns
              and frame[c].notna().any()]
    if ranked:
        usable = frame.drop(columns=[c for c, _ in PROXIES.values() if c in frame.columns and c not in ranked])
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
        ax.set_yticks(range(len(names)), [_proxy_label(n) for n in names])
        fig.colorbar(image, ax=ax, shrink=0.8, label="Kendall τ with the ground truth's ranking")
        n_methods, n_reps = int(table["methods"].max()), int(table["replicates"].max())
        fig.suptitle(f"Proxy vs ground-truth ranking of {n_methods} methods\n"
                     f"(τ over mean scores; 95% bootstrap CI over {n_reps} formulas x seeds)", fontsize=10)
        paths = _save(fig, figdir, "symbolic_proxy_agreement", formats)
        figures += paths
        md += [
            ("Each proxy ranks the methods by its mean score over the cells; Kendall's tau-b compares that ranking "
             "with the ground truth's (1: the same order, -1: reversed, 0: unrelated; a proxy where lower is better "
             "is negated first). The 95% CI resamples formulas x seeds; `pairs` is the share of method pairs the "
             "proxy orders as the truth does."), "",
            _image(paths, "proxy x ground truth agreement (Kendall tau)"), "",
        ]
        rows = []
        for name in names:
            cells = [f"`{name}`", "higher" if PROXIES[name][1] else "lower"]
            for truth in truths:
                r = table[(table["proxy"] == name) & (table["truth"] == truth)].iloc[0]
                cells += [f"{r['tau']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}]", f"{r['pairs']:.2f}"]
            rows.append(cells)
        head = ["proxy", "better"]
        for truth in truths:
            head += [f"τ with {_label(truth)} [95% CI]", "pairs"]
        md += [_table(head, rows), "",
               (f"{n_methods} methods, {n_reps} formulas x seeds; proxies on each cell's first test rows "
                "(docs/proxies.md, \"The meta-benchmark\")."), ""]
    if any(col in frame.columns and frame[col].notna().any() for col in SANITY_CHECKS):
        md += _sanity(frame)
    return "\n".join(md), figures


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
