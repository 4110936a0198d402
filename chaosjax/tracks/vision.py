"""The vision track end to end: generate, train, attribute, localise (docs/protocol.md, "Vision").

For every model and condition, ``len(seeds)`` classifiers train together (``classify.fit_seeds``: one
vmapped step or scan), on minibatches generated on device from the training split's banks. The validation
split (other digits, other photos) is generated once, each method attributes it with respect to the predicted
class in one jitted, vmapped (over seeds) and chunked (over samples) program, and the maps are scored:

* ``iou``: the localisation IoU under ``config.protocol`` (``"paper"``: the study's, quirks included, computed by
  scipy on the host as the study did; docs/protocol.md, "Vision");
* ``iou_corrected``: the corrected IoU (|.| before smoothing, exactly ``fg^2`` pixels, inclusive boxes);
* ``mass_in_box``: the share of absolute attribution inside the true box (chance ``1/49``);
* ``pointing``: the share of maps whose largest pixel lies in the box (chance ``1/49``).

Smoothing uses the study's sigma scaled to the canvas, ``6 * canvas / 224``. The condition is a traced
code, so the four conditions share one compiled training step and one attribution program per method.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from chaosjax import attribution, classify, metrics
from chaosjax._progress import Progress, count
from chaosjax.checks import check_distinct, check_out_dir, diverged, refuse_or_warn_diverged
from chaosjax.data import vision as V
from chaosjax.models import vision as MV
from chaosjax._fields import add_flags, check_fields, from_args, integer, number, one_of, option, seed_list
from chaosjax._parse import parse_int_range, parse_names
from chaosjax.runs import summary_rows, write_results
from chaosjax.tracks import Track, help_line, proxy_bench
from chaosjax.tracks._cli import checked_job
from chaosjax.tracks._seeded import compute_seeds, model_condition_label, split_models_conditions

COLUMNS = (
    "track", "condition", "model", "method", "seed", "protocol", "preset", "source", "background",
    "train_size", "val_size", "epochs", "accuracy", "top5", "iou", "iou_corrected", "mass_in_box", "pointing",
    "seconds", "train_seconds",
)
#: Columns `--proxies` adds after them (`proxy_bench.proxy_columns`: those of the proxies asked for).
OPTIONAL_COLUMNS = proxy_bench.proxy_columns(tuple(proxy_bench.VISION_PROXIES), track="vision")
PROTOCOLS = ("paper", "corrected")


def _resolve_proxies(value, where: str) -> tuple[str, ...]:
    return proxy_bench.resolve_proxies(value, where, track="vision")


def _conditions(text: str, flag: str) -> tuple[str, ...]:
    return tuple(s.strip().upper() for s in text.split(",") if s.strip())


def _models(text: str, flag: str) -> tuple[str, ...]:
    return parse_names(text, flag) or tuple(MV.MODELS)


@dataclasses.dataclass(frozen=True)
class VisionConfig:
    """Everything a vision run depends on. Defaults: all four conditions, the small CNN, every method, the tiny
    preset on the embedded digits and photos (the study's sizes are ``preset="paper"``, 50,000 / 10,000)."""

    conditions: tuple[str, ...] = option(V.CONDITIONS, "comma-separated, default all four", parse=_conditions)
    models: tuple[str, ...] = option(("cnn",), f"comma-separated from {', '.join(MV.MODELS)}", parse=_models)
    methods: tuple[str, ...] | None = option(  # None: every method of chaosjax.attribution.METHODS
        None, "comma-separated names from chaosjax.attribution.METHODS, or 'all'", parse=parse_names, text="all")
    preset: str = option("tiny", "tiny (56/8), small (112/16) or paper (224/32)", check=one_of(*V.PRESETS))
    source: str = option("digits", "digits | cifar10:PATH | chaosmining:PATH")
    background: str = option("photos", "photos | flowers102:PATH")
    train_size: int = option(8192, "distinct training canvases", check=integer(1))
    val_size: int = option(256, "validation canvases, all attributed and scored", check=integer(1))
    # 8 epochs (4,096 steps) reach 0.99 / 0.92 / 0.93 top-1 on RBFP / RBRP / SBFP (tiny), but SBRP only 0.13;
    # 16 epochs bring SBRP to 0.78. About 8 min of training per condition on 2 CPU cores.
    epochs: int = option(16, "training epochs", check=integer(1))
    batch_size: int = option(64, "training batch size", check=integer(1))
    seeds: tuple[int, ...] = option((0,), "seeds, e.g. '0-2' (trained together under vmap)", check=seed_list,
                                    parse=parse_int_range, text="0")
    protocol: str = option("paper", "paper: the study's IoU in the iou column; corrected: the corrected one "
                           "(docs/protocol.md)", check=one_of(*PROTOCOLS), choices=PROTOCOLS)
    # The small CNN sits on a plateau (chance) until it finds the 8-px digit in the noise: on tiny RBFP, 600
    # steps reached 0.30 top-1 at 3e-3 and 0.96 at 1e-2; 1,280 steps at 1e-3 stayed at 0.13.
    learning_rate: float = option(1e-2, "AdamW peak learning rate, cosine schedule after a warm-up of 5%%",
                                  check=number(positive=True), flags=("--learning-rate", "--lr"),
                                  metavar="LR")
    weight_decay: float = option(1e-4, "AdamW weight decay", check=number(low=0.0))
    warmup_steps: int | None = option(None, "learning-rate warm-up steps (default: 5%% of the steps)")
    width: int | None = option(None, "model width (default: each model's own)", check=integer(1, optional=True))
    ig_steps: int = option(20, "integrated-gradients steps", check=integer(1))
    smoothgrad_samples: int = option(20, "SmoothGrad's noisy samples", check=integer(1))
    shap_samples: int = option(20, "GradientSHAP's samples", check=integer(1))
    attribution_chunk: int = option(32, "validation samples attributed at once (memory bound)", check=integer(1))
    loop: str | None = option(None, "classify's training loop; default: scan on accelerators, python on CPU",
                              check=one_of("scan", "python", optional=True))
    proxies: tuple[str, ...] = option(  # proxy metrics (chaosjax.tracks.proxy_bench.VISION_PROXIES); () none
        (), "also score proxy metrics per model x condition x method x seed on the first 32 validation canvases, "
            "one results column each: 'all' or comma-separated names of "
            "chaosjax.tracks.proxy_bench.VISION_PROXIES (docs/proxies.md)", parse=_resolve_proxies,
        text="none", metavar="NAMES")

    def method_names(self) -> tuple[str, ...]:
        """The methods to run. The default (`methods=None`) is every method of `chaosjax.attribution.METHODS`
        but `shapley_exact`, whose 2^49 coalitions of the 7 x 7 grid's cells cannot be enumerated."""
        if self.methods is not None:
            return tuple(self.methods)
        return tuple(m for m in attribution.METHODS if m != "shapley_exact")

    @property
    def spec(self) -> V.VisionSpec:
        return V.preset(self.preset)

    @property
    def steps(self) -> int:
        return self.epochs * (self.train_size // self.batch_size)

    def validate(self) -> None:
        """Raises ValueError/TypeError naming the bad field, before any expensive work."""
        if not self.conditions or any(c not in V.CONDITIONS for c in self.conditions):
            raise ValueError(f"conditions: expected names from {', '.join(V.CONDITIONS)}, got {self.conditions!r}")
        if len(set(self.conditions)) != len(self.conditions):
            raise ValueError(f"conditions: repeated names in {self.conditions!r}")
        if not self.models or any(m not in MV.MODELS for m in self.models):
            raise ValueError(f"models: expected names from {', '.join(MV.MODELS)}, got {self.models!r}")
        check_distinct(self.models, "models")
        unknown = [m for m in self.method_names() if m not in attribution.METHODS]
        if unknown or not self.method_names():
            raise ValueError(f"methods: unknown {unknown!r}; expected names from {', '.join(attribution.METHODS)}")
        check_distinct(self.method_names(), "methods")
        if "shapley_exact" in self.method_names():
            raise ValueError(
                f"methods: shapley_exact enumerates every coalition of the grid's 49 cells (2^49); its limit is "
                f"{attribution.MAX_EXACT_GROUPS} groups. Use shapley_sampling or kernel_shap"
            )
        check_fields(self)
        _resolve_proxies(self.proxies, "proxies")
        _, path = V.parse_source(self.source, "source", V.FOREGROUND_SOURCES)
        _, background_path = V.parse_source(self.background, "background", V.BACKGROUND_SOURCES)
        for flag, p in (("source", path), ("background", background_path)):
            if p is not None and not Path(p).expanduser().is_dir():
                raise ValueError(f"{flag}: path {p!r} is not a directory")
        if self.batch_size > self.train_size:
            raise ValueError(f"batch_size: {self.batch_size} exceeds train_size {self.train_size}")
        if self.warmup_steps is not None and (not isinstance(self.warmup_steps, (int, np.integer))
                                              or isinstance(self.warmup_steps, bool)
                                              or not 0 <= self.warmup_steps < self.steps):
            raise ValueError(f"warmup_steps: expected an integer in [0, {self.steps}) or None, got {self.warmup_steps!r}")
        for name in self.models:  # builds the abstract model only: catches a ViT patch that does not divide
            self.model(name)

    def model(self, name: str):
        opts = {} if self.width is None else {"width": self.width}
        if name == "vit":
            opts = {"patch": self.spec.cell} if self.width is None else {"patch": self.spec.cell, "dim": self.width}
        return MV.MODELS[name](self.spec.canvas, 10, **opts)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["methods"] = list(self.method_names())
        return out


# ---------------------------------------------------------------------------------------------- training


@functools.lru_cache(maxsize=None)
def _batch_fn(train_size: int, batch_size: int):
    """A stable (cached) ``batch_fn(key, step, data)``: epochs are permutations of a fixed set of samples."""
    per_epoch = train_size // batch_size

    def batch_fn(key, step, data):
        gen, code, data_key = data
        perm = jax.random.permutation(jax.random.fold_in(key, step // per_epoch), train_size)
        idx = jax.lax.dynamic_slice_in_dim(perm, (step % per_epoch) * batch_size, batch_size)
        s = gen.batch(data_key, idx, code)
        return s.image, s.label

    return batch_fn


#: Perturbation budgets per validation canvas: the grid's 49 cells are the players (feature groups).
PERTURBATION_SAMPLES = 128  # kernel_shap and lime coalitions
SHAPLEY_PERMUTATIONS = 4  # shapley_sampling orders (two antithetic pairs): 4 * 48 + 2 passes


def _method_options(config: VisionConfig, method: str) -> dict[str, Any]:
    if method == "integrated_gradients":
        return {"steps": config.ig_steps}
    if method == "smoothgrad":
        return {"samples": config.smoothgrad_samples}
    if method == "gradient_shap":
        return {"samples": config.shap_samples}
    if method == "deeplift":  # paper: Captum's list of nonlinearities (ReLU -> max-pool: the pool's plain gradient)
        return {"rescale": "captum" if config.protocol == "paper" else "all"}
    if method == "occlusion":  # the study's 8-px cell (at 56 px) as the window, sliding by half a cell
        cell = config.spec.cell
        return {"window": (cell, cell, 3), "strides": (max(1, cell // 2), max(1, cell // 2), 3)}
    if method == "shapley_sampling":
        return {"permutations": SHAPLEY_PERMUTATIONS, "antithetic": True}
    if method in ("kernel_shap", "lime"):
        return {"samples": PERTURBATION_SAMPLES}
    return {}


def _method_kwargs(method: str, options: tuple, spec: V.VisionSpec) -> dict[str, Any]:
    kwargs = dict(options)
    if method in attribution.TAKES_GROUPS:
        kwargs["groups"] = V.grid_groups(spec)  # concrete numpy: the 49 cells fix the number of evaluations
    return kwargs


def _sample_attributor(apply, baselines, key, *, method, kwargs):
    """`(x_i, i, pred=None) -> (map, pred)`: the map of one canvas w.r.t. `pred` (default: its predicted class),
    the track's attribution of a sample (key `fold_in(key, i)` for the sampling methods)."""
    fn = attribution.METHODS[method]

    def one_sample(xi, i, pred=None):
        xb = xi[None]
        pred = jnp.argmax(apply(xb), axis=1) if pred is None else pred[None]
        f = attribution.target(apply, pred)
        extra = {}
        if method in attribution.NEEDS_KEY:
            extra["key"] = jax.random.fold_in(key, i)
        if method in attribution.NEEDS_BASELINES:
            extra["baselines"] = baselines
        return fn(f, xb, **kwargs, **extra)[0], pred[0]

    return one_sample


@functools.partial(jax.jit, static_argnames=("model", "method", "options", "spec", "chunk"))
def _attribute(model, variables, x, baselines, keys, *, model_name=None, method, options, spec, chunk):
    """Attribution maps ``(S, n, H, W, 3)`` of every seed's model w.r.t. its predicted class, ``chunk`` samples
    at a time (``lax.map``); also returns the predictions ``(S, n)``."""
    del model_name
    fn = attribution.METHODS[method]
    kwargs = _method_kwargs(method, options, spec)

    def one_seed(v, key):
        apply = functools.partial(model.apply, v)

        if method == "feature_permutation":  # permutes across samples: each chunk of samples is one batch
            blocks = -(-x.shape[0] // chunk)
            rows = jnp.arange(blocks * chunk) % x.shape[0]  # the last chunk wraps around to fill up

            def one_block(args):
                xb, i = args
                pred = jnp.argmax(apply(xb), axis=1)
                attr = fn(attribution.target(apply, pred), xb, key=jax.random.fold_in(key, i), **kwargs)
                return attr, pred

            attr, pred = jax.lax.map(one_block, (x[rows].reshape((blocks, chunk) + x.shape[1:]), jnp.arange(blocks)))
            return attr.reshape((-1,) + x.shape[1:])[: x.shape[0]], pred.reshape(-1)[: x.shape[0]]

        one_sample = _sample_attributor(apply, baselines, key, method=method, kwargs=kwargs)
        return jax.lax.map(lambda args: one_sample(*args), (x, jnp.arange(x.shape[0])), batch_size=chunk)

    return jax.vmap(one_seed)(variables, keys)


@functools.partial(jax.jit, static_argnames=("model", "spec", "names"))
def _map_proxy_scores(model, variables, x, maps, keys, *, spec, names):
    """The ranked proxies `names` that score the maps alone (none of `proxy_bench.REATTRIBUTING`) for every seed's
    model: `{column: (seeds,)}`, each the mean over the canvases `x` (those of its finite values). They score the
    predicted class's logit, the function the maps explain (`proxy_bench.classifier_proxies`). No method is named:
    one compiled program serves every method of a (model, condition)."""

    def one_seed(v, a, key):
        apply = functools.partial(model.apply, v)
        pred = jnp.argmax(apply(x), axis=1)
        out = proxy_bench.classifier_proxies(attribution.target(apply, pred), x, a, None, key, names=names,
                                             groups=V.grid_groups(spec))
        return {column: proxy_bench.finite_mean(value) for column, value in out.items()}

    return jax.vmap(one_seed)(variables, maps, keys)


@functools.partial(jax.jit, static_argnames=("model", "method", "options", "spec", "names"))
def _proxy_scores(model, variables, random_variables, x, maps, boxes, baselines, keys, *, method, options, spec,
                  names):
    """The proxies `names` of `proxy_bench.REATTRIBUTING` of one method for every seed's model: `{column:
    (seeds,)}`, each the mean over the canvases `x` (those of its finite values); `_map_proxy_scores` has the others.

    Max-sensitivity's re-attribution runs the method as `_attribute` does, w.r.t. the classes predicted at `x`. The
    sanity row `randomisation` attributes each seed's re-initialised model (`random_variables`) w.r.t. its own
    predicted classes and scores the maps' mass in the true box, which must fall to chance (1/49).
    """
    fn = attribution.METHODS[method]
    kwargs = _method_kwargs(method, options, spec)
    ranked = tuple(n for n in names if n != "randomisation")

    def maps_of(apply, z, key, pred=None):  # the track's maps of canvases z (w.r.t. pred, default their own)
        if method == "feature_permutation":  # one block: the canvases permute among themselves, as in _attribute
            pred = jnp.argmax(apply(z), axis=1) if pred is None else pred
            return fn(attribution.target(apply, pred), z, key=jax.random.fold_in(key, 0), **kwargs)
        one_sample = _sample_attributor(apply, baselines, key, method=method, kwargs=kwargs)
        if pred is None:
            return jax.lax.map(lambda args: one_sample(*args)[0], (z, jnp.arange(z.shape[0])))
        return jax.lax.map(lambda args: one_sample(*args)[0], (z, jnp.arange(z.shape[0]), pred))

    def one_seed(v, rv, a, key):
        apply = functools.partial(model.apply, v)
        pred = jnp.argmax(apply(x), axis=1)
        out = proxy_bench.classifier_proxies(attribution.target(apply, pred), x, a,
                                        lambda z, k: maps_of(apply, z, k, pred), key, names=ranked,
                                        groups=V.grid_groups(spec))
        out = {column: proxy_bench.finite_mean(value) for column, value in out.items()}
        if "randomisation" in names:
            moved = maps_of(functools.partial(model.apply, rv), x, jax.random.fold_in(key, 3))
            out[proxy_bench.VISION_PROXIES["randomisation"][0]] = metrics.mass_in_box(moved, boxes)
        return out

    return jax.vmap(one_seed)(variables, random_variables, maps, keys)


@functools.partial(jax.jit, static_argnames=("foreground", "sigma"))
def _device_scores(attr, boxes, *, foreground, sigma):
    def one(a):
        return (
            metrics.localization_iou(a, boxes, foreground=foreground, sigma=sigma, protocol="corrected"),
            metrics.mass_in_box(a, boxes),
            metrics.pointing_game(a, boxes),
        )

    return jax.vmap(one)(attr)


def _scores(attr, boxes, *, foreground, sigma, protocol):
    """(iou under `protocol`, iou_corrected, mass_in_box, pointing), each ``(seeds,)``. The paper IoU runs scipy on
    the host (`metrics.localization_iou_per_sample`), so it gets the maps as host arrays: inside a program whose
    maps are split across devices, its callback would first gather them on one device."""
    corrected, mass, point = jax.device_get(_device_scores(attr, boxes, foreground=foreground, sigma=sigma))
    if protocol == "corrected":
        return corrected, corrected, mass, point
    host = np.asarray(jax.device_get(attr))
    iou = np.stack([np.asarray(metrics.localization_iou(a, boxes, foreground=foreground, sigma=sigma)) for a in host])
    return iou, corrected, mass, point


def datasets(config: VisionConfig, condition: str):
    """The (train, val) datasets of one condition, which `train_cell` and `attribute_cell` take as ``data``."""
    return tuple(V.dataset(config.spec, split, source=config.source, background=config.background,
                           condition=condition) for split in ("train", "val"))


class Trained(NamedTuple):
    """One (model, condition)'s trained seeds: ``variables`` and ``losses`` ``(seeds, steps)`` with a leading seed
    axis, and the training's wall time in seconds."""

    variables: Any
    losses: jax.Array
    seconds: float


def _keys(config: VisionConfig, condition: str) -> dict[str, Any]:
    """Every random stream of one (model, condition): per seed (init, run, attribution) and the data's, which
    depend on the first seed only (so seeds differ in the model alone) and on the condition's global index (so a
    cell does not depend on the other conditions of the run)."""
    cond_id = V.CONDITIONS.index(condition)
    root = [jax.random.fold_in(jax.random.key(s), cond_id) for s in config.seeds]
    return {"init": jnp.stack([jax.random.fold_in(r, 1) for r in root]),
            "run": jnp.stack([jax.random.fold_in(r, 2) for r in root]),
            "attr": jnp.stack([jax.random.fold_in(r, 3) for r in root]),
            "train": jax.random.fold_in(root[0], 10), "val": jax.random.fold_in(root[0], 11)}


def _no_placement(tree):
    return tree


def init_cell(config: VisionConfig, model_name: str, condition: str) -> Any:
    """The untrained variables of every seed (leading seed axis): what `train_cell` starts from, and the shapes a
    checkpoint restores into."""
    return jax.vmap(config.model(model_name).init)(_keys(config, condition)["init"])


def train_cell(config: VisionConfig, model_name: str, condition: str, *, data=None, place=None,
               on_step=None) -> Trained:
    """Trains ``len(seeds)`` models of one (model, condition) side by side (``classify.fit_seeds``).

    ``place(tree)`` may put the seed-stacked inputs on devices, e.g. split along the seed axis across a mesh;
    the computation follows their placement. ``data``: the (train, val) datasets, if already built.
    ``on_step(1)`` is called after each training step where the loop runs from Python (``classify.default_loop``).
    """
    place = place or _no_placement
    model = config.model(model_name)
    train, _ = data if data is not None else datasets(config, condition)
    keys = _keys(config, condition)
    variables, run_keys = place((init_cell(config, model_name, condition), keys["run"]))
    start = time.perf_counter()
    result = classify.fit_seeds(
        model, variables, _batch_fn(config.train_size, config.batch_size), run_keys, steps=config.steps,
        learning_rate=config.learning_rate, weight_decay=config.weight_decay,
        warmup_steps=config.steps // 20 if config.warmup_steps is None else config.warmup_steps,
        data=(train, jnp.int32(V.CONDITIONS.index(condition)), keys["train"]), loop=config.loop,
        progress=on_step,
    )
    jax.block_until_ready(result)
    return Trained(result.variables, result.losses, time.perf_counter() - start)


def attribute_cell(config: VisionConfig, model_name: str, condition: str, trained: Trained, *, data=None,
                   place=None, on_method=None, examples: dict[str, list] | None = None) -> list[dict[str, Any]]:
    """Scores every method on the validation set for the trained seeds of one (model, condition); one row per
    method x seed. ``on_method(name)`` is called before each method (progress).

    With ``examples`` (a dict of lists, ``chaosjax.report``'s gallery keys), appends the first validation canvas,
    its box, a title and the first seed's map of every method.
    """
    place = place or _no_placement
    spec = config.spec
    model = config.model(model_name)
    code = jnp.int32(V.CONDITIONS.index(condition))
    train, val = data if data is not None else datasets(config, condition)
    seeds = list(config.seeds)
    keys = _keys(config, condition)
    vs = val.batch(keys["val"], jnp.arange(config.val_size), code)
    acc = [classify.evaluate(model, jax.tree.map(lambda a, i=i: a[i], trained.variables), vs.image, vs.label)
           for i in range(len(seeds))]
    shap_refs = train.batch(jax.random.fold_in(keys["train"], 99), jnp.arange(16), code).image
    sigma = metrics.DEFAULT_SIGMA * spec.canvas / 224
    variables, attr_keys = place((trained.variables, keys["attr"]))
    dead = diverged(trained.losses)  # a model whose loss went non-finite scores NaN, never a number
    if config.proxies:  # proxy metrics (docs/proxies.md) on the first PROXY_CANVASES validation canvases
        n_proxy = min(proxy_bench.PROXY_CANVASES, config.val_size)
        by_maps, by_method = proxy_bench.split_reattributing(config.proxies)
        proxy_columns = proxy_bench.proxy_columns(config.proxies, track="vision")  # the last: proxy_seconds
        random_variables, proxy_keys = place((
            jax.vmap(model.init)(jax.vmap(lambda k: jax.random.fold_in(k, 7))(keys["init"])),
            jax.vmap(lambda k: jax.random.fold_in(k, 5))(keys["attr"])))
    rows = []
    for method in config.method_names():
        if on_method is not None:
            on_method(method)
        options = tuple(sorted(_method_options(config, method).items()))
        start = time.perf_counter()
        maps, _ = _attribute(model, variables, vs.image, shap_refs, attr_keys, method=method,
                             options=options, spec=spec, chunk=min(config.attribution_chunk, config.val_size))
        jax.block_until_ready(maps)
        seconds = time.perf_counter() - start
        iou, iou_c, mass, point = (np.where(dead, np.nan, np.asarray(score)) for score in _scores(
            maps, vs.box, foreground=spec.foreground, sigma=sigma, protocol=config.protocol))
        proxy_values: dict[str, Any] = {}
        if config.proxies:
            start = time.perf_counter()
            x_proxy, maps_proxy = vs.image[:n_proxy], maps[:, :n_proxy]
            values = {}
            if by_maps:
                values.update(_map_proxy_scores(model, variables, x_proxy, maps_proxy, proxy_keys, spec=spec,
                                                names=by_maps))
            if by_method:
                values.update(_proxy_scores(model, variables, random_variables, x_proxy, maps_proxy, vs.box[:n_proxy],
                                            shap_refs, proxy_keys, method=method, options=options, spec=spec,
                                            names=by_method))
            values = jax.device_get(values)
            proxy_values = {c: np.where(dead, np.nan, values[c]) for c in proxy_columns[:-1]}
            proxy_values["proxy_seconds"] = np.full(len(seeds), (time.perf_counter() - start) / len(seeds))
        if examples is not None:
            examples.setdefault(f"attr_{method}", []).append(np.asarray(maps[0, 0]))
        for i, seed in enumerate(seeds):
            rows.append({
                "track": "vision", "condition": condition, "model": model_name, "method": method, "seed": seed,
                "protocol": config.protocol, "preset": config.preset, "source": config.source,
                "background": config.background, "train_size": config.train_size, "val_size": config.val_size,
                "epochs": config.epochs, "accuracy": float(acc[i].top1), "top5": float(acc[i].top5),
                "iou": float(iou[i]), "iou_corrected": float(iou_c[i]), "mass_in_box": float(mass[i]),
                "pointing": float(point[i]), "seconds": seconds / len(seeds),
                "train_seconds": trained.seconds / len(seeds),
                **{column: float(v[i]) for column, v in proxy_values.items()},
            })
    if examples is not None:
        examples.setdefault("inputs", []).append(np.asarray(vs.image[0]))
        examples.setdefault("boxes", []).append(np.asarray(vs.box[0]))
        examples.setdefault("titles", []).append(
            f"{condition} / {model_name} / label {int(vs.label[0])} (acc {float(acc[0].top1):.2f})")
    return rows


# ----------------------------------------------------------------------------------------------- figures


def samples_figure(config: VisionConfig, path: str | os.PathLike, *, per_condition: int = 6) -> Path:
    """``path`` (PNG): ``per_condition`` validation samples of each of the four conditions, true boxes in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(len(V.CONDITIONS), per_condition, figsize=(1.6 * per_condition, 1.7 * len(V.CONDITIONS)),
                             squeeze=False)
    for r, condition in enumerate(V.CONDITIONS):
        _, val = datasets(config, condition)
        s = jax.device_get(val.batch(jax.random.key(0), jnp.arange(per_condition), condition))
        for c in range(per_condition):
            ax = axes[r, c]
            ax.imshow(np.clip((np.asarray(s.image[c]) + 1) / 2, 0, 1), interpolation="nearest")
            t, l, b, rr = (int(v) for v in s.box[c])
            ax.add_patch(Rectangle((l - 0.5, t - 0.5), rr - l, b - t, fill=False, edgecolor="red", linewidth=1.2))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"label {int(s.label[c])}" + (f" bg {int(s.background_label[c])}" if s.background_label[c] >= 0
                                                       else ""), fontsize=7)
            if c == 0:
                ax.set_ylabel(condition, fontsize=9)
    fig.suptitle(f"vision samples ({config.preset}: canvas {config.spec.canvas}, foreground {config.spec.foreground})",
                 fontsize=9)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


# --------------------------------------------------------------------------------------------------- run


def run(config: VisionConfig, *, out: str | os.PathLike | None = None, overwrite: bool = False,
        progress: bool = True):
    """Runs the vision track and returns a pandas DataFrame (one row per condition x model x method x seed).

    With ``out``: ``out/results.csv``, ``out/config.json`` (config, versions, devices, wall times),
    ``out/examples.npz`` (one validation canvas per condition with every method's map: the report's gallery) and
    ``out/figures/samples.png``. Bad input raises before any work.
    """
    import pandas as pd

    config.validate()
    path = check_out_dir(out, overwrite=overwrite) if out is not None else None
    cells = [(m, c) for m in config.models for c in config.conditions]
    bar = Progress(enabled=progress)
    seeds, methods = len(config.seeds), config.method_names()
    rows: list[dict[str, Any]] = []
    examples: dict[str, list] = {}
    walls = {}
    losses = []
    started = time.time()
    for i, (model_name, condition) in enumerate(cells):
        bar.prefix = f"[{i + 1}/{len(cells)} {model_name} {condition}] "
        t0 = time.perf_counter()
        # Gallery: one canvas per condition, from the first model.
        gallery = examples if model_name == config.models[0] else None
        with bar.phase("data"):
            data = datasets(config, condition)
        # The Python step loop (CPU) ticks every step; the one-program scan (accelerators) only when it is done.
        with bar.phase(f"train {count(seeds, 'seed')} x {config.steps} steps", total=config.steps, unit="steps",
                       compiling=True) as phase:
            trained = train_cell(config, model_name, condition, data=data, on_step=phase.update)
            phase.set(config.steps)
        losses.append(trained.losses)
        with bar.phase(f"attribute {count(seeds, 'seed')}", total=len(methods), unit="methods") as phase:
            rows.extend(attribute_cell(config, model_name, condition, trained, data=data, on_method=phase.item,
                                       examples=gallery))
        walls[f"{model_name}/{condition}"] = time.perf_counter() - t0
    frame = pd.DataFrame(rows, columns=list(COLUMNS) + list(proxy_bench.proxy_columns(config.proxies, track="vision")))
    refuse_or_warn_diverged([diverged(lo) for lo in losses], [f"{m} {c}" for m, c in cells], "learning_rate",
                            config.learning_rate)
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        samples_figure(config, path / "figures" / "samples.png")
        # chaosjax.report's gallery contract: plain arrays, no pickles.
        np.savez(path / "examples.npz", titles=np.asarray(examples.pop("titles")),
                 **{k: np.stack(v) for k, v in examples.items()})
        write_results(path, frame, track="vision", config=config.to_json(), started=started,
                      walls={"per_cell": walls})
    return frame


def summary_table(frame) -> str:
    """Markdown: per condition x model x method, accuracy and the four scores (mean ± 95% CI over seeds)."""
    lines = [summary_rows(frame, ["condition", "model", "method"],
                          {"accuracy": "accuracy", "iou": "iou", "iou corrected": "iou_corrected",
                           "mass in box": "mass_in_box", "pointing": "pointing"})]
    train = frame.drop_duplicates(["condition", "model", "seed"])["train_seconds"].sum()
    lines.append(f"\ntraining: {train:.1f} s in all")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- the CLI


def add_cli(subparsers) -> None:
    """Registers the ``vision`` subcommand on an argparse subparsers object."""
    p = subparsers.add_parser(
        "vision",
        help=help_line("vision"),
        description=("Train classifiers per condition x model x seed on canvases generated on device, attribute "
                     "the validation split w.r.t. the predicted class, and score localisation (IoU as the study, "
                     "corrected IoU, mass in box, pointing game)."),
    )
    add_flags(p, VisionConfig, _FLAGS)
    p.add_argument("--out", default="runs/vision", help="results directory (default runs/vision)")
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress lines (stderr)")
    p.set_defaults(prepare=_prepare_cli)


#: The fields `chaosjax vision` has a flag for, in --help order.
_FLAGS = ("conditions", "models", "methods", "preset", "source", "background", "train_size", "val_size", "epochs",
          "batch_size", "seeds", "learning_rate", "width", "ig_steps", "protocol", "proxies")


def config_from_args(args) -> VisionConfig:
    """The config a parsed `chaosjax vision` command line asks for."""
    return VisionConfig(**from_args(args, VisionConfig, _FLAGS))


def _prepare_cli(args):
    """Builds and checks the config and ``--out`` (touching nothing); returns the run (`chaosjax.cli.main`)."""
    return checked_job(args, config_from_args(args), run, summary_table,
                       wrote="config: {out}/config.json  figure: {out}/figures/samples.png")


def compute_chunk(chunk, chunk_run) -> tuple[list[dict], dict]:
    """A sweep chunk: one (model, condition) of a setting, its seeds trained side by side, then attributed."""
    model, condition = chunk.setting.models[0], chunk.setting.conditions[0]
    return compute_seeds(chunk, chunk_run, data=datasets,
                         init=functools.partial(init_cell, chunk.setting, model, condition), train_cell=train_cell,
                         attribute_cell=attribute_cell, trained=Trained)


TRACK = Track(
    name="vision",
    help=help_line("vision"),
    config=VisionConfig,
    columns=tuple(COLUMNS),
    compute=compute_chunk,
    summary_table=lambda rows, spec: summary_table(rows[list(COLUMNS)]),
    draw="chaosjax.report.vision:draw",
    required=("condition", "model", "method", "iou", "mass_in_box"),
    add_cli=add_cli,
    list_fields=("conditions", "models", "methods", "seeds", "proxies"),
    parsers={"proxies": _resolve_proxies},
    setting_columns=lambda setting: proxy_bench.proxy_columns(setting.proxies, track="vision"),
    split=split_models_conditions("vision"),
    chunk_label=model_condition_label,
)
