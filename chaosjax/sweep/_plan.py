"""A sweep's description checked and cut into chunks: the TOML tables, one per track (`chaosjax.tracks`), their
fields and axes, and the settings they combine into (see `chaosjax.sweep`)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaosjax import tracks
from chaosjax.tracks import Chunk

_SWEEP_KEYS = {"chunk_size", "combine"}
COMBINE = ("product", "each")  # how list-valued axes make settings; see `_combinations`


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    spec: dict[str, Any]  # the normalised description (what config.json and the resume check compare)
    chunks: tuple[Chunk, ...]

    @property
    def cells(self) -> int:
        return sum(c.size for c in self.chunks)

    @property
    def tracks(self) -> tuple[str, ...]:
        return tuple(t for t in tracks.names() if t in self.spec)

    @property
    def columns(self) -> tuple[str, ...]:
        """The results file's columns: the union of the tracks' columns, in track order, and of those their settings
        add (the symbolic proxies'), then any swept field a track's own columns lack (e.g. vision's
        ``learning_rate``), so that every row names its setting."""
        own = [c for t in self.tracks for c in tracks.get(t).columns]
        own += [c for chunk in self.chunks for c in tracks.get(chunk.track).setting_columns(chunk.setting)]
        swept = [a for c in self.chunks for a in c.axes]
        return tuple(dict.fromkeys(own + swept))


def load_toml(path: str | os.PathLike) -> dict[str, Any]:
    """The TOML file `path` as a dict; ValueError naming the file when it is missing, unreadable, not text or not
    TOML."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"sweep: no such config file {str(path)!r}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"sweep: {path} is not a TOML text file (byte {err.start} is not UTF-8)") from None
    except OSError as err:
        raise ValueError(f"sweep: cannot read {path}: {err.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"sweep: {path} is not valid TOML: {err}") from None


def _int_list(value, key) -> tuple[int, ...]:
    from chaosjax._parse import parse_int_range

    if isinstance(value, str):
        try:
            return parse_int_range(value, key)
        except ValueError as err:
            raise ValueError(f"sweep: {key}: {str(err).partition(': ')[2]}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    raise ValueError(f"sweep: `{key}` must be integers (a list or a range like '0-4'), got {_shown(value)}")


def _formulas(value, key) -> tuple[int | str, ...]:
    """A `formulas` entry: a range string ('0-4', '3,5'), a formula text, an index, or a list of those."""
    from chaosjax._parse import parse_formulas

    if isinstance(value, str):
        try:
            return parse_formulas(value)
        except ValueError as err:
            raise ValueError(f"sweep: {key}: {str(err).partition(': ')[2]}") from None
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)) for v in values):
        raise ValueError(f"sweep: {key} must be formula indices or texts (a list, or a range like '0-4'), "
                         f"got {_shown(value)}")
    return tuple(values)


def _shown(value: Any) -> str:
    """A TOML value for a message, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fits(value: Any, hint: Any) -> bool:
    """Whether a TOML value has the type a config field declares (`None` never: TOML has no null)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, h) for h in args)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(v, args[0]) for v in value)
        return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return hint is not type(None)  # anything else is the config's own validation's


def _kind(hint: Any) -> str:
    """What a field of type `hint` takes, in words."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_kind(h) for h in args if h is not type(None))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_kind(args[0]).removeprefix('an ').removeprefix('a ')}s"
        return f"a list of {len(args)} {_kind(args[0]).removeprefix('an ').removeprefix('a ')}s"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def _check_type(key: str, value: Any, hint: Any, axis: bool, written: Any = None) -> None:
    """Raises ValueError naming `key` when `value` (each element of a list, where a list makes an axis) does not
    have the field's type; the message shows `written` (what the file says) when given."""
    values = value if axis else [value]
    for v in values:
        if not _fits(v, hint):
            each = "each value of " if axis else ""
            shown = v if axis or written is None else written
            raise ValueError(f"sweep: {each}{key} must be {_kind(hint)}, got {_shown(shown)}")


