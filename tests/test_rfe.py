"""RFE with neural attributions: one compile, exact masks, schedules, baselines, the CLI."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from chaosjax import attribution, cli, rfe
from chaosjax.models import mlp
from chaosjax.tracks import rfe as track

METHODS = ("saliency", "integrated_gradients", "deeplift", "feature_ablation")


def _linear_problem(seed, width=8, rows=256):
    """y = 2 x0 - 1.5 x1 (+ tiny noise); columns 2.. are noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3 * rows, width)).astype(np.float32)
    y = (2 * x[:, 0] - 1.5 * x[:, 1] + 0.01 * rng.normal(size=3 * rows)).astype(np.float32)
    tr, rk, te = slice(0, rows), slice(rows, 2 * rows), slice(2 * rows, 3 * rows)
    return rfe.Problem(x[tr], y[tr], x[rk], y[rk], x[te], y[te], np.ones(width, bool), np.arange(width) < 2)


def _stack(problems):
    return rfe.Problem(*[jnp.stack([getattr(p, f) for p in problems]) for f in rfe.Problem._fields])


def test_keep_counts_follow_the_schedules():
    assert rfe.keep_counts(160, 10, "halve") == (160, 80, 40, 20, 10)
    assert rfe.keep_counts(160, 6, "halve") == (160, 80, 40, 20, 10, 6)
    assert rfe.keep_counts(10, 5, "fraction:0.2") == (10, 8, 7, 6, 5)
    assert rfe.keep_counts(10, 3, "step:4") == (10, 6, 3)
    np.testing.assert_array_equal(rfe.pad_counts([(8, 4, 2), (8, 2)]), [[8, 4, 2], [8, 2, 2]])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: rfe.keep_counts(10, 10, "halve"), "k"),
        (lambda: rfe.keep_counts(10, 0, "halve"), "k"),
        (lambda: rfe.parse_schedule("fraction:1.5"), "fraction"),
        (lambda: rfe.parse_schedule("fraction:0"), "fraction"),
        (lambda: rfe.parse_schedule("thirds"), "schedule"),
        (lambda: rfe.parse_schedule("step:0"), "step"),
    ],
)
def test_bad_schedules_and_targets_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_masked_columns_have_no_effect_on_output_or_attributions(getkey):
    width = 6
    model = mlp(width, depth=2, width=8)
    params = model.init(getkey())
    mask = jnp.array([1, 0, 1, 1, 0, 1], jnp.float32)[None]
    f = lambda z: model.apply(params, z * mask)[:, 0]  # noqa: E731  (how eliminate builds f)
    x = jax.random.normal(getkey(), (5, width))
    shaken = x.at[:, 1].set(100.0).at[:, 4].set(-3.0)
    np.testing.assert_array_equal(f(x), f(shaken))
    key = getkey()
    for name in METHODS + ("input_x_gradient", "smoothgrad", "gradient_shap"):
        extra = {"key": key} if name in attribution.NEEDS_KEY else {}
        if name == "gradient_shap":
            extra["baselines"] = x[:2]
        attr = attribution.METHODS[name](f, x, **extra)
        if name == "feature_ablation":
            # f(x) once, the ablated copies side by side (a vmap): XLA may round the two differently (jax 0.12 on a
            # CPU does, by 1e-8 here), so a masked column's drop is rounding, not exactly 0. RFE zeroes dropped
            # columns' importance itself (rfe.py).
            assert np.abs(attr[:, [1, 4]]).max() <= 1e-6 * np.abs(f(x)).max(), name
            continue
        np.testing.assert_array_equal(attr[:, 1], 0.0, err_msg=name)
        np.testing.assert_array_equal(attr[:, 4], 0.0, err_msg=name)


def test_grid_of_formulas_and_methods_compiles_once_and_finds_the_signal():
    problems = [_linear_problem(seed) for seed in range(5)]
    members = [(p, mi) for p in problems for mi in range(len(METHODS))]  # 5 problems x 4 methods
    grid = _stack([p for p, _ in members])
    counts = rfe.pad_counts([rfe.keep_counts(8, 2, "halve")] * len(members))
    keys = jax.random.split(jax.random.key(0), len(members))
    model = mlp(8, depth=1, width=16)
    before = rfe._TRACES["eliminate"]
    kwargs = dict(model=model, methods=METHODS, epochs=150, learning_rate=1e-2)
    records = rfe.eliminate(grid, counts, [mi for _, mi in members], keys, **kwargs)
    rfe.eliminate(grid, counts, [mi for _, mi in members], jax.random.split(jax.random.key(1), len(members)), **kwargs)
    assert rfe._TRACES["eliminate"] == before + 1
    assert records.mask.shape == (20, 3, 8)
    np.testing.assert_array_equal(records.kept[0], [8, 4, 2])
    # Every method keeps exactly the two predictive columns at the end.
    np.testing.assert_array_equal(records.kept_precision[:, -1], 1.0)
    # Masks shrink monotonically and dropped columns carry no importance.
    masks = np.asarray(records.mask)
    assert np.all(masks[:, 1:] <= masks[:, :-1])
    assert np.all(np.asarray(records.importance)[~masks] == 0)


