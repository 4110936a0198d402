"""Bad input on every subcommand: one line on stderr, exit code 2, no traceback, and --out (or the report's
directory) exactly as it was. Unexpected exceptions are internal errors instead: a traceback and exit code 1.

The table runs `chaosjax.cli.main` in-process (fast); a few cases run the real command in a subprocess.
Placeholders in the argv: {out} a fresh path under the test's tmp_path, {root}/... the shared files below.
The TOML contents of a sweep are the sweep's own tests; here, the sweep's command-line flags.
"""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chaosjax import cli, tracks
from chaosjax import report as rp

ROOT = Path(__file__).resolve().parents[1]

TINY_SYMBOLIC = ["--formulas", "0", "--noise", "2", "--n", "40", "--epochs", "3", "--depth", "1", "--width", "4",
                 "--methods", "saliency"]
TINY_RFE = ["--formulas", "0", "--noise", "3", "--n", "60", "--epochs", "3", "--methods", "saliency",
            "--baselines", "none"]
CSV = ["--csv", "{root}/good.csv", "--target", "y"]

SYMBOLIC = [
    ("bad-formula", ["--formulas", "a +* b"], "formula"),
    ("proxies-unknown", ["--proxies", "road"], "--proxies: unknown proxy 'road'"),
    ("proxies-twice", ["--proxies", "infidelity,infidelity"], "--proxies"),
    ("formula-index-15", ["--formulas", "0-15"], "out of range"),
    ("formula-index-99", ["--formulas", "99"], "out of range"),
    ("formula-undefined-at-0", ["--formulas", "1/a"], "not finite"),
    ("formula-undefined-below-0", ["--formulas", "log(a)"], "not finite"),
    ("formula-overflows", ["--formulas", "exp(exp(exp(exp(a))))"], "not finite"),
    ("formula-constant", ["--formulas", "sin(a)**2+cos(a)**2"], "constant"),
    ("formula-no-variable", ["--formulas", "2*pi"], "no variables"),
    ("formula-unknown-function", ["--formulas", "foo(a)"], "unknown function"),
    ("formula-code", ["--formulas", "__import__('os')"], "formula"),
    ("formula-empty", ["--formulas", " "], "formula"),
    ("formulas-repeated", ["--formulas", "0,0"], "repeated"),
    ("noise-negative", ["--noise", "-1"], "noise"),
    ("noise-not-int", ["--noise", "x"], "--noise"),
    ("n-too-small", ["--n", "2"], "n"),
    ("n-zero", ["--n", "0"], "n"),
    ("n-float", ["--n", "1e3"], "--n"),
    ("seeds-letters", ["--seeds", "a-b"], "--seeds"),
    ("seeds-2**32", ["--seeds", "4294967296"], "seeds"),
    ("seeds-2**63", ["--seeds", "9223372036854775808"], "seeds"),
    ("seeds-2**64", ["--seeds", "18446744073709551616"], "seeds"),
    ("seeds-repeated", ["--seeds", "0,0"], "repeated"),
    ("seeds-overlapping-ranges", ["--seeds", "0-3,2"], "repeated"),
    ("seeds-empty-range", ["--seeds", "3-1"], "empty range"),
    ("seeds-negative", ["--seeds", "-1"], "--seeds"),
    ("methods-unknown", ["--methods", "saliency,lrp"], "methods"),
    ("methods-repeated", ["--methods", "saliency,saliency"], "twice"),
    ("methods-empty", ["--methods", ","], "no names"),
    ("optimizer-unknown", ["--optimizer", "lbfgs"], "optimizer"),
    ("lr-zero", ["--lr", "0"], "learning_rate"),
    ("lr-negative", ["--lr", "-1"], "learning_rate"),
    ("lr-nan", ["--lr", "nan"], "learning_rate"),
    ("lr-inf", ["--lr", "inf"], "learning_rate"),
    ("lr-diverges", [*TINY_SYMBOLIC, "--lr", "1e30"], "diverged"),
    ("dropout-1.5", ["--dropout", "1.5"], "dropout"),
    ("dropout-1", ["--dropout", "1"], "dropout"),
    ("dropout-negative", ["--dropout", "-0.1"], "dropout"),
    ("dropout-nan", ["--dropout", "nan"], "dropout"),
    ("label-noise-negative", ["--label-noise", "-1"], "label_noise"),
    ("label-noise-nan", ["--label-noise", "nan"], "label_noise"),
    ("label-noise-inf", ["--label-noise", "inf"], "label_noise"),
    ("epochs-zero", ["--epochs", "0"], "epochs"),
    ("depth-zero", ["--depth", "0"], "depth"),
    ("width-zero", ["--width", "0"], "width"),
    ("ig-steps-zero", ["--ig-steps", "0"], "ig_steps"),
    ("protocol-unknown", ["--protocol", "mine"], "--protocol"),
    ("sweep-axis-unknown", ["--sweep", "temperature=1,2"], "axis"),
    ("sweep-value-not-int", ["--sweep", "depth=two"], "depth"),
    ("sweep-no-equals", ["--sweep", "lr"], "AXIS="),
    ("sweep-no-values", ["--sweep", "noise="], "no values"),
    ("sweep-repeated-value", ["--sweep", "lr=1e-3,0.001"], "twice"),
    ("sweep-lr-zero", ["--sweep", "lr=1e-3,0"], "learning_rate"),
    ("sweep-lr-nan", ["--sweep", "lr=nan"], "learning_rate"),
    ("sweep-n-too-small", ["--sweep", "n=100,1"], "n"),
    ("sweep-optimizer-unknown", ["--sweep", "optimizer=adam,foo"], "optimizer"),
    ("sweep-dropout-1", ["--sweep", "dropout=0,1"], "dropout"),
    ("unknown-flag", ["--temperature", "2"], "unrecognized"),
]

