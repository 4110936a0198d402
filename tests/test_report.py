"""`chaosjax report`: every figure of every track, report.md, the CLI, and one-line errors on bad input.

The symbolic report runs on a real (tiny) run of the track; vision, audio and RFE on synthetic tables in the
shape those tracks write (see the contract in `chaosjax/report.py`), with an `examples.npz` for the galleries.
"""

import json
import shutil

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from chaosjax import cli, report as rp
from chaosjax.attribution import METHODS
from chaosjax.tracks import symbolic as track

TINY = dict(noise_features=6, n=240, epochs=30, depth=2, width=16, ig_steps=4, smoothgrad_samples=2, shap_samples=2)
SYMBOLIC_FIGURES = ("symbolic_methods", "symbolic_ablation_noise", "symbolic_formulas")


def assert_image(path, min_width=500, min_height=250):
    """A real figure: big enough, with ink, contrast and colour, not a blank canvas."""
    assert path.is_file(), path
    img = matplotlib.image.imread(path)
    height, width = img.shape[:2]
    assert width >= min_width and height >= min_height, (path.name, img.shape)
    rgb = img[..., :3].reshape(-1, 3)
    gray = rgb.mean(axis=1)
    assert gray.std() > 0.05, path.name  # contrast
    assert 0.02 < (gray < 0.9).mean() < 0.98, path.name  # ink on a background
    colourful = (rgb.max(axis=1) - rgb.min(axis=1)) > 0.25
    assert colourful.mean() > 0.005, path.name  # the palette is there, not only black text
    assert len(np.unique((rgb * 255).astype(np.uint8), axis=0)) > 50, path.name


# ---------------------------------------------------------------------------------------- synthetic tracks


def vision_frame(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    skill = {"saliency": 0.35, "integrated_gradients": 0.55, "feature_ablation": 0.7, "random_baseline": 0.05}
    for condition in ("RBFP", "RBRP", "SBFP", "SBRP"):
        for model in ("cnn_small", "vit_tiny"):
            for s in range(3):
                accuracy = float(rng.uniform(0.6, 0.95))
                for method, base in skill.items():
                    iou = float(np.clip(base + rng.normal(0, 0.05) - 0.15 * condition.startswith("SB"), 0, 1))
                    rows.append(dict(track="vision", condition=condition, model=model, method=method, seed=s,
                                     accuracy=accuracy, iou=iou, iou_corrected=min(iou * 1.05, 1.0),
                                     mass_in_box=float(np.clip(iou + 0.1, 0, 1)), pointing=float(iou > 0.3),
                                     seconds=float(rng.uniform(0.1, 2.0))))
    return pd.DataFrame(rows)


def vision_examples(n=3, size=64, seed=0):
    rng = np.random.default_rng(seed)
    inputs = rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32)
    boxes = []
    arrays = {}
    for i in range(n):
        r, c = rng.integers(0, size - 16, 2)
        inputs[i, r:r + 16, c:c + 16] = np.linspace(-1, 1, 16)[:, None, None]
        boxes.append((r, c, r + 16, c + 16))
    boxes = np.array(boxes, np.int32)
    for method in ("saliency", "integrated_gradients", "feature_ablation"):
        attr = rng.normal(0, 0.3, (n, size, size, 3))
        for i, (r, c, r1, c1) in enumerate(boxes):
            attr[i, r:r1, c:c1] += 2.0
        arrays[f"attr_{method}"] = attr.astype(np.float32)
    titles = np.array([f"RBRP / cnn_small / label {i}" for i in range(n)])
    return dict(inputs=inputs, boxes=boxes, titles=titles, **arrays)