def test_early_stop_keeps_the_features_before_the_loss_rises():
    grid = _stack([_linear_problem(3)])
    counts = rfe.pad_counts([rfe.keep_counts(8, 1, "halve")])  # 8, 4, 2, 1: the last step drops signal
    records = rfe.eliminate(grid, counts, [0], jax.random.split(jax.random.key(0), 1), model=mlp(8, depth=1, width=16),
                            methods=("saliency",), epochs=200, learning_rate=1e-2, early_stop=True)
    kept = np.asarray(records.kept[0])
    np.testing.assert_array_equal(kept, [8, 4, 2, 1, 2])  # the 1-feature round's loss rose: back to 2
    assert records.rank_loss[0, 3] > records.rank_loss[0, 2]


def test_classification_metrics_match_sklearn():
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, 200)
    score = rng.normal(size=200) + label
    score[:20] = np.round(score[:20])  # some ties
    np.testing.assert_allclose(rfe.roc_auc(jnp.asarray(score), jnp.asarray(label)), roc_auc_score(label, score),
                               rtol=1e-5)
    np.testing.assert_allclose(rfe.balanced_accuracy(jnp.asarray(score), jnp.asarray(label)),
                               balanced_accuracy_score(label, score > 0), rtol=1e-6)


def test_sklearn_baseline_follows_the_schedule():
    problem = _linear_problem(1)
    records = rfe.sklearn_eliminate(problem, (8, 4, 2), "linear", "regression", seed=0)
    assert [r["kept"] for r in records] == [8, 4, 2]
    assert records[-1]["kept_precision"] == 1.0  # a linear target is easy for linear RFE
    assert np.all(records[-1]["mask"] <= records[0]["mask"])


def test_run_on_formulas_with_baselines(tmp_path):
    config = track.RFEConfig(formulas=(6, 9), noise_features=10, n=600, epochs=60, depth=1, width=16,
                             methods=("saliency", "feature_ablation"), baselines=("linear", "tree"))
    frame = track.run(config, out=tmp_path, progress=False)
    written = pd.read_csv(tmp_path / "results.csv")
    assert list(written.columns) == list(track.COLUMNS) and (written["track"] == "rfe").all()
    final = written[written["final"]]
    assert set(final["method"]) == {"saliency", "feature_ablation", "sklearn_linear", "sklearn_tree"}
    assert (final["features_kept"] == final["formula"].map({6: 2, 9: 5})).all()
    assert final["mlp_test_mae"].notna().all()  # baselines' selections scored by the same network
    assert "| sklearn_tree | baseline |" in track.summary_table(frame)


def test_run_on_breast_cancer_with_noise_columns(tmp_path):
    config = track.RFEConfig(dataset="breast_cancer", add_noise=10, epochs=30, depth=1, width=8,
                             methods=("saliency",), baselines=("logistic",), schedules=("fraction:0.5",))
    frame = track.run(config, progress=False)
    final = frame[frame["final"]]
    assert (final["features_kept"] == 3).all() and final["mlp_roc_auc"].between(0.5, 1).all()
    assert final["functional_precision"].notna().all()  # the appended noise columns are known


