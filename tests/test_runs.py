"""The run layer: what a results directory records, and that the package's modules keep to their layers."""

import ast
import json
import re
from pathlib import Path

import pandas as pd

from chaosjax import runs

PACKAGE = Path(runs.__file__).resolve().parent


def test_config_json_records_the_command_line_the_commit_and_the_schema(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["chaosjax", "symbolic", "--formulas", "0 1"])
    runs.write_results(tmp_path, pd.DataFrame({"a": [1.0]}), track="toy", config={"k": 1}, started=0.0)
    meta = json.loads((tmp_path / "config.json").read_text())
    assert meta["schema_version"] == runs.SCHEMA_VERSION and meta["track"] == "toy" and meta["config"] == {"k": 1}
    assert meta["command"] == "chaosjax symbolic --formulas '0 1'"  # shell-quoted: it can be pasted back
    if (PACKAGE.parent / ".git").exists():  # a clone (CI, make test): the commit of the code that ran
        assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", meta["git_commit"]), meta["git_commit"]
    else:  # an installed wheel
        assert meta["git_commit"] is None
    assert pd.read_csv(tmp_path / "results.csv")["a"].tolist() == [1.0]
    assert not (tmp_path / "results.csv.tmp").exists()


def test_no_module_imports_another_modules_private_names():
    """Layers talk through public names: a private name (`_x`) is reached only inside its own module, or inside a
    family (lime.py borrows kernel_shap.py's `_check_samples`; the report's sections use its `_common` helpers; the
    sweep's run uses its store's).
    The sweep may not call a track's private helpers, nor a track import another's. Private
    modules with public names (`chaosjax._progress.Progress`) are the package's own plumbing and fine."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        # Three families share their plumbing: the attribution methods (lime borrows kernel_shap's checks), the
        # report's per-track sections (chaosjax.report._common) and the sweep's modules (its store and its run).
        family = [f for f in ("chaosjax.attribution", "chaosjax.report", "chaosjax.sweep")
                  if module.startswith(f + ".")]
        package = family[0] if family else module
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("chaosjax"):
                for alias in node.names:
                    source = f"{node.module}.{alias.name}"
                    where = PACKAGE.parent.joinpath(*source.split("."))
                    plumbing = where.with_suffix(".py").exists() or where.is_dir()  # a private module, e.g. _journal
                    if (alias.name.startswith("_") and not alias.name.startswith("__") and not plumbing
                            and not source.startswith(package + ".")):
                        offenders.append(f"{module}: from {node.module} import {alias.name}")
            elif (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                  and isinstance(node.value, ast.Name) and node.value.id in {"sym", "track", "symbolic", "vision",
                                                                              "audio", "rfe_track"}):
                offenders.append(f"{module}: {node.value.id}.{node.attr}")
    assert not offenders, "\n".join(offenders)


#: The package's layers, lowest first: a module imports from its own layer or lower ones, never higher.
LAYERS = (
    {"checks", "_parse", "_progress", "_journal", "_placement", "runs", "_cache", "_fields"},  # plumbing, run layer
    {"attribution", "metrics", "proxies", "models", "data"},  # pure functions on arrays
    {"train", "classify", "rfe"},  # training loops and feature elimination
    {"tracks"},  # the four benchmarks
    {"sweep", "report"},  # grids of runs; figures from results
    {"cli", "__main__"},  # the command line
)


def _imported_groups():
    """{group: groups it imports}, a group being a top-level module or subpackage of chaosjax."""
    def group(name):
        parts = name.split(".")
        return parts[1] if len(parts) > 1 else None  # None: the package's own lazy re-exports

    modules = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
               for p in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("chaosjax"):
                targets = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
                targets = targets or [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("chaosjax")]
            else:
                continue
            for target in targets:
                if group(name) is not None and group(target) not in (None, group(name)):
                    edges.setdefault(group(name), set()).add(group(target))
    return edges


def test_the_import_graph_goes_one_way_through_the_layers():
    layer = {g: i for i, groups in enumerate(LAYERS) for g in groups}
    edges = _imported_groups()
    unplaced = sorted(({g for g in edges} | {t for ts in edges.values() for t in ts}) - set(layer))
    assert not unplaced, f"modules in no layer: {unplaced} (place them in LAYERS)"
    upward = [f"{g} -> {t}" for g, ts in edges.items() for t in ts if layer[t] > layer[g]]
    assert not upward, "imports against the layers: " + ", ".join(sorted(upward))


#: Benchmarks that instrument a compiled program from inside (lower it for its cost analysis, count a private
#: function's calls): the only private names a benchmark may reach, each listed with its reason.
_INSTRUMENTATION = {
    "benchmarks/train_profile.py": {"train._fit_grid_jit", "train._check_statics",  # lowers fit_grid's program
                                    "mlp_module._mlp_cached",  # a fresh (uncached) model for the candidate GELU
                                    "chaosjax.models.mlp._norm_cdf", "chaosjax.models.mlp._INV_SQRT_2PI"},  # its parts
    "benchmarks/deeplift_and_ig.py": {"deeplift_module._bind"},  # counts the operations DeepLIFT re-evaluates
}


def _chaosjax_names(tree: ast.AST) -> set[str]:
    """The names a file binds to chaosjax modules (or their members): `import chaosjax.x as y`, `from chaosjax... import
    z as w`."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.startswith("chaosjax")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("chaosjax"):
            names |= {a.asname or a.name for a in node.names}
    return names


def test_benchmarks_use_the_public_api():
    """A benchmark measures what users call: it reaches chaosjax through public names (a track's
    `cell_stream`, `method_options`, `attribute_program`, `ground_truths`, ...), but for the instrumentation
    listed in `_INSTRUMENTATION`."""
    offenders = []
    for path in sorted((PACKAGE.parent / "benchmarks").glob("*.py")):
        tree = ast.parse(path.read_text())
        modules = _chaosjax_names(tree)
        allowed = _INSTRUMENTATION.get(f"benchmarks/{path.name}", set())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("chaosjax"):
                offenders += [f"{path.name}: from {node.module} import {a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")
                              and f"{node.module}.{a.name}" not in allowed]
            elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                  and node.attr.startswith("_") and not node.attr.startswith("__")
                  and f"{node.value.id}.{node.attr}" not in allowed):
                offenders.append(f"{path.name}: {node.value.id}.{node.attr}")
    assert not offenders, "\n".join(offenders)
