"""The symbolic track end to end: one compiled grid, tidy results, the CLI and its errors."""

import json

import numpy as np
import pandas as pd
import pytest

from chaosjax import cli, train
from chaosjax.tracks import symbolic as track

TINY = dict(noise_features=6, n=300, epochs=40, depth=2, width=16, ig_steps=4, smoothgrad_samples=3, shap_samples=3)


def test_fifteen_formulas_and_two_seeds_train_in_one_compiled_program():
    config = track.SymbolicConfig(seeds=(0, 1), methods=("saliency",), **TINY)
    before = train._TRACES["fit_grid"]
    rows = track.run_setting(config)
    assert train._TRACES["fit_grid"] == before + 1
    frame = pd.DataFrame(rows)
    assert len(frame) == 30 and set(frame["formula"]) == {str(i) for i in range(15)}
    # Training reduces the loss of every formula's model.
    assert (frame["final_loss"] < frame["initial_loss"]).all(), frame[["formula", "initial_loss", "final_loss"]]
    # A second setting with other values but the same shapes reuses the program.
    track.run_setting(track.SymbolicConfig(seeds=(2, 3), methods=("saliency",), learning_rate=3e-3, **TINY))
    assert train._TRACES["fit_grid"] == before + 1


def test_run_writes_results_and_config(tmp_path):
    config = track.SymbolicConfig(formulas=(0, 6, "0.5*sin(a) + b**2"), seeds=(0,), **TINY)
    frame = track.run(config, out=tmp_path, progress=False)
    written = pd.read_csv(tmp_path / "results.csv")
    assert list(written.columns) == list(track.COLUMNS)
    assert len(written) == 3 * len(config.method_names()) == len(frame)
    assert set(written["method"]) == set(config.method_names())
    assert (written["track"] == "symbolic").all()
    for column in ("functional_precision", "uniform_score", "consistency"):
        assert written[column].between(0, 1).all(), column
    assert written.loc[written["formula"] == "6", "m"].iloc[0] == 2
    meta = json.loads((tmp_path / "config.json").read_text())
    assert meta["config"]["noise_features"] == 6 and meta["environment"]["jax"]
    # Random attributions pick predictive columns at about chance level, m / (m + noise).
    chance = written[written["method"] == "random_baseline"]
    assert chance["functional_precision"].mean() < 0.5
    # An existing results directory is refused, not overwritten.
    with pytest.raises(ValueError, match="already holds"):
        track.run(config, out=tmp_path, progress=False)


def test_same_seed_same_results():
    config = track.SymbolicConfig(formulas=(3,), seeds=(5,), methods=("saliency", "smoothgrad"), **TINY)
    a, b = pd.DataFrame(track.run_setting(config)), pd.DataFrame(track.run_setting(config))
    cols = ["functional_precision", "uniform_score", "test_mae", "final_loss"]
    np.testing.assert_array_equal(a[cols].to_numpy(), b[cols].to_numpy())


def test_sweep_runs_one_grid_per_value(tmp_path):
    config = track.SymbolicConfig(formulas=(0, 1), methods=("saliency",), sweep=("noise", (2, 5)), **TINY)
    frame = track.run(config, out=tmp_path, progress=False)
    assert sorted(frame["noise_features"].unique()) == [2, 5]
    assert (frame["sweep_axis"] == "noise").all()
    assert "noise" in track.summary_table(frame)


def test_summary_table_has_a_row_per_method():
    frame = pd.DataFrame(
        track.run_setting(track.SymbolicConfig(formulas=(0, 1), methods=("saliency", "feature_ablation"), **TINY))
    )
    table = track.summary_table(frame)
    # Two formulas: too few for a confidence interval, so the table gives the mean and n.
    assert "| saliency |" in table and "| feature_ablation |" in table and "(n=2)" in table and "±" not in table


