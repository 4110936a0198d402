"""The audio track end to end: word clips among noise channels, classifiers, attribution, channel scores.

For every condition x model: the seeds train in one ``jit(vmap(fit))`` (``chaosjax.classify.fit_seeds``) on
batches generated on device from the train split (the condition is a traced code, so all four conditions
share one compiled training program per model); accuracy is measured on ``n_val`` fixed validation clips;
every attribution method runs on the first ``n_attr`` of them w.r.t. the *predicted* class, one compiled
program per (model, method), vmapped over seeds. Scores (``chaosjax.metrics``): ``channel_mass``, the share of
mean |attribution| on the word's channel (the study's localisation score; chance ``1 / channels``), and
``channel_hit``, the top-1 channel hit rate.

Two protocols (``AudioConfig.protocol``; docs/protocol.md, "Audio"):

* ``"corrected"`` (the default): attribution in inference mode (BatchNorm on running statistics), so a clip's
  attribution depends on that clip alone; the Transformer attends over time; each method scored on its own.
* ``"paper"``, the study's ``examples/eval_audio_localization.py``: the clips are attributed in consecutive
  batches of ``batch_size`` (its ``DataLoader``), in training mode (``model.train()``, l.145: BatchNorm on the
  statistics of the batch the model is called on), w.r.t. the class predicted in training mode (l.154-155);
  integrated gradients puts all ``ig_steps`` path points of a batch into one model call, as Captum does; the
  Transformer attends across the batch (``attend="batch"``: its ``batch_first`` slip); the ``deeplift`` row's
  channel mass divides *integrated gradients'* true-channel score by DeepLIFT's channel norm (l.174); and the
  score is the mean of per-batch means (l.161, l.189). Accuracy is measured in inference mode on batches of
  ``batch_size`` clips, as its ``test`` does.

Feature ablation uses one group per channel (baseline 0); GradientSHAP draws its baselines from 16 training
clips; SmoothGrad adds noise of ``0.15 x`` each clip's value range.

Random streams (model init, training batches, validation clips, attribution noise) follow the model's and the
condition's global indices (``models.MODELS``, ``CONDITIONS``), so a (model, condition) cell gives the same
result whichever other cells run with it (``chaosjax.sweep`` runs one at a time: ``train_cell`` then
``attribute_cell``).

Outputs in ``out``: ``results.csv`` (one row per condition x model x method x seed), ``config.json``,
``examples.npz`` (``chaosjax.report``'s gallery contract: one validation clip per condition, channels last,
with every method's attribution by the first model, seed 0), ``figures/audio_clips.png`` (waveform per
channel, word channel marked) and ``figures/audio_word_spectrogram.png``.
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
from chaosjax.checks import check_out_dir, diverged, refuse_or_warn_diverged
from chaosjax.data import audio as data
from chaosjax.data.audio import CONDITIONS
from chaosjax.data.speech import WORDS
from chaosjax.models import audio as models
from chaosjax._fields import add_flags, check_fields, from_args, integer, number, one_of, option, seed_list
from chaosjax._parse import parse_int_range, parse_names
from chaosjax.runs import summary_rows, write_results
from chaosjax.tracks import Track, draws_at_once, help_line, proxy_bench
from chaosjax.tracks._cli import checked_job
from chaosjax.tracks._seeded import compute_seeds, model_condition_label, split_models_conditions

__all__ = ["COLUMNS", "PROTOCOLS", "AudioConfig", "add_cli", "paper_channel_mass", "pooled_integrated_gradients",
           "run", "summary_table"]

PROTOCOLS = ("paper", "corrected")

COLUMNS = (
    "track", "condition", "model", "method", "seed", "protocol", "accuracy", "channel_mass", "channel_hit", "seconds",
    "top5", "chance", "preset", "source", "sample_rate", "channels", "steps", "batch_size", "lr", "n_val", "n_attr",
    "ig_steps", "background_gain", "final_loss", "train_seconds",
)
#: Columns `--proxies` adds after them (`proxy_bench.proxy_columns`: those of the proxies asked for).
OPTIONAL_COLUMNS = proxy_bench.proxy_columns(tuple(proxy_bench.AUDIO_PROXIES), track="audio")


def _resolve_proxies(value, where: str) -> tuple[str, ...]:
    return proxy_bench.resolve_proxies(value, where, track="audio")


def _names(known: tuple[str, ...]):
    """A check: names from `known`, at least one, none twice."""
    def check(values, name: str) -> None:
        if not values or any(v not in known for v in values) or len(set(values)) != len(values):
            bad = [v for v in values if v not in known]
            raise ValueError(f"{name}: unknown {bad!r} or empty/duplicated; expected names from {', '.join(known)}")

    return check


def _listed(every: tuple[str, ...]):
    """A flag's parser: comma-separated names, none for `every`."""
    return lambda text, flag: parse_names(text, flag) or every


def _sample_rate(rate, name: str) -> None:
    if rate is not None and (isinstance(rate, bool) or rate not in data.SAMPLE_RATES):
        raise ValueError(f"{name}: {rate!r} Hz is not supported by the presets; expected one of "
                         f"{', '.join(map(str, data.SAMPLE_RATES))}")


def _speakers(speakers, name: str) -> None:
    if speakers is not None and (len(speakers) != 2 or min(speakers) < 1):
        raise ValueError(f"{name}: expected (train, val) counts >= 1, got {speakers!r}")


