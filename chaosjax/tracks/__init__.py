"""The benchmark tracks, and the registry through which `chaosjax sweep`, `chaosjax report` and the command line
find them.

A track is one module that exposes one `Track` object, ``TRACK``: its config type (a dataclass with
``validate()`` and ``to_json()``), its results columns, how a sweep cuts one setting into chunks and computes a
chunk, its summary table, its report section and its subcommand. Nothing else in the package names a track: the
sweep, the report and the CLI iterate over `names()` and look each one up with `get(name)`.

The built-in tracks are imported only when first looked up (``chaosjax --help`` or a report of one track loads no
other); a track of your own is one `register` call::

    from chaosjax import tracks

    tracks.register(tracks.Track(name="toy", help="...", config=ToyConfig, columns=COLUMNS,
                                 compute=compute_chunk, summary_table=summary_table, draw=draw))

after which a sweep TOML file may hold a ``[toy]`` table (the config's fields; a list on a field not in
``list_fields`` makes an axis) and ``chaosjax report`` draws its rows (``track == "toy"``). See
``docs/architecture.md`` ("Adding a track").
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

__all__ = ["Chunk", "ChunkRun", "Track", "get", "help_line", "names", "register", "unregister"]


@dataclasses.dataclass(frozen=True)
class Chunk:
    """The unit of work of a sweep: computed together, written together, checkpointed together.

    Its track decides what it holds (`Track.split`): a symbolic chunk is cells of one setting (`cells`); a vision
    or audio chunk one (model, condition) of a setting with all its seeds; an RFE chunk one setting.
    """

    id: str
    setting: Any  # the track's config, for this chunk's share of the grid
    cells: tuple[Any, ...] = ()
    track: str = "symbolic"
    axes: tuple[str, ...] = ()  # swept fields written as columns of the chunk's rows (`Track.split` decides)
    sweep_axes: tuple[str, ...] = ()  # combine = "each": the axes whose one-at-a-time sweep holds this setting
    setting_index: int = 0  # which of its track's settings

    @property
    def size(self) -> int:
        """Cells in the chunk, in the unit the sweep's progress counts."""
        return get(self.track).chunk_size(self)

    @property
    def label(self) -> str:
        """What the chunk holds, in a few words (progress lines)."""
        return get(self.track).chunk_label(self)


class ChunkRun(Protocol):
    """What a sweep hands a track's `compute`: where the chunk runs and its checkpoint."""

    place: Any  # chaosjax._placement.GridPlacement: pad the members to its device count, put arrays on its mesh

    def trained(self, template: Callable[[], Any], train: Callable[[], tuple[Any, float]], real: int,
                padded: int) -> tuple[Any, float, bool]:
        """The chunk's trained arrays for `padded` members: restored from its checkpoint (shaped like
        `template()`'s `real` members), or `train()`ed (a tree and its seconds) and checkpointed first; returns
        (tree, training seconds, whether restored)."""


def _seeds(chunk: Chunk) -> int:
    return len(chunk.setting.seeds)


def _one_chunk(track: str):
    def split(setting: Any, index: int, *, chunk_size: int, axes: Sequence[str], sweep_axes: Sequence[str]
              ) -> list[Chunk]:
        return [Chunk(f"{track}-s{index}", setting, track=track, axes=tuple(axes), setting_index=index)]

    return split


