"""docs/protocol.md: every quirk it lists names a test that exists; the README links it; no source cites the design
notes' protocol file, which the project does not ship."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "protocol.md"


def quirk_rows():
    """The rows of the doc's "Quirks and their tests" table: (id, cells)."""
    text = DOC.read_text()
    section = text.split("## Quirks and their tests", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("|") or line.startswith("|---") or line.startswith("| id "):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        rows.append((cells[0], cells))
    return rows


def test_every_quirk_names_a_test_that_exists():
    rows = quirk_rows()
    assert len(rows) >= 10
    ids = [r[0] for r in rows]
    assert len(set(ids)) == len(ids), f"repeated quirk ids: {ids}"
    for qid, cells in rows:
        assert len(cells) == 6, f"{qid}: expected 6 columns (id, quirk, the study, paper, corrected, test), got {cells}"
        assert re.search(r"`[\w./-]+\.(py|csv):\d+|`[\w./-]+\.ipynb` cell \d+ l\.\d+", cells[2]), f"{qid}: the study's file:line is missing: {cells[2]}"
        match = re.fullmatch(r"`(tests/[\w/]+\.py)::(test_\w+)`", cells[5])
        assert match, f"{qid}: the test column must be `tests/file.py::test_name`, got {cells[5]!r}"
        path, name = ROOT / match.group(1), match.group(2)
        assert path.exists(), f"{qid}: {match.group(1)} does not exist"
        tree = ast.parse(path.read_text())
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert name in names, f"{qid}: {match.group(1)} has no test {name}"


def test_readme_links_the_protocol_doc():
    readme = (ROOT / "README.md").read_text()
    assert "](docs/protocol.md" in readme


def test_no_source_cites_the_missing_protocol_file():
    missing = "PROTOCOL" + ".md"  # the design notes' file; the project's own account is docs/protocol.md
    offenders = []
    for folder in ("chaosjax", "tests", "benchmarks", "notebooks", "examples"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".ipynb", ".toml", ".md") and missing in path.read_text():
                offenders.append(str(path.relative_to(ROOT)))
    if missing in (ROOT / "README.md").read_text():
        offenders.append("README.md")
    assert not offenders, f"{missing} cited in {offenders}; cite docs/protocol.md instead"
