"""Progress that tells the truth: one phase per bar, counts that match their label, compiling apart from the
rate, no cursor codes off a terminal."""

import io
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from chaosjax import train
from chaosjax._progress import Progress, format_seconds
from chaosjax.models.mlp import mlp

CURSOR = re.compile(r"[\r\x1b]")


class Clock:
    """A stand-in for time.perf_counter that the test moves by hand."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr("chaosjax._progress.time.perf_counter", clock)
    return clock


def test_format_seconds():
    assert format_seconds(4.24) == "4.2 s"
    assert format_seconds(185) == "3:05"
    assert format_seconds(3725) == "1:02:05"
    assert format_seconds(float("nan")) == "?"


def test_a_log_gets_plain_lines_compiling_apart_and_an_eta_from_the_rate_after_compiling(clock):
    stream = io.StringIO()
    progress = Progress(stream=stream, interactive=False, log_seconds=30)
    with progress.phase("train 2 models x 100 epochs", total=200, unit="epochs", compiling=True) as phase:
        clock.now += 60  # compiling: a minute before the first tick
        phase.set(20)
        assert phase.compile_seconds == pytest.approx(60)
        clock.now += 10
        phase.set(60)  # 40 epochs in 10 s after compiling: 4 per second, 140 left -> 35 s
        assert phase.eta() == pytest.approx(35)
        clock.now += 10
        phase.set(100)
    text = stream.getvalue()
    assert not CURSOR.search(text), "no cursor codes off a terminal"
    lines = text.splitlines()
    assert lines[0] == "train 2 models x 100 epochs: compiling"
    assert "60/200 epochs (30%)" in text and "~35.0 s left" in text
    # The compile minute is said once and is not in the rate: an ETA of 60 s + would be the dishonest one.
    assert lines[-1] == "train 2 models x 100 epochs: 100/200 epochs in 1:20 (compiling ~1:00)"


def test_items_count_the_one_before_as_done_and_the_last_at_the_end(clock):
    stream = io.StringIO()
    with Progress(stream=stream, interactive=False).phase("attribute", total=3, unit="methods") as phase:
        for name in ("saliency", "integrated_gradients", "deeplift"):
            phase.item(name)
            clock.now += 6
        assert phase.done == 2
    assert phase.done == 3
    lines = stream.getvalue().splitlines()
    assert lines[0] == "attribute: started"
    assert lines[1] == "attribute: 1/3 methods (33%), 6.0 s, ~12.0 s left, integrated_gradients"
    assert lines[2].startswith("attribute: 2/3 methods (67%)") and lines[2].endswith("deeplift")
    assert lines[-1] == "attribute: 3/3 methods in 18.0 s" and len(lines) == 4


def test_fast_items_do_not_flood_a_log(clock):
    stream = io.StringIO()
    with Progress(stream=stream, interactive=False).phase("baselines", total=100, unit="runs") as phase:
        for i in range(100):
            phase.item(f"run {i}")
            clock.now += 0.1  # 10 s in all: a line every 5 s at most, not one per run
    assert len(stream.getvalue().splitlines()) <= 5


def test_a_terminal_redraws_one_line_per_phase(clock):
    stream = io.StringIO()
    progress = Progress(stream=stream, interactive=True)
    for label in ("data", "train"):
        with progress.phase(label, total=10, unit="steps") as phase:
            for _ in range(10):
                clock.now += 1
                phase.update()
    lines = stream.getvalue().split("\n")
    assert len(lines) == 3 and lines[-1] == ""  # one finished line per phase
    assert lines[0].rsplit("\r", 1)[-1].startswith("data: 10/10 steps in 10.0 s")
    assert lines[1].rsplit("\r", 1)[-1].startswith("train: 10/10 steps in 10.0 s")


def test_a_failed_phase_says_it_stopped_and_disabled_progress_writes_nothing(clock):
    stream = io.StringIO()
    with pytest.raises(KeyError), Progress(stream=stream, interactive=False).phase("data"):
        raise KeyError("x")
    assert stream.getvalue().splitlines()[-1].startswith("data: stopped after")
    quiet = io.StringIO()
    with Progress(enabled=False, stream=quiet).phase("data", total=2) as phase:
        phase.update(2)
    assert quiet.getvalue() == ""


def test_a_resumed_phase_counts_its_rate_from_what_it_does(clock):
    stream = io.StringIO()
    with Progress(stream=stream, interactive=False).phase("sweep", total=100, unit="cells", initial=50) as phase:
        clock.now += 10
        phase.update(10)  # 10 cells in 10 s: 40 left -> 40 s, not 50 cells "in" 10 s
        assert phase.eta() == pytest.approx(40)


def test_fit_progress_reports_compiling_then_epochs_and_trains_the_same(capfd, getkey):
    model = mlp(4, depth=1, width=8)
    params = model.init(getkey())
    x = jax.random.normal(getkey(), (64, 4))
    y = x[:, 0]
    key = getkey()
    plain = train.fit(model.apply, params, x, y, key, epochs=100)
    capfd.readouterr()
    shown = train.fit(model.apply, params, x, y, key, epochs=100, progress=True)
    err = capfd.readouterr().err
    np.testing.assert_array_equal(np.asarray(plain.losses), np.asarray(shown.losses))
    assert err.splitlines()[0] == "fit: compiling" and not CURSOR.search(err)
    assert re.search(r"^fit: 100/100 epochs in .* \(compiling ~", err.splitlines()[-1])
    grid = jax.tree.map(lambda a: a[None].repeat(3, 0), params)
    train.fit_grid(model.apply, grid, x, y, jax.random.split(key, 3), epochs=100, data_axis=None, progress=True)
    assert "fit_grid (3 runs): 300/300 epochs in" in capfd.readouterr().err


def test_a_cli_run_logs_its_phases_without_cursor_codes(tmp_path):
    """`make run | tee log`: the phases as plain lines on stderr, each with a count that matches its label."""
    out = subprocess.run(
        [sys.executable, "-m", "chaosjax", "symbolic", "--formulas", "3", "--epochs", "60", "--n", "400",
         "--noise", "4", "--methods", "saliency,integrated_gradients", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, check=True)
    assert not CURSOR.search(out.stderr)
    lines = out.stderr.splitlines()
    assert lines[0] == "data: started"
    assert "train 1 model x 60 epochs: compiling" in lines
    assert any(re.fullmatch(r"train 1 model x 60 epochs: 60/60 epochs in .*\(compiling ~.*\)", line)
               for line in lines)
    assert re.fullmatch(r"attribute 1 model: 2/2 methods in .*", lines[-1])