VISION = [
    ("conditions-unknown", ["--conditions", "XX"], "conditions"),
    ("conditions-repeated", ["--conditions", "RBFP,rbfp"], "repeated"),
    ("conditions-empty", ["--conditions", ","], "conditions"),
    ("models-unknown", ["--models", "resnet50"], "models"),
    ("models-repeated", ["--models", "cnn,cnn"], "twice"),
    ("methods-unknown", ["--methods", "lrp"], "methods"),
    ("methods-repeated", ["--methods", "saliency,saliency"], "twice"),
    ("preset-unknown", ["--preset", "huge"], "preset"),
    ("source-unknown", ["--source", "mnist"], "source"),
    ("source-missing-folder", ["--source", "cifar10:{root}/nowhere"], "source"),
    ("background-unknown", ["--background", "sky"], "background"),
    ("background-missing-folder", ["--background", "flowers102:{root}/nowhere"], "background"),
    ("train-size-zero", ["--train-size", "0"], "train_size"),
    ("val-size-zero", ["--val-size", "0"], "val_size"),
    ("epochs-zero", ["--epochs", "0"], "epochs"),
    ("batch-size-zero", ["--batch-size", "0"], "batch_size"),
    ("batch-size-above-train-size", ["--batch-size", "100000"], "batch_size"),
    ("seeds-2**40", ["--seeds", "1099511627776"], "seeds"),
    ("seeds-repeated", ["--seeds", "1,1"], "repeated"),
    ("lr-zero", ["--lr", "0"], "learning_rate"),
    ("lr-nan", ["--lr", "nan"], "learning_rate"),
    ("lr-inf", ["--lr", "inf"], "learning_rate"),
    ("width-zero", ["--width", "0"], "width"),
    ("vit-heads-do-not-divide-width", ["--models", "vit", "--width", "4"], "heads"),
    ("ig-steps-zero", ["--ig-steps", "0"], "ig_steps"),
    ("protocol-unknown", ["--protocol", "mine"], "--protocol"),
]

AUDIO = [
    ("conditions-unknown", ["--conditions", "XX"], "conditions"),
    ("conditions-repeated", ["--conditions", "RBFP,RBFP"], "conditions"),
    ("models-unknown", ["--models", "gru"], "models"),
    ("models-repeated", ["--models", "tcn,tcn"], "models"),
    ("methods-unknown", ["--methods", "lrp"], "methods"),
    ("methods-repeated", ["--methods", "saliency,saliency"], "methods"),
    ("preset-unknown", ["--preset", "huge"], "--preset"),
    ("source-unknown", ["--source", "radio"], "source"),
    ("source-missing-folder", ["--source", "speechcommands:{root}/nowhere"], "source"),
    ("sample-rate-unsupported", ["--sample-rate", "12345"], "sample_rate"),
    ("sample-rate-zero", ["--sample-rate", "0"], "sample_rate"),
    ("steps-zero", ["--steps", "0"], "steps"),
    ("batch-size-zero", ["--batch-size", "0"], "batch_size"),
    ("lr-zero", ["--lr", "0"], "learning_rate"),
    ("lr-nan", ["--lr", "nan"], "learning_rate"),
    ("lr-inf", ["--lr", "inf"], "learning_rate"),
    ("n-val-zero", ["--n-val", "0"], "n_val"),
    ("n-attr-zero", ["--n-attr", "0"], "n_attr"),
    ("n-attr-above-n-val", ["--n-val", "8", "--n-attr", "9"], "n_attr"),
    ("ig-steps-zero", ["--ig-steps", "0"], "ig_steps"),
    ("background-gain-2", ["--background-gain", "2"], "background_gain"),
    ("background-gain-negative", ["--background-gain", "-0.5"], "background_gain"),
    ("background-gain-nan", ["--background-gain", "nan"], "background_gain"),
    ("seeds-2**63", ["--seeds", "9223372036854775808"], "seeds"),
    ("seeds-repeated", ["--seeds", "0,0"], "repeated"),
]

