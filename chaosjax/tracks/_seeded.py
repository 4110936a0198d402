"""What the tracks' sweep chunks share: dropping the device padding, and the seeded (model, condition) chunk that
vision and audio compute alike."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any


def unpadded(rows: list[dict], padded: int, real: int) -> list[dict]:
    """Rows of the real members only: each method's rows come in member order, `padded` of them, the copies last."""
    return [r for i, r in enumerate(rows) if i % padded < real]


def compute_seeds(chunk, chunk_run, *, data: Callable[[Any, str], Any], init: Callable[[], Any],
                  train_cell: Callable, attribute_cell: Callable, trained: type) -> tuple[list[dict], dict[str, Any]]:
    """One (model, condition) of a vision or audio setting, its seeds trained side by side (padded to the device
    count with copies of the last: a config no user could pass, seeds repeat) by the track's `train_cell`,
    checkpointed, then attributed by its `attribute_cell` (from its `trained` record). `data(padded_setting, condition)` makes the
    cell's data; `init()` the untrained variables of its real seeds (the checkpoint's shapes)."""
    import jax.numpy as jnp

    start = time.perf_counter()
    setting = chunk.setting
    model, condition = setting.models[0], setting.conditions[0]
    real = len(setting.seeds)
    padded = dataclasses.replace(setting, seeds=tuple(chunk_run.place.pad(setting.seeds)))
    cell_data = data(padded, condition)

    def template():
        return {"variables": init(), "losses": jnp.zeros((real, setting.steps), jnp.float32)}

    def train():
        result = train_cell(padded, model, condition, data=cell_data, place=chunk_run.place)
        return {"variables": result.variables, "losses": result.losses}, result.seconds

    tree, train_seconds, restored = chunk_run.trained(template, train, real, len(padded.seeds))
    t1 = time.perf_counter()
    record = trained(tree["variables"], tree["losses"], train_seconds)
    rows = unpadded(attribute_cell(padded, model, condition, record, data=cell_data, place=chunk_run.place),
                    len(padded.seeds), real)
    rows = [{**row, **{axis: getattr(setting, axis) for axis in chunk.axes}} for row in rows]
    return rows, {"train": t1 - start, "attribute": time.perf_counter() - t1, "restored": restored}


def split_models_conditions(track: str):
    """A `Track.split` for vision and audio: one chunk per (model, condition) of a setting, all its seeds."""
    from chaosjax.tracks import Chunk

    def split(setting, index: int, *, chunk_size: int, axes, sweep_axes) -> list:
        return [Chunk(f"{track}-s{index}-{model}-{condition}",
                      dataclasses.replace(setting, models=(model,), conditions=(condition,)), track=track,
                      axes=tuple(axes), setting_index=index)
                for model in setting.models for condition in setting.conditions]

    return split


def model_condition_label(chunk) -> str:
    """A vision or audio chunk in a few words."""
    return f"{chunk.track} {chunk.setting.models[0]} {chunk.setting.conditions[0]}"
