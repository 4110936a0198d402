"""The notebooks' Colab install cell and "Open in Colab" badge, built from the repository URL in pyproject.toml.

`[project.urls] Repository` is the one place that names the repository. Run this script after changing it (or after
adding a notebook) to rewrite every notebook's `REPO = "..."` line and its badge; tests/test_packaging.py fails
while any notebook disagrees with pyproject.toml.

    python tools/notebook_links.py          # rewrite the notebooks in place
    python tools/notebook_links.py --check  # exit 1 if any notebook is out of date
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BRANCH = "main"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
REPO_LINE = re.compile(r'^REPO = "[^"]*"', re.MULTILINE)
BADGE_LINE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)$", re.MULTILINE)


def repository_url(root: Path = ROOT) -> str:
    """`[project.urls] Repository` from pyproject.toml: a https://github.com/OWNER/NAME address."""
    with open(root / "pyproject.toml", "rb") as fh:
        url = tomllib.load(fh)["project"]["urls"]["Repository"]
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"pyproject.toml: [project.urls] Repository must be https://github.com/OWNER/NAME, got {url!r}")
    return url


def colab_url(repo: str, notebook: Path, root: Path = ROOT) -> str:
    """The Colab address that opens `notebook` from the repository's main branch."""
    rel = notebook.resolve().relative_to(root).as_posix()
    return f"https://colab.research.google.com/github/{repo.removeprefix('https://github.com/')}/blob/{BRANCH}/{rel}"


def badge(repo: str, notebook: Path, root: Path = ROOT) -> str:
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(repo, notebook, root)})"


def install_line(repo: str) -> str:
    return f'REPO = "{repo}"'


def synced(notebook: Path, repo: str, root: Path = ROOT):
    """The notebook with its install cell's `REPO` and its badge (second line of the title cell) made current."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    install = next(c for c in nb.cells if c.cell_type == "code")
    if not REPO_LINE.search(install.source):
        raise ValueError(f"{notebook.name}: the first code cell has no `REPO = \"...\"` line")
    install.source = REPO_LINE.sub(install_line(repo), install.source)
    title = nb.cells[0]
    if title.cell_type != "markdown":
        raise ValueError(f"{notebook.name}: the first cell must be the markdown title")
    line = badge(repo, notebook, root)
    if BADGE_LINE.search(title.source):
        title.source = BADGE_LINE.sub(line.replace("\\", "\\\\"), title.source)
    else:
        head, _, rest = title.source.partition("\n")
        title.source = f"{head}\n\n{line}\n{rest}" if rest else f"{head}\n\n{line}"
    return nb


def main(argv: list[str]) -> int:
    import nbformat

    repo = repository_url()
    stale = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        text = nbformat.writes(synced(path, repo)) + "\n"
        if text != path.read_text():
            stale.append(path.name)
            if "--check" not in argv:
                path.write_text(text)
    verb = "out of date" if "--check" in argv else "rewritten"
    print(f"{verb}: {', '.join(stale)}" if stale else "every notebook uses " + repo)
    return 1 if stale and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