RFE = [
    ("formula-index-99", ["--formulas", "99"], "out of range"),
    ("formula-bad", ["--formulas", "a +* b"], "formula"),
    ("formula-undefined", ["--formulas", "1/a"], "not finite"),
    ("formula-constant", ["--formulas", "sin(a)**2+cos(a)**2"], "constant"),
    ("formulas-repeated", ["--formulas", "10,10"], "repeated"),
    ("noise-negative", ["--noise", "-1"], "noise"),
    ("n-zero", ["--n", "0"], "n"),
    ("n-too-small", ["--n", "3"], "n"),
    ("dataset-unknown", ["--dataset", "iris"], "--dataset"),
    ("csv-and-dataset", [*CSV, "--dataset", "diabetes"], "choose one"),
    ("target-without-csv", ["--target", "y"], "--target"),
    ("csv-without-target", ["--csv", "{root}/good.csv"], "--target"),
    ("csv-missing", ["--csv", "{root}/missing.csv", "--target", "y"], "no such file"),
    ("csv-is-a-folder", ["--csv", "{root}", "--target", "y"], "no such file"),
    ("csv-target-unknown", ["--csv", "{root}/good.csv", "--target", "z"], "--target"),
    ("csv-text-column", ["--csv", "{root}/text.csv", "--target", "y"], "non-numeric"),
    ("csv-nan", ["--csv", "{root}/nan.csv", "--target", "y"], "NaN"),
    ("csv-inf", ["--csv", "{root}/inf.csv", "--target", "y"], "infinite"),
    ("csv-overflows-standardisation", ["--csv", "{root}/huge.csv", "--target", "y"], "standardised"),
    ("csv-target-overflows", ["--csv", "{root}/huge_target.csv", "--target", "y"], "standardised"),
    ("csv-one-row", ["--csv", "{root}/one_row.csv", "--target", "y"], "rows"),
    ("csv-five-rows", ["--csv", "{root}/five_rows.csv", "--target", "y"], "rows"),
    ("csv-one-class", ["--csv", "{root}/one_class.csv", "--target", "y"], "single value"),
    ("csv-one-positive", ["--csv", "{root}/one_positive.csv", "--target", "y"], "class"),
    ("csv-constant-target", ["--csv", "{root}/constant.csv", "--target", "y"], "single value"),
    ("csv-one-feature", ["--csv", "{root}/one_feature.csv", "--target", "y"], "two feature columns"),
    ("csv-empty-file", ["--csv", "{root}/empty.csv", "--target", "y"], "--csv"),
    ("csv-binary-file", ["--csv", "{root}/binary.csv", "--target", "y"], "--csv"),
    ("csv-k-too-large", [*CSV, "--k", "5"], "k"),
    ("add-noise-negative", ["--add-noise", "-1"], "noise"),
    ("methods-unknown", ["--methods", "lrp"], "methods"),
    ("methods-repeated", ["--methods", "saliency,saliency"], "twice"),
    ("nothing-to-run", ["--methods", "none", "--baselines", "none"], "nothing to run"),
    ("baselines-unknown", ["--baselines", "forest"], "baselines"),
    ("baselines-repeated", ["--baselines", "linear,linear"], "twice"),
    ("baseline-of-other-task", [*CSV, "--baselines", "svc"], "baselines"),
    ("schedule-unknown", ["--schedule", "thirds"], "schedule"),
    ("schedule-fraction-2", ["--schedule", "fraction:2"], "fraction"),
    ("schedule-step-0", ["--schedule", "step:0"], "step"),
    ("schedule-repeated", ["--schedule", "halve,halve"], "twice"),
    ("k-zero", ["--formulas", "10", "--k", "0"], "k"),
    ("k-above-features", ["--formulas", "10", "--noise", "3", "--k", "500"], "k"),
    ("seeds-2**63", ["--seeds", "9223372036854775808"], "seeds"),
    ("seeds-repeated", ["--seeds", "0,0"], "repeated"),
    ("seeds-negative", ["--seeds", "-3"], "--seeds"),
    ("epochs-zero", ["--epochs", "0"], "epochs"),
    ("lr-zero", ["--lr", "0"], "learning_rate"),
    ("lr-nan", ["--lr", "nan"], "learning_rate"),
    ("lr-inf", ["--lr", "inf"], "learning_rate"),
    ("lr-diverges", [*TINY_RFE, "--lr", "1e30"], "diverged"),
    ("protocol-unknown", ["--protocol", "mine"], "--protocol"),
]