def audio_frame(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for condition in ("RBFP", "RBRP", "SBFP", "SBRP"):
        for model in ("rnn", "lstm", "tcn", "transformer"):
            for s in range(2):
                for method, base in (("saliency", 0.5), ("deeplift", 0.6), ("feature_ablation", 0.8)):
                    mass = float(np.clip(base + rng.normal(0, 0.08), 0, 1))
                    rows.append(dict(track="audio", condition=condition, model=model, method=method, seed=s,
                                     accuracy=float(rng.uniform(0.5, 0.9)), channel_mass=mass,
                                     channel_hit=float(mass > 0.5), seconds=0.3))
    return pd.DataFrame(rows)


def audio_examples(n=2, steps=400, channels=10, seed=0):
    rng = np.random.default_rng(seed)
    inputs = np.clip(rng.normal(0, 0.25, (n, steps, channels)), -1, 1).astype(np.float32)
    true = rng.integers(0, channels, n)
    t = np.arange(steps)
    for i, c in enumerate(true):
        inputs[i, :, c] = 0.8 * np.sin(t / 6.0) * np.exp(-((t - steps / 3) / (steps / 8)) ** 2)
    arrays = {}
    for method in ("saliency", "deeplift", "feature_ablation"):
        attr = rng.normal(0, 0.1, (n, steps, channels))
        attr[np.arange(n), :, true] += rng.normal(0.5, 0.2, (n, steps))
        arrays[f"attr_{method}"] = attr.astype(np.float32)
    return dict(inputs=inputs, channels=true.astype(np.int64), **arrays)


def rfe_frame(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    kept = (160, 80, 40, 20, 10)
    methods = {"saliency": 60.0, "integrated_gradients": 90.0, "sklearn_linear": 0.05, "sklearn_tree": 0.8}
    for formula in range(10, 15):
        for s in range(2):
            for method, cost in methods.items():
                for r, k in enumerate(kept):
                    quality = 0.9 if method in METHODS else 0.5
                    fp = float(np.clip(10 / k + (quality - 0.5) * (1 - 10 / k) * 0.5 + rng.normal(0, 0.03), 0, 1))
                    rows.append(dict(track="rfe", formula=str(formula), method=method, seed=s, round=r,
                                     features_kept=k, test_mae=float(0.3 * (1 - fp) + rng.uniform(0.02, 0.05)),
                                     functional_precision=fp, seconds=cost / len(kept) * rng.uniform(0.8, 1.2)))
    return pd.DataFrame(rows)


def write_run(path, frame, track_name, examples=None, schema_version=track.SCHEMA_VERSION):
    path.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path / "results.csv", index=False)
    meta = {"schema_version": schema_version, "track": track_name, "config": {}, "environment": {"jax": "x"},
            "wall_seconds": {"total": 12.0}}
    (path / "config.json").write_text(json.dumps(meta))
    if examples is not None:
        np.savez(path / "examples.npz", **examples)
    return path


@pytest.fixture(scope="module")
def symbolic_run(tmp_path_factory):
    """A tiny sweep of the symbolic track: 2 formulas x 2 seeds x 2 noise settings x 3 methods."""
    out = tmp_path_factory.mktemp("symbolic")
    config = track.SymbolicConfig(formulas=(0, 6), seeds=(0, 1), methods=("saliency", "integrated_gradients",
                                  "random_baseline"), sweep=("noise", (2, 6)), **TINY)
    track.run(config, out=out, progress=False)
    return out


# ----------------------------------------------------------------------------------------------- symbolic


def test_symbolic_report_writes_every_figure_and_the_markdown(symbolic_run):
    result = rp.report(symbolic_run, formats=("png", "svg"))
    assert result.tracks == ("symbolic",)
    assert result.markdown == symbolic_run / "report.md"
    names = {p.name for p in result.figures}
    for stem in SYMBOLIC_FIGURES:
        assert {f"{stem}.png", f"{stem}.svg"} <= names
        assert_image(symbolic_run / "figures" / f"{stem}.png")
        assert (symbolic_run / "figures" / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
    text = result.markdown.read_text()
    for stem in SYMBOLIC_FIGURES:
        assert f"](figures/{stem}.png)" in text
    # The method table carries every method with a mean and a CI; the ablation table every swept value.
    for method in ("saliency", "integrated_gradients", "random_baseline"):
        assert f"| `{method}` | " in text
    assert "### Ablation: noise columns" in text and "\n| 2 | " in text and "\n| 6 | " in text
    assert "f6 `0.25*a**3 + 0.75*b**2`" in text
    assert "±" in text


def test_symbolic_report_without_a_sweep_skips_the_ablation(symbolic_run, tmp_path):
    frame = pd.read_csv(symbolic_run / "results.csv", dtype={"formula": str})
    one = frame[frame["noise_features"] == 6].assign(sweep_axis="")
    write_run(tmp_path, one, "symbolic")
    result = rp.report(tmp_path)
    assert {p.stem for p in result.figures} == {"symbolic_methods", "symbolic_formulas"}
    assert "Ablation" not in result.markdown.read_text()


def test_cli_report_prints_where_the_figures_are(symbolic_run, capsys):
    assert cli.main(["report", str(symbolic_run)]) == 0
    out = capsys.readouterr().out
    assert f"report: {symbolic_run / 'report.md'}" in out
    assert f"figures: {symbolic_run / 'figures'}/" in out and "symbolic_methods.png" in out


def test_run_default_ends_with_the_report(monkeypatch, symbolic_run, tmp_path, capsys):
    """`make run` (run-default) writes the report of its run and prints where the figures are."""
    def tiny_symbolic(args):  # stands in for the study-sized run: the tiny run's results, copied
        assert args.overwrite and args.out == str(tmp_path / "default")
        shutil.copytree(symbolic_run, args.out, ignore=shutil.ignore_patterns("figures", "report.md"))
        return 0

    monkeypatch.setattr(track, "run_cli", tiny_symbolic)
    assert cli.main(["run-default", "--out", str(tmp_path / "default")]) == 0
    out = capsys.readouterr().out
    assert f"figures: {tmp_path / 'default' / 'figures'}/" in out
    assert_image(tmp_path / "default" / "figures" / "symbolic_methods.png")
    assert (tmp_path / "default" / "report.md").is_file()


# --------------------------------------------------------------------------------------- the other tracks


def test_vision_report_bars_and_gallery(tmp_path):
    write_run(tmp_path, vision_frame(), "vision", vision_examples())
    result = rp.report(tmp_path)
    assert [p.name for p in result.figures] == ["vision_scores.png", "vision_gallery.png"]
    assert_image(tmp_path / "figures" / "vision_scores.png", 900, 500)
    assert_image(tmp_path / "figures" / "vision_gallery.png", 600, 500)
    text = result.markdown.read_text()
    assert "| RBFP | cnn_small |" in text and "IoU" in text and "attribution mass in box" in text


def test_vision_report_without_examples_says_so(tmp_path):
    write_run(tmp_path, vision_frame(), "vision")
    result = rp.report(tmp_path)
    assert [p.name for p in result.figures] == ["vision_scores.png"]
    assert "gallery skipped" in result.markdown.read_text()


def test_audio_report_bars_and_clips(tmp_path):
    write_run(tmp_path, audio_frame(), "audio", audio_examples())
    result = rp.report(tmp_path)
    assert [p.name for p in result.figures] == ["audio_scores.png", "audio_examples.png"]
    assert_image(tmp_path / "figures" / "audio_scores.png", 900, 400)
    assert_image(tmp_path / "figures" / "audio_examples.png", 900, 400)
    assert "chance 0.10 (10 channels)" in result.markdown.read_text()


def test_rfe_report_curves_and_time(tmp_path):
    write_run(tmp_path, rfe_frame(), "rfe")
    result = rp.report(tmp_path)
    assert [p.name for p in result.figures] == ["rfe_curves.png", "rfe_time.png"]
    assert_image(tmp_path / "figures" / "rfe_curves.png", 500, 500)
    assert_image(tmp_path / "figures" / "rfe_time.png", 600, 250)
    text = result.markdown.read_text()
    assert "| `sklearn_linear` |" in text and "| `saliency` |" in text and "Final features of each run" in text


def test_rfe_report_on_a_tiny_run_of_the_track(tmp_path):
    from chaosjax.tracks import rfe as rfe_track

    config = rfe_track.RFEConfig(formulas=(10, 11), noise_features=8, n=200, epochs=10, depth=2, width=16,
                                 seeds=(0, 1), methods=("saliency",), baselines=("linear",))
    rfe_track.run(config, out=tmp_path, progress=False)
    result = rp.report(tmp_path)
    assert [p.name for p in result.figures] == ["rfe_curves.png", "rfe_time.png"]
    assert_image(tmp_path / "figures" / "rfe_curves.png", 500, 500)
    assert_image(tmp_path / "figures" / "rfe_time.png", 600, 250)
    text = result.markdown.read_text()
    assert "| `saliency` |" in text and "| `sklearn_linear` |" in text and "network test MAE" in text


def test_rfe_report_on_real_data_columns_facets_by_dataset(tmp_path):
    rng = np.random.default_rng(1)
    rows = [dict(track="rfe", dataset=d, method=m, seed=s, round=r, features_kept=k,
                 balanced_accuracy=rng.uniform(0.6, 0.8), roc_auc=rng.uniform(0.7, 0.9), seconds=1.0)
            for d in ("adult", "credit") for m in ("saliency", "sklearn_logistic") for s in range(3)
            for r, k in enumerate((12, 6, 3))]
    write_run(tmp_path, pd.DataFrame(rows), "rfe")
    result = rp.report(tmp_path)
    assert_image(tmp_path / "figures" / "rfe_curves.png", 700, 400)
    assert "balanced accuracy" in result.markdown.read_text()


def test_one_directory_with_several_tracks(tmp_path):
    frame = pd.concat([vision_frame(), rfe_frame()], ignore_index=True)
    write_run(tmp_path, frame, "mixed")
    np.savez(tmp_path / "examples_vision.npz", **vision_examples())
    result = rp.report(tmp_path)
    assert result.tracks == ("vision", "rfe")
    assert {p.name for p in result.figures} == {"vision_scores.png", "vision_gallery.png", "rfe_curves.png",
                                                "rfe_time.png"}
    text = result.markdown.read_text()
    assert text.index("## Vision track") < text.index("## Recursive feature elimination")


# ---------------------------------------------------------------------------------------------- colours


def test_every_method_has_a_fixed_distinct_colour():
    assert set(rp.METHOD_COLORS) == set(METHODS)
    assert len(set(rp.METHOD_COLORS.values())) == len(METHODS)
    a = rp.method_colors(["feature_ablation", "saliency", "sklearn_tree", "sklearn_linear"])
    b = rp.method_colors(["sklearn_linear", "saliency", "integrated_gradients", "sklearn_tree", "feature_ablation"])
    for name in ("feature_ablation", "saliency", "sklearn_linear", "sklearn_tree"):
        assert a[name] == b[name]
    assert a["sklearn_linear"] != a["sklearn_tree"]
    assert not {a["sklearn_linear"], a["sklearn_tree"]} & set(rp.METHOD_COLORS.values())


# -------------------------------------------------------------------------------------------- bad input


def _one_line_error(argv, capsys):
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("chaosjax: error: report: ") and err.count("\n") == 1, err
    return err


def test_a_directory_without_results_is_one_line(tmp_path, capsys):
    err = _one_line_error(["report", str(tmp_path)], capsys)
    assert "no results" in err and "results.csv" in err
    assert not (tmp_path / "figures").exists() and not (tmp_path / "report.md").exists()
    assert "does not exist" in _one_line_error(["report", str(tmp_path / "nope")], capsys)


def test_a_newer_schema_is_refused_in_one_line(tmp_path, capsys):
    write_run(tmp_path, vision_frame(), "vision", schema_version=track.SCHEMA_VERSION + 1)
    err = _one_line_error(["report", str(tmp_path)], capsys)
    assert "written by a newer chaosjax" in err and f"schema {track.SCHEMA_VERSION + 1}" in err
    assert not (tmp_path / "figures").exists() and not (tmp_path / "report.md").exists()


@pytest.mark.parametrize("case, expected", [
    ("empty", "is empty"),
    ("header_only", "holds no result rows"),
    ("no_track", "no 'track' column"),
    ("unknown_track", "unknown track ['tabular']"),
    ("missing_columns", "the vision rows lack the columns mass_in_box"),
    ("bad_json", "is not valid JSON"),
    ("bad_schema", "schema_version must be an integer"),
    ("bad_examples", "needs 'boxes' of shape (3, 4)"),
])
def test_bad_results_are_one_line_errors(tmp_path, capsys, case, expected):
    frame = vision_frame()
    write_run(tmp_path, frame, "vision")
    results = tmp_path / "results.csv"
    if case == "empty":
        results.write_text("")
    elif case == "header_only":
        results.write_text(",".join(frame.columns) + "\n")
    elif case == "no_track":
        frame.drop(columns="track").to_csv(results, index=False)
    elif case == "unknown_track":
        frame.assign(track="tabular").to_csv(results, index=False)
    elif case == "missing_columns":
        frame.drop(columns="mass_in_box").to_csv(results, index=False)
    elif case == "bad_json":
        (tmp_path / "config.json").write_text("{not json")
    elif case == "bad_schema":
        (tmp_path / "config.json").write_text(json.dumps({"schema_version": "one"}))
    elif case == "bad_examples":
        examples = vision_examples()
        del examples["boxes"]
        np.savez(tmp_path / "examples.npz", **examples)
    err = _one_line_error(["report", str(tmp_path)], capsys)
    assert expected in err, err
    with pytest.raises(ValueError, match="^report: "):
        rp.report(tmp_path)
    assert not (tmp_path / "figures").exists() and not (tmp_path / "report.md").exists()


def test_unknown_figure_format_is_refused(symbolic_run):
    with pytest.raises(ValueError, match="formats: unknown"):
        rp.report(symbolic_run, formats=("png", "gif"))
