"""The classifier tracks' proxies (`chaosjax vision|audio --proxies`): closed forms of `classifier_proxies`, the
sanity row as the track attributes, no retracing, the columns and the report's sections, and the proxy x track
heat map."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from chaosjax import attribution, metrics
from chaosjax.data import vision as V
from chaosjax.tracks import proxy_bench
from chaosjax.tracks import audio as A
from chaosjax.tracks import vision as T
from chaosjax.tracks.proxy_bench import (
    AUDIO_PROXIES,
    VISION_PROXIES,
    classifier_proxies,
    proxy_agreement,
    proxy_columns,
)

#: A linear "classifier" on 8 x 8 x 3 canvases with 2 x 2 cells of 4 x 4 pixels: f(x) = sum(w * x).
GROUPS = np.repeat((np.arange(8)[:, None] // 4 * 2 + np.arange(8)[None, :] // 4)[:, :, None], 3, axis=2)


def _linear_case():
    w = jax.random.uniform(jax.random.key(0), (1, 8, 8, 3), minval=0.1, maxval=1.0)
    x = jax.random.uniform(jax.random.key(1), (5, 8, 8, 3), minval=0.1, maxval=1.0)
    f = lambda z: jnp.sum(z * w, axis=(1, 2, 3))  # noqa: E731
    return f, x, w


def test_classifier_proxies_closed_forms():
    """On a linear f: the gradient's infidelity is 0 (f(x) - f(x - I) = I . w); the exact attribution w * x has
    faithfulness correlation 1 (removing S costs sum_S w x) and the deletion curve f(x) - cumsum of its sorted cell
    sums; a re-attribution constant in x (the gradient) has max-sensitivity 0."""
    f, x, w = _linear_case()
    key = jax.random.key(2)
    exact = x * w
    grad = jnp.broadcast_to(w, x.shape)
    out = classifier_proxies(f, x, grad, lambda z, k: jnp.broadcast_to(w, z.shape), key,
                        names=("infidelity", "max_sensitivity"), groups=GROUPS)
    assert set(out) == {"proxy_infidelity", "proxy_max_sensitivity"}
    np.testing.assert_allclose(out["proxy_infidelity"], 0.0, atol=1e-8)
    np.testing.assert_allclose(out["proxy_max_sensitivity"], 0.0, atol=1e-7)
    out = classifier_proxies(f, x, exact, None, key, names=("faithfulness_correlation", "deletion_auc", "insertion_auc"),
                        groups=GROUPS)
    np.testing.assert_allclose(out["proxy_faithfulness_correlation"], 1.0, atol=1e-5)
    cells = np.stack([np.asarray(exact)[:, GROUPS == g].sum(axis=1) for g in range(4)], axis=1)  # (B, 4)
    ordered = -np.sort(-cells, axis=1)
    deletion = np.concatenate([np.zeros((5, 1)), np.cumsum(ordered, axis=1)], axis=1)
    deletion = cells.sum(axis=1, keepdims=True) - deletion  # f(x) minus the cells removed so far
    auc = np.sum((deletion[:, 1:] + deletion[:, :-1]) / 2 * 0.25, axis=1)
    np.testing.assert_allclose(out["proxy_deletion_auc"], auc, rtol=1e-5)
    insertion = cells.sum(axis=1, keepdims=True) - deletion
    np.testing.assert_allclose(out["proxy_insertion_auc"],
                               np.sum((insertion[:, 1:] + insertion[:, :-1]) / 2 * 0.25, axis=1), rtol=1e-5)
    with pytest.raises(ValueError, match="not a ranked proxy"):
        classifier_proxies(f, x, exact, None, key, names=("randomisation",), groups=GROUPS)


def _cell():
    config = T.VisionConfig(conditions=("RBFP",), methods=("saliency",), train_size=64, val_size=8, epochs=1,
                            batch_size=32, width=4, seeds=(0, 1))
    model = config.model("cnn")
    variables = T.init_cell(config, "cnn", "RBFP")
    random_variables = jax.vmap(model.init)(jax.random.split(jax.random.key(9), 2))
    _, val = T.datasets(config, "RBFP")
    return config, model, variables, random_variables, val


def test_the_sanity_row_attributes_the_randomised_model_as_the_track_does_and_nothing_retraces():
    """`randomised_mass_in_box` is the mass in box of the track's own maps (`_attribute`) of the re-initialised
    classifiers; a second call with other canvases and parameters reuses the compiled program. The proxies that
    score the maps alone are one program for every method: the mean of `classifier_proxies` on the predicted
    class's logit."""
    config, model, variables, random_variables, val = _cell()
    code = jnp.int32(0)
    keys = jax.random.split(jax.random.key(3), 2)
    refs = val.batch(jax.random.key(5), jnp.arange(4), code).image
    by_maps = ("deletion_auc", "sparseness")
    before = T._proxy_scores._cache_size(), T._map_proxy_scores._cache_size()
    for i in range(2):
        vs = val.batch(jax.random.key(10 + i), jnp.arange(6), code)
        for method in ("saliency", "random_baseline"):
            maps, _ = T._attribute(model, variables, vs.image, refs, keys, method=method, options=(),
                                   spec=config.spec, chunk=6)
            shared = T._map_proxy_scores(model, variables, vs.image, maps, keys, spec=config.spec, names=by_maps)
            apply = functools.partial(model.apply, jax.tree.map(lambda a: a[1], variables))
            f = attribution.target(apply, jnp.argmax(apply(vs.image), axis=1))
            alone = classifier_proxies(f, vs.image, maps[1], None, keys[1], names=by_maps,
                                       groups=V.grid_groups(config.spec))
            for column, value in alone.items():
                np.testing.assert_allclose(shared[column][1], np.mean(value), rtol=1e-5)
        out = T._proxy_scores(model, variables, random_variables, vs.image, maps, vs.box, refs, keys,
                              method="saliency", options=(), spec=config.spec, names=("randomisation",))
        moved, _ = T._attribute(model, random_variables, vs.image, refs, keys, method="saliency", options=(),
                                spec=config.spec, chunk=6)
        expected = jax.vmap(lambda a: metrics.mass_in_box(a, vs.box))(moved)
        np.testing.assert_allclose(out["randomised_mass_in_box"], expected, rtol=1e-6)
        variables = jax.tree.map(lambda a: a * 1.5, variables)
    assert (T._proxy_scores._cache_size(), T._map_proxy_scores._cache_size()) == (before[0] + 1, before[1] + 1)