@dataclasses.dataclass(frozen=True, kw_only=True)
class Track:
    """One benchmark track, as the sweep, the report and the CLI see it.

    Required:
      name: the ``track`` column of its rows, its TOML table and its subcommand.
      help: one line, for ``chaosjax --help``.
      config: its config type: a dataclass whose fields are the TOML keys, with ``validate()`` (ValueError or
        TypeError naming the field) and ``to_json()``.
      columns: its ``results.csv`` columns.
      compute: ``compute(chunk, run: ChunkRun) -> (rows, seconds)``: one chunk's rows (dicts with ``track`` set)
        and its timings (a dict of seconds, with ``"restored"``: whether training came from the checkpoint).
      summary_table: ``summary_table(rows, spec) -> str``: the table ``chaosjax sweep`` prints for the track's
        rows (its `columns` and any swept ones); ``spec`` is the sweep's description of the track
        (``{"fixed": ..., "axes": ...}``) and ``spec["combine"]``.

    Optional:
      draw: its ``chaosjax report`` section, ``draw(frame, meta, figdir, *, formats[, examples]) ->
        (markdown, figure paths)``, or ``"module:function"`` to import it only when a report needs it.
      required: the columns a report needs (default: ``method``).
      add_cli: registers its subcommand on an argparse subparsers object (or ``"module:function"``).
      keys: TOML keys besides the field names, mapped to the field (the symbolic table's short ``lr`` and
        ``noise``, kept from its first sweeps); a table may set a field by one key only.
      list_fields: fields that take a list without making it an axis of the grid.
      cli_only: fields that are no TOML keys (the symbolic command's own one-axis ``sweep``).
      axes: the TOML keys a list may sweep (default: every key not in `list_fields`).
      parsers: field -> ``parse(value, where) -> value`` for a TOML value that is not the field's value as
        written (a range string of seeds, ``methods = "all"``); `where` names the key for messages.
      split: ``split(setting, index, *, chunk_size, axes, sweep_axes) -> [Chunk]``: one setting's chunks
        (default: the whole setting one chunk, its swept fields written as columns).
      setting_columns: ``setting_columns(setting) -> columns`` a setting adds to `columns` (the symbolic
        track's proxy scores).
      chunk_size: cells of a chunk, for progress (default: its seeds).
      chunk_label: a chunk in a few words (default: the track and setting).
    """

    name: str
    help: str
    config: type
    columns: tuple[str, ...]
    compute: Callable[[Chunk, ChunkRun], tuple[list[dict], dict]]
    summary_table: Callable[[Any, Mapping[str, Any]], str]
    draw: Callable[..., tuple[str, list]] | str | None = None
    required: tuple[str, ...] = ("method",)
    add_cli: Callable[[Any], None] | str | None = None
    keys: Mapping[str, str] = dataclasses.field(default_factory=dict)
    list_fields: tuple[str, ...] = ("seeds", "methods")
    cli_only: tuple[str, ...] = ()
    axes: tuple[str, ...] | None = None
    parsers: Mapping[str, Callable[[Any, str], Any]] = dataclasses.field(default_factory=dict)
    split: Callable[..., list[Chunk]] | None = None
    setting_columns: Callable[[Any], Sequence[str]] = lambda setting: ()
    chunk_size: Callable[[Chunk], int] = _seeds
    chunk_label: Callable[[Chunk], str] | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier() or self.name in ("sweep",):
            raise ValueError(f"Track.name: expected an identifier other than 'sweep', got {self.name!r}")
        if not dataclasses.is_dataclass(self.config):
            raise TypeError(f"Track.config: expected a dataclass type, got {self.config!r}")
        fields = {f.name for f in dataclasses.fields(self.config)}
        unknown = sorted({*self.keys.values(), *self.list_fields, *self.cli_only, *self.parsers} - fields)
        if unknown:
            raise ValueError(f"Track {self.name!r}: {unknown} are not fields of {self.config.__name__}")
        if self.split is None:
            object.__setattr__(self, "split", _one_chunk(self.name))
        if self.chunk_label is None:
            object.__setattr__(self, "chunk_label", lambda chunk: f"{chunk.track} setting {chunk.setting_index}")

    def toml_keys(self) -> dict[str, str]:
        """Every key its TOML table takes -> the config field it sets."""
        own = {f.name: f.name for f in dataclasses.fields(self.config) if f.name not in self.cli_only}
        return {**own, **self.keys}

    def drawer(self) -> Callable[..., tuple[str, list]] | None:
        """Its report section's function (imported now when given as ``"module:function"``)."""
        return _resolve(self.draw)

    def register_cli(self, subparsers) -> None:
        """Adds its subcommand to `subparsers` (a track without one is run by sweeps only)."""
        add = _resolve(self.add_cli)
        if add is not None:
            add(subparsers)


def _resolve(target):
    if isinstance(target, str):
        module, _, name = target.partition(":")
        return getattr(importlib.import_module(module), name)
    return target


# The built-in tracks: name -> (module exposing TRACK, one-line help). The help is here so that `chaosjax --help`
# lists them without importing any of them (hence JAX).
_BUILTIN: dict[str, tuple[str, str]] = {
    "symbolic": ("chaosjax.tracks.symbolic", "the symbolic functional track: formulas among noise columns"),
    "vision": ("chaosjax.tracks.vision", "the vision track: a small foreground on a noisy canvas"),
    "audio": ("chaosjax.tracks.audio", "the audio track: which channel of ten holds the spoken word?"),
    "rfe": ("chaosjax.tracks.rfe", "recursive feature elimination with neural attributions vs scikit-learn RFE"),
}
_REGISTRY: dict[str, Track] = {}


def draws_at_once(requested: int | None) -> int | None:
    """The draws (path points, noisy copies, coalitions, ablated features) a method evaluates at once: `requested`,
    else one on a CPU (each draw is a whole batch, which keeps a CPU busy and stays in cache; faster there, and
    memory stays flat) and None (the method's own default, all at once for a gradient method) elsewhere."""
    import jax

    if requested is None and jax.default_backend() == "cpu":
        return 1
    return requested


def names() -> tuple[str, ...]:
    """Every track's name: the built-in ones, then those registered, in order of registration."""
    return tuple(dict.fromkeys([*_BUILTIN, *_REGISTRY]))


def help_line(name: str) -> str:
    """A track's one-line help, without importing a built-in track."""
    if name in _REGISTRY:
        return _REGISTRY[name].help
    return _BUILTIN[name][1]


def get(name: str) -> Track:
    """The track called `name` (a built-in one is imported now); ValueError naming the tracks there are."""
    if name not in _REGISTRY and name in _BUILTIN:
        track = importlib.import_module(_BUILTIN[name][0]).TRACK
        _REGISTRY.setdefault(name, track)
    if name not in _REGISTRY:
        raise ValueError(f"unknown track {name!r}; tracks: {', '.join(names())}")
    return _REGISTRY[name]


def register(track: Track, *, replace: bool = False) -> Track:
    """Adds `track` to the registry (returns it): sweeps then take its TOML table and reports draw its rows.
    A name already taken is refused unless `replace`."""
    if not isinstance(track, Track):
        raise TypeError(f"register: expected a chaosjax.tracks.Track, got {type(track).__name__}")
    if not replace and track.name in names():
        raise ValueError(f"register: a track named {track.name!r} exists; pass replace=True to replace it")
    _REGISTRY[track.name] = track
    return track


def unregister(name: str) -> None:
    """Removes a track registered with `register` (a built-in one is looked up afresh next time)."""
    _REGISTRY.pop(name, None)
