"""Metrics of the symbolic track on hand-made examples with known answers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from chaosjax.metrics import (
    NORM_EPS,
    consistency,
    functional_precision,
    mean_absolute_error,
    pred_score,
    uniform_score,
)
from chaosjax import metrics  # test_mae is reached as metrics.test_mae so pytest does not collect it


def _signal_plus_noise(key, n, width, m, signal=1.0, noise=0.1):
    """Attributions whose predictive columns dominate (|a| >= signal) over noise columns (|a| < noise)."""
    k1, k2 = jax.random.split(key)
    big = signal + jax.random.uniform(k1, (n, width))
    small = noise * jax.random.uniform(k2, (n, width))
    return jnp.where((jnp.arange(width) < m)[None, :], big, small)


# ----- functional precision -----------------------------------------------------------------------------------


def test_precision_perfect_and_zero(getkey):
    attr = _signal_plus_noise(getkey(), 20, 10, 3)
    assert float(functional_precision(attr, 3)) == 1.0
    assert float(functional_precision(-attr, 3)) == 1.0  # ranked by |attr|
    noise_heavy = _signal_plus_noise(getkey(), 20, 10, 3)[:, ::-1]  # mass on the last three columns
    assert float(functional_precision(noise_heavy, 3)) == 0.0


def test_precision_hand_example():
    attr = jnp.array(
        [
            [0.9, 0.1, 0.5, 0.0],  # top-2 = {0, 2}: 1 of 2 predictive
            [0.3, 0.2, 0.1, 0.0],  # top-2 = {0, 1}: 2 of 2
            [0.0, 0.1, 0.8, 0.7],  # top-2 = {2, 3}: 0 of 2
        ]
    )
    np.testing.assert_allclose(functional_precision(attr, 2), (0.5 + 1.0 + 0.0) / 3)


def test_precision_ties_are_shared_not_credited():
    # All-zero attributions: every column is tied, so the expected precision is chance, m/W.
    assert float(functional_precision(jnp.zeros((4, 8)), 2)) == pytest.approx(2 / 8)
    # Paper f12: column 7 ("h") has zero truth and ties with the noise columns for the last slot.
    truth = jnp.concatenate([jnp.ones((3, 7)), jnp.zeros((3, 11))], axis=1)
    np.testing.assert_allclose(functional_precision(truth, 8), (7 + 1 / 11) / 8, rtol=1e-6)


def test_precision_chance_level(getkey):
    n, width, m = 4000, 50, 5
    attr = jax.random.normal(getkey(), (n, width))
    np.testing.assert_allclose(functional_precision(attr, m), m / width, atol=0.01)


def test_padding_never_selected(getkey):
    m, real, width = 2, 6, 9
    attr = _signal_plus_noise(getkey(), 10, width, m, noise=0.1)
    attr = attr.at[:, real:].set(100.0)  # padding carries the largest values
    valid = jnp.arange(width) < real
    assert float(functional_precision(attr, m, valid=valid)) == 1.0
    assert float(functional_precision(attr, m)) < 1.0  # without the mask the padding would win
    assert float(consistency(attr, m, valid=valid)) == 1.0
    # the paper's uniform score normalises over valid columns only, so padding mass changes nothing
    truth = attr.at[:, m:].set(0.0)
    clean = attr.at[:, real:].set(0.0)
    np.testing.assert_allclose(
        uniform_score(attr, truth, m, valid=valid), uniform_score(clean, truth, m, valid=valid), rtol=1e-6
    )
    # all-zero attributions: chance is m over the valid columns, not over the padded width
    np.testing.assert_allclose(functional_precision(jnp.zeros((3, width)), m, valid=valid), m / real, rtol=1e-6)


def test_traced_m_under_vmap_matches_unvmapped(getkey):
    width, n = 12, 16
    ms = jnp.array([1, 3, 5, 10])
    attrs = jax.random.normal(getkey(), (4, n, width))
    truths = jax.random.normal(getkey(), (4, n, width))
    valids = jnp.arange(width)[None, :] < jnp.array([4, 7, 9, 12])[:, None]

    def all_metrics(a, t, m, v):
        return jnp.stack(
            [
                functional_precision(a, m, valid=v),
                uniform_score(a, t, m, protocol="paper", valid=v),
                uniform_score(a, t, m, protocol="corrected", valid=v),
                consistency(a, m, valid=v),
            ]
        )

    batched = jax.jit(jax.vmap(all_metrics))(attrs, truths, ms, valids)
    for k in range(4):
        single = all_metrics(attrs[k], truths[k], int(ms[k]), valids[k])
        np.testing.assert_allclose(batched[k], single, rtol=1e-6, atol=1e-7)
    # the answers really depend on m (a grid is not collapsed to one value)
    assert len({round(float(v), 6) for v in batched[:, 0]}) > 1


# ----- uniform score ------------------------------------------------------------------------------------------


def test_uniform_score_perfect_under_corrected(getkey):
    truth = jax.random.normal(getkey(), (10, 8)).at[:, 3:].set(0.0)
    attr = truth.at[:, 3:].set(jax.random.normal(getkey(), (10, 5)))  # noise columns do not matter here
    assert float(uniform_score(truth, truth, 3, protocol="corrected")) == pytest.approx(1.0, abs=1e-6)
    assert float(uniform_score(attr, truth, 3, protocol="corrected")) == pytest.approx(1.0, abs=1e-6)
    assert float(uniform_score(2.5 * truth, truth, 3, protocol="corrected")) == pytest.approx(1.0, abs=1e-6)
    # opposite sign scores 0
    assert float(uniform_score(-truth, truth, 3, protocol="corrected")) == pytest.approx(0.0, abs=1e-6)


def test_uniform_score_paper_vs_corrected_by_hand():
    # m = 2, W = 4. attr = [3, 1, 1, 0]; truth = [3, 1, 0, 0].
    attr = jnp.array([[3.0, 1.0, 1.0, 0.0]])
    truth = jnp.array([[3.0, 1.0, 0.0, 0.0]])
    # paper: a = attr / 5 = [0.6, 0.2]; g = truth / 4 = [0.75, 0.25]
    #   terms 1 - 0.15/1.35 and 1 - 0.05/0.45
    paper = ((1 - 0.15 / 1.35) + (1 - 0.05 / 0.45)) / 2
    np.testing.assert_allclose(uniform_score(attr, truth, 2, protocol="paper"), paper, rtol=1e-5)
    # corrected: a = attr[:2] / 4 = g, so 1 exactly
    np.testing.assert_allclose(uniform_score(attr, truth, 2, protocol="corrected"), 1.0, rtol=1e-6)
    # the paper score equals 1 - 1/9 here: the noise mass shrinks a uniformly by a factor 4/5
    np.testing.assert_allclose(paper, 1 - 1 / 9, rtol=1e-12)
    with pytest.raises(ValueError, match="protocol"):
        uniform_score(attr, truth, 2, protocol="exact")


def test_uniform_score_zero_rows_are_finite():
    zeros = jnp.zeros((2, 5))
    assert jnp.isfinite(uniform_score(zeros, zeros, 2))
    assert jnp.isfinite(uniform_score(jnp.ones((2, 5)), zeros, 2, protocol="corrected"))
    assert NORM_EPS < 1e-6


# ----- pred score, MAE ----------------------------------------------------------------------------------------


def test_pred_score_and_mae():
    p = jnp.array([1.0, 2.0, -1.0, 0.5])
    t = jnp.array([1.0, 1.0, 1.0, 0.5])
    np.testing.assert_allclose(pred_score(p, t), (1 + (1 - 1 / 3) + 0 + 1) / 4, rtol=1e-6)
    np.testing.assert_allclose(pred_score(t, t), 1.0, rtol=1e-6)
    np.testing.assert_allclose(mean_absolute_error(p, t), (0 + 1 + 2 + 0) / 4, rtol=1e-6)
    assert metrics.test_mae is mean_absolute_error
    with pytest.raises(ValueError, match="same shape"):
        pred_score(p, t[:3])
    with pytest.raises(ValueError, match="same shape"):
        mean_absolute_error(p[:, None], t)


# ----- consistency --------------------------------------------------------------------------------------------


def test_consistency_shared_ranking_is_one(getkey):
    base = jax.random.permutation(getkey(), jnp.arange(1.0, 13.0))  # one ranking of 12 columns, no ties
    scales = jax.random.uniform(getkey(), (30, 1), minval=0.5, maxval=2.0)
    attr = scales * base[None, :]
    for m in (1, 3, 7):
        assert float(consistency(attr, m)) == 1.0


def test_consistency_hand_example():
    attr = jnp.array(
        [
            [5.0, 4.0, 0.0, 0.0],  # top-2 {0, 1}
            [5.0, 0.0, 4.0, 0.0],  # top-2 {0, 2}
            [0.0, 0.0, 4.0, 5.0],  # top-2 {2, 3}
            [5.0, 4.0, 0.0, 0.0],  # top-2 {0, 1}
        ]
    )
    # column means [3.75, 2, 2, 1.25]: global top-2 is column 0 plus a tie of columns 1 and 2 (half a slot each).
    # expected overlaps: row0 1 + 0.5, row1 1 + 0.5, row2 0.5, row3 1 + 0.5; divided by m = 2, mean over rows.
    want = (1.5 + 1.5 + 0.5 + 1.5) / 4 / 2
    np.testing.assert_allclose(consistency(attr, 2), want, rtol=1e-6)
    attr = attr.at[2].set(jnp.array([4.0, 5.0, 0.0, 0.0]))  # now global top-2 is {0, 1}
    np.testing.assert_allclose(consistency(attr, 2), (1.0 + 0.5 + 1.0 + 1.0) / 4, rtol=1e-6)


# ----- errors -------------------------------------------------------------------------------------------------


def test_shape_and_argument_errors():
    a = jnp.ones((4, 5))
    with pytest.raises(ValueError, match="attr"):
        functional_precision(jnp.ones(5), 2)
    with pytest.raises(ValueError, match="attr"):
        consistency(jnp.ones((2, 3, 4)), 2)
    with pytest.raises(ValueError, match="same shape"):
        uniform_score(a, jnp.ones((4, 6)), 2)
    with pytest.raises(ValueError, match="truth"):
        uniform_score(a, jnp.ones(5), 2)
    with pytest.raises(ValueError, match="m must be"):
        functional_precision(a, 6)
    with pytest.raises(ValueError, match="m must be"):
        functional_precision(a, 0)
    with pytest.raises(TypeError, match="m must be"):
        functional_precision(a, 2.0)
    with pytest.raises(ValueError, match="m must be"):
        uniform_score(a, a, jnp.int32(6))  # concrete array m is range-checked too
    with pytest.raises(ValueError, match="valid"):
        functional_precision(a, 2, valid=jnp.ones(4, bool))
    with pytest.raises(TypeError, match="valid"):
        functional_precision(a, 2, valid=jnp.ones(5))


def test_nan_attributions_propagate():
    attr = jnp.ones((3, 4)).at[1, 2].set(jnp.nan)
    assert jnp.isnan(functional_precision(attr, 2))
    assert jnp.isnan(consistency(attr, 2))