def plan(description: Mapping[str, Any], *, source: str | os.PathLike | None = None) -> SweepPlan:
    """Validates a sweep description and cuts its grid into chunks. Raises ValueError naming the key (and
    `source`, the file the description came from, when given)."""
    try:
        return _plan(description)
    except (ValueError, TypeError) as err:
        message = str(err)
        if source is not None:
            message = (f"sweep: {source}: {message.removeprefix('sweep: ')}")
        elif not message.startswith("sweep: "):
            message = f"sweep: {message}"
        raise ValueError(message) from None


def _table(description: Mapping[str, Any], name: str) -> dict[str, Any]:
    table = description.get(name, {})
    if isinstance(table, list):
        raise ValueError(f"[{name}] must be one table, not an array of tables ([[{name}]])")
    if not isinstance(table, Mapping):
        raise ValueError(f"{name} must be a table ([{name}]), got {_shown(table)}")
    return dict(table)


def _plan(description: Mapping[str, Any]) -> SweepPlan:
    if not isinstance(description, Mapping):
        raise TypeError(f"sweep: a description is a dict of tables, got {type(description).__name__}")
    description = dict(description)
    known = tracks.names()
    unknown_tables = [k for k in description if k != "sweep" and k not in known]
    if unknown_tables:
        raise ValueError(f"sweep: unknown track {unknown_tables[0]!r}; tracks a sweep can run: {', '.join(known)}")
    options = _table(description, "sweep")
    for key in options:
        if key not in _SWEEP_KEYS:
            raise ValueError(f"sweep: unknown key [sweep].{key}; expected one of {', '.join(sorted(_SWEEP_KEYS))}")
    chunk_size = options.get("chunk_size", 16)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"sweep: [sweep].chunk_size must be an integer >= 1, got {_shown(chunk_size)}")
    combine = options.get("combine", "product")
    if not isinstance(combine, str) or combine not in COMBINE:
        raise ValueError(f"sweep: [sweep].combine must be one of {', '.join(map(repr, COMBINE))}, "
                         f"got {_shown(combine)}")
    if not any(t in description for t in known):
        raise ValueError(f"sweep: empty grid: no track table (add one of {', '.join(f'[{t}]' for t in known)})")
    spec: dict[str, Any] = {"sweep": {"chunk_size": chunk_size}}
    if combine != "product":  # recorded only when set, so that directories of earlier sweeps still resume
        spec["sweep"]["combine"] = combine
    chunks: list[Chunk] = []
    for name in known:
        if name in description:
            spec[name], track_chunks = _plan_track(tracks.get(name), _table(description, name), chunk_size, combine)
            chunks.extend(track_chunks)
    if not chunks:
        raise ValueError("sweep: empty grid")
    return SweepPlan(spec, tuple(chunks))


def _combinations(axes: dict[str, list], combine: str) -> list[tuple[dict[str, Any], str | None]]:
    """The settings' overrides of the fixed values, each with the axis it sweeps: ``"product"``, every
    combination of the axes' values (no one axis); ``"each"``, every axis alone with the others at their fixed
    values (the study's ablation, docs/protocol.md, "Symbolic")."""
    if combine == "product":
        return [(dict(zip(axes, values)), None) for values in itertools.product(*axes.values())]
    return [({key: value}, key) for key, values in axes.items() for value in values] or [({}, None)]


def _distinct(settings: list[tuple[Any, str | None]]) -> list[tuple[Any, tuple[str, ...]]]:
    """Each distinct setting once, with every axis it lies on (under ``"each"``, the fixed values recur on every
    axis that lists them)."""
    first: dict[str, tuple[Any, list[str]]] = {}
    for setting, axis in settings:
        _, axes = first.setdefault(repr(setting), (setting, []))  # repr: a field's value may be unhashable
        if axis is not None:
            axes.append(axis)
    return [(setting, tuple(axes)) for setting, axes in first.values()]


