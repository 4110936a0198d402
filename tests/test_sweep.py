"""Sweeps: planning and its errors, sharding across fake devices, resume after SIGKILL, checkpoints."""

import json
import os
import signal
import subprocess
import sys
import time
import threading
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest

from chaosjax import cli, sweep
from chaosjax.tracks import symbolic as sym
from sharding_probe import assert_split

ROOT = Path(__file__).resolve().parents[1]
METRICS = ["functional_precision", "uniform_score", "consistency", "test_mae", "final_loss"]

TINY = """
[sweep]
chunk_size = {chunk}

[symbolic]
formulas = "0-4"
seeds = [0]
noise = [4]
n = 120
epochs = {epochs}
depth = 1
width = 8
methods = ["saliency", "feature_ablation"]
"""


def _write(tmp_path, name="sweep.toml", chunk=2, epochs=20):
    path = tmp_path / name
    path.write_text(TINY.format(chunk=chunk, epochs=epochs))
    return path


def _run_cli(args, env_extra=None, wait=True, probe=None):
    """`chaosjax sweep ARGS --quiet` in a subprocess; with `probe`, under `sharding_probe`, which writes there
    where the grid programs' arrays lived."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    launcher = ["-m", "chaosjax"] if probe is None else [str(ROOT / "tests" / "sharding_probe.py"), str(probe)]
    cmd = [sys.executable, *launcher, "sweep", *map(str, args), "--quiet"]
    if wait:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _sorted(frame):
    return frame.sort_values(["noise_features", "formula", "seed", "method"]).reset_index(drop=True)


def test_plan_cuts_the_grid_into_chunks():
    plan = sweep.plan({"sweep": {"chunk_size": 4}, "symbolic": {"formulas": "0-4", "seeds": "0-1",
                                                                "noise": [10, 20], "lr": [1e-3, 1e-2]}})
    assert plan.cells == 5 * 2 * 2 * 2 and len(plan.chunks) == 4 * 3
    assert {len(c.cells) for c in plan.chunks} == {4, 2}
    assert len({c.id for c in plan.chunks}) == len(plan.chunks)
    settings = {(c.setting.noise_features, c.setting.learning_rate) for c in plan.chunks}
    assert settings == {(10, 1e-3), (10, 1e-2), (20, 1e-3), (20, 1e-2)}


def test_combine_each_sweeps_one_axis_at_a_time_and_runs_shared_settings_once():
    # The study's ablation shape: each axis lists the default (noise 100, lr 1e-3), which then runs once.
    table = {"formulas": "0-1", "noise": [50, 100], "lr": [1e-4, 1e-3, 1e-2]}
    plan = sweep.plan({"sweep": {"combine": "each"}, "symbolic": table})
    settings = [(c.setting.noise_features, c.setting.learning_rate) for c in plan.chunks]
    assert settings == [(50, 1e-3), (100, 1e-3), (100, 1e-4), (100, 1e-2)]
    assert plan.spec["sweep"]["combine"] == "each" and plan.cells == 4 * 2
    assert "combine" not in sweep.plan({"symbolic": table}).spec["sweep"]  # older directories still resume
    # The study's whole ablation, as shipped: 36 listed settings, 29 distinct.
    ablation = sweep.plan(sweep.load_toml(ROOT / "examples" / "ablation.toml"))
    assert len(ablation.chunks) == 29 and ablation.cells == 29 * 15 * 3
    assert sweep.describe(ablation).splitlines()[1].startswith("  symbolic: 29 settings, 29 chunks, 1305 cells")
    vision = sweep.plan({"sweep": {"combine": "each"},
                         "vision": {"conditions": ["RBFP"], "learning_rate": [3e-3, 1e-2], "batch_size": [32, 64]}})
    assert [(c.setting.learning_rate, c.setting.batch_size) for c in vision.chunks] == [
        (3e-3, 64), (1e-2, 64), (1e-2, 32)]  # VisionConfig's defaults: 1e-2, 64


@pytest.mark.parametrize(
    "description, message",
    [
        ({"symbolic": {"formulas": "0-2", "temperature": 3}}, "temperature"),
        ({"images": {}}, "unknown track 'images'"),
        ({"vision": {"temperature": 1}}, r"\[vision\]\.temperature"),
        ({"vision": {"conditions": []}}, "empty grid"),
        ({"vision": {"learning_rate": []}}, "empty grid"),
        ({"vision": {"conditions": ["RBXP"]}}, r"\[vision\]\.conditions"),
        ({"audio": {"models": ["gru"], "source": "synthetic"}}, r"\[audio\]\.models"),
        ({"audio": {"background_gain": [0.5, 2.0], "source": "synthetic"}}, "background_gain"),
        ({"rfe": {"schedules": ["third"]}}, "schedule"),
        ({"rfe": {"noise": 3}}, r"\[rfe\]\.noise"),
        ({"sweep": {"chunk_size": 2}}, "empty grid"),
        ({"symbolic": {"formulas": []}}, "empty grid"),
        ({"symbolic": {"noise": []}}, "empty grid"),
        ({"symbolic": {"seeds": ["a"]}}, "seeds"),
        ({"symbolic": {"methods": ["gradcam"]}}, "methods"),
        ({"symbolic": {"protocol": ["paper", "corrected"]}}, "protocol"),
        ({"sweep": {"workers": 3}, "symbolic": {}}, "workers"),
        ({"symbolic": {"noise": [-1]}}, "noise"),
        ({"sweep": {"combine": "zip"}, "symbolic": {}}, r"\[sweep\]\.combine"),
    ],
)
def test_bad_descriptions_name_the_key(description, message):
    with pytest.raises(ValueError, match=message):
        sweep.plan(description)


def test_combine_each_writes_every_axis_rows_like_separate_one_axis_sweeps(tmp_path, capsys):
    config = tmp_path / "each.toml"
    config.write_text('[sweep]\ncombine = "each"\n\n[symbolic]\nformulas = "0-1"\nseeds = [0]\nn = 120\n'
                      'epochs = 3\ndepth = 1\nwidth = 8\nmethods = ["saliency"]\nnoise = [4, 100]\n'
                      'label_noise = [0.0, 0.01]\n')  # 100 and 0.01: the defaults, shared by both axes
    assert cli.main(["sweep", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| noise_features | method |" in printed and "| label_noise | method |" in printed
    frame = pd.read_csv(tmp_path / "run" / "results.csv")
    assert len(sweep.plan(sweep.load_toml(config)).chunks) == 3  # (4, 0.01), (100, 0.01), (100, 0.0)
    assert frame["sweep_axis"].value_counts().to_dict() == {"noise": 4, "label-noise": 4}
    noise = frame[frame["sweep_axis"] == "noise"].sort_values(["noise_features", "formula"])
    assert list(noise["noise_features"]) == [4, 4, 100, 100] and set(noise["label_noise"]) == {0.01}
    assert cli.main(["sweep", str(config), "--out", str(tmp_path / "run"), "--plan"]) == 0
    assert "3 of 3 chunks recorded (6 cells)" in capsys.readouterr().out
    shared = frame[(frame["noise_features"] == 100) & (frame["label_noise"] == 0.01)]
    by_axis = [g[METRICS].to_numpy() for _, g in shared.sort_values("formula").groupby("sweep_axis")]
    np.testing.assert_array_equal(*by_axis)  # computed once, written for both axes


def test_a_cell_is_bit_identical_in_any_chunk_and_in_the_symbolic_command(tmp_path):
    """On a CPU each cell trains and is attributed alone (`symbolic._cell_by_cell`): chunks of 1, 3 or 5 cells
    and the `symbolic` command's one grid give the same bits in every column but the measurements of the grid
    program (its timings, and its peak memory shared out over its cells)."""
    description = sweep.load_toml(_write(tmp_path, chunk=5, epochs=20))
    description["symbolic"]["n"] = 600  # large enough for XLA to reduce rows differently at each grid size
    description["symbolic"]["methods"] = ["saliency", "integrated_gradients", "feature_ablation"]
    outs = []
    for chunk in (1, 3, 5):
        description["sweep"]["chunk_size"] = chunk
        outs.append(tmp_path / f"chunk{chunk}")
        sweep.run(description, outs[-1], progress=False, log=None)
    outs.append(tmp_path / "symbolic")
    sym.run(sweep.plan(description).chunks[0].setting, out=outs[-1], progress=False)
    columns = [c for c in sym.COLUMNS if c not in ("seconds", "train_seconds", "attr_run_seconds", "attr_peak_bytes")]
    # As written: every digit of every number.
    tables = [_sorted(pd.read_csv(out / "results.csv", dtype=str, keep_default_na=False))[columns] for out in outs]
    assert len(tables[0]) == 15
    for table in tables[1:]:
        pd.testing.assert_frame_equal(table, tables[0])


def test_cli_reports_bad_toml_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[symbolic]\nformulas = '0-2'\nbogus = 1\n")
    assert cli.main(["sweep", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bogus" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_checkpoints_restore_params_bit_identically(tmp_path):
    config = sym.SymbolicConfig(formulas=(0, 6), noise_features=3, n=100, epochs=5, depth=1, width=4)
    grid = sym.build_grid(config, sym.cells_of(config))
    trained = sym.train_grid(config, grid)
    tree = {"params": trained.params, "losses": trained.losses}
    store = sweep._Store(tmp_path, 0, 1)
    store.save_trained("c0", tree, trained.seconds)
    restored, seconds = store.restore_trained("c0", lambda: tree)
    for a, b in zip(jax.tree.leaves(tree), jax.tree.leaves(restored)):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert seconds == trained.seconds
    assert store.restore_trained("never-saved", lambda: tree) is None


def test_checkpoints_hold_real_cells_and_restore_for_any_device_count(tmp_path):
    store, lock = sweep._Store(tmp_path, 0, 1), threading.Lock()
    tree = {"w": np.arange(12, dtype=np.float32).reshape(4, 3)}  # 3 real cells padded to 4 (a copy of the last)
    tree["w"][3] = tree["w"][2]
    calls = []

    def train():
        calls.append(1)
        return tree, 1.5

    got, seconds, restored = sweep._cached_training(store, lock, "c", lambda: {"w": tree["w"][:3]}, train, 3, 4)
    assert calls == [1] and not restored and seconds == 1.5
    # Restored for 8 devices: the 3 saved cells, the last repeated; no training.
    again, seconds, restored = sweep._cached_training(store, lock, "c", lambda: {"w": tree["w"][:3]}, train, 3, 8)
    assert calls == [1] and restored and seconds == 1.5
    np.testing.assert_array_equal(np.asarray(again["w"]), np.concatenate([tree["w"][:3]] + [tree["w"][2:3]] * 5))


def test_sweep_on_four_devices_matches_one_device_and_resumes_after_sigkill(tmp_path):
    config = _write(tmp_path, chunk=3, epochs=20)  # 5 cells in chunks of 3 and 2: neither divides 4 devices
    reference = _run_cli([config, "--out", tmp_path / "one"])
    assert reference.returncode == 0, reference.stderr
    one = pd.read_csv(tmp_path / "one" / "results.csv")
    assert len(one) == 10 and not one.duplicated(["formula", "seed", "method"]).any()

    four = _run_cli([config, "--out", tmp_path / "four"],
                    env_extra={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}, probe=tmp_path / "where.json")
    assert four.returncode == 0, four.stderr
    assert_split(tmp_path / "where.json", ["symbolic"])  # really split, not merely the same numbers
    meta = json.loads((tmp_path / "four" / "config.json").read_text())
    assert meta["environment"]["local_devices"] == 4
    sharded = pd.read_csv(tmp_path / "four" / "results.csv")
    np.testing.assert_allclose(_sorted(sharded)[METRICS], _sorted(one)[METRICS], rtol=1e-4, atol=1e-5)

    # Interrupted: SIGKILL once the first chunk is recorded, then the same command again.
    out = tmp_path / "killed"
    proc = _run_cli([config, "--out", out], wait=False)
    progress = out / "progress.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (progress.exists() and progress.read_text().count("\n") >= 1):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert progress.read_text().count("\n") == 1  # killed part-way: one chunk of two recorded
    resumed = _run_cli([config, "--out", out])
    assert resumed.returncode == 0, resumed.stderr
    final = pd.read_csv(out / "results.csv")
    assert len(final) == len(one) and not final.duplicated(["formula", "seed", "method"]).any()
    np.testing.assert_allclose(_sorted(final)[METRICS], _sorted(one)[METRICS], rtol=1e-5, atol=1e-6)

    # Another config in the same directory is refused; --force-new keeps the old files aside.
    other = tmp_path / "other.toml"
    other.write_text(config.read_text().replace("epochs = 20", "epochs = 21"))
    refused = _run_cli([other, "--out", out])
    assert refused.returncode == 2 and "another config" in refused.stderr and "epochs" in refused.stderr


def test_force_new_moves_the_old_run_aside(tmp_path):
    out = tmp_path / "run"
    sweep.run(sweep.load_toml(_write(tmp_path, chunk=5, epochs=3)), out, progress=False, log=None)
    changed = sweep.load_toml(_write(tmp_path, name="b.toml", chunk=5, epochs=4))
    with pytest.raises(ValueError, match="another config"):
        sweep.run(changed, out, progress=False, log=None)
    frame = sweep.run(changed, out, force_new=True, progress=False, log=None)
    kept = list(out.glob("previous-*/results.csv"))
    assert len(kept) == 1 and len(pd.read_csv(kept[0])) == len(frame) == 10
    assert (frame["epochs"] == 4).all()


def test_trained_but_unattributed_chunks_are_restored_from_checkpoints(tmp_path):
    out = tmp_path / "run"
    description = sweep.load_toml(_write(tmp_path, chunk=3, epochs=5))
    first = sweep.run(description, out, progress=False, log=None)
    progress = out / "progress.jsonl"
    lines = progress.read_text().splitlines(keepends=True)
    progress.write_text("".join(lines[:-1]))  # as if killed after training the last chunk, before its rows
    again = sweep.run(description, out, progress=False, log=None)
    last = json.loads(progress.read_text().splitlines()[-1])
    assert last["seconds"]["restored"] is True
    assert len(again) == len(first)
    np.testing.assert_array_equal(_sorted(again)[METRICS], _sorted(first)[METRICS])


def test_workers_overlap_chunks_without_changing_the_results(tmp_path):
    description = sweep.load_toml(_write(tmp_path, chunk=2, epochs=5))
    description["symbolic"]["lr"] = [1e-3, 1e-2]  # 2 settings x 3 chunks
    serial = sweep.run(description, tmp_path / "serial", progress=False, log=None)
    overlapped = sweep.run(description, tmp_path / "overlapped", progress=False, log=None, workers=3)
    assert len(overlapped) == len(serial) == 20
    columns = [c for c in serial.columns if c not in ("seconds", "train_seconds")]
    pd.testing.assert_frame_equal(overlapped[columns], serial[columns])  # same rows, same (plan) order
    progress = (tmp_path / "overlapped" / "progress.jsonl").read_text().splitlines()
    recorded = [json.loads(line)["chunk"] for line in progress]
    assert recorded == [c.id for c in sweep.plan(description).chunks]
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="workers"):
            sweep.run(description, tmp_path / "bad", progress=False, log=None, workers=bad)
    assert not (tmp_path / "bad").exists()


VISION = {"conditions": ["RBFP", "SBRP"], "methods": ["saliency", "random_baseline"], "train_size": 64,
          "val_size": 8, "epochs": 1, "batch_size": 32, "seeds": "0-1", "width": 4, "attribution_chunk": 4}
AUDIO = {"conditions": ["RBRP"], "models": ["tcn"], "methods": ["saliency"], "source": "synthetic", "steps": 3,
         "batch_size": 8, "n_val": 16, "n_attr": 4, "background_gain": [0.2, 1.0]}


def test_vision_and_audio_cells_sweep_next_to_symbolic_and_resume(tmp_path):
    from chaosjax.tracks import vision

    description = {"sweep": {"chunk_size": 5}, "symbolic": sweep.load_toml(_write(tmp_path, epochs=3))["symbolic"],
                   "vision": VISION, "audio": AUDIO}
    plan = sweep.plan(description)
    assert [c.track for c in plan.chunks] == ["symbolic"] + ["vision"] * 2 + ["audio"] * 2
    assert plan.cells == 5 + 2 * 2 + 2 * 1  # vision: 2 conditions x 2 seeds; audio: 2 gains x 1 seed
    assert plan.columns[:len(sym.COLUMNS)] == tuple(sym.COLUMNS) and set(vision.COLUMNS) <= set(plan.columns)
    out = tmp_path / "run"
    frame = sweep.run(description, out, progress=False, log=None)
    assert frame["track"].value_counts().to_dict() == {"symbolic": 10, "vision": 8, "audio": 2}
    assert list(pd.read_csv(out / "results.csv").columns) == list(plan.columns)
    assert sorted(frame.loc[frame["track"] == "audio", "background_gain"]) == [0.2, 1.0]
    vision_swept = sweep.run({"vision": {**VISION, "conditions": ["RBFP"], "seeds": [0],
                                         "learning_rate": [1e-3, 1e-2]}}, tmp_path / "lr", progress=False, log=None)
    assert sorted(vision_swept["learning_rate"].unique()) == [1e-3, 1e-2]  # an axis the track's columns lack
    # A vision cell of the sweep equals the track's own run of that cell.
    own = vision.run(vision.VisionConfig(**{**VISION, "conditions": ("SBRP",), "seeds": (0, 1),
                                            "methods": ("saliency", "random_baseline")}), progress=False)
    swept = frame[(frame["track"] == "vision") & (frame["condition"] == "SBRP")]
    for col in ("accuracy", "iou", "mass_in_box"):
        np.testing.assert_allclose(swept[col].to_numpy(), own[col].to_numpy(), rtol=1e-5, atol=1e-6)
    assert json.loads((out / "config.json").read_text())["track"] == "symbolic+vision+audio"
    # Resume: nothing left to run, nothing duplicated; the audio table changed is another config.
    again = sweep.run(description, out, progress=False, log=None)
    assert len(again) == len(frame) and (out / "progress.jsonl").read_text().count("\n") == len(plan.chunks)
    changed = {**description, "audio": {**AUDIO, "steps": 4}}
    with pytest.raises(ValueError, match="audio.steps"):
        sweep.run(changed, out, progress=False, log=None)


def test_rfe_settings_sweep_as_one_program_each(tmp_path):
    from chaosjax.tracks import rfe

    table = {"formulas": "10-11", "n": 200, "epochs": 3, "methods": ["saliency"], "baselines": ["linear"],
             "noise_features": [3, 6]}
    plan = sweep.plan({"rfe": table})
    assert [c.id for c in plan.chunks] == ["rfe-s0", "rfe-s1"] and plan.cells == 4
    frame = sweep.run({"rfe": table}, tmp_path / "run", progress=False, log=None)
    own = rfe.run(rfe.RFEConfig(formulas=(10, 11), n=200, epochs=3, methods=("saliency",), baselines=("linear",),
                                noise_features=6), progress=False)
    assert set(frame["noise_features"]) == {3, 6}  # every row names its setting
    swept = frame[frame["noise_features"] == 6].reset_index(drop=True)
    assert len(swept) == len(own) and set(frame["track"]) == {"rfe"}
    for col in ("features_kept", "test_mae", "functional_precision"):
        np.testing.assert_allclose(swept[col].to_numpy(float), own[col].to_numpy(float), rtol=1e-5, atol=1e-7)


def test_two_processes_share_the_chunks_and_process_zero_merges(tmp_path):
    """Multi-host on one machine: two CPU processes under jax.distributed (JAX_COORDINATOR_ADDRESS etc.)."""
    import socket

    config = _write(tmp_path, chunk=2, epochs=5)  # 3 chunks: process 0 takes 2, process 1 takes 1
    reference = _run_cli([config, "--out", tmp_path / "one"])
    assert reference.returncode == 0, reference.stderr
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    procs = [_run_cli([config, "--out", tmp_path / "two"], wait=False,
                      env_extra={"JAX_COORDINATOR_ADDRESS": f"localhost:{port}", "JAX_NUM_PROCESSES": "2",
                                 "JAX_PROCESS_ID": str(i), "JAX_PLATFORMS": "cpu"}) for i in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    chunks = [(tmp_path / "two" / f"progress.host{i}.jsonl").read_text().count("\n") for i in range(2)]
    assert chunks == [2, 1]
    per_chunk = json.loads((tmp_path / "two" / "config.json").read_text())["wall_seconds"]["per_chunk"]
    assert sorted(per_chunk) == sorted(c.id for c in sweep.plan(sweep.load_toml(config)).chunks)
    merged = pd.read_csv(tmp_path / "two" / "results.csv")
    one = pd.read_csv(tmp_path / "one" / "results.csv")
    assert len(merged) == len(one) == 10 and not merged.duplicated(["formula", "seed", "method"]).any()
    np.testing.assert_allclose(_sorted(merged)[METRICS], _sorted(one)[METRICS], rtol=1e-5, atol=1e-6)


MIXED = """
[vision]
conditions = ["SBRP"]
methods = ["saliency", "integrated_gradients"]
train_size = 64
val_size = 8
epochs = 1
batch_size = 32
seeds = "0-2"
width = 4
attribution_chunk = 4
ig_steps = 4

