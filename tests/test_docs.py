"""The documentation site builds with `mkdocs build --strict`, its Python snippets run, and the results-file page
names every column every track writes.

The build must not be skipped when mkdocs is missing: the `docs` extra is part of the test install
(`make test`), so a missing mkdocs fails here.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def test_mkdocs_build_strict(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                         cwd=ROOT, capture_output=True, text=True, env=env)
    assert out.returncode == 0, f"mkdocs build --strict failed:\n{out.stdout}\n{out.stderr}"
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    from chaosjax.attribution import METHODS

    for name in [*METHODS, "target", "completeness_delta"]:  # each documented under its own heading
        assert re.search(rf'id="chaosjax\.attribution\.(\w+\.)?{name}"', api), f"API reference: no entry for {name}"


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    missing = [p.relative_to(DOCS).as_posix() for p in PAGES if p.relative_to(DOCS).as_posix() not in nav]
    assert not missing, f"pages missing from mkdocs.yml's nav: {missing}"


# Pages whose snippets train models or run every method with its defaults run with the slow tests (-m slow);
# the others in the default suite.
SLOW_PAGES = {"tracks/symbolic.md", "index.md"}


def _snippet_pages():
    for page in PAGES:
        if FENCE.search(page.read_text()):
            name = page.relative_to(DOCS).as_posix()
            yield pytest.param(page, id=name, marks=[pytest.mark.slow] if name in SLOW_PAGES else [])


@pytest.mark.parametrize("page", list(_snippet_pages()))
def test_python_snippets_run(page, tmp_path, monkeypatch):
    """Each page's ```python blocks run top to bottom in one namespace, in a scratch directory. (```py blocks, the
    PyTorch side of the Captum page, are not run.)"""
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for i, block in enumerate(FENCE.findall(page.read_text())):
        try:
            exec(compile(block, f"{page.name}[snippet {i}]", "exec"), namespace)
        except Exception as err:  # noqa: BLE001 -- name the snippet
            raise AssertionError(f"{page.relative_to(DOCS)}, snippet {i} failed: {err!r}\n{block}") from err


def test_results_page_names_every_column_of_every_track():
    from chaosjax.tracks import audio, rfe, symbolic, vision

    text = (DOCS / "results.md").read_text()
    for track in (symbolic, vision, audio, rfe):
        sections = text.split("\n## ")
        section = next(s for s in sections if s.lower().startswith(track.__name__.rsplit(".", 1)[-1]))
        documented = set(re.findall(r"^\| `([a-z0-9_]+)` \|", section, re.MULTILINE))
        assert set(track.COLUMNS) <= documented, f"{track.__name__}: undocumented columns {set(track.COLUMNS) - documented}"
        written = set(track.COLUMNS) | set(getattr(track, "OPTIONAL_COLUMNS", ()))  # e.g. symbolic --proxies
        assert set(getattr(track, "OPTIONAL_COLUMNS", ())) <= documented, f"{track.__name__}: undocumented columns"
        assert documented <= written, f"{track.__name__}: documented but not written {documented - written}"


def test_cli_page_lists_every_flag_of_every_subcommand():
    import argparse

    from chaosjax import cli

    text = (DOCS / "cli.md").read_text()
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        head = f"## `chaosjax {name}`"
        assert head in text, f"docs/cli.md has no section {head}"
        section = text.split(head, 1)[1].split("\n## ", 1)[0]
        for action in parser._actions:
            if action.option_strings and not isinstance(action, argparse._HelpAction):
                assert f"| `{action.option_strings[0]}" in section, f"docs/cli.md: chaosjax {name} {action.option_strings[0]}"


def test_cli_page_says_what_the_parser_says():
    """Each subcommand's section of docs/cli.md is generated from the parser (`python tools/cli_doc.py`), whose
    flags, defaults and help come from the configs' declared fields: a changed flag without a regenerated page fails
    here."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("cli_doc", DOCS.parent / "tools" / "cli_doc.py")
    cli_doc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli_doc)
    current = (DOCS / "cli.md").read_text()
    assert cli_doc.page(current) == current, "docs/cli.md is stale: run python tools/cli_doc.py"
