"""Regenerates each subcommand's section of docs/cli.md (its description and its table of flags) from the parser,
so that the page says what `--help` says: ``python tools/cli_doc.py`` (``--check``: exit 1 if the page is stale;
tests/test_docs.py runs it)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def _flag(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{(action.metavar or action.dest).upper()}`"
    if action.nargs == 0:
        return f"`{', '.join(action.option_strings)}`"
    metavar = action.metavar or action.dest.upper()
    return f"`{', '.join(f'{o} {metavar}' for o in action.option_strings)}`"


def _row(action: argparse.Action) -> str:
    if not action.option_strings:
        default = "(required)"
    elif action.default is None or action.default is False or action.default == argparse.SUPPRESS:
        default = ""
    else:
        default = f"`{action.default}`"
    meaning = (action.help or "").replace("%%", "%").replace("|", "\\|")
    if action.choices and action.option_strings:
        meaning += "; one of " + ", ".join(f"`{c}`" for c in action.choices)
    return f"| {_flag(action)} | {default} | {meaning} |"


def section(name: str, parser: argparse.ArgumentParser) -> str:
    rows = [_row(a) for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    return "\n".join([f"## `chaosjax {name}`", "", parser.description or "", "", "| flag | default | meaning |",
                      "|---|---|---|", *rows, ""])


def page(text: str) -> str:
    """`text` (the page) with every subcommand's section regenerated."""
    from chaosjax import cli

    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        head = f"## `chaosjax {name}`"
        pattern = re.compile(re.escape(head) + r"\n.*?(?=\n## |\Z)", re.S)
        new = section(name, parser)
        text = pattern.sub(lambda _: new, text, count=1) if head in text else text.rstrip() + "\n\n" + new
    return text


if __name__ == "__main__":
    current = PAGE.read_text()
    fresh = page(current)
    if "--check" in sys.argv[1:]:
        sys.exit(0 if fresh == current else 1)
    PAGE.write_text(fresh)
