"""The meta-benchmark: proxy columns on the symbolic track, their agreement with the truth, the report's section."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chaosjax.tracks import proxy_bench
from chaosjax.tracks.proxy_bench import (
    PROXIES,
    proxy_agreement,
    proxy_columns,
    resolve_proxies,
)
from chaosjax.tracks.symbolic import COLUMNS, SymbolicConfig, run

METHODS = ("saliency", "random_baseline")
TINY = {"formulas": (0, 3, 6), "noise_features": 6, "n": 300, "epochs": 150, "depth": 1, "width": 24,
        "methods": METHODS}


@pytest.fixture(scope="module")
def proxy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("proxy_run")
    frame = run(SymbolicConfig(**TINY, proxies=tuple(PROXIES)), out=out, progress=False)
    return out, frame


def test_resolve_proxies():
    assert resolve_proxies(None) == resolve_proxies("none") == ()
    assert resolve_proxies("all") == tuple(PROXIES)
    assert resolve_proxies("infidelity, sparseness") == ("infidelity", "sparseness")
    with pytest.raises(ValueError, match="--proxies: unknown proxy 'road'"):
        resolve_proxies("infidelity,road", "--proxies")
    with pytest.raises(ValueError, match="twice"):
        resolve_proxies(["sparseness", "sparseness"])
    with pytest.raises(ValueError, match="proxies: unknown"):
        SymbolicConfig(proxies=("bogus",)).validate()


def test_the_columns_appear_with_proxies_and_are_finite(proxy_run):
    out, _ = proxy_run
    written = pd.read_csv(out / "results.csv")
    # Without --proxies the columns are COLUMNS alone (tests/test_symbolic_track.py); with them, one per proxy.
    assert list(written.columns) == list(COLUMNS) + list(proxy_columns(tuple(PROXIES)))
    for name, (column, _) in PROXIES.items():
        assert np.isfinite(written[column]).all(), name
    assert (written["proxy_seconds"] > 0).all()
    by = written.groupby("method")
    # Properties the definitions fix: sparseness in [0, 1); a random attribution is the least sparse.
    assert written["proxy_sparseness"].between(0, 1).all()
    # The same key re-draws the same random attributions at every perturbed input: max-sensitivity 0.
    assert by["proxy_max_sensitivity"].max()["random_baseline"] < 1e-5
    # Trained saliency finds the formula's columns; on a re-initialised model, or one trained on shuffled labels,
    # the same method does not (chance here: 0.18; measured 0.12 for shuffled labels against 0.99 trained).
    assert by["functional_precision"].mean()["saliency"] > 0.8
    assert by["randomised_functional_precision"].mean()["saliency"] < 0.5
    assert by["label_randomised_functional_precision"].mean()["saliency"] < 0.4


def test_the_real_rows_do_not_change_with_the_proxies(proxy_run):
    """Every proxy, the shuffled-label members' training included, leaves the real cells' numbers bit for bit."""
    _, frame = proxy_run
    plain = run(SymbolicConfig(**TINY), progress=False)
    columns = [c for c in COLUMNS if "seconds" not in c]
    pd.testing.assert_frame_equal(frame[columns], plain[columns], check_exact=True)


def _table(proxy_scores: np.ndarray, truth: np.ndarray) -> pd.DataFrame:
    """A symbolic-shaped table: replicates x methods of a proxy column and the truths."""
    rows = []
    for r in range(truth.shape[0]):
        for j in range(truth.shape[1]):
            rows.append({"formula": str(r), "seed": 0, "method": f"m{j}", "functional_precision": truth[r, j],
                         "uniform_score": truth[r, j], "proxy_infidelity": proxy_scores[r, j],
                         "proxy_sparseness": truth[r, j] ** 3})
    return pd.DataFrame(rows)


def test_agreement_closed_forms():
    """A proxy that orders the methods as the truth scores tau 1 and pairs 1, whichever way it points: infidelity
    (lower better) at minus the truth, sparseness (higher better) at a monotone function of it; reversed, -1."""
    rng = np.random.default_rng(0)
    truth = rng.uniform(size=(12, 5)) * 0.1 + np.linspace(0, 1, 5)[None, :]
    table = proxy_agreement(_table(-truth, truth), resamples=200)
    assert set(table["proxy"]) == {"infidelity", "sparseness"}
    assert np.allclose(table[["tau", "pairs"]], 1.0)
    assert (table["low"] > 0.9).all() and (table["replicates"] == 12).all() and (table["methods"] == 5).all()
    reversed_ = proxy_agreement(_table(truth, truth), resamples=200)
    assert np.allclose(reversed_.set_index("proxy").loc["infidelity", "tau"], -1.0)
    assert np.allclose(reversed_.set_index("proxy").loc["infidelity", "pairs"], 0.0)
    with pytest.raises(ValueError, match="no proxy columns"):
        proxy_agreement(_table(truth, truth).drop(columns=["proxy_infidelity", "proxy_sparseness"]))


def test_report_draws_the_proxy_section(proxy_run):
    from chaosjax.report import report

    out, _ = proxy_run
    result = report(out)
    text = result.markdown.read_text()
    assert "Do proxy metrics agree with the truth?" in text
    assert (out / "figures" / "symbolic_proxy_agreement.png").exists()
    for name in ("deletion_auc", "infidelity", "complexity"):
        assert f"| `{name}` |" in text
    assert "Sanity checks: model-parameter randomisation and label randomisation" in text
    assert "| randomised model | gap | check | shuffled labels | gap | check |" in text
    assert "| `saliency` |" in text


def _sanity_frame(shuffled: list[float], randomised: list[float] | None = None) -> pd.DataFrame:
    """Three cells (m 1, 10 noise columns: chance 1/11) of saliency, IG, input x gradient and the random baseline,
    each with the given shuffled-label (and randomised) functional precision, trained 0.9."""
    methods = ("saliency", "integrated_gradients", "input_x_gradient", "random_baseline")
    rows = [{"formula": str(c), "seed": 0, "method": method, "m": 1, "noise_features": 10,
             "functional_precision": 0.9, "label_randomised_functional_precision": shuffled[j],
             **({} if randomised is None else {"randomised_functional_precision": randomised[j]})}
            for c in range(3) for j, method in enumerate(methods)]
    return pd.DataFrame(rows)


def test_the_sanity_table_gives_each_check_its_verdict(tmp_path):
    """At chance passes, as high as trained fails "unchanged", in between fails; no verdict for a method without
    gradients; a table with one check has only its columns, a table with none no section."""
    from chaosjax.report.proxies import draw, has_proxies

    md, figures = draw(_sanity_frame([0.1, 0.88, 0.5, 0.6]), tmp_path, formats=("png",))
    assert figures == [] and "Sanity check: label randomisation" in md and "randomised model" not in md
    assert "| method | functional precision (trained) | chance | shuffled labels | gap | check |" in md
    assert "| `saliency` | 0.900 | 0.091 | 0.100 | +0.009 | passes |" in md
    assert "| `integrated_gradients` | 0.900 | 0.091 | 0.880 | +0.789 | FAILS: unchanged |" in md
    assert "| `input_x_gradient` | 0.900 | 0.091 | 0.500 | +0.409 | FAILS |" in md
    assert "| `random_baseline` | 0.900 | 0.091 | 0.600 | +0.509 | – |" in md
    both, _ = draw(_sanity_frame([0.1] * 4, randomised=[0.09, 0.9, 0.09, 0.09]), tmp_path, formats=("png",))
    assert "| `integrated_gradients` | 0.900 | 0.091 | 0.900 | +0.809 | FAILS: unchanged | 0.100 | +0.009 | passes |" \
        in both
    neither = _sanity_frame([np.nan] * 4)
    assert not has_proxies(neither) and "Sanity" not in draw(neither, tmp_path, formats=("png",))[0]


@pytest.mark.slow
def test_randomised_gradient_methods_fall_to_chance():
    """Issue 17's sanity row on the symbolic default's shape (15 formulas, 100 noise columns): every layer
    re-initialised, the gradient methods' functional precision is within 0.05 of chance. The check needs no
    training (the randomised model is a fresh initialisation), so one epoch keeps it cheap."""
    config = SymbolicConfig(formulas=tuple(range(15)), noise_features=100, n=200, epochs=1,
                            methods=("saliency", "input_x_gradient", "integrated_gradients"),
                            proxies=("randomisation",))
    frame = run(config, progress=False)
    chance = float(np.mean(frame["m"] / (frame["m"] + frame["noise_features"])))
    for method, group in frame.groupby("method"):
        assert abs(group["randomised_functional_precision"].mean() - chance) <= 0.05, method
    assert proxy_bench.GRADIENT_METHODS[0] == "saliency"


def _linear(p, x):
    return (x @ p)[:, None]


class _Exact:
    """`w * x`, the exact attribution of a linear model against the baseline 0 (its weights are the params, which
    the method cannot see: they are fixed here)."""

    def __init__(self, w, zero=False):
        self.w, self.zero = w, zero

    def __call__(self, f, x, refs, key):
        import jax.numpy as jnp

        if self.zero:  # 0 at the rows (multiples of 0.5), not at any perturbed row: like LIME's all-zero rows
            return jnp.where(x == jnp.round(2 * x) / 2, 0.0, x) * jnp.asarray(self.w)[None, :]
        return x * jnp.asarray(self.w)[None, :]

    def __hash__(self):
        return hash((self.zero, tuple(np.asarray(self.w).tolist())))

    def __eq__(self, other):
        return isinstance(other, _Exact) and hash(self) == hash(other)


def test_score_grid_closed_forms_on_a_linear_model():
    """On `f(x) = w.x` with the exact attribution `w * x`: faithfulness correlation 1 and max-sensitivity
    `max ||w * d|| / ||w * x||` > 0; an attribution that is 0 at the rows but not near them leaves max-sensitivity
    (a change relative to 0: inf) and complexity undefined: NaN, never inf; sparseness stays finite. Two cells share the program."""
    import jax
    import jax.numpy as jnp

    w = np.array([2.0, -1.0, 0.5, 0.0, 0.0, 0.0], np.float32)
    params = jnp.stack([jnp.asarray(w)] * 2)
    x = jax.random.uniform(jax.random.key(0), (2, 16, 6), minval=-1, maxval=1)
    args = {"m": jnp.array([3, 3]), "mask": jnp.ones((2, 6), bool), "refs": jnp.zeros((2, 4, 6)),
            "keys": jnp.stack([jax.random.key(1), jax.random.key(2)])}
    names = ("faithfulness_correlation", "max_sensitivity", "sparseness", "complexity")
    out = proxy_bench.score_grid(_linear, params, params, x, x * w[None, None], **args, attribute=_Exact(w), names=names,
                                 cell_by_cell=True)
    np.testing.assert_allclose(out["proxy_faithfulness_correlation"], 1.0, atol=1e-5)
    assert (np.asarray(out["proxy_max_sensitivity"]) > 0).all()
    halves = jnp.round(2 * x) / 2
    zero = proxy_bench.score_grid(_linear, params, params, halves, jnp.zeros_like(x), **args,
                                  attribute=_Exact(w, zero=True), names=names, cell_by_cell=False)
    assert np.isnan(zero["proxy_max_sensitivity"]).all() and np.isnan(zero["proxy_complexity"]).all()
    assert np.isfinite(zero["proxy_sparseness"]).all()
