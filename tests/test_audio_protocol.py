"""The audio track's `paper` protocol (docs/protocol.md, "Audio"): training-mode attribution, the study's
batch-attending Transformer, Captum's one-batch integrated gradients, the study's score."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients
from flax import nnx

from chaosjax import attribution as A
from chaosjax import classify
from chaosjax.models import audio as M
from chaosjax.tracks import audio as track

LENGTH = 800  # 0.1 s at 8 kHz: 11 frames after the stem


def _with_running_stats(variables, key):
    """Running statistics far from any batch's, so inference and training mode disagree visibly."""
    stats = variables["batch_stats"]
    leaves, tree = jax.tree.flatten(stats)
    keys = jax.random.split(key, len(leaves))
    new = [jax.random.uniform(k, a.shape, a.dtype, 0.5, 2.0) for k, a in zip(keys, leaves)]
    return {"params": variables["params"], "batch_stats": jax.tree.unflatten(tree, new)}


def test_train_mode_attribution_differs_from_eval_mode_and_depends_on_the_batch():
    """The study attributes in model.train() (examples/eval_audio_localization.py l.145): BatchNorm uses the
    batch's statistics, so attributions differ from inference mode and a clip's attribution moves when another
    clip of its batch changes; in inference mode it does not."""
    model = M.tcn(10, 35, widths=(8,))
    variables = _with_running_stats(model.init(jax.random.key(0)), jax.random.key(1))
    x = jax.random.normal(jax.random.key(2), (4, 10, LENGTH)) * 0.3
    other = x.at[1:].set(jax.random.normal(jax.random.key(3), (3, 10, LENGTH)))
    target = jnp.array([0, 1, 2, 3])

    def sal(train, clips):
        return A.saliency(A.target(classify.logits_fn(model, variables, train=train), target), clips)

    train, evaluation = sal(True, x), sal(False, x)
    np.testing.assert_allclose(classify.logits_fn(model, variables, train=True)(x),
                               model.apply(variables, x, train=True)[0])
    assert float(jnp.max(jnp.abs(train - evaluation))) > 0.1 * float(jnp.max(jnp.abs(evaluation)))
    assert not np.allclose(sal(True, other)[0], train[0], atol=1e-6)  # batch-mates matter in training mode
    np.testing.assert_allclose(sal(False, other)[0], evaluation[0], atol=1e-6)  # ... not in inference mode


def _layer_reference(x, p, heads):
    """The study's encoder layer, written out in numpy: PyTorch's nn.TransformerEncoderLayer(60, heads) with
    batch_first=False (post-norm, ReLU, no dropout) fed (B, T, d), so the sequence axis is the batch."""
    def ln(z, q):
        mu, var = z.mean(-1, keepdims=True), z.var(-1, keepdims=True)
        return (z - mu) / np.sqrt(var + 1e-5) * q["scale"] + q["bias"]

    b, t, d = x.shape
    dh = d // heads
    out = np.empty_like(x)
    for ti in range(t):  # one "batch element" of PyTorch's reading per time step
        seq = x[:, ti]  # (B, d): B tokens
        qkv = seq @ p["qkv"]["kernel"] + p["qkv"]["bias"]
        q, k, v = qkv[:, :d], qkv[:, d:2 * d], qkv[:, 2 * d:]
        heads_out = []
        for h in range(heads):
            sl = slice(h * dh, (h + 1) * dh)
            s = q[:, sl] @ k[:, sl].T / np.sqrt(dh)
            w = np.exp(s - s.max(1, keepdims=True))
            heads_out.append((w / w.sum(1, keepdims=True)) @ v[:, sl])
        a = np.concatenate(heads_out, 1) @ p["out"]["kernel"] + p["out"]["bias"]
        h1 = ln(seq + a, p["ln1"])
        ff = np.maximum(h1 @ p["fc1"]["kernel"] + p["fc1"]["bias"], 0) @ p["fc2"]["kernel"] + p["fc2"]["bias"]
        out[:, ti] = ln(h1 + ff, p["ln2"])
    return out