REPORT = [
    ("no-such-directory", ["{root}/nowhere"], "does not exist"),
    ("a-file", ["{root}/file"], "not a directory"),
    ("no-results", ["{root}/reports/no_results"], "no results"),
    ("empty-table", ["{root}/reports/empty"], "is empty"),
    ("header-only", ["{root}/reports/header_only"], "no result rows"),
    ("last-row-cut", ["{root}/reports/cut"], "line 5 is cut off"),
    ("row-missing-fields", ["{root}/reports/missing_fields"], "line 3 has"),
    ("row-extra-fields", ["{root}/reports/extra_fields"], "line 4 has"),
    ("row-twice", ["{root}/reports/twice"], "line 6 repeats the cell of line 3"),
    ("metric-inf", ["{root}/reports/inf"], "line 4: uniform_score is inf"),
    ("metric-minus-inf", ["{root}/reports/minus_inf"], "line 2: functional_precision is -inf"),
    ("row-without-method", ["{root}/reports/no_method"], "line 3 has no method"),
    ("row-without-track", ["{root}/reports/no_track"], "line 2 has no track"),
    ("row-without-seed", ["{root}/reports/no_seed"], "line 5 has no seed"),
    ("unknown-track", ["{root}/reports/unknown_track"], "unknown track"),
    ("binary-table", ["{root}/reports/binary"], "not a CSV table"),
    ("config-not-json", ["{root}/reports/bad_json"], "not valid JSON"),
    ("config-newer-schema", ["{root}/reports/newer"], "newer chaosjax"),
    ("missing-dir-argument", [], "the following arguments are required"),
]

SWEEP = [
    ("config-missing", ["{root}/missing.toml", "--out", "{out}"], "no such config file"),
    ("config-is-a-folder", ["{root}", "--out", "{out}"], "no such config file"),
    ("config-not-toml", ["{root}/bad.toml", "--out", "{out}"], "not valid TOML"),
    ("out-missing", ["{root}/sweep.toml"], "--out"),
    ("out-under-a-file", ["{root}/sweep.toml", "--out", "{root}/file/sub"], "--out"),
    ("out-is-a-file", ["{root}/sweep.toml", "--out", "{root}/file"], "--out"),
    ("out-holds-other-results", ["{root}/sweep.toml", "--out", "{root}/existing"], "no sweep wrote"),
    ("workers-zero", ["{root}/sweep.toml", "--out", "{out}", "--workers", "0"], "workers"),
    ("workers-negative", ["{root}/sweep.toml", "--out", "{out}", "--workers", "-2"], "workers"),
    ("workers-not-int", ["{root}/sweep.toml", "--out", "{out}", "--workers", "two"], "--workers"),
]

GLOBAL = [
    ("no-subcommand", [], "required"),
    ("unknown-subcommand", ["vizion"], "invalid choice"),
]