[audio]
conditions = ["RBRP"]
models = ["tcn"]
methods = ["saliency"]
source = "synthetic"
steps = 3
batch_size = 8
n_val = 16
n_attr = 4
seeds = "0-2"

[rfe]
formulas = "10"
n = 200
noise_features = 6
epochs = 3
methods = ["saliency"]
baselines = ["linear"]
seeds = "0-2"
"""


@pytest.mark.slow
def test_vision_audio_and_rfe_seeds_split_across_four_devices_and_restore_trained_seeds(tmp_path):
    """3 seeds on 4 fake devices (padded to 4): the same rows as on one device; a vision or audio chunk killed
    after training resumes from its checkpoint. Slow (200-420 s on 2 cores: three sweeps compiling three tracks);
    the default suite splits and restores symbolic chunks across four devices
    (`test_sweep_on_four_devices_matches_one_device_and_resumes_after_sigkill`) and sweeps and resumes vision and
    audio cells on one (`test_vision_and_audio_cells_sweep_next_to_symbolic_and_resume`)."""
    config = tmp_path / "mixed.toml"
    config.write_text(MIXED)
    runs = {}
    for name, env in (("one", None), ("four", {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})):
        probe = tmp_path / "where.json" if name == "four" else None
        done = _run_cli([config, "--out", tmp_path / name], env_extra=env, probe=probe)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[name] = pd.read_csv(tmp_path / name / "results.csv")
    assert_split(tmp_path / "where.json", ["vision", "audio", "rfe"])  # really split, not merely the same numbers
    assert json.loads((tmp_path / "four" / "config.json").read_text())["environment"]["local_devices"] == 4
    one, four = runs["one"], runs["four"]
    assert one["track"].value_counts().to_dict() == four["track"].value_counts().to_dict()
    assert not one.duplicated(["track", "condition", "model", "method", "seed", "round"]).any()
    assert sorted(one.loc[one["track"] == "vision", "seed"].unique()) == [0, 1, 2]
    trained = ["accuracy", "final_loss", "test_mae", "functional_precision"]
    np.testing.assert_allclose(four[trained].to_numpy(float), one[trained].to_numpy(float), rtol=1e-4, atol=1e-5)
    # One seed per device compiles other shapes than three side by side: training agrees to ~1e-5, and the
    # attribution scores of these barely trained networks amplify that to ~3e-3.
    scores = ["iou", "mass_in_box", "channel_mass"]
    np.testing.assert_allclose(four[scores].to_numpy(float), one[scores].to_numpy(float), rtol=1e-2, atol=1e-4)

    # Killed after training the audio chunk, before its rows: the rerun restores its seeds and attributes them.
    progress = tmp_path / "one" / "progress.jsonl"
    lines = progress.read_text().splitlines(keepends=True)
    assert [json.loads(line)["chunk"] for line in lines] == ["vision-s0-cnn-SBRP", "audio-s0-tcn-RBRP", "rfe-s0"]
    progress.write_text(lines[0])
    again = sweep.run(sweep.load_toml(config), tmp_path / "one", progress=False, log=None)
    entries = [json.loads(line) for line in progress.read_text().splitlines()]
    assert [e["seconds"]["restored"] for e in entries[1:]] == [True, False]
    pd.testing.assert_frame_equal(again.drop(columns=["seconds", "train_seconds"]),
                                  one.drop(columns=["seconds", "train_seconds"]))