def test_batch_attending_layer_matches_the_study_layout_written_out():
    layer = M._EncoderLayer(60, 6, 32, attend="batch", rngs=nnx.Rngs(0))
    x = np.asarray(jax.random.normal(jax.random.key(4), (5, 3, 60)))
    p = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(layer)))
    np.testing.assert_allclose(np.asarray(layer(jnp.asarray(x))), _layer_reference(x.astype(np.float64), p, 6),
                               atol=2e-5)
    layer.attend = "time"
    assert not np.allclose(np.asarray(layer(jnp.asarray(x))), _layer_reference(x.astype(np.float64), p, 6), atol=1e-3)


def _torch_twin(variables, depth):
    """The study's AudioTrans layout in PyTorch (chaosmining/audio/models.py l.140-179: stem, an
    nn.TransformerEncoder left batch_first=False and fed (B, T, 60), no positions, max-pool over time, head),
    dropout 0, carrying chaosjax's weights."""
    nn = torch.nn
    p = jax.tree.map(lambda a: torch.tensor(np.asarray(a)), nnx.to_pure_dict(variables["params"]))
    s = jax.tree.map(lambda a: torch.tensor(np.asarray(a)), nnx.to_pure_dict(variables["batch_stats"]))

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv1d(10, 60, 80, stride=16)
            self.bn1 = nn.BatchNorm1d(60)
            self.pool1 = nn.MaxPool1d(4)
            layer = nn.TransformerEncoderLayer(60, 6, dim_feedforward=p["layers"][0]["fc1"]["kernel"].shape[1],
                                               dropout=0.0)
            self.transformer = nn.TransformerEncoder(layer, num_layers=depth, enable_nested_tensor=False)
            self.fc1 = nn.Linear(60, 35)

        def forward(self, x):
            x = self.pool1(torch.relu(self.bn1(self.conv1(x)))).transpose(1, 2)
            x = self.transformer(x).permute(0, 2, 1)
            return self.fc1(nn.functional.max_pool1d(x, x.shape[-1]).squeeze(-1))

    m = Twin()
    with torch.no_grad():
        m.conv1.weight.copy_(p["stem"]["conv"]["kernel"].permute(2, 1, 0))
        m.conv1.bias.copy_(p["stem"]["conv"]["bias"])
        m.bn1.weight.copy_(p["stem"]["norm"]["scale"])
        m.bn1.bias.copy_(p["stem"]["norm"]["bias"])
        m.bn1.running_mean.copy_(s["stem"]["norm"]["mean"])
        m.bn1.running_var.copy_(s["stem"]["norm"]["var"])
        for tl, i in zip(m.transformer.layers, range(depth)):
            jl = p["layers"][i]
            tl.self_attn.in_proj_weight.copy_(jl["qkv"]["kernel"].T)
            tl.self_attn.in_proj_bias.copy_(jl["qkv"]["bias"])
            tl.self_attn.out_proj.weight.copy_(jl["out"]["kernel"].T)
            tl.self_attn.out_proj.bias.copy_(jl["out"]["bias"])
            tl.linear1.weight.copy_(jl["fc1"]["kernel"].T)
            tl.linear1.bias.copy_(jl["fc1"]["bias"])
            tl.linear2.weight.copy_(jl["fc2"]["kernel"].T)
            tl.linear2.bias.copy_(jl["fc2"]["bias"])
            for tn, jn in ((tl.norm1, jl["ln1"]), (tl.norm2, jl["ln2"])):
                tn.weight.copy_(jn["scale"])
                tn.bias.copy_(jn["bias"])
        m.fc1.weight.copy_(p["head"]["kernel"].T)
        m.fc1.bias.copy_(p["head"]["bias"])
    return m