def _cases():
    def with_out(command, extra=()):
        return lambda argv: [command, "--quiet", *extra, "--out", "{out}", *argv]

    tables = [
        ("symbolic", SYMBOLIC, with_out("symbolic")),
        ("vision", VISION, with_out("vision")),
        ("audio", AUDIO, with_out("audio", ("--source", "synthetic"))),
        ("rfe", RFE, with_out("rfe")),
        ("report", REPORT, lambda argv: ["report", *argv]),
        ("sweep", SWEEP, lambda argv: ["sweep", *argv, "--quiet"]),
        ("chaosjax", GLOBAL, lambda argv: list(argv)),
    ]
    out = []
    for command, table, build in tables:
        out += [pytest.param(build(argv), expected, id=f"{command}:{name}") for name, argv, expected in table]
    # --out in the way, for every command that writes one
    for command, extra in (("symbolic", ()), ("vision", ()), ("audio", ("--source", "synthetic")), ("rfe", ()),
                           ("run-default", ())):
        quiet = ["--quiet"] if command != "run-default" else []
        for name, target, expected in (("under-a-file", "{root}/file/sub", "is a file"),
                                       ("is-a-file", "{root}/file", "not a directory"),
                                       ("holds-results", "{root}/existing", "--overwrite")):
            if command == "run-default" and name == "holds-results":
                continue  # run-default overwrites by design
            out.append(pytest.param([command, *quiet, *extra, "--out", target], expected,
                                    id=f"{command}:out-{name}"))
    out.append(pytest.param(["run-default", "--out", "{out}", "--formulas", "1"], "unrecognized",
                            id="run-default:unknown-flag"))
    return out


CASES = _cases()


# ------------------------------------------------------------------------------------------------- the files


def _symbolic_table() -> pd.DataFrame:
    rows = []
    for formula in ("0", "1"):
        for method in ("saliency", "integrated_gradients"):
            rows.append({"track": "symbolic", "formula": formula, "formula_text": "a", "m": 1, "noise_features": 4,
                         "seed": 0, "model": "mlp1x8-gelu", "method": method, "protocol": "paper",
                         "functional_precision": 0.5, "uniform_score": 0.25, "seconds": 0.1, "train_seconds": 1.0})
    return pd.DataFrame(rows)


def _write_reports(root: Path) -> None:
    table = _symbolic_table()
    text = table.to_csv(index=False)
    lines = text.splitlines(keepends=True)  # header, then lines 2-5

    def make(name, results=None, config=None):
        d = root / name
        d.mkdir(parents=True)
        if results is not None:
            (d / "results.csv").write_bytes(results if isinstance(results, bytes) else results.encode())
        (d / "config.json").write_text(config if config is not None else json.dumps({"schema_version": 1}))

    make("good", text)
    make("no_results")
    make("empty", "")
    make("header_only", lines[0])
    make("cut", text[:-12])
    make("missing_fields", lines[0] + lines[1] + lines[2].rsplit(",", 3)[0] + "\n" + "".join(lines[3:]))
    make("extra_fields", "".join(lines[:3]) + lines[3].rstrip("\n") + ",7\n" + "".join(lines[4:]))
    make("twice", text + lines[2])
    make("inf", table.assign(uniform_score=[0.1, 0.2, np.inf, 0.3]).to_csv(index=False))
    make("minus_inf", table.assign(functional_precision=[-np.inf, 0.2, 0.3, 0.4]).to_csv(index=False))
    make("no_method", table.assign(method=["saliency", "", "saliency", "integrated_gradients"]).to_csv(index=False))
    make("no_track", table.assign(track=["", "symbolic", "symbolic", "symbolic"]).to_csv(index=False))
    make("no_seed", table.assign(seed=[0, 0, 0, np.nan]).to_csv(index=False))
    make("unknown_track", table.assign(track="tabular").to_csv(index=False))
    make("binary", bytes(range(256)) * 4)
    make("bad_json", text, config="{not json")
    make("newer", text, config=json.dumps({"schema_version": 99}))


def _write_csvs(root: Path) -> None:
    rng = np.random.default_rng(0)
    good = pd.DataFrame(rng.normal(size=(60, 5)), columns=list("abcde"))
    good["y"] = 3 * good["a"] + good["b"] ** 2
    tables = {
        "good": good,
        "text": good.assign(c=["x"] * 60),
        "nan": good.assign(d=[np.nan] + [0.0] * 59),
        "inf": good.assign(d=[np.inf] + [0.0] * 59),
        "huge": good.assign(a=np.sign(good["a"]) * 1e308),  # finite, but their sum is not
        "huge_target": good.assign(y=np.sign(good["y"] - 1) * 1e308),
        "one_row": good.head(1),
        "five_rows": good.head(5),
        "one_class": good.assign(y=0),
        "one_positive": good.assign(y=[1] + [0] * 59),
        "constant": good.assign(y=2.5),
        "one_feature": good[["a", "y"]],
    }
    for name, table in tables.items():
        table.to_csv(root / f"{name}.csv", index=False)
    (root / "empty.csv").write_text("")
    (root / "binary.csv").write_bytes(bytes(range(256)) * 8)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_input")
    (root / "file").write_text("a regular file\n")
    (root / "existing").mkdir()
    (root / "existing" / "results.csv").write_text("track\nsymbolic\n")
    _write_csvs(root)
    _write_reports(root / "reports")
    (root / "sweep.toml").write_text('[symbolic]\nformulas = "0"\nn = 40\nnoise = 2\nepochs = 2\ndepth = 1\n'
                                     'width = 4\nmethods = ["saliency"]\n')
    (root / "bad.toml").write_text("[symbolic\nformulas = 0\n")
    return root


