"""Packaging: the repository URL in one place (the notebooks use it), one version, the license, the declared imports.

The notebooks' Colab install cell and "Open in Colab" badge are built from `[project.urls] Repository` by
tools/notebook_links.py; these tests fail while any notebook disagrees with pyproject.toml.
"""

import ast
import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

_spec = importlib.util.spec_from_file_location("notebook_links", ROOT / "tools" / "notebook_links.py")
notebook_links = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(notebook_links)


def test_the_repository_url_is_declared_once_in_pyproject():
    url = notebook_links.repository_url(ROOT)
    assert url == PYPROJECT["project"]["urls"]["Repository"]
    assert url in (ROOT / "CITATION.cff").read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_installs_from_and_links_to_the_pyproject_url(path):
    repo = notebook_links.repository_url(ROOT)
    nb = nbformat.read(path, as_version=4)
    install = next(c for c in nb.cells if c.cell_type == "code").source
    found = re.findall(r'^REPO = "([^"]*)"', install, re.MULTILINE)
    assert found == [repo], f"{path.name}: REPO is {found}, pyproject says {repo!r} (run tools/notebook_links.py)"
    assert re.search(r"!pip install -q \"(chaosjax\[\w+\] @ )?git\+{REPO}\"", install), install
    badge = f"https://colab.research.google.com/github/{repo.removeprefix('https://github.com/')}/blob/main/notebooks/{path.name}"
    assert f"[![Open In Colab]({notebook_links.BADGE_IMAGE})]({badge})" in nb.cells[0].source, \
        f"{path.name}: no Colab badge for {badge} under the title (run tools/notebook_links.py)"
    urls = set(re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", nbformat.writes(nb)))
    assert urls <= {repo}, f"{path.name} names another repository: {urls - {repo}}"


def test_notebook_links_tool_rewrites_a_stale_notebook(tmp_path):
    """The tool itself: a notebook with another URL and no badge comes back with pyproject's URL and the badge."""
    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Title\n\nText."),
        nbformat.v4.new_code_cell('import sys\n\nREPO = "https://github.com/someone/else"\n'),
    ])
    path = tmp_path / "notebooks" / "x.ipynb"
    nbformat.write(nb, path)
    out = notebook_links.synced(path, "https://github.com/a/b", tmp_path)
    assert 'REPO = "https://github.com/a/b"' in out.cells[1].source
    assert out.cells[0].source.splitlines()[2].endswith("(https://colab.research.google.com/github/a/b/blob/main/notebooks/x.ipynb)")
    again = notebook_links.synced(_write(out, path), "https://github.com/a/b", tmp_path)
    assert again.cells[0].source == out.cells[0].source  # idempotent: one badge, not two


def _write(nb, path):
    nbformat.write(nb, path)
    return path


def test_one_version_and_the_cli_prints_it():
    import chaosjax

    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "chaosjax.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", chaosjax.__version__)
    out = subprocess.run([sys.executable, "-m", "chaosjax", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"chaosjax {chaosjax.__version__}"
    assert f"version: {chaosjax.__version__}" in (ROOT / "CITATION.cff").read_text()
    assert f"## {chaosjax.__version__} " in (ROOT / "CHANGELOG.md").read_text()


def test_license_file_and_spdx_string_agree():
    assert PYPROJECT["project"]["license"] == "Apache-2.0"  # an SPDX expression (PEP 639), not a table
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    major = int(re.search(r'"setuptools>=(\d+)', (ROOT / "pyproject.toml").read_text()).group(1))
    assert major >= 77, "SPDX license strings need setuptools >= 77"


def test_py_typed_ships_with_the_package():
    assert (ROOT / "chaosjax" / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["chaosjax"]


# import name -> distribution, where they differ
DISTRIBUTIONS = {"PIL": "pillow", "sklearn": "scikit-learn", "skimage": "scikit-image", "orbax": "orbax-checkpoint",
                 "espeakng_loader": "espeakng-loader"}


def _requirement_name(req: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", req).group(0).lower().replace("_", "-")


def _third_party_imports() -> set[str]:
    names = set()
    for path in (ROOT / "chaosjax").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in {"chaosjax", "__future__"}}


def test_the_package_declares_what_it_imports_and_imports_what_it_declares():
    imported = {DISTRIBUTIONS.get(n, n).lower() for n in _third_party_imports()} - {"jaxlib"}
    runtime = {_requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    extras = {_requirement_name(r) for reqs in PYPROJECT["project"]["optional-dependencies"].values() for r in reqs}
    assert imported - runtime <= extras - runtime, f"imported but not declared: {imported - runtime - extras}"
    assert imported - runtime == {"espeakng-loader"}  # the audio extra, imported only when present
    assert runtime <= imported, f"declared but never imported by chaosjax/: {runtime - imported}"
    assert all(">=" in r for r in PYPROJECT["project"]["dependencies"]), "every dependency has a minimum version"