def test_paper_transformer_and_integrated_gradients_match_the_study_in_pytorch_and_captum():
    """The study's layout end to end on the same weights: inference logits (batch attention), then integrated
    gradients in training mode as the study ran it (Captum, 10 steps, zero baseline, the class predicted in
    training mode, all path points in one batch) against the track's `paper` attribution."""
    model = M.transformer(10, 35, depth=2, ff=32, attend="batch")
    variables = _with_running_stats(model.init(jax.random.key(5)), jax.random.key(6))
    x = jax.random.normal(jax.random.key(7), (4, 10, LENGTH)) * 0.3
    twin = _torch_twin(variables, 2)
    xt = torch.tensor(np.asarray(x))
    with torch.no_grad():
        np.testing.assert_allclose(np.asarray(model.apply(variables, x)), twin.eval()(xt).numpy(), atol=2e-4)
    # Time attention on the same weights is another model; batch attention couples the clips.
    timed = M.transformer(10, 35, depth=2, ff=32)
    assert not np.allclose(np.asarray(timed.apply(variables, x)), np.asarray(model.apply(variables, x)), atol=1e-2)
    moved = x.at[1:].multiply(2.0)
    assert not np.allclose(np.asarray(model.apply(variables, moved)[0]), np.asarray(model.apply(variables, x)[0]))
    np.testing.assert_allclose(np.asarray(timed.apply(variables, moved)[0]), np.asarray(timed.apply(variables, x)[0]),
                               atol=1e-5)

    twin.train()
    with torch.no_grad():
        pred_t = twin(xt).argmax(1)
    ref = IntegratedGradients(twin).attribute(xt, torch.zeros_like(xt), target=pred_t, n_steps=10).detach().numpy()
    attr = track._attribute_paper(model, jax.tree.map(lambda a: a[None], variables), x[None], jax.random.key(0)[None],
                                  jnp.zeros((1, 10, LENGTH)), jnp.int32(0), method="integrated_gradients",
                                  options=(("batch_size", None), ("steps", 10)))[0, 0]
    scale = float(np.abs(ref).max())
    np.testing.assert_allclose(np.asarray(attr), ref, atol=2e-4 * scale)
    # chaosjax's own integrated gradients (one model call per path point) is not what the study measured.
    apply = classify.logits_fn(model, variables, train=True)
    own = A.integrated_gradients(A.target(apply, jnp.asarray(pred_t.numpy())), x, steps=10)
    assert float(jnp.max(jnp.abs(own - ref))) > 0.05 * scale


def test_paper_channel_mass_is_a_mean_of_batch_means_with_the_deeplift_numerator():
    """examples/eval_audio_localization.py l.158-161 (per clip: true channel over the L1 norm of the channel
    scores; per batch: the mean), l.189 (the mean of batch means) and l.174 (DeepLIFT: IG's true-channel score
    over DeepLIFT's norm)."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2, 5, 3, 7)).astype(np.float32)  # 2 seeds, 5 clips, 3 channels
    ig = rng.normal(size=a.shape).astype(np.float32)
    ch = np.array([0, 2, 1, 1, 0])
    s, s_ig = np.abs(a).mean(-1), np.abs(ig).mean(-1)
    per_clip = s[:, np.arange(5), ch] / s.sum(-1)
    expected = (per_clip[:, :2].mean(1) + per_clip[:, 2:4].mean(1) + per_clip[:, 4:].mean(1)) / 3  # batches of 2
    np.testing.assert_allclose(track.paper_channel_mass(a, ch, 2), expected, rtol=1e-6)
    assert not np.allclose(expected, per_clip.mean(1), rtol=1e-3)  # not the plain mean: the last batch is short
    swapped = s_ig[:, np.arange(5), ch] / s.sum(-1)
    np.testing.assert_allclose(track.paper_channel_mass(a, ch, 5, numerator=ig), swapped.mean(1), rtol=1e-6)


def test_predict_together_feeds_the_study_batches():
    model = M.transformer(10, 35, depth=1, ff=16, attend="batch")
    variables = model.init(jax.random.key(8))
    x = jax.random.normal(jax.random.key(9), (5, 10, LENGTH))
    got = classify.predict(model, variables, x, batch_size=2, together=True)
    want = jnp.concatenate([model.apply(variables, x[a:b]) for a, b in ((0, 2), (2, 4), (4, 5))])
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)
    alone = classify.predict(model, variables, x, batch_size=2)
    assert not np.allclose(np.asarray(alone), np.asarray(want), atol=1e-3)
    with pytest.raises(TypeError, match="together"):
        classify.predict(model, variables, x, together="yes")


def test_paper_config_builds_the_study_transformer_and_validates():
    paper = track.AudioConfig(protocol="paper", source="synthetic")
    assert track.AudioConfig().protocol == "corrected"
    assert track.build_model(paper, "transformer") is M.transformer(10, 35, attend="batch")
    assert track.build_model(paper, "tcn") is track.build_model(track.AudioConfig(source="synthetic"), "tcn")
    with pytest.raises(ValueError, match="protocol"):
        track.AudioConfig(protocol="study", source="synthetic").validate()
    with pytest.raises(ValueError, match="attend"):
        M.transformer(attend="clips")