def _field_value(track: tracks.Track, key: str, field: str, value: Any, hint: Any, where: str) -> Any:
    """A fixed (not swept) TOML value as the config field's value: the track's own parser, a seeds or formulas
    range, ``methods = "all"``, or a list field's values; the type checked against the field's."""
    if field in track.parsers:
        return track.parsers[field](value, where)
    if field == "seeds":
        return _int_list(value, where)
    if field == "formulas":
        return _formulas(value, where)
    if field == "methods" and value == "all":
        return None
    if field in track.list_fields:
        values = value if isinstance(value, list) else [value]
        _check_type(where, values, hint, axis=False, written=value)
        return tuple(values)
    _check_type(where, value, hint, axis=False)
    return value


def _as_written(message: str, keys: Mapping[str, str], table: Mapping[str, Any]) -> str:
    """A config's error (``field: ...``) naming the key the table set the field with (``lr`` for
    ``learning_rate``), so that the message points at the line of the file."""
    field, sep, rest = message.partition(": ")
    written = [key for key in table if keys.get(key) == field]
    return f"{written[0]}: {rest}" if sep and written else message


def _plan_track(track: tracks.Track, table: dict[str, Any], chunk_size: int, combine: str = "product"
                ) -> tuple[dict[str, Any], list[Chunk]]:
    """One track's table: its config's fields (`Track.toml_keys`); a list on a key of `Track.axes` (default: any
    field not in `Track.list_fields`) makes an axis. Returns the track's spec and its chunks."""
    name, keys = track.name, track.toml_keys()
    hints = typing.get_type_hints(track.config)
    axes_allowed = track.axes if track.axes is not None else [k for k, f in keys.items() if f not in track.list_fields]
    fixed: dict[str, Any] = {}
    axes: dict[str, list] = {}
    for key, value in table.items():
        if key not in keys:
            raise ValueError(f"sweep: unknown key [{name}].{key}; expected one of {', '.join(keys)}")
        twice = [k for k in table if k != key and keys.get(k) == keys[key]]
        if twice:
            raise ValueError(f"sweep: [{name}].{key} and [{name}].{twice[0]} set the same field; keep one")
        field, where = keys[key], f"[{name}].{key}"
        if isinstance(value, list) and key in axes_allowed and field not in track.parsers:
            if not value:
                raise ValueError(f"sweep: empty grid: [{name}].{key} is an empty list")
            _check_type(where, value, hints[field], axis=True)
            axes[key] = value
        elif isinstance(value, list) and field not in track.list_fields and field not in track.parsers \
                and field not in ("seeds", "formulas"):
            raise ValueError(f"sweep: [{name}].{key} cannot be a list; axes are {', '.join(axes_allowed)}")
        else:
            fixed[field] = _field_value(track, key, field, value, hints[field], where)
    for field in ("formulas", "conditions", "models", "seeds"):
        if field in fixed and fixed[field] is not None and not fixed[field]:
            key = next(k for k, f in keys.items() if f == field)
            raise ValueError(f"sweep: empty grid: [{name}].{key} is empty")
    try:
        base = track.config(**fixed)
    except TypeError as err:
        raise ValueError(f"sweep: [{name}]: {err}") from None
    settings = []
    for overrides, axis in _combinations(axes, combine):
        setting = dataclasses.replace(base, **{keys[k]: v for k, v in overrides.items()})
        try:
            setting.validate()
        except (ValueError, TypeError) as err:
            raise ValueError(f"sweep: [{name}].{_as_written(str(err), keys, table)}") from None
        settings.append((setting, axis))
    chunks = []
    for index, (setting, on_axes) in enumerate(_distinct(settings)):
        chunks.extend(track.split(setting, index, chunk_size=chunk_size, axes=tuple(keys[k] for k in axes),
                                  sweep_axes=on_axes))
    spec = {"fixed": json.loads(json.dumps(base.to_json(), default=str)),
            "axes": {k: list(v) for k, v in axes.items()}}
    return spec, chunks
