"""The track registry: a fifth track, defined in this file alone, runs through `chaosjax sweep` and `chaosjax
report` (and a subcommand of its own) without a package file knowing it."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from chaosjax import cli, sweep, tracks

COLUMNS = ("track", "method", "seed", "score")


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    """A track whose cells need no training: a method's score is `scale * (seed + 1)`."""

    seeds: tuple[int, ...] = (0,)
    methods: tuple[str, ...] = ("up", "down")
    scale: float = 1.0

    def validate(self) -> None:
        if self.scale <= 0:
            raise ValueError(f"scale: expected a number > 0, got {self.scale!r}")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def compute(chunk: tracks.Chunk, chunk_run: tracks.ChunkRun):
    setting = chunk.setting
    assert chunk_run.place.devices >= 1  # the sweep's placement comes with the chunk
    rows = [{"track": "toy", "method": m, "seed": s, "score": setting.scale * (s + 1) * (1 if m == "up" else -1),
             **{axis: getattr(setting, axis) for axis in chunk.axes}}
            for m in setting.methods for s in setting.seeds]
    return rows, {"compute": 0.0, "restored": False}


def summary_table(rows: pd.DataFrame, spec) -> str:
    by = list(spec["axes"]) + ["method"]
    means = rows.groupby(by)["score"].mean()
    return "toy summary\n" + "\n".join(f"{key}: {value:g}" for key, value in means.items())


def draw(frame: pd.DataFrame, meta, figdir, *, formats):
    return f"## Toy track\n\n{len(frame)} rows, mean score {frame['score'].mean():g}\n", []


def add_cli(sub) -> None:
    p = sub.add_parser("toy", help="the toy track")
    p.add_argument("--scale", type=float, default=1.0)

    def handler(args) -> int:
        ToyConfig(scale=args.scale).validate()
        print(f"toy: scale {args.scale:g}")
        return 0

    p.set_defaults(handler=handler)


@pytest.fixture
def toy():
    track = tracks.register(tracks.Track(name="toy", help="the toy track", config=ToyConfig, columns=COLUMNS,
                                         compute=compute, summary_table=summary_table, draw=draw,
                                         required=("method", "score"), add_cli=add_cli))
    yield track
    tracks.unregister("toy")


