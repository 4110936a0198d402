"""Every notebook in notebooks/ runs top to bottom on tiny sizes, and is committed clean.

The notebooks read `CHAOSJAX_TINY=1` (or the older `CHAOSJAX_NOTEBOOK_TINY=1`) and shrink their sizes. They run in a kernel of this very
interpreter (a kernelspec written for the test that points at `sys.executable`, so in CI it is the repository's
`.venv`), in a temporary working directory. Any error in any cell fails the test.
"""

import json
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
KERNEL = "chaosjax-test"


def _saliency_row(results: Path) -> pd.Series:
    frame = pd.read_csv(results)
    return frame[frame["method"] == "saliency"].iloc[0]


def _vision_learned(cwd: Path) -> None:
    """384 steps (batch 32, lr 2e-2) bring the small CNN from chance (0.1) to ~0.8 top-1 on RBFP, and saliency's top
    pixel into the 8-px box on most canvases (chance 1/49). The CNN sits on a plateau until it finds the digit: fewer
    steps (or batches of 16) stayed at chance."""
    row = _saliency_row(cwd / "runs" / "vision_notebook" / "results.csv")
    assert row["accuracy"] > 0.4 and row["pointing"] > 0.5, row


def _audio_learned(cwd: Path) -> None:
    """100 steps bring the TCN from chance (1/35) to ~0.84 top-1 on synthetic RBFP, and saliency's top channel is
    the word's on (nearly) every attributed clip (chance 0.1)."""
    row = _saliency_row(cwd / "runs" / "audio_notebook" / "results.csv")
    assert row["accuracy"] > 0.4 and row["channel_hit"] > 0.9, row


# The default suite's learning checks: a notebook's tiny run is sized to learn, and its results must show it.
LEARNS = {"02_vision_attribution_gallery": _vision_learned, "03_audio_channels": _audio_learned}


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory):
    """A Jupyter data dir with a kernelspec for this interpreter, tiny sizes switched on."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "chaosjax tests",
        "language": "python",
        "env": {"CHAOSJAX_TINY": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"},
    }))
    return root


def test_there_are_notebooks():
    names = {p.name for p in NOTEBOOKS}
    assert names >= {"01_quickstart_symbolic.ipynb", "02_vision_attribution_gallery.ipynb", "03_audio_channels.ipynb",
                     "04_rfe_feature_selection.ipynb", "05_bring_your_own_model.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_clean_with_a_colab_install_cell(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: outputs are committed"
    install = code[0].source
    assert 'if "google.colab" in sys.modules:' in install and "pip install" in install and "REPO = " in install
    switch = [c.source for c in code if "TINY = " in c.source]
    assert switch and all(f'os.environ.get("{name}")' in switch[0] for name in ("CHAOSJAX_TINY", "CHAOSJAX_NOTEBOOK_TINY")), \
        f"{path.name} ignores a name of the tiny switch"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, kernel_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir))
    monkeypatch.setenv("CHAOSJAX_TINY", "1")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name=KERNEL, timeout=600, resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    seconds = time.perf_counter() - start
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert all(c.execution_count is not None for c in nb.cells if c.cell_type == "code")
    print(f"{path.name}: {seconds:.1f} s")
    if path.stem in LEARNS:
        LEARNS[path.stem](tmp_path)
