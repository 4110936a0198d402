"""The study's protocol where chaosjax follows it line for line: IG steps per use, RFE halving, DeepLIFT's truth."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from chaosjax import attribution, metrics, rfe
from chaosjax.data import symbolic as data
from chaosjax.tracks import rfe as rfe_track
from chaosjax.tracks import symbolic as track

TINY = dict(noise_features=6, n=300, epochs=40, depth=2, width=16, ig_steps=4, smoothgrad_samples=3, shap_samples=3)


# ----------------------------------------------------------------------------- RFE: the study's halving


def _study_rounds(n: int, k: int) -> tuple[int, ...]:
    """The rule of the study's RFE loop (notebooks/RFEwNA_iter.ipynb): each round removes int(n * (1 - 0.5))
    features, or just enough to reach k when that would reach or pass it; it stops when nothing is removed."""
    rounds = [n]
    while True:
        remove = int(n * (1 - 0.5))
        if n - remove <= k:
            remove = n - k
        if remove == 0:
            return tuple(rounds)
        n -= remove
        rounds.append(n)


@pytest.mark.parametrize("index, expected", [
    (10, (156, 78, 39, 20, 10, 6)),  # the study's example: m = 6 with 150 noise columns
    (11, (157, 79, 40, 20, 10, 7)),
    (12, (158, 79, 40, 20, 10, 8)),
    (13, (159, 80, 40, 20, 10, 9)),
    (14, (160, 80, 40, 20, 10)),
])
def test_halving_keeps_the_studys_rounds_for_formulas_10_to_14(index, expected):
    m = data.formulas("paper")[index].m
    assert rfe.keep_counts(m + 150, m, "halve") == expected == _study_rounds(m + 150, m)


@pytest.mark.parametrize("n, k", [(2, 1), (3, 1), (7, 2), (33, 4), (101, 3), (369, 3), (1000, 17)])
def test_halving_follows_the_studys_rule_for_any_size(n, k):
    assert rfe.keep_counts(n, k, "halve") == _study_rounds(n, k)


def test_rfe_ranking_options_follow_the_protocol():
    paper = rfe_track.RFEConfig(protocol="paper").method_options()
    corrected = rfe_track.RFEConfig(protocol="corrected").method_options()
    # The study's RFE calls Captum with its defaults: 50 IG steps, DeepLift without a GELU rule.
    assert paper == {"integrated_gradients": {"steps": 50}, "deeplift": {"rescale": "captum"}}
    assert corrected == {"integrated_gradients": {"steps": 10}, "deeplift": {"rescale": "all"}}
    assert rfe_track.RFEConfig(protocol="paper", ig_steps=7).method_options()["integrated_gradients"] == {"steps": 7}
    with pytest.raises(ValueError, match="ig_steps"):
        rfe_track.RFEConfig(ig_steps=0).validate()


# ----------------------------------------------------------------------------- symbolic: IG steps per use


def _scored_by_hand(config, grid, trained, steps):
    """Functional precision and uniform score of IG with `steps`, computed cell by cell through the public API."""
    model = track.model_of(config)
    truth = track.ground_truths(grid, "integrated_gradients", config.protocol)
    out = []
    for g in range(len(grid.cells)):
        params = jax.tree.map(lambda a, g=g: a[g], trained.params)
        f = lambda z, params=params: model.apply(params, z)[:, 0]  # noqa: E731
        attr = attribution.integrated_gradients(f, grid.x_test[g], steps=steps)
        valid, m = grid.mask[g], int(grid.m[g])
        out.append((float(metrics.functional_precision(attr, m, valid=valid)),
                    float(metrics.uniform_score(attr, truth[g], m, protocol=config.protocol, valid=valid))))
    return np.array(out)


@pytest.mark.parametrize("protocol", ["paper", "corrected"])
def test_symbolic_ig_scores_use_the_studys_steps(protocol):
    # One Gauss-Legendre node (the midpoint) for functional precision, so that 1 and 20 steps differ clearly.
    config = track.SymbolicConfig(formulas=(7,), methods=("integrated_gradients",), protocol=protocol,
                                  **{**TINY, "ig_steps": 1})
    grid = track.build_grid(config, track.cells_of(config))
    trained = track.train_grid(config, grid)
    frame = pd.DataFrame(track.attribute_grid(config, grid, trained))
    uniform_steps = 20 if protocol == "paper" else 1
    assert (frame["ig_steps"] == 1).all() and (frame["ig_steps_uniform"] == uniform_steps).all()
    few, many = _scored_by_hand(config, grid, trained, 1), _scored_by_hand(config, grid, trained, 20)
    np.testing.assert_allclose(frame["functional_precision"], few[:, 0], rtol=1e-6)
    expected = many[:, 1] if protocol == "paper" else few[:, 1]
    np.testing.assert_allclose(frame["uniform_score"], expected, rtol=1e-5)
    assert not np.allclose(few[:, 1], many[:, 1], rtol=1e-4)  # 1 and 20 steps differ (> 10x the tolerance above)


def test_ig_steps_uniform_overrides_and_is_validated():
    config = track.SymbolicConfig(protocol="paper", ig_steps_uniform=12)
    assert config.uniform_ig_steps() == 12
    assert track.SymbolicConfig(protocol="paper").uniform_ig_steps() == 20
    assert track.SymbolicConfig(protocol="corrected", ig_steps=7).uniform_ig_steps() == 7
    with pytest.raises(ValueError, match="ig_steps_uniform"):
        track.SymbolicConfig(ig_steps_uniform=0).validate()


# ----------------------------------------------------------------------------- DeepLIFT: options and truth


def test_symbolic_deeplift_option_follows_the_protocol():
    assert track.method_options(track.SymbolicConfig(protocol="paper"), "deeplift") == {"rescale": "captum"}
    assert track.method_options(track.SymbolicConfig(protocol="corrected"), "deeplift") == {"rescale": "all"}


def test_paper_deeplift_equals_input_x_gradient_on_the_studys_gelu_mlps():
    config = track.SymbolicConfig(formulas=(6, 9), methods=("input_x_gradient", "deeplift"), **TINY)
    frame = pd.DataFrame(track.run_setting(config)).set_index(["formula", "method"])
    for column in ("functional_precision", "uniform_score", "consistency"):
        dl = frame.xs("deeplift", level="method")[column]
        ixg = frame.xs("input_x_gradient", level="method")[column]
        np.testing.assert_allclose(dl, ixg, rtol=1e-5, atol=1e-6)


def test_corrected_deeplift_truth_is_deeplift_of_the_formula(getkey):
    x = jnp.clip(0.33 * jax.random.normal(getkey(), (64, 9)), -1, 1)
    for index in (1, 5, 12):  # sums of one-variable terms: DeepLIFT of the formula is each term's own difference
        f = data.formulas("corrected")[index]
        g = data.ground_truth(f, x, "deeplift", protocol="corrected")
        zero = jnp.zeros_like(x)
        for j in range(f.m):
            only_j = zero.at[:, j].set(x[:, j])
            np.testing.assert_allclose(g[:, j], f(only_j) - f(zero), rtol=1e-5, atol=1e-6)
        assert bool(jnp.all(g[:, f.m:] == 0))
    # A product (a*c in f7) has no DeepLIFT rule: its plain gradient; the truth is DeepLIFT on the formula itself.
    f7 = data.formulas("corrected")[7]
    expected = attribution.deeplift(lambda z: f7(z), x[:, :3])
    np.testing.assert_allclose(data.ground_truth(f7, x, "deeplift", protocol="corrected")[:, :3], expected,
                               rtol=1e-6)
    # paper: (x - b) * gradient, as before.
    np.testing.assert_allclose(data.ground_truth(f7, x, "deeplift", protocol="paper"),
                               data.ground_truth(f7, x, "input_x_gradient"), rtol=1e-6)