def test_mean_ci():
    mean, half = track.mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and np.isclose(half, 2.4841, atol=1e-3)  # t(0.975, 2) * 1 / sqrt(3)
    assert track.mean_ci([4.0]) == (4.0, 0.0)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--formulas", "a +* b"], "formula"),
        (["--formulas", "0-15"], "out of range"),
        (["--noise", "-1"], "noise"),
        (["--n", "2"], "n"),
        (["--methods", "saliency,gradcam"], "methods"),
        (["--optimizer", "lbfgs"], "optimizer"),
        (["--sweep", "temperature=1,2"], "axis"),
        (["--sweep", "depth=two"], "depth"),
        (["--seeds", "a-b"], "--seeds"),
        (["--dropout", "1.5"], "dropout"),
    ],
)
def test_cli_bad_input_is_one_line_and_nonzero(tmp_path, capsys, argv, message):
    code = cli.main(["symbolic", "--out", str(tmp_path / "out"), "--quiet", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("chaosjax: error:") and "\n" not in err and message in err, err
    assert not (tmp_path / "out").exists()  # nothing started


def test_cli_runs_a_tiny_grid(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main([
        "symbolic", "--formulas", "0,6", "--noise", "5", "--n", "200", "--epochs", "20", "--depth", "1",
        "--width", "8", "--methods", "saliency,integrated_gradients", "--ig-steps", "3", "--out", str(out), "--quiet",
    ])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| integrated_gradients |" in printed and "results.csv" in printed
    assert len(pd.read_csv(out / "results.csv")) == 4


def test_ground_truth_compiles_once_per_formula_and_method_whatever_the_row_count():
    from chaosjax.data import symbolic as data

    compiled = data._ground_truth._cache_size()
    for n in (600, 3_000):  # 120 and 600 test rows: one block padded, then two blocks of `_TRUTH_ROWS` (500)
        # Formulas no other test uses, so that the compile count starts from nothing.
        config = track.SymbolicConfig(formulas=("x1 * x2 - 0.37 * x1", "cos(x1) + 0.21 * x2 * x3"),
                                      noise_features=2, n=n)
        grid = track.build_grid(config, track.cells_of(config))
        truth = track.ground_truths(grid, "feature_ablation", "paper")
        assert truth.shape == grid.x_test.shape
        for g, cell in enumerate(grid.cells):
            direct = data.ground_truth(cell.formula, grid.x_test[g], "feature_ablation")
            np.testing.assert_allclose(truth[g], direct, rtol=1e-6, atol=1e-7)
    # Two formulas: the blocked calls compiled two programs, the direct whole-table calls one per table shape.
    assert data._ground_truth._cache_size() - compiled == 2 + 2 * 2


def test_a_cells_ground_truth_does_not_depend_on_its_grid():
    """A sweep computes a cell in whatever chunk holds it: its truth must be bit-identical alone, beside another
    seed of its formula and beside other formulas."""
    def truths(formulas, seeds):
        config = track.SymbolicConfig(formulas=formulas, seeds=seeds, noise_features=2, n=600)
        grid = track.build_grid(config, track.cells_of(config))
        return {(c.label, c.seed): np.asarray(t) for c, t in zip(grid.cells,
                                                                 track.ground_truths(grid, "feature_ablation", "paper"))}

    alone = truths((11,), (1,))[("11", 1)]
    np.testing.assert_array_equal(truths((11,), (0, 1))[("11", 1)], alone)
    np.testing.assert_array_equal(truths((8, 11), (0, 1))[("11", 1)], alone)


def test_the_mlp_learns_its_easiest_formula_and_saliency_finds_the_column():
    """The cheap learning check of the default suite: y = a among 5 noise columns (chance precision 1/6)."""
    config = track.SymbolicConfig(formulas=(0,), noise_features=5, n=400, epochs=150, depth=1, width=16,
                                  learning_rate=1e-2, methods=("saliency",))
    row = track.run(config, progress=False).iloc[0]
    assert row["final_loss"] < 0.02 * row["initial_loss"] and row["test_mae"] < 0.05  # y's std is 0.33
    assert row["functional_precision"] == 1.0
