"""The vision runner and CLI: rows, files, figure, and clear errors before any work."""

import json

import numpy as np
import pandas as pd
import pytest

from chaosjax import cli
from chaosjax.tracks import vision as T


def _check_run(tmp_path, conditions, methods, seeds):
    config = T.VisionConfig(conditions=conditions, methods=methods, train_size=64,
                            val_size=8, epochs=1, batch_size=32, seeds=seeds, width=4, attribution_chunk=4)
    frame = T.run(config, out=tmp_path / "run", progress=False)
    assert list(frame.columns) == list(T.COLUMNS)
    assert len(frame) == len(conditions) * len(methods) * len(seeds) and set(frame["track"]) == {"vision"}
    for col in ("accuracy", "iou", "iou_corrected", "mass_in_box", "pointing"):
        assert frame[col].between(0, 1).all(), col
    on_disk = pd.read_csv(tmp_path / "run" / "results.csv")
    assert len(on_disk) == len(frame)
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["track"] == "vision" and meta["config"]["preset"] == "tiny" and "jax" in meta["environment"]
    assert (tmp_path / "run" / "figures" / "samples.png").stat().st_size > 10_000
    # The report's gallery contract: one canvas per condition with every method's map, its box and a title.
    with np.load(tmp_path / "run" / "examples.npz") as ex:
        assert ex["inputs"].shape == (len(conditions), 56, 56, 3) and ex["boxes"].shape == (len(conditions), 4)
        assert [t.split(" / ")[0] for t in ex["titles"]] == list(conditions)
        for m in methods:
            assert ex[f"attr_{m}"].shape == ex["inputs"].shape and np.isfinite(ex[f"attr_{m}"]).all()
        assert ((ex["boxes"][:, 2:] - ex["boxes"][:, :2]) == 8).all()
    assert f"| {conditions[0]} | cnn | {methods[0]} |" in T.summary_table(frame)
    with pytest.raises(ValueError, match="already holds results.csv"):
        T.run(config, out=tmp_path / "run", progress=False)


def test_run_writes_results_and_figure(tmp_path):
    _check_run(tmp_path, ("SBRP",), ("saliency",), (0,))


@pytest.mark.slow
def test_run_grid_with_seeds(tmp_path):
    _check_run(tmp_path, ("RBFP", "SBRP"), ("saliency", "feature_ablation"), (0, 1))


@pytest.mark.slow
def test_small_cnn_learns_tiny_rbfp_and_saliency_localises(tmp_path):
    """Acceptance on this CPU, shortened (~3 min): 640 steps of the default learning rate on RBFP."""
    config = T.VisionConfig(conditions=("RBFP",), methods=("saliency", "random_baseline"), epochs=5)
    frame = T.run(config, progress=False).set_index("method")
    assert frame.loc["saliency", "accuracy"] > 0.5  # chance 0.1
    assert frame.loc["saliency", "mass_in_box"] > 3 * frame.loc["random_baseline", "mass_in_box"]


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--conditions", "RBFP,XXYY"], "conditions"),
        (["--models", "lenet"], "models"),
        (["--methods", "gradcam"], "methods"),
        (["--preset", "huge"], "preset"),
        (["--source", "cifar10:/no/such/dir"], "source"),
        (["--source", "mnist"], "source"),
        (["--background", "flowers102"], "background"),
        (["--batch-size", "500", "--train-size", "100"], "batch_size"),
        (["--seeds", "1,1"], "seeds"),
    ],
)
def test_cli_bad_input_fails_fast(argv, match, tmp_path, capsys):
    code = cli.main(["vision", "--out", str(tmp_path / "o"), "--quiet", *argv])
    err = capsys.readouterr().err
    assert code == 2 and match in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # nothing written


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="train_size"):
        T.VisionConfig(train_size=0).validate()
    with pytest.raises(ValueError, match="loop"):
        T.VisionConfig(loop="while").validate()
    with pytest.raises(ValueError, match="warmup_steps"):
        T.VisionConfig(warmup_steps=T.VisionConfig().steps).validate()


# The default suite's learning check (384 steps of the small CNN on RBFP leave chance) is the vision notebook's tiny
# run: tests/test_notebooks.py reads its results.