def test_a_vision_run_with_proxies_writes_their_columns_and_the_report_its_sections(tmp_path):
    from chaosjax.report import report

    config = T.VisionConfig(conditions=("RBFP",), methods=("saliency", "random_baseline"), train_size=64,
                            val_size=8, epochs=1, batch_size=32, width=4, attribution_chunk=4, seeds=(0, 1),
                            proxies=tuple(VISION_PROXIES))
    frame = T.run(config, out=tmp_path / "run", progress=False)
    assert list(frame.columns) == list(T.COLUMNS) + list(proxy_columns(tuple(VISION_PROXIES), track="vision"))
    for column, _ in VISION_PROXIES.values():
        assert np.isfinite(frame[column]).all(), column
    by = frame.set_index("method")
    assert by.loc["random_baseline", "proxy_max_sensitivity"].max() < 1e-6  # one key: the same random map
    assert frame["proxy_sparseness"].between(0, 1).all() and (frame["proxy_seconds"] > 0).all()
    # An untrained classifier has nothing in the box to find: its maps' mass there is near chance (1/49).
    assert frame["randomised_mass_in_box"].between(0, 0.1).all()
    # The track's own numbers are those of a run without proxies, bit for bit.
    plain = T.run(dataclasses.replace(config, proxies=()), progress=False)
    columns = [c for c in T.COLUMNS if "seconds" not in c]
    pd.testing.assert_frame_equal(frame[columns], plain[columns], check_exact=True)
    text = report(tmp_path / "run").markdown.read_text()
    assert "Do proxy metrics agree with the truth?" in text and "| `road_auc` |" in text
    assert (tmp_path / "run" / "figures" / "vision_proxy_agreement.png").exists()
    assert "Sanity check: model-parameter randomisation" in text and "| method | mass in box (trained) |" in text