@dataclasses.dataclass(frozen=True)
class AudioConfig:
    """Everything an audio run depends on (docs/protocol.md, "Audio"; sizes from the preset).

    ``protocol`` defaults to ``"corrected"`` (unlike the symbolic track): the study's audio protocol makes a clip's
    attribution depend on the clips batched with it (training-mode BatchNorm, a batch-attending Transformer), so
    it measures the batch as much as the method; ``"paper"`` reproduces it (module docstring).
    """

    conditions: tuple[str, ...] = option(data.CONDITIONS, "RBFP,RBRP,SBFP,SBRP or a subset",
                                         check=_names(data.CONDITIONS), parse=_listed(data.CONDITIONS))
    models: tuple[str, ...] = option(("rnn", "lstm", "tcn", "transformer"), "rnn,lstm,tcn,transformer or a subset",
                                     check=_names(tuple(models.MODELS)), parse=_listed(tuple(models.MODELS)))
    methods: tuple[str, ...] | None = option(  # None: every method of chaosjax.attribution.METHODS
        None, "names from chaosjax.attribution.METHODS, or 'all'", parse=parse_names, text="all")
    seeds: tuple[int, ...] = option((0,), "e.g. '0-2'", check=seed_list,
                                    parse=parse_int_range, text="0")
    preset: str = option("tiny", "tiny: 8 kHz, 16/4 speakers; small: 16 kHz, 40/8; paper: 16 kHz, 2,424/285",
                         check=one_of(*data.PRESETS), choices=tuple(data.PRESETS))
    source: str = option("espeak", "espeak (needs the [audio] extra), speechcommands:PATH, chaosmining:PATH, or "
                         "synthetic (tones; for tests and smoke runs)")
    sample_rate: int | None = option(None, "override the preset's rate (8000 or 16000)", check=_sample_rate)
    speakers: tuple[int, int] | None = option(None, "eSpeak speakers (train, val); default: the preset's",
                                              check=_speakers)
    background_gain: float | None = option(  # None: the preset's (1.0 = protocol)
        None, "scale the background channels (RB noise, SB soundscape) by this factor in [0, 1]; default: the "
              "preset's (1.0, the protocol, except tiny)", check=number(low=0.0, high=1.0, optional=True))
    # Tiny preset (backgrounds at 0.2), eSpeak words: the TCN reaches 0.85 / 0.58 / 0.89 / 0.43 validation
    # accuracy on RBFP / RBRP / SBFP / SBRP (chance 0.029) after 1,000 steps of 32 at 3e-3, ~2.5 min each on 2
    # CPU cores; 400 steps of 64 at 1e-3 with 16 speakers stayed at chance.
    steps: int = option(1000, "training steps", check=integer(1))
    batch_size: int = option(32, "training batch size", check=integer(1))
    learning_rate: float = option(3e-3, "AdamW peak learning rate, cosine schedule", check=number(positive=True),
                                  flags=("--learning-rate", "--lr"), metavar="LR")
    weight_decay: float = option(1e-4, "AdamW weight decay", check=number(low=0.0))
    warmup_steps: int | None = option(None, "learning-rate warm-up steps (default: 5%% of the steps)")
    n_val: int = option(256, "validation clips for accuracy", check=integer(1))
    n_attr: int = option(64, "validation clips attributed", check=integer(1))
    ig_steps: int = option(10, "integrated-gradients steps", check=integer(1))
    smoothgrad_samples: int = option(20, "SmoothGrad's noisy samples", check=integer(1))
    shap_samples: int = option(20, "GradientSHAP's samples", check=integer(1))
    attribution_batch_size: int | None = option(None, "draws per chunk (default: 1 on a CPU, all elsewhere)",
                                                check=integer(1, optional=True))
    random_onset: bool = option(False, "place words at a random onset (study: start)")
    protocol: str = option("corrected", "corrected (default: inference-mode attribution, each clip on its own) or "
                           "paper (the study's: training-mode BatchNorm on batches of --batch-size clips, a "
                           "batch-attending Transformer, its DeepLIFT score); docs/protocol.md",
                           check=one_of(*PROTOCOLS), choices=PROTOCOLS)
    proxies: tuple[str, ...] = option(  # proxy metrics (chaosjax.tracks.proxy_bench.AUDIO_PROXIES); () none
        (), "also score proxy metrics per model x condition x method x seed on the first 32 attributed clips "
            "(protocol corrected), one results column each: 'all' or comma-separated names of "
            "chaosjax.tracks.proxy_bench.AUDIO_PROXIES (docs/proxies.md)", parse=_resolve_proxies,
        text="none", metavar="NAMES")

    def method_names(self) -> tuple[str, ...]:
        return tuple(attribution.METHODS) if self.methods is None else tuple(self.methods)

    def spec(self) -> data.AudioSpec:
        spec = data.preset(self.preset)
        rate = spec.sample_rate if self.sample_rate is None else self.sample_rate
        gain = spec.background_gain if self.background_gain is None else self.background_gain
        return dataclasses.replace(spec, sample_rate=rate, random_onset=self.random_onset, background_gain=gain)

    def validate(self) -> None:
        """Raises ValueError/TypeError naming the bad field, before any expensive work."""
        check_fields(self)
        _names(tuple(attribution.METHODS))(self.method_names(), "methods")
        if _resolve_proxies(self.proxies, "proxies") and self.protocol == "paper":
            raise ValueError("proxies: the paper protocol attributes batches in training mode, so no single "
                             "function of a clip is explained; score proxies under protocol 'corrected'")
        if self.n_attr > self.n_val:
            raise ValueError(f"n_attr: {self.n_attr} attributed clips exceed the {self.n_val} validation clips")
        if self.warmup_steps is not None and (isinstance(self.warmup_steps, bool)
                                              or not isinstance(self.warmup_steps, (int, np.integer))
                                              or not 0 <= self.warmup_steps < self.steps):
            raise ValueError(f"warmup_steps: expected 0 <= warmup_steps < steps, got {self.warmup_steps!r}")
        kind, _ = data.check_source(self.source)  # eSpeak installed? folder there?
        if kind == "chaosmining" and len(self.conditions) > 1 and not all(
                (Path(self.source.partition(":")[2]).expanduser() / c).is_dir() for c in self.conditions):
            raise ValueError("source: a chaosmining folder holds one condition; pass that one condition, or a "
                             "folder with one sub-folder per condition (RBFP/, RBRP/, ...)")
        self.spec()

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["methods"] = list(self.method_names())
        out["channels"] = self.spec().channels
        return out