def test_csv_dataset_and_its_errors(tmp_path, capsys):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(120, 5)), columns=list("abcde"))
    frame["y"] = 3 * frame["a"] + frame["b"] ** 2
    good = tmp_path / "good.csv"
    frame.to_csv(good, index=False)
    code = cli.main(["rfe", "--csv", str(good), "--target", "y", "--k", "2", "--epochs", "20", "--methods",
                     "saliency", "--baselines", "linear", "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 0 and (tmp_path / "o" / "results.csv").exists()
    capsys.readouterr()

    bad_text = frame.assign(c=["x"] * 120)
    bad_nan = frame.copy()
    bad_nan.loc[3, "d"] = np.nan
    cases = {"text.csv": (bad_text, "non-numeric"), "nan.csv": (bad_nan, "NaN")}
    for name, (table, message) in cases.items():
        table.to_csv(tmp_path / name, index=False)
        code = cli.main(["rfe", "--csv", str(tmp_path / name), "--target", "y", "--out", str(tmp_path / name[:-4])])
        assert code == 2 and message in capsys.readouterr().err
    for argv, message in [
        (["--csv", str(good), "--target", "z"], "--target"),
        (["--csv", str(tmp_path / "missing.csv"), "--target", "y"], "no such file"),
        (["--csv", str(good), "--target", "y", "--k", "5"], "k"),
        (["--csv", str(good), "--target", "y", "--schedule", "fraction:2"], "fraction"),
        (["--formulas", "10", "--k", "0"], "k"),
    ]:
        code = cli.main(["rfe", *argv, "--out", str(tmp_path / "never"), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "never").exists()


def test_ties_and_non_finite_scores_are_not_handed_to_the_first_columns():
    """A dead model (every score NaN) ranks at random, not columns 0..m-1 (the predictive ones by construction)."""
    dead = jnp.full(8, jnp.nan)
    eligible = jnp.array([True] * 6 + [False] * 2)
    picks = [np.flatnonzero(rfe._keep_top(dead, 3, jax.random.key(k), eligible)) for k in range(20)]
    assert all(len(p) == 3 and p.max() < 6 for p in picks)  # exactly n, never a dropped column
    assert len({tuple(p) for p in picks}) > 5 and np.mean([set(p) == {0, 1, 2} for p in picks]) < 0.3
    # Finite scores win over non-finite ones (inf is an overflow, not a strong feature); ties go either way with a
    # key, and to the lower index without one (the old rule).
    score = jnp.array([jnp.nan, 1.0, jnp.inf, 0.5, 0.5, -jnp.inf])
    got = {tuple(np.flatnonzero(rfe._keep_top(score, 2, jax.random.key(k)))) for k in range(20)}
    assert got == {(1, 3), (1, 4)}
    np.testing.assert_array_equal(np.flatnonzero(rfe._keep_top(score, 3)), [1, 3, 4])


def test_a_diverged_elimination_scores_at_chance_not_perfectly():
    grid = _stack([_linear_problem(seed) for seed in range(8)])
    counts = rfe.pad_counts([rfe.keep_counts(8, 2, "halve")] * 8)
    records = rfe.eliminate(grid, counts, np.zeros(8, int), jax.random.split(jax.random.key(0), 8),
                            model=mlp(8, depth=1, width=16), methods=("saliency",), epochs=5, learning_rate=1e30)
    assert not np.isfinite(np.asarray(records.rank_loss)).any()  # dead models
    precision = np.asarray(records.kept_precision[:, -1])
    assert precision.mean() < 0.75 and (records.kept[:, -1] == 2).all()  # chance 0.25; before: 1.0 every time


def test_members_compute_their_own_method_only(monkeypatch):
    """Grouped by method when the program is built: a method no member uses is never traced, and a mixed grid
    gives each member the records of its own method's grid."""
    traced = []
    original = attribution.METHODS["feature_ablation"]

    def watched(*args, **kwargs):
        traced.append(1)
        return original(*args, **kwargs)

    monkeypatch.setitem(attribution.METHODS, "feature_ablation", watched)
    problems = [_linear_problem(seed) for seed in range(4)]
    counts = rfe.pad_counts([rfe.keep_counts(8, 2, "halve")] * 4)
    keys = jax.random.split(jax.random.key(0), 4)
    kwargs = dict(model=mlp(8, depth=1, width=8), epochs=10, learning_rate=1e-2)
    rfe.eliminate(_stack(problems), counts, np.zeros(4, int), keys, methods=("saliency", "feature_ablation"),
                  **kwargs)
    assert traced == []  # compiled in before: every member computed it every round
    ids = np.array([1, 0, 0, 1])  # feature ablation, saliency, saliency, feature ablation
    mixed = rfe.eliminate(_stack(problems), counts, ids, keys, methods=("saliency", "feature_ablation"), **kwargs)
    assert traced
    for name, members in (("saliency", np.array([1, 2])), ("feature_ablation", np.array([0, 3]))):
        alone = rfe.eliminate(_stack([problems[g] for g in members]), counts[members], np.zeros(2, int), keys[members],
                              methods=(name,), **kwargs)
        for field in ("mask", "kept_precision", "test_mae"):
            np.testing.assert_allclose(np.asarray(getattr(mixed, field))[members], getattr(alone, field),
                                       rtol=1e-5, atol=1e-6, err_msg=f"{name} {field}")
    with pytest.raises(ValueError, match="method_ids"):
        rfe.eliminate(_stack(problems), counts, np.array([0, 1, 2, 0]), keys, methods=("saliency", "deeplift"),
                      **kwargs)


def test_each_method_reports_its_own_time(tmp_path):
    config = track.RFEConfig(formulas=(6,), noise_features=6, n=100, epochs=5, depth=1, width=8,
                             methods=("saliency", "feature_ablation"), baselines=(), seeds=(0, 1))
    frame = track.run(config, progress=False)
    per_method = frame.groupby("method")["seconds"]
    assert (per_method.nunique() == 1).all()  # one time per method, repeated on its rows
    assert per_method.first()["saliency"] != per_method.first()["feature_ablation"]


def test_rfe_learns_the_predictive_column():
    """The cheap learning check of the default suite: y = a among 7 noise columns (chance 1/8) is found."""
    config = track.RFEConfig(formulas=(0,), noise_features=7, n=400, epochs=150, depth=1, width=16,
                             learning_rate=1e-2, methods=("saliency",), baselines=(), seeds=(0, 1))
    final = track.run(config, progress=False).query("final")
    assert (final["selected"] == "0").all() and (final["functional_precision"] == 1.0).all()
    assert (final["mlp_test_mae"] < 0.1).all()  # y's std is 0.33