def test_an_audio_run_with_proxies_writes_their_columns_and_the_sanity_row_is_the_tracks_attribution(tmp_path):
    """Every audio proxy column, finite; the sanity row is the channel mass of the track's own attribution of the
    re-initialised models; the report draws both sections."""
    from chaosjax.report import report

    config = A.AudioConfig(source="synthetic", models=("tcn",), conditions=("RBFP",), steps=3, batch_size=8,
                           n_val=16, n_attr=6, seeds=(0, 1), methods=("saliency", "random_baseline"),
                           proxies=tuple(AUDIO_PROXIES))
    frame = A.run(config, out=tmp_path / "run", progress=False)
    assert list(frame.columns) == list(A.COLUMNS) + list(proxy_columns(tuple(AUDIO_PROXIES), track="audio"))
    for column, _ in AUDIO_PROXIES.values():
        assert np.isfinite(frame[column]).all(), column
    by = frame.set_index("method")
    assert by.loc["random_baseline", "proxy_max_sensitivity"].max() < 1e-6
    cell = A.cell_data(config, "RBFP")
    model = A.build_model(config, "tcn")
    random_variables = jax.vmap(model.init)(jnp.stack([jax.random.fold_in(jax.random.key(s), 4_000 + 2)
                                                       for s in config.seeds]))
    keys = jax.random.split(jax.random.key(0), 2)
    moved = A.attribute_program(model, random_variables, cell.clips, keys, cell.refs, method="saliency", options=())
    expected = jax.vmap(lambda a: metrics.channel_mass(a, cell.channel))(moved)
    np.testing.assert_allclose(by.loc["saliency", "randomised_channel_mass"], expected, rtol=1e-5)
    text = report(tmp_path / "run").markdown.read_text()
    assert "Do proxy metrics agree with the truth?" in text and "| `deletion_auc` |" in text
    assert "| method | channel mass (trained) |" in text
    assert (tmp_path / "run" / "figures" / "audio_proxy_agreement.png").exists()


def test_the_classifier_tracks_refuse_proxies_they_do_not_have():
    with pytest.raises(ValueError, match="proxies: unknown proxy 'label_randomisation'.*road_auc"):
        T.VisionConfig(proxies=("label_randomisation",)).validate()
    with pytest.raises(ValueError, match="proxies: unknown proxy 'road_auc'"):
        A.AudioConfig(source="synthetic", proxies=("road_auc",)).validate()
    with pytest.raises(ValueError, match="proxies: the paper protocol"):
        A.AudioConfig(source="synthetic", protocol="paper", proxies=("sparseness",)).validate()
    assert proxy_bench.resolve_proxies("all", track="vision") == tuple(VISION_PROXIES)
    with pytest.raises(ValueError, match="unknown proxy 'road_auc'"):
        proxy_bench.resolve_proxies("road_auc")  # the symbolic track's tables have no neighbours to impute from


def _vision_table(proxy: np.ndarray, truth: np.ndarray) -> pd.DataFrame:
    rows = [{"track": "vision", "condition": ("RBFP", "SBRP")[r % 2], "model": "cnn", "seed": r // 2,
             "preset": "tiny", "method": f"m{j}", "mass_in_box": truth[r, j], "iou_corrected": truth[r, j],
             "proxy_road_auc": proxy[r, j]} for r in range(truth.shape[0]) for j in range(truth.shape[1])]
    return pd.DataFrame(rows)


def test_agreement_on_a_vision_table_and_across_tracks(tmp_path):
    """A vision table's replicates are its conditions x models x seeds; with a symbolic table beside it, the
    proxy x track heat map has a column per track and "–" where a track lacks the proxy."""
    from chaosjax.report.proxies import draw_across

    rng = np.random.default_rng(0)
    truth = rng.uniform(size=(6, 4)) * 0.1 + np.linspace(0, 1, 4)[None, :]
    table = proxy_agreement(_vision_table(-truth, truth), resamples=100)
    assert list(table["truth"]) == ["mass_in_box", "iou_corrected"] and (table["replicates"] == 6).all()
    assert np.allclose(table["tau"], 1.0)  # ROAD's AUC: lower is better
    symbolic = pd.DataFrame([{"track": "symbolic", "formula": str(r), "seed": 0, "method": f"m{j}",
                              "functional_precision": truth[r, j], "uniform_score": truth[r, j],
                              "proxy_sparseness": -truth[r, j]} for r in range(6) for j in range(4)])
    md, paths = draw_across({"symbolic": symbolic, "vision": _vision_table(-truth, truth)}, tmp_path,
                            formats=("png",))
    assert [p.name for p in paths] == ["proxy_agreement_by_track.png"]
    assert "| `sparseness` | -1.00 [-1.00, -1.00] | – |" in md and "| `road_auc` | – | +1.00 [+1.00, +1.00] |" in md
    with pytest.raises(ValueError, match="one track"):
        proxy_agreement(pd.concat([symbolic, _vision_table(-truth, truth)]))
