"""The study's remaining measurements: global top-m convergence during training, and per-pass time and memory."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from chaosjax import train
from chaosjax.models.mlp import mlp
from chaosjax.tracks import symbolic as track

TINY = dict(noise_features=6, n=300, epochs=40, depth=2, width=16, ig_steps=4, smoothgrad_samples=3, shap_samples=3)
FN = mlp(8, depth=2, width=16)


def _grid(key, g=3, n=128):
    kx, kp = jax.random.split(key)
    x = jnp.clip(0.33 * jax.random.normal(kx, (g, n, 8)), -1.0, 1.0)
    y = x[..., 0] ** 2 + 0.5 * jnp.sin(x[..., 1])
    return jax.vmap(FN.init)(jax.random.split(kp, g)), x, y


def _same(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


@pytest.mark.parametrize("opts", [{}, {"group": 2}, {"batch_size": 32, "optimizer": "rmsprop"}])
def test_snapshots_leave_training_unchanged_number_for_number(getkey, opts):
    params, x, y = _grid(getkey())
    keys = jax.random.split(getkey(), 3)
    plain = train.fit_grid(FN.apply, params, x, y, keys, epochs=10, learning_rate=1e-2, **opts)
    snap = train.fit_grid(FN.apply, params, x, y, keys, epochs=10, learning_rate=1e-2, snapshot_every=3, **opts)
    assert plain.snapshots is None
    _same(plain.params, snap.params)
    np.testing.assert_array_equal(plain.losses, snap.losses)  # 3 segments of 3 epochs, then the 10th
    assert jax.tree.leaves(snap.snapshots)[0].shape[:2] == (3, 3)
    # Snapshot k is the model after 3 (k + 1) epochs: the same as training that long.
    shorter = train.fit_grid(FN.apply, params, x, y, keys, epochs=6, learning_rate=1e-2, **opts)
    _same(jax.tree.map(lambda a: a[:, 1], snap.snapshots), shorter.params)


def test_snapshot_every_is_validated(getkey):
    params, x, y = _grid(getkey())
    for bad in (0, 11, 2.5, True):
        with pytest.raises(ValueError, match="snapshot_every"):
            train.fit_grid(FN.apply, params, x, y, jax.random.split(getkey(), 3), epochs=10, snapshot_every=bad)
    with pytest.raises(ValueError, match="convergence_every"):
        track.SymbolicConfig(epochs=10, convergence_every=20).validate()


def test_convergence_of_the_global_top_m(tmp_path):
    methods = ("saliency", "feature_ablation")
    base = track.SymbolicConfig(formulas=(3, 9), methods=methods, **TINY)
    with_snapshots = track.SymbolicConfig(formulas=(3, 9), methods=methods, convergence_every=10, **TINY)
    plain = pd.DataFrame(track.run_setting(base))
    frame = track.run(with_snapshots, out=tmp_path, progress=False)
    # Training and scores are those of the run without snapshots.
    for column in ("final_loss", "functional_precision", "uniform_score", "consistency"):
        np.testing.assert_array_equal(frame[column].to_numpy(), plain[column].to_numpy())
    assert plain["topm_overlap_trace"].eq("").all() and plain["topm_mean_overlap"].isna().all()
    assert (frame["convergence_every"] == 10).all()
    for _, row in frame.iterrows():
        trace = [int(c) for c in row["topm_overlap_trace"].split(";")]
        assert len(trace) == 4 and all(0 <= c <= row["m"] for c in trace)
        assert trace[-1] == row["m"]  # the last snapshot (epoch 40) is the trained model
        np.testing.assert_allclose(row["topm_mean_overlap"], np.mean(trace) / row["m"])
        settled = next(10 * (i + 1) for i in range(4) if all(c == row["m"] for c in trace[i:]))
        assert row["topm_settled_epoch"] == settled
    written = pd.read_csv(tmp_path / "results.csv", dtype={"topm_overlap_trace": str})
    assert list(written["topm_overlap_trace"]) == list(frame["topm_overlap_trace"])


def test_time_and_peak_memory_of_one_pass():
    config = track.SymbolicConfig(formulas=(0, 4), methods=("saliency", "integrated_gradients"), **TINY)
    grid = track.build_grid(config, track.cells_of(config))
    trained = track.train_grid(config, grid)
    frame = pd.DataFrame(track.attribute_grid(config, grid, trained)).set_index("method")
    assert (frame["attr_peak_bytes"] > 0).all() and frame["attr_run_seconds"].isna().all()  # timing is opt-in
    timed = track.SymbolicConfig(formulas=(0, 4), methods=("saliency",), time_passes=True, **TINY)
    row = track.attribute_grid(timed, grid, trained)[0]
    assert 0 < row["attr_run_seconds"] < 60 and row["attr_peak_bytes"] == frame.loc["saliency", "attr_peak_bytes"].iloc[0]
    # The peak comes from the compiled program: IG with all 4 path points at once holds more than one at a time.
    one_at_a_time = track.SymbolicConfig(formulas=(0, 4), methods=("integrated_gradients",),
                                         attribution_batch_size=1, **TINY)
    all_at_once = track.SymbolicConfig(formulas=(0, 4), methods=("integrated_gradients",),
                                       attribution_batch_size=4, **TINY)
    small = track.attribute_grid(one_at_a_time, grid, trained)[0]["attr_peak_bytes"]
    large = track.attribute_grid(all_at_once, grid, trained)[0]["attr_peak_bytes"]
    assert large > small
    # The arguments alone (every cell's parameters and test rows) are a floor.
    floor = sum(a.size * a.dtype.itemsize for a in jax.tree.leaves(trained.params)) + grid.x_test.size * 4
    assert small >= floor / len(grid.cells)