# ------------------------------------------------------------------------------------------ jitted pieces


@functools.lru_cache(maxsize=None)
def _batch_fn(batch_size: int):
    """A cached (hence hashable and stable) ``batch_fn(key, step, (gen, code))`` for ``classify.fit``."""

    def batch_fn(key, step, payload):
        gen, code = payload
        s = gen.batch(jax.random.fold_in(key, step), jnp.arange(batch_size), code)
        return s.clip, s.label

    return batch_fn


@functools.partial(jax.jit, static_argnames=("n",))
def _val_clips(gen, key, code, *, n):
    return gen.batch(key, jnp.arange(n), code)


#: Perturbation budgets per batch of attributed clips; the channels are the players (feature groups).
PERTURBATION_SAMPLES = 64  # kernel_shap and lime coalitions (of 2^10 - 2 for ten channels)
SHAPLEY_PERMUTATIONS = 8  # shapley_sampling orders (four antithetic pairs): 8 * 9 + 2 passes
PERTURBATION_CHUNK = 16  # coalitions at once off a CPU when attribution_batch_size is None (exact: 1,024)
#: Whether this jax miscompiles a vmap over models, under `jit`, around a sum over draws of
#: ``(x - b_k) * grad f(b_k + a (x - b_k))`` on a model with a max over time: every member got the first member's
#: result (jax 0.10.2, XLA:CPU; docs/jax_patterns.md). jax 0.11.0 computes it right (checked with 0.11.0, 0.11.2,
#: 0.12.0 and 0.12.0.1 on the plain-JAX reproduction; 0.12.0.1 also on the track's DeepLIFT-SHAP).
SUM_OVER_DRAWS_MISCOMPILED = jax.__version_info__ < (0, 11)


