"""Runs `chaosjax sweep` with spies on the grid programs, and writes where their arrays lived to a JSON file.

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python tests/sharding_probe.py REPORT.json sweep G.toml --out D

`assert_split(REPORT.json, programs)` is what the sharding tests check.

For every call of a track's training and attribution program (symbolic `fit_grid` and `attribute_program`, vision
and audio `classify.fit_seeds`, vision `_attribute` and audio `attribute_program`, RFE `eliminate`), the report
holds the leading (grid) axis of one input and one output leaf, the devices its sharding spans, and the leading
size of one shard: the evidence that a chunk's grid really is split across the devices, and that the computation
follows it.
"""

import functools
import json
import sys

import jax


def _where(tree) -> dict:
    leaf = max(jax.tree.leaves(tree), key=lambda a: getattr(a, "ndim", 0))
    sharding = leaf.sharding
    return {"rows": int(leaf.shape[0]), "devices": len(sharding.device_set),
            "shard_rows": int(sharding.shard_shape(leaf.shape)[0])}


#: Every grid program the spies watch, by track.
PROGRAMS = {
    "symbolic": ("symbolic train", "symbolic attribute"),
    "vision": ("vision/audio train", "vision attribute"),
    "audio": ("vision/audio train", "audio attribute"),
    "rfe": ("rfe eliminate",),
}


def assert_split(report, tracks, devices: int = 4) -> None:
    """Every watched program of `tracks` ran, and every call's input and output were split along the grid axis
    over `devices` devices, one equal shard each. An identity placement (all on one device) fails this."""
    from pathlib import Path

    probe = json.loads(Path(report).read_text())
    assert probe["devices"] == devices, probe["devices"]
    expected = {p for t in tracks for p in PROGRAMS[t]}
    assert {c["program"] for c in probe["calls"]} == expected, probe["calls"]
    for call in probe["calls"]:
        for side in ("input", "output"):
            where = call[side]
            assert where["rows"] % devices == 0 and where["devices"] == devices, (call["program"], side, where)
            assert where["shard_rows"] == where["rows"] // devices, (call["program"], side, where)


def main() -> int:
    report, argv = sys.argv[1], sys.argv[2:]
    from chaosjax import classify, cli, rfe
    from chaosjax.tracks import audio, vision
    from chaosjax.tracks import symbolic as sym

    calls = []

    def spy(module, name, label, pick_input):
        original = getattr(module, name)

        @functools.wraps(original)
        def wrapped(*args, **kwargs):
            out = original(*args, **kwargs)
            calls.append({"program": label, "input": _where(pick_input(*args, **kwargs)), "output": _where(out)})
            return out

        if hasattr(original, "lower"):  # a jitted program: its ahead-of-time API (memory analysis) stays available
            wrapped.lower = original.lower
        setattr(module, name, wrapped)

    spy(sym, "fit_grid", "symbolic train", lambda apply, params, *a, **k: params)
    spy(sym, "attribute_program", "symbolic attribute", lambda apply, params, x, *a, **k: x)
    spy(classify, "fit_seeds", "vision/audio train", lambda model, variables, *a, **k: variables)
    spy(vision, "_attribute", "vision attribute", lambda model, variables, *a, **k: variables)
    spy(audio, "attribute_program", "audio attribute", lambda model, variables, *a, **k: variables)
    spy(rfe, "eliminate", "rfe eliminate", lambda problems, *a, **k: problems)
    code = cli.main(argv)
    with open(report, "w") as fh:
        json.dump({"code": code, "devices": jax.device_count(), "calls": calls}, fh, indent=1)
    return code


if __name__ == "__main__":
    sys.exit(main())