def test_a_track_defined_in_a_test_runs_through_sweep_and_report(toy, tmp_path, capsys):
    config = tmp_path / "toy.toml"
    config.write_text('[toy]\nseeds = "0-2"\nscale = [1.0, 2.0]\n')
    out = tmp_path / "run"
    assert cli.main(["sweep", str(config), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "toy summary" in printed and "(2.0, 'up'): 4" in printed  # scale 2, seeds 0-2: 2 * mean(1, 2, 3)
    frame = pd.read_csv(out / "results.csv")
    assert len(frame) == 2 * 2 * 3 and set(frame["track"]) == {"toy"}
    assert sorted(frame["scale"].unique()) == [1.0, 2.0]  # the swept field is a column of its rows
    up = frame[(frame["method"] == "up") & (frame["scale"] == 2.0)].sort_values("seed")
    assert up["score"].tolist() == [2.0, 4.0, 6.0]
    assert json.loads((out / "sweep.json").read_text())["toy"]["axes"] == {"scale": [1.0, 2.0]}
    # Resumed: every chunk is recorded, nothing runs twice.
    assert cli.main(["sweep", str(config), "--out", str(out), "--quiet"]) == 0
    assert len(pd.read_csv(out / "results.csv")) == 12

    assert cli.main(["report", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "## Toy track" in report and "12 rows" in report


def test_a_registered_track_gets_its_subcommand_and_its_keys_are_checked(toy, tmp_path, capsys):
    assert "toy" in cli._commands()
    assert cli.main(["toy", "--scale", "3"]) == 0
    assert "toy: scale 3" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"unknown key \[toy\]\.speed; expected one of seeds, methods, scale"):
        sweep.plan({"toy": {"speed": 2}})
    with pytest.raises(ValueError, match=r"\[toy\]\.scale: expected a number > 0"):
        sweep.plan({"toy": {"scale": [1.0, -1.0]}})
    with pytest.raises(ValueError, match=r"each value of \[toy\]\.scale must be a number"):
        sweep.plan({"toy": {"scale": [1.0, "big"]}})


def test_without_registration_the_track_is_unknown_everywhere(tmp_path):
    with pytest.raises(ValueError, match="unknown track 'toy'; tracks a sweep can run: symbolic, vision, audio, rfe"):
        sweep.plan({"toy": {"scale": 1.0}})
    with pytest.raises(ValueError, match="unknown track 'toy'"):
        tracks.get("toy")
    (tmp_path / "results.csv").write_text("track,method,score\ntoy,up,1.0\n")
    assert cli.main(["report", str(tmp_path)]) == 2


def test_a_track_is_checked_when_declared_and_registered(toy):
    common = dict(help="", columns=COLUMNS, compute=compute, summary_table=summary_table)
    with pytest.raises(TypeError, match="Track.config: expected a dataclass type"):
        tracks.Track(name="bad", config=dict, **common)
    with pytest.raises(ValueError, match=r"\['speakers'\] are not fields of ToyConfig"):
        tracks.Track(name="bad", config=ToyConfig, list_fields=("speakers",), **common)
    with pytest.raises(ValueError, match="Track.name: expected an identifier"):
        tracks.Track(name="two words", config=ToyConfig, **common)
    with pytest.raises(ValueError, match="a track named 'toy' exists"):
        tracks.register(tracks.Track(name="toy", config=ToyConfig, **common))
    with pytest.raises(ValueError, match="a track named 'symbolic' exists"):
        tracks.register(tracks.Track(name="symbolic", config=ToyConfig, **common))


def test_the_built_in_tracks_are_registered_under_their_names():
    for name in ("symbolic", "vision", "audio", "rfe"):
        track = tracks.get(name)
        assert track.name == name and track.help == tracks.help_line(name)
        assert callable(track.drawer()) and set(track.required) <= set(track.columns) | {"dataset"}


def test_a_symbolic_sweep_takes_every_config_field_and_writes_its_proxy_columns(tmp_path):
    """The symbolic table's keys are SymbolicConfig's fields (lr and noise for learning_rate and noise_features):
    `proxies` included, whose columns the results file then carries."""
    config = tmp_path / "proxies.toml"
    config.write_text('[symbolic]\nformulas = "0"\nn = 120\nepochs = 3\ndepth = 1\nwidth = 8\nnoise = 4\n'
                      'methods = ["saliency", "random_baseline"]\nproxies = "sparseness,randomisation"\n')
    plan = sweep.plan(sweep.load_toml(config))
    assert plan.chunks[0].setting.proxies == ("sparseness", "randomisation")
    assert {"proxy_sparseness", "randomised_functional_precision"} <= set(plan.columns)
    assert cli.main(["sweep", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    frame = pd.read_csv(tmp_path / "run" / "results.csv")
    assert frame["proxy_sparseness"].notna().all()
    randomised = frame.set_index("method")["randomised_functional_precision"]
    assert np.isfinite(randomised["saliency"])
    with pytest.raises(ValueError, match=r"\[symbolic\]\.proxies: unknown proxy 'roar'"):
        sweep.plan({"symbolic": {"proxies": ["roar"]}})
    with pytest.raises(ValueError, match=r"unknown key \[symbolic\]\.sweep"):  # the CLI's own one-axis ablation
        sweep.plan({"symbolic": {"sweep": ["lr", [0.1]]}})


def test_one_name_for_one_thing_with_the_short_forms_kept(capsys):
    """`learning_rate` and `noise_features` are TOML keys and flags (`--learning-rate`, `--noise-features`) like
    the config fields they set; `lr`, `noise`, `--lr` and `--noise` still work; one field is set once."""
    long = sweep.plan({"symbolic": {"formulas": "0", "learning_rate": [1e-3, 1e-2], "noise_features": 4}})
    short = sweep.plan({"symbolic": {"formulas": "0", "lr": [1e-3, 1e-2], "noise": 4}})
    assert [c.setting for c in long.chunks] == [c.setting for c in short.chunks]
    assert [c.setting.learning_rate for c in long.chunks] == [1e-3, 1e-2]
    for key in ("lr", "learning_rate"):  # the error names the key as the file wrote it
        with pytest.raises(ValueError, match=rf"\[symbolic\]\.{key}: expected a positive number"):
            sweep.plan({"symbolic": {"formulas": "0", key: -1.0}})
    with pytest.raises(ValueError, match=r"\[symbolic\]\.lr and \[symbolic\]\.learning_rate set the same field"):
        sweep.plan({"symbolic": {"lr": 1e-3, "learning_rate": 1e-3}})
    for flags in (["--learning-rate", "0"], ["--lr", "0"]):
        assert cli.main(["symbolic", *flags]) == 2
        assert "learning_rate: expected a positive number, got 0.0" in capsys.readouterr().err
    parser = cli.build_parser(only="symbolic")
    for flags in (["--noise-features", "7"], ["--noise", "7"]):
        assert parser.parse_args(["symbolic", *flags]).noise_features == 7