def _snapshot(*folders: Path) -> dict:
    """Every path under `folders` with its size and modification time."""
    out = {}
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            st = p.lstat()
            out[str(p)] = (p.is_dir(), st.st_size, st.st_mtime_ns)
    return out


def _fill(argv, root, out):
    return [a.format(root=root, out=out) for a in argv]


# ------------------------------------------------------------------------------------------------- the table


def test_the_report_fixtures_are_good_but_for_their_fault(root):
    """The corrupt tables are the good one with one fault each: the good one passes every check."""
    rp.check(root / "reports" / "good")


@pytest.mark.parametrize("argv, expected", CASES)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, expected, root, tmp_path, capsys):
    out = tmp_path / "out"
    before = _snapshot(root, tmp_path)
    code = cli.main(_fill(argv, root, out))
    captured = capsys.readouterr()
    err = captured.err
    assert code == 2, (code, err[-3000:])
    assert "Traceback" not in err and "Traceback" not in captured.out
    assert err.count("\n") == 1 and err.startswith("chaosjax") and "error:" in err, err
    assert expected in err, err
    assert _snapshot(root, tmp_path) == before, "bad input changed the files"
    assert not out.exists()


def test_case_count():
    """The table's size, for the record (issue 14 asks for the counts)."""
    assert len(CASES) >= 180


@pytest.mark.parametrize("argv, expected", [
    (["symbolic", "--seeds", "18446744073709551616", "--out", "{out}"], "seeds"),
    (["rfe", "--formulas", "99", "--out", "{out}"], "out of range"),
    (["report", "{root}/reports/cut"], "cut off"),
])
def test_bad_input_from_the_real_command(argv, expected, root, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "chaosjax", *_fill(argv, root, out)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and expected in done.stderr and "Traceback" not in done.stderr
    assert not out.exists() and not (root / "reports" / "cut" / "figures").exists()


# ------------------------------------------------------------------------------------------- internal errors


def test_an_unexpected_error_once_work_started_is_an_internal_error(monkeypatch, tmp_path, capsys):
    """A ValueError from inside the work (as JAX or numpy raise them) is a bug, not bad input: traceback, exit 1."""
    from chaosjax.tracks import symbolic

    def broken(*args, **kwargs):
        raise ValueError("Incompatible shapes for broadcasting: (3,) and (4,)")

    monkeypatch.setattr(symbolic, "run", broken)
    code = cli.main(["symbolic", "--formulas", "0", "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" in err and "Incompatible shapes" in err
    assert err.strip().splitlines()[-1].startswith("chaosjax: internal error (ValueError)")


def test_an_unexpected_error_in_a_report_drawing_is_internal_and_leaves_no_figures(monkeypatch, root, tmp_path,
                                                                                      capsys):
    import shutil

    target = tmp_path / "run"
    shutil.copytree(root / "reports" / "good", target)

    def broken(*args, **kwargs):
        raise TypeError("unsupported operand type(s) for +: 'NoneType' and 'int'")

    monkeypatch.setitem(tracks._REGISTRY, "symbolic", dataclasses.replace(tracks.get("symbolic"), draw=broken))
    code = cli.main(["report", str(target)])
    err = capsys.readouterr().err
    assert code == 1 and "internal error (TypeError)" in err and "Traceback" in err
    assert not (target / "figures").exists() and not (target / "report.md").exists()


def test_validation_errors_are_still_value_errors_for_library_callers():
    from chaosjax.checks import BadInput
    from chaosjax.tracks.symbolic import SymbolicConfig

    with pytest.raises(ValueError, match="seeds"):
        SymbolicConfig(seeds=(2**40,)).validate()
    assert issubclass(BadInput, ValueError)