def method_options(config: AudioConfig, method: str) -> tuple:
    """Keyword options of `method` as a hashable tuple (a static argument of `attribute_program`)."""
    # One draw at a time on a CPU: all 20 of gradient SHAP's at once held 20 x 64 x 3 clip-gradients at the
    # defaults (14.2 GB peak, against 1.4 GB one at a time, which was also faster; docs/tracks/audio.md). The
    # perturbation methods likewise: KernelSHAP's coalitions 16 at a time peaked at 6.6 GB, one at a time 1.1 GB.
    chunk = draws_at_once(config.attribution_batch_size)
    many = PERTURBATION_CHUNK if chunk is None else chunk  # elsewhere: coalitions 16 at a time, not all 1,024
    if method == "occlusion":  # a quarter of a channel's clip, sliding by an eighth: where in which channel
        length = config.spec().length
        return (("batch_size", many), ("strides", (1, max(1, length // 8))), ("window", (1, max(1, length // 4))))
    if method in ("shapley_exact", "feature_permutation"):
        return (("batch_size", many),)
    # Under a jax with the miscompile, the two methods whose draws pick baselines take them one at a time on every
    # backend unless asked otherwise: all at once, with the seeds vmapped under jit, gave every seed the first
    # seed's maps (jax 0.10.2, XLA:CPU; docs/jax_patterns.md and the xfail in tests/test_audio_track.py); a scan
    # over the draws is right. From jax 0.11 on they follow the rule of the other methods.
    one_by_one = (config.attribution_batch_size or 1) if SUM_OVER_DRAWS_MISCOMPILED else chunk
    if method == "deeplift_shap":
        return (("batch_size", one_by_one),)
    if method == "shapley_sampling":
        return (("antithetic", True), ("batch_size", many), ("permutations", SHAPLEY_PERMUTATIONS))
    if method in ("kernel_shap", "lime"):
        return (("batch_size", many), ("samples", PERTURBATION_SAMPLES))
    if method == "integrated_gradients":
        return (("batch_size", chunk), ("steps", config.ig_steps))
    if method == "smoothgrad":
        return (("batch_size", chunk), ("samples", config.smoothgrad_samples))
    if method == "gradient_shap":
        return (("batch_size", one_by_one), ("samples", config.shap_samples))
    if method == "feature_ablation":
        return (("batch_size", chunk),)
    return ()


def _channel_groups(x) -> np.ndarray:
    """Each feature of a clip `(channels, samples)` labelled with its channel: the perturbation methods' and the
    proxies' groups (concrete, from the static shape)."""
    return np.repeat(np.arange(x.shape[1], dtype=np.int32)[:, None], x.shape[2], axis=1)


@functools.partial(jax.jit, static_argnames=("model", "method", "options"))
def attribute_program(model, variables, x, keys, refs, *, method: str, options: tuple):
    """`method` for every seed (leading axis of `variables` and `keys`) w.r.t. the predicted class, in inference
    mode; one compiled program per (model, method, shapes), shared by the conditions."""
    fn = attribution.METHODS[method]
    kwargs = dict(options)
    if method in attribution.TAKES_GROUPS:  # one group per channel
        kwargs["groups"] = _channel_groups(x)

    def one(v, k):
        apply = lambda z: model.apply(v, z)  # noqa: E731  (inference mode: BatchNorm on running statistics)
        pred = jnp.argmax(apply(x), axis=1)
        extra = {"key": k} if method in attribution.NEEDS_KEY else {}
        if method in attribution.NEEDS_BASELINES:
            extra["baselines"] = refs
        return fn(attribution.target(apply, pred), x, **kwargs, **extra)

    return jax.vmap(one)(variables, keys)


@functools.partial(jax.jit, static_argnames=("model", "names"))
def _map_proxy_scores(model, variables, x, attributions, keys, *, names: tuple[str, ...]):
    """The ranked proxies `names` that score the maps alone (none of `proxy_bench.REATTRIBUTING`) for every seed's
    model: `{column: (seeds,)}`, each the mean over the clips `x` (those of its finite values). As `attribute_program`
    (inference mode), they score the predicted class's logit; deletion and insertion move whole channels. No
    method is named: one compiled program serves every method of a (model, condition)."""

    def one_seed(v, a, key):
        apply = lambda z: model.apply(v, z)  # noqa: E731
        pred = jnp.argmax(apply(x), axis=1)
        out = proxy_bench.classifier_proxies(attribution.target(apply, pred), x, a, None, key, names=names,
                                             groups=_channel_groups(x))
        return {column: proxy_bench.finite_mean(value) for column, value in out.items()}

    return jax.vmap(one_seed)(variables, attributions, keys)


@functools.partial(jax.jit, static_argnames=("model", "method", "options", "names"))
def _proxy_scores(model, variables, random_variables, x, attributions, channel, refs, keys, *, method: str,
                  options: tuple, names: tuple[str, ...]):
    """The proxies `names` of `proxy_bench.REATTRIBUTING` of one method for every seed's model: `{column:
    (seeds,)}`, each the mean over the clips `x` (those of its finite values); `_map_proxy_scores` has the others.
    As `attribute_program` (inference mode): max-sensitivity's re-attribution keeps the classes predicted at `x`; the
    sanity row `randomisation` attributes each seed's re-initialised model (`random_variables`) w.r.t. its own
    predictions and scores their channel mass (chance 1 / channels)."""
    fn = attribution.METHODS[method]
    kwargs = dict(options)
    groups = _channel_groups(x)
    if method in attribution.TAKES_GROUPS:
        kwargs["groups"] = groups

    def maps_of(apply, z, key, pred=None):
        pred = jnp.argmax(apply(z), axis=1) if pred is None else pred
        extra = {"key": key} if method in attribution.NEEDS_KEY else {}
        if method in attribution.NEEDS_BASELINES:
            extra["baselines"] = refs
        return fn(attribution.target(apply, pred), z, **kwargs, **extra)

    def one_seed(v, rv, a, key):
        apply = lambda z: model.apply(v, z)  # noqa: E731
        pred = jnp.argmax(apply(x), axis=1)
        out = proxy_bench.classifier_proxies(
            attribution.target(apply, pred), x, a, lambda z, k: maps_of(apply, z, k, pred), key,
            names=tuple(n for n in names if n != "randomisation"), groups=groups)
        out = {column: proxy_bench.finite_mean(value) for column, value in out.items()}
        if "randomisation" in names:
            moved = maps_of(lambda z: model.apply(rv, z), x, jax.random.fold_in(key, 3))
            out[proxy_bench.AUDIO_PROXIES["randomisation"][0]] = metrics.channel_mass(moved, channel)
        return out

    return jax.vmap(one_seed)(variables, random_variables, attributions, keys)


def pooled_integrated_gradients(apply, x, pred, *, steps: int):
    """Integrated gradients as Captum's ``IntegratedGradients.attribute(x, zeros, target, n_steps=steps)`` runs
    it (``internal_batch_size=None``): the ``steps`` Gauss-Legendre path points of every clip are stacked into one
    batch of ``steps * B`` clips (alpha-major) and go through the model in one call, so under training-mode
    BatchNorm (or batch attention) they share statistics. ``chaosjax.attribution.integrated_gradients`` calls the
    model once per path point instead, which under training mode normalises each point's batch apart and cancels
    the path's scaling."""
    alphas, weights = attribution.quadrature("gausslegendre", steps)
    a = jnp.asarray(alphas, x.dtype)
    path = (a[:, None, None, None] * x[None]).reshape((steps * x.shape[0],) + x.shape[1:])
    f = attribution.target(apply, jnp.tile(pred, steps))
    grads = jax.grad(lambda z: jnp.sum(f(z)))(path).reshape((steps,) + x.shape)
    return x * jnp.tensordot(jnp.asarray(weights, x.dtype), grads, axes=1)


@functools.partial(jax.jit, static_argnames=("model", "method", "options"))
def _attribute_paper(model, variables, batches, keys, refs, first, *, method: str, options: tuple):
    """`method` for every seed on ``batches (nb, b, C, L)`` under the study's protocol (module docstring): each
    batch attributed in training mode w.r.t. the class predicted in training mode; returns ``(S, nb, b, C, L)``.
    ``first``: the index of the first batch (the per-batch random streams)."""
    fn = attribution.METHODS[method]
    kwargs = dict(options)
    if method == "feature_ablation":  # one group per channel (the study's feature_mask, l.178-182)
        kwargs["groups"] = _channel_groups(batches[0])  # batches[0]: (b, C, L)

    def one(v, k):
        apply = classify.logits_fn(model, v, train=True)  # model.train() (l.145)

        def one_batch(args):
            xb, bi = args
            pred = jnp.argmax(apply(xb), axis=1)  # outputs = model(inputs) in training mode (l.154-155)
            if method == "integrated_gradients":
                return pooled_integrated_gradients(apply, xb, pred, steps=kwargs["steps"])
            extra = {"key": jax.random.fold_in(k, bi)} if method in attribution.NEEDS_KEY else {}
            if method == "gradient_shap":
                extra["baselines"] = refs
            return fn(attribution.target(apply, pred), xb, **kwargs, **extra)

        return jax.lax.map(one_batch, (batches, first + jnp.arange(batches.shape[0])))

    return jax.vmap(one)(variables, keys)


def _study_batches(n: int, batch_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the study's evaluation batches over ``n`` clips: ``DataLoader(batch_size,
    shuffle=False, drop_last=False)``."""
    return [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def paper_channel_mass(attr, channels, batch_size: int, *, numerator=None) -> np.ndarray:
    """The study's audio score per seed: for each clip, the true channel's score over the L1 norm of the channel
    scores ``s_c = mean_t |a_{c,t}|`` (``metrics.channel_mass_per_sample``), averaged within each batch of
    ``batch_size`` consecutive clips, then over batches (examples/eval_audio_localization.py l.158-161, l.189).

    ``attr``: ``(S, n, C, L)``; ``channels``: ``(n,)``. ``numerator``: attributions whose true-channel score
    replaces ``attr``'s in the numerator: the study's DeepLIFT row divides integrated gradients' score by
    DeepLIFT's norm (l.174). An all-zero attribution scores ``1 / C``, as ``metrics.channel_mass`` (the study's
    code divides 0 by 0 there). Returns ``(S,)``.
    """
    scores = np.asarray(jax.vmap(metrics.channel_scores)(jnp.asarray(attr)))
    top = scores if numerator is None else np.asarray(jax.vmap(metrics.channel_scores)(jnp.asarray(numerator)))
    channels = np.asarray(channels)
    chosen = top[:, np.arange(scores.shape[1]), channels]
    total = scores.sum(axis=2)
    ratio = np.where(total > 0, chosen / np.where(total > 0, total, 1), 1.0 / scores.shape[2])
    return np.mean([ratio[:, a:b].mean(axis=1) for a, b in _study_batches(scores.shape[1], batch_size)], axis=0)


def _attribute_all(config: AudioConfig, model, variables, clips, keys, refs, method: str) -> jax.Array:
    """``(S, n, C, L)`` attributions of ``clips`` under ``config.protocol``."""
    options = method_options(config, method)
    if config.protocol == "corrected":
        return attribute_program(model, variables, clips, keys, refs, method=method, options=options)
    n, b = clips.shape[0], config.batch_size
    full = n // b * b
    parts = []
    if full:
        batches = clips[:full].reshape((full // b, b) + clips.shape[1:])
        parts.append(_attribute_paper(model, variables, batches, keys, refs, jnp.int32(0), method=method,
                                      options=options))
    if full < n:  # the last, shorter batch
        parts.append(_attribute_paper(model, variables, clips[full:][None], keys, refs, jnp.int32(full // b),
                                      method=method, options=options))
    return jnp.concatenate([p.reshape((p.shape[0], -1) + p.shape[3:]) for p in parts], axis=1)


# ------------------------------------------------------------------------------------------------- a run


def _datasets(config: AudioConfig, spec: data.AudioSpec, condition: str | None):
    """(train, val) generators of the config's source."""
    p = data.PRESETS[config.preset]
    speakers = config.speakers or (p["train_speakers"], p["val_speakers"])
    return tuple(data.dataset(spec, split, source=config.source, condition=condition, speakers=n)
                 for split, n in zip(("train", "val"), speakers))


class Trained(NamedTuple):
    """One (model, condition)'s trained seeds: ``variables`` and ``losses`` ``(seeds, steps)`` with a leading seed
    axis, and the training's wall time in seconds."""

    variables: Any
    losses: jax.Array
    seconds: float


class CellData(NamedTuple):
    """What a (model, condition) trains and is scored on: the train generator, the condition's code, the
    validation clips (``clips``: the first ``n_attr`` attributed; ``channel``: their word channels) and GradientSHAP's
    16 reference clips."""

    train: Any
    code: jax.Array
    val: Any  # data.Batch of n_val clips
    clips: jax.Array
    channel: jax.Array
    refs: jax.Array


def _no_placement(tree):
    return tree


def cell_data(config: AudioConfig, condition: str, *, datasets=None) -> CellData:
    """The data of one condition. Its random streams use the condition's global index, so a cell does not depend
    on the other conditions of the run. ``datasets``: the (train, val) generators, if already built."""
    spec = config.spec()
    train, val = datasets if datasets is not None else _datasets(config, spec, condition)
    ci = data.CONDITIONS.index(condition)
    code = jnp.int32(ci)
    n_val = min(config.n_val, val.size) if val.size else config.n_val
    vs = _val_clips(val, jax.random.fold_in(jax.random.key(10_007), ci), code, n=n_val)
    n_attr = min(config.n_attr, n_val)
    refs = _val_clips(train, jax.random.key(99), code, n=16).clip
    return CellData(train, code, vs, vs.clip[:n_attr], vs.channel[:n_attr], refs)


def build_model(config: AudioConfig, name: str):
    """The functional model `name` (`init`, `apply`) for the config's clips and the words; cached, so every call
    with the same arguments returns the same object (one compiled program per model)."""
    # The study's Transformer attends across the batch (docs/protocol.md, "Audio"); same parameters either way.
    opts = {"attend": "batch"} if name == "transformer" and config.protocol == "paper" else {}
    return models.MODELS[name](config.spec().channels, len(WORDS), **opts)


def init_cell(config: AudioConfig, model_name: str) -> Any:
    """The untrained variables of every seed (leading seed axis): what `train_cell` starts from, and the shapes a
    checkpoint restores into."""
    mi = list(models.MODELS).index(model_name)
    keys = jnp.stack([jax.random.fold_in(jax.random.key(s), 1_000 + mi) for s in config.seeds])
    return jax.vmap(build_model(config, model_name).init)(keys)


def train_cell(config: AudioConfig, model_name: str, condition: str, *, data: CellData | None = None,
               place=None, on_step=None) -> Trained:
    """Trains the seeds of one (model, condition) side by side (``classify.fit_seeds``). ``place(tree)`` may put
    the seed-stacked inputs on devices, e.g. split along the seed axis across a mesh. ``data``: the condition's
    `cell_data`, if already built. ``on_step(1)`` is called after each training step where the loop runs from
    Python (``classify.default_loop``)."""
    place = place or _no_placement
    cell = data if data is not None else cell_data(config, condition)
    mi, ci = list(models.MODELS).index(model_name), CONDITIONS.index(condition)
    data_keys = jnp.stack([jax.random.fold_in(jax.random.key(s), 2_000 + 10 * mi + ci) for s in config.seeds])
    variables, data_keys = place((init_cell(config, model_name), data_keys))
    start = time.perf_counter()
    result = classify.fit_seeds(
        build_model(config, model_name), variables, _batch_fn(config.batch_size), data_keys,
        steps=config.steps, learning_rate=config.learning_rate, weight_decay=config.weight_decay,
        warmup_steps=config.steps // 20 if config.warmup_steps is None else config.warmup_steps,
        data=(cell.train, cell.code), progress=on_step,
    )
    jax.block_until_ready(result)
    return Trained(result.variables, result.losses, time.perf_counter() - start)


def attribute_cell(config: AudioConfig, model_name: str, condition: str, trained: Trained, *,
                   data: CellData | None = None, place=None, on_method=None,
                   examples: dict[str, list] | None = None) -> list[dict[str, Any]]:
    """Every method on the attributed clips for the trained seeds of one (model, condition): one row per
    method x seed. ``on_method(name)`` is called before each method (progress). With ``examples``, appends each
    method's attribution of the first clip by the first seed (channels last) to ``examples["attr_<method>"]``."""
    place = place or _no_placement
    cell = data if data is not None else cell_data(config, condition)
    spec = config.spec()
    model = build_model(config, model_name)
    ci = CONDITIONS.index(condition)
    seeds = list(config.seeds)
    paper = config.protocol == "paper"
    # paper: the study's test() feeds batches of batch_size clips (inference mode); only its Transformer cares.
    evaluate = functools.partial(classify.evaluate, batch_size=config.batch_size, together=True) if paper \
        else classify.evaluate
    accs = [evaluate(model, jax.tree.map(lambda a, i=i: a[i], trained.variables), cell.val.clip, cell.val.label)
            for i in range(len(seeds))]
    keys = jnp.stack([jax.random.fold_in(jax.random.key(s), 3_000 + ci) for s in seeds])
    variables, keys = place((trained.variables, keys))
    dead = diverged(trained.losses)  # a model whose loss went non-finite scores NaN, never a number
    if config.proxies:  # proxy metrics (docs/proxies.md) on the first PROXY_CANVASES attributed clips
        n_proxy = min(proxy_bench.PROXY_CANVASES, cell.clips.shape[0])
        by_maps, by_method = proxy_bench.split_reattributing(config.proxies)
        proxy_columns = proxy_bench.proxy_columns(config.proxies, track="audio")  # the last: proxy_seconds
        mi = list(models.MODELS).index(model_name)
        random_variables, proxy_keys = place((
            jax.vmap(model.init)(jnp.stack([jax.random.fold_in(jax.random.key(s), 4_000 + mi) for s in seeds])),
            jax.vmap(lambda k: jax.random.fold_in(k, 5))(keys)))
    rows: list[dict[str, Any]] = []
    ig_attr = None  # paper: the deeplift row's numerator (integrated gradients' attributions of the same clips)
    for method in config.method_names():
        if on_method is not None:
            on_method(method)
        start = time.perf_counter()
        attr = _attribute_all(config, model, variables, cell.clips, keys, cell.refs, method)
        jax.block_until_ready(attr)
        seconds = time.perf_counter() - start
        if method == "integrated_gradients":
            ig_attr = attr
        if paper:
            numerator = None
            if method == "deeplift":
                if ig_attr is None:
                    ig_attr = _attribute_all(config, model, variables, cell.clips, keys, cell.refs,
                                             "integrated_gradients")
                numerator = ig_attr
            mass = paper_channel_mass(attr, cell.channel, config.batch_size, numerator=numerator)
        else:
            mass = np.asarray(jax.vmap(lambda a: metrics.channel_mass(a, cell.channel))(attr))
        hit = np.asarray(jax.vmap(lambda a: metrics.channel_hit(a, cell.channel))(attr))
        mass, hit = np.where(dead, np.nan, mass), np.where(dead, np.nan, hit)
        proxy_values: dict[str, Any] = {}
        if config.proxies:
            start = time.perf_counter()
            x_proxy, attr_proxy = cell.clips[:n_proxy], attr[:, :n_proxy]
            values = {}
            if by_maps:
                values.update(_map_proxy_scores(model, variables, x_proxy, attr_proxy, proxy_keys, names=by_maps))
            if by_method:
                values.update(_proxy_scores(model, variables, random_variables, x_proxy, attr_proxy,
                                            cell.channel[:n_proxy], cell.refs, proxy_keys, method=method,
                                            options=method_options(config, method), names=by_method))
            values = jax.device_get(values)
            proxy_values = {c: np.where(dead, np.nan, values[c]) for c in proxy_columns[:-1]}
            proxy_values["proxy_seconds"] = np.full(len(seeds), (time.perf_counter() - start) / len(seeds))
        for si, seed in enumerate(seeds):
            rows.append({
                "track": "audio", "condition": condition, "model": model_name, "method": method, "seed": seed,
                "protocol": config.protocol, "accuracy": float(accs[si].top1), "channel_mass": float(mass[si]),
                "channel_hit": float(hit[si]), "seconds": seconds / len(seeds),
                "top5": float(accs[si].top5), "chance": 1.0 / spec.channels, "preset": config.preset,
                "source": config.source, "sample_rate": spec.sample_rate, "channels": spec.channels,
                "steps": config.steps, "batch_size": config.batch_size, "lr": config.learning_rate,
                "n_val": int(cell.val.clip.shape[0]), "n_attr": int(cell.clips.shape[0]), "ig_steps": config.ig_steps,
                "background_gain": spec.background_gain, "final_loss": float(trained.losses[si, -1]),
                "train_seconds": trained.seconds / len(seeds),
                **{column: float(v[si]) for column, v in proxy_values.items()},
            })
        if examples is not None:
            examples.setdefault(f"attr_{method}", []).append(np.asarray(attr[0, 0]).T)
    return rows


def run(config: AudioConfig, *, out: str | os.PathLike | None = None, overwrite: bool = False,
        progress: bool = True):
    """Runs the audio track and returns the results as a pandas DataFrame (module docstring).

    With `out`, writes ``out/results.csv``, ``out/config.json``, ``out/examples.npz`` and ``out/figures/``. Bad
    input raises before any work.
    """
    import pandas as pd

    config.validate()
    path = check_out_dir(out, overwrite=overwrite) if out is not None else None
    spec = config.spec()
    methods = config.method_names()
    composed = data.parse_source(config.source)[0] == "chaosmining"
    bar = Progress(enabled=progress)
    started = time.time()
    rows: list[dict[str, Any]] = []
    examples: dict[str, list] = {"inputs": [], "channels": [], "titles": [], **{f"attr_{m}": [] for m in methods}}
    with bar.phase("sources"):
        shared = None if composed else _datasets(config, spec, None)
    dead, labels = [], []
    seeds, cells = len(config.seeds), len(config.conditions) * len(config.models)
    for ci, condition in enumerate(config.conditions):
        bar.prefix = f"[{condition}] "
        with bar.phase("data"):
            cell = cell_data(config, condition, datasets=None if composed else shared)
        for mi, name in enumerate(config.models):
            bar.prefix = f"[{ci * len(config.models) + mi + 1}/{cells} {condition} {name}] "
            # The Python step loop (CPU) ticks every step; the one-program scan (accelerators) only at the end.
            with bar.phase(f"train {count(seeds, 'seed')} x {config.steps} steps", total=config.steps, unit="steps",
                           compiling=True) as phase:
                trained = train_cell(config, name, condition, data=cell, on_step=phase.update)
                phase.set(config.steps)
            dead.append(diverged(trained.losses))
            labels.append(f"{name} {condition}")
            with bar.phase(f"attribute {count(seeds, 'seed')}", total=len(methods), unit="methods") as phase:
                rows.extend(attribute_cell(config, name, condition, trained, data=cell, on_method=phase.item,
                                           examples=examples if mi == 0 else None))
        examples["inputs"].append(np.asarray(cell.clips[0]).T)
        examples["channels"].append(int(cell.channel[0]))
        examples["titles"].append(f"{condition} / {config.models[0]} / '{WORDS[int(cell.val.label[0])]}'")
    frame = pd.DataFrame(rows, columns=list(COLUMNS) + list(proxy_bench.proxy_columns(config.proxies, track="audio")))
    refuse_or_warn_diverged(dead, labels, "lr", config.learning_rate)
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        arrays = {k: np.stack(v) for k, v in examples.items() if k not in ("channels", "titles")}
        np.savez(path / "examples.npz", channels=np.asarray(examples["channels"], np.int32),
                 titles=np.asarray(examples["titles"]), **arrays)
        figures = _figures(path / "figures", examples, shared[0] if shared else None, spec)
        write_results(path, frame, track="audio", config=config.to_json(), started=started, figures=figures)
    return frame


def _figures(folder: Path, examples: dict[str, list], train, spec: data.AudioSpec) -> list[str]:
    """``audio_clips.png``: each condition's example clip, one waveform per channel, the word's channel in
    colour; ``audio_word_spectrogram.png``: the log-power spectrogram of one word of the train bank."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    inputs = examples["inputs"]
    fig = Figure(figsize=(3.2 * len(inputs), 5.5), layout="constrained")
    axes = fig.subplots(1, len(inputs), squeeze=False)[0]
    for ax, clip, ch, title in zip(axes, inputs, examples["channels"], examples["titles"]):
        t = np.arange(clip.shape[0]) / spec.sample_rate
        for c in range(clip.shape[1]):
            word = c == ch
            ax.plot(t, clip[:, c] * 0.45 - c, lw=0.4, color="#D55E00" if word else "0.45")
        ax.set_yticks(-np.arange(clip.shape[1]), [f"ch {c}" + (" (word)" if c == ch else "") for c in
                                                  range(clip.shape[1])], fontsize=7)
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("time (s)")
    FigureCanvasAgg(fig)
    fig.savefig(folder / "audio_clips.png", dpi=120)
    written.append("figures/audio_clips.png")
    if train is not None and hasattr(train, "words"):
        from scipy.signal import spectrogram

        word = np.asarray(train.words[0]).astype(np.float64) / 32767
        length = int(np.asarray(train.lengths[0]))
        f, t, s = spectrogram(word[:max(length, 256)], fs=spec.sample_rate, nperseg=256, noverlap=192)
        fig = Figure(figsize=(5, 3.2), layout="constrained")
        ax = fig.subplots()
        mesh = ax.pcolormesh(t, f, 10 * np.log10(s + 1e-10), shading="auto", cmap="magma")
        fig.colorbar(mesh, ax=ax, label="dB")
        ax.set_title(f"'{WORDS[int(np.asarray(train.labels[0]))]}' ({length / spec.sample_rate:.2f} s)")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("frequency (Hz)")
        FigureCanvasAgg(fig)
        fig.savefig(folder / "audio_word_spectrogram.png", dpi=120)
        written.append("figures/audio_word_spectrogram.png")
    return written


def summary_table(frame) -> str:
    """A markdown table per condition x model x method: accuracy, channel mass and hit rate (mean and 95% CI over
    seeds; chance 1 / channels) and the attribution wall time."""
    lines = [summary_rows(frame, ["condition", "model", "method"],
                          {"accuracy": "accuracy", "channel mass": "channel_mass", "channel hit": "channel_hit"},
                          count="seeds")]
    if len(frame):
        chance = frame["chance"].iloc[0]
        train = frame.drop_duplicates(["condition", "model", "seed"])["train_seconds"].sum()
        lines.append(f"\nchance: accuracy {1 / len(WORDS):.3f}, channel mass and hit {chance:.3f}; "
                     f"training: {train:.1f} s")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------- CLI


#: The fields `chaosjax audio` has a flag for, in --help order.
_FLAGS = ("conditions", "models", "methods", "seeds", "preset", "source", "sample_rate", "steps", "batch_size",
          "learning_rate", "n_val", "n_attr", "ig_steps", "random_onset", "background_gain", "protocol", "proxies")


def add_cli(sub) -> None:
    """Registers ``chaosjax audio`` on an argparse sub-parser set."""

    p = sub.add_parser(
        "audio",
        help=help_line("audio"),
        description="Train RNN/LSTM/TCN/Transformer classifiers on 10-channel clips where one channel holds a "
                    "spoken word (eSpeak NG, or Speech Commands from a local folder) and nine hold noise, then "
                    "score how much attribution lands on the word's channel.",
    )
    add_flags(p, AudioConfig, _FLAGS)
    p.add_argument("--out", default="runs/audio", help="results directory")
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress lines (stderr)")

    def prepare(args):
        config = AudioConfig(**from_args(args, AudioConfig, _FLAGS))
        return checked_job(args, config, run, summary_table, wrote="config: {out}/config.json  figures: {out}/figures/")

    p.set_defaults(prepare=prepare)


def compute_chunk(chunk, chunk_run) -> tuple[list[dict], dict]:
    """A sweep chunk: one (model, condition) of a setting, its seeds trained side by side, then attributed."""
    model = chunk.setting.models[0]
    return compute_seeds(chunk, chunk_run, data=cell_data, init=functools.partial(init_cell, chunk.setting, model),
                         train_cell=train_cell,
                         attribute_cell=attribute_cell, trained=Trained)


TRACK = Track(
    name="audio",
    help=help_line("audio"),
    config=AudioConfig,
    columns=tuple(COLUMNS),
    compute=compute_chunk,
    summary_table=lambda rows, spec: summary_table(rows[list(COLUMNS)]),
    draw="chaosjax.report.audio:draw",
    required=("condition", "model", "method", "channel_mass"),
    add_cli=add_cli,
    list_fields=("conditions", "models", "methods", "seeds", "speakers", "proxies"),
    parsers={"proxies": _resolve_proxies},
    setting_columns=lambda setting: proxy_bench.proxy_columns(setting.proxies, track="audio"),
    split=split_models_conditions("audio"),
    chunk_label=model_condition_label,
)
