"""Tests of chaosjax.train: optimizers, single runs, vmapped grids."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from chaosjax import train
from chaosjax.models.mlp import mlp

FN = mlp(8, depth=2, width=16)


def _problem(key, n=512):
    """y = x0^2 + 0.5 sin(x1) with 6 noise columns."""
    x = jnp.clip(0.33 * jax.random.normal(key, (n, 8)), -1.0, 1.0)
    return x, x[:, 0] ** 2 + 0.5 * jnp.sin(x[:, 1])


def _mse(params, x, y):
    return float(jnp.mean((train.predict(FN.apply, params, x)[:, 0] - y) ** 2))


def _assert_trees_close(a, b, rtol=1e-4, atol=1e-5):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for u, v in zip(la, lb):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=atol)


def _row(tree, i):
    return jax.tree.map(lambda a: a[i], tree)


def test_loss_falls_on_small_regression(getkey):
    x, y = _problem(getkey())
    params = FN.init(getkey())
    result = train.fit(FN.apply, params, x, y, getkey(), epochs=200, learning_rate=1e-2)
    assert result.losses.shape == (200,)
    np.testing.assert_allclose(result.losses[0], _mse(params, x, y), rtol=1e-5)  # loss before the first step
    assert float(result.losses[-1]) < 0.1 * float(result.losses[0])
    assert _mse(result.params, x, y) < 0.1 * _mse(params, x, y)
    assert jax.tree.structure(result.params) == jax.tree.structure(params)


def test_grid_row_equals_single_run(getkey):
    g = 3
    params = jax.vmap(FN.init)(jax.random.split(getkey(), g))
    data = [_problem(k, n=256) for k in jax.random.split(getkey(), g)]
    x = jnp.stack([d[0] for d in data])
    y = jnp.stack([d[1] for d in data])
    keys = jax.random.split(getkey(), g)
    grid = train.fit_grid(FN.apply, params, x, y, keys, epochs=30, learning_rate=1e-2)
    assert grid.losses.shape == (g, 30)
    for i in range(g):
        alone = train.fit(FN.apply, _row(params, i), x[i], y[i], keys[i], epochs=30, learning_rate=1e-2)
        _assert_trees_close(_row(grid.params, i), alone.params)
        np.testing.assert_allclose(grid.losses[i], alone.losses, rtol=1e-4, atol=1e-6)
    # the runs really differ, so the comparison above is not trivially true
    assert not np.allclose(grid.losses[0], grid.losses[1])


def test_grid_with_shared_data_minibatches_and_dropout_equals_single_runs(getkey):
    fn = mlp(8, depth=1, width=16, dropout=0.2)
    g = 2
    params = jax.vmap(fn.init)(jax.random.split(getkey(), g))
    x, y = _problem(getkey(), n=200)
    keys = jax.random.split(getkey(), g)
    opts = dict(epochs=5, batch_size=64, dropout=True, learning_rate=1e-2)
    grid = train.fit_grid(fn.apply, params, x, y, keys, data_axis=None, **opts)
    for i in range(g):
        alone = train.fit(fn.apply, _row(params, i), x, y, keys[i], **opts)
        _assert_trees_close(_row(grid.params, i), alone.params)
        np.testing.assert_allclose(grid.losses[i], alone.losses, rtol=1e-4, atol=1e-6)


def test_fit_grid_compiles_once(getkey):
    g = 2
    params = jax.vmap(FN.init)(jax.random.split(getkey(), g))
    x = jnp.stack([_problem(k, n=64)[0] for k in jax.random.split(getkey(), g)])
    y = x[..., 0]
    before = train._TRACES["fit_grid"]
    opts = dict(epochs=3, optimizer="rmsprop")  # a configuration no other test uses
    first = train.fit_grid(FN.apply, params, x, y, jax.random.split(getkey(), g), learning_rate=1e-3, **opts)
    assert train._TRACES["fit_grid"] == before + 1
    # new values (data, keys, learning rate), same shapes and static options: no retrace
    second = train.fit_grid(FN.apply, params, 2.0 * x, y, jax.random.split(getkey(), g), learning_rate=3e-3, **opts)
    assert train._TRACES["fit_grid"] == before + 1
    assert not np.allclose(first.losses, second.losses)
    # a different static option does retrace
    train.fit_grid(FN.apply, params, x, y, jax.random.split(getkey(), g), epochs=4, optimizer="rmsprop")
    assert train._TRACES["fit_grid"] == before + 2


def test_fit_does_not_retrace(getkey):
    x, y = _problem(getkey(), n=32)
    params = FN.init(getkey())
    before = train._TRACES["fit"]
    train.fit(FN.apply, params, x, y, getkey(), epochs=2, learning_rate=0.1, optimizer="adagrad")
    train.fit(FN.apply, params, x, y, getkey(), epochs=2, learning_rate=0.2, optimizer="adagrad")
    assert train._TRACES["fit"] == before + 1


def test_learning_rate_grid_equals_separate_runs(getkey):
    lrs = jnp.array([1e-3, 1e-2, 3e-2])
    params = FN.init(getkey())
    x, y = _problem(getkey(), n=256)
    key = getkey()
    stacked = jax.tree.map(lambda a: jnp.stack([a] * 3), params)
    grid = train.fit_grid(FN.apply, stacked, x, y, jnp.stack([key] * 3), learning_rate=lrs, epochs=30,
                          data_axis=None)
    for i, lr in enumerate(lrs):
        alone = train.fit(FN.apply, params, x, y, key, learning_rate=lr, epochs=30)
        _assert_trees_close(_row(grid.params, i), alone.params)
    assert float(grid.losses[2, -1]) < float(grid.losses[0, -1])  # the learning rate really changes the run


@pytest.mark.parametrize("name", sorted(train.OPTIMIZERS))
def test_every_optimizer_trains(getkey, name):
    x, y = _problem(getkey(), n=256)
    params = FN.init(getkey())
    lr = {"adadelta": 1.0, "sgd": 0.1, "asgd": 0.1, "adagrad": 0.03}.get(name, 1e-2)
    result = train.fit(FN.apply, params, x, y, getkey(), optimizer=name, learning_rate=lr, epochs=60)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(result.params))
    assert bool(jnp.all(jnp.isfinite(result.losses)))
    assert _mse(result.params, x, y) < 0.95 * _mse(params, x, y)


def _torch_reference(name, options, steps=8):
    """Parameters (and ASGD's average) after ``steps`` torch.optim steps on a tiny least-squares problem."""
    import torch  # the `compare` extra: a parity test fails without it, never skips
    rng = np.random.default_rng(0)
    a, b, w0 = rng.normal(size=(16, 4)), rng.normal(size=(16,)), rng.normal(size=(4,))  # float64
    lr = 0.05
    w = torch.tensor(w0, requires_grad=True)
    cls = {"adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad, "adadelta": torch.optim.Adadelta,
           "rmsprop": torch.optim.RMSprop, "sgd": torch.optim.SGD, "asgd": torch.optim.ASGD}[name]
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # ASGD keeps eta and mu in the default dtype
    try:
        opt = cls([w], lr=lr, **options)
        for _ in range(steps):
            opt.zero_grad()
            loss = ((torch.from_numpy(a) @ w - torch.from_numpy(b)) ** 2).mean()
            loss.backward()
            opt.step()
    finally:
        torch.set_default_dtype(default_dtype)
    ax = opt.state[w]["ax"].detach().numpy() if name == "asgd" else None
    return (a, b, w0, lr), w.detach().numpy(), ax


@pytest.mark.parametrize(
    "name,options",
    [("adam", {}), ("adagrad", {}), ("adadelta", {}), ("rmsprop", {}), ("sgd", {}), ("asgd", {}),
     ("asgd", {"t0": 2, "lambd": 0.1}), ("sgd", {"momentum": 0.9, "weight_decay": 0.01})],
)
def test_optimizers_match_torch(name, options):
    """Step for step equal to torch.optim with its defaults; in float64 so that even eps placement shows."""
    (a, b, w0, lr), expected, expected_ax = _torch_reference(name, options)
    with jax.enable_x64(True):
        opt = train.make_optimizer(name, lr, **options)
        w = jnp.asarray(w0)
        state = opt.init(w)
        grad = jax.grad(lambda w: jnp.mean((jnp.asarray(a) @ w - jnp.asarray(b)) ** 2))
        for _ in range(8):
            updates, state = opt.update(grad(w), state, w)
            w = w + updates
        assert w.dtype == jnp.float64
        assert not np.allclose(w, w0)
        np.testing.assert_allclose(w, expected, rtol=1e-10, atol=1e-12)
        if expected_ax is not None:
            np.testing.assert_allclose(train.asgd_average(state), expected_ax, rtol=1e-10, atol=1e-12)


def test_asgd_average_is_returned_on_request(getkey):
    x, y = _problem(getkey(), n=64)
    params = FN.init(getkey())
    kw = dict(optimizer="asgd", learning_rate=0.1, epochs=20, optimizer_options={"t0": 0})
    last = train.fit(FN.apply, params, x, y, getkey(), **kw)
    averaged = train.fit(FN.apply, params, x, y, getkey(), average=True, **kw)
    np.testing.assert_array_equal(averaged.losses, last.losses)
    assert not np.allclose(averaged.params["head"]["kernel"].get_value(), last.params["head"]["kernel"].get_value())
    # with torch's default t0 = 1e6 averaging never starts: the average is the last iterate
    default = train.fit(FN.apply, params, x, y, getkey(), optimizer="asgd", learning_rate=0.1, epochs=20,
                        average=True)
    plain = train.fit(FN.apply, params, x, y, getkey(), optimizer="asgd", learning_rate=0.1, epochs=20)
    _assert_trees_close(default.params, plain.params, rtol=1e-6, atol=1e-7)


def test_minibatches_are_deterministic_under_the_key(getkey):
    x, y = _problem(getkey(), n=300)
    params = FN.init(getkey())
    key = getkey()
    kw = dict(epochs=8, batch_size=64, learning_rate=1e-2)  # 4 steps an epoch, the last 44 rows dropped
    a = train.fit(FN.apply, params, x, y, key, **kw)
    b = train.fit(FN.apply, params, x, y, key, **kw)
    c = train.fit(FN.apply, params, x, y, getkey(), **kw)
    full = train.fit(FN.apply, params, x, y, key, epochs=8, learning_rate=1e-2)
    np.testing.assert_array_equal(a.losses, b.losses)
    _assert_trees_close(a.params, b.params, rtol=0, atol=0)
    assert not np.allclose(a.losses, c.losses)
    assert a.losses.shape == (8,)
    # four steps an epoch move further than one full-batch step
    assert _mse(a.params, x, y) < _mse(full.params, x, y) < _mse(params, x, y)


def test_dropout_training_uses_the_key(getkey):
    fn = mlp(8, depth=1, width=16, dropout=0.3)
    x, y = _problem(getkey(), n=64)
    params = fn.init(getkey())
    key = getkey()
    a = train.fit(fn.apply, params, x, y, key, epochs=5, dropout=True, learning_rate=1e-2)
    b = train.fit(fn.apply, params, x, y, key, epochs=5, dropout=True, learning_rate=1e-2)
    c = train.fit(fn.apply, params, x, y, getkey(), epochs=5, dropout=True, learning_rate=1e-2)
    off = train.fit(fn.apply, params, x, y, key, epochs=5, learning_rate=1e-2)
    np.testing.assert_array_equal(a.losses, b.losses)
    assert not np.allclose(a.losses, c.losses)
    assert not np.allclose(a.losses, off.losses)


def test_bce_separable_problem(getkey):
    fn = mlp(2, depth=1, width=8, activation="relu")
    x = jax.random.normal(getkey(), (400, 2))
    labels = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(jnp.int32)
    result = train.fit(fn.apply, fn.init(getkey()), x, labels, getkey(), loss="bce", learning_rate=3e-2, epochs=150)
    accuracy = float(jnp.mean((train.predict(fn.apply, result.params, x)[:, 0] > 0) == (labels == 1)))
    assert accuracy > 0.9
    assert float(result.losses[-1]) < float(result.losses[0])


def test_raw_uint32_keys_work(getkey):
    x, y = _problem(getkey(), n=64)
    params = jax.vmap(FN.init)(jax.random.split(getkey(), 2))
    raw = jax.random.split(jax.random.PRNGKey(3), 2)
    result = train.fit_grid(FN.apply, params, x, y, raw, epochs=2, data_axis=None, batch_size=32)
    assert result.losses.shape == (2, 2)
    single = train.fit(FN.apply, _row(params, 0), x, y, raw[0], epochs=2, batch_size=32)
    np.testing.assert_allclose(single.losses, result.losses[0], rtol=1e-5)


def test_predict_grid(getkey):
    params = jax.vmap(FN.init)(jax.random.split(getkey(), 3))
    x = jax.random.normal(getkey(), (5, 8))
    out = train.predict_grid(FN.apply, params, x, data_axis=None)
    assert out.shape == (3, 5, 1)
    np.testing.assert_allclose(out[1], train.predict(FN.apply, _row(params, 1), x), rtol=1e-5, atol=1e-6)
    per_run = train.predict_grid(FN.apply, params, jnp.stack([x, 2 * x, 3 * x]))
    np.testing.assert_allclose(per_run[2], train.predict(FN.apply, _row(params, 2), 3 * x), rtol=1e-5, atol=1e-6)


def test_bad_arguments_raise(getkey):
    x, y = _problem(getkey(), n=16)
    params = FN.init(getkey())
    key = getkey()
    with pytest.raises(ValueError, match="adam"):
        train.make_optimizer("adamw", 1e-3)
    with pytest.raises(ValueError, match="optimizer"):
        train.fit(FN.apply, params, x, y, key, optimizer="lbfgs")
    with pytest.raises(ValueError, match="mse"):
        train.fit(FN.apply, params, x, y, key, loss="hinge")
    with pytest.raises(ValueError, match="t0"):
        train.make_optimizer("asgd", 1e-3, momentum=0.9)
    with pytest.raises(ValueError, match="batch_size"):
        train.fit(FN.apply, params, x, y, key, batch_size=17)
    with pytest.raises(ValueError, match="epochs"):
        train.fit(FN.apply, params, x, y, key, epochs=0)
    with pytest.raises(ValueError, match="asgd"):
        train.fit(FN.apply, params, x, y, key, average=True)
    with pytest.raises(ValueError, match="rows"):
        train.fit(FN.apply, params, x, y[:-1], key)
    with pytest.raises(ValueError, match="NaN"):
        train.fit(FN.apply, params, x.at[0, 0].set(jnp.nan), y, key)
    with pytest.raises(ValueError, match="output"):
        train.fit(FN.apply, params, x, jnp.stack([y, y], axis=1), key, epochs=1)
    grid = jax.vmap(FN.init)(jax.random.split(getkey(), 2))
    with pytest.raises(ValueError, match="grid axis"):
        train.fit_grid(FN.apply, grid, x, y, jax.random.split(key, 2))
    with pytest.raises(ValueError, match="keys"):
        train.fit_grid(FN.apply, grid, x, y, jax.random.split(key, 3), data_axis=None)
    with pytest.raises(ValueError, match="learning_rate"):
        train.fit_grid(FN.apply, grid, x, y, jax.random.split(key, 2), data_axis=None, learning_rate=jnp.ones(3))


def _tiny_grid(getkey, g=4):
    """A grid of `g` one-layer MLPs on 16 x 3 tables: (model, params, x, y)."""
    model = mlp(3, depth=1, width=4)
    params = jax.vmap(model.init)(jax.random.split(getkey(), g))
    x = jax.random.normal(getkey(), (g, 16, 3))
    return model, params, x, jnp.sum(x, axis=-1)


def test_progress_reaches_the_host_once_per_tick_not_per_member(getkey):
    model, params, x, y = _tiny_grid(getkey)
    seen = []
    with train.progress_to(lambda epoch, epochs: seen.append((epoch, epochs))):
        jax.block_until_ready(train.fit_grid(model.apply, params, x, y, jax.random.split(getkey(), 4), epochs=100))
    assert seen == [(e, 100) for e in range(2, 101, 2)]


@pytest.mark.parametrize("group", [1, 2, 5])
def test_grouped_grid_equals_the_vmapped_grid(getkey, group):
    """Groups of runs one after another (the CPU's cache-friendly order) give the vmapped grid's results; 5 runs in
    groups of 2 pad the last group. Per-run data, per-run learning rates, minibatches and dropout."""
    fn = mlp(8, depth=1, width=16, dropout=0.2)
    g = 5
    params = jax.vmap(fn.init)(jax.random.split(getkey(), g))
    data = [_problem(k, n=128) for k in jax.random.split(getkey(), g)]
    x, y = jnp.stack([d[0] for d in data]), jnp.stack([d[1] for d in data])
    keys = jax.random.split(getkey(), g)
    opts = dict(epochs=6, batch_size=32, dropout=True, learning_rate=jnp.linspace(1e-3, 1e-2, g))
    whole = train.fit_grid(fn.apply, params, x, y, keys, group=None, **opts)
    grouped = train.fit_grid(fn.apply, params, x, y, keys, group=group, **opts)
    _assert_trees_close(grouped.params, whole.params)
    np.testing.assert_allclose(grouped.losses, whole.losses, rtol=1e-4, atol=1e-6)
    assert grouped.losses.shape == (g, 6)
    shared = train.fit_grid(fn.apply, params, x[0], y[0], keys, data_axis=None, group=group, **opts)
    _assert_trees_close(shared.params, train.fit_grid(fn.apply, params, x[0], y[0], keys, data_axis=None,
                                                      group=None, **opts).params)


def test_grouped_grid_compiles_once_reports_progress_across_groups_and_checks_group(getkey):
    model, params, x, y = _tiny_grid(getkey)
    seen = []
    before = train._TRACES["fit_grid"]
    with train.progress_to(lambda done, total: seen.append((done, total))):
        for scale in (1.0, 2.0):
            jax.block_until_ready(train.fit_grid(model.apply, params, scale * x, y, jax.random.split(getkey(), 4),
                                                 epochs=50, group=2, optimizer="adagrad"))
    assert train._TRACES["fit_grid"] == before + 1
    assert seen == [(e, 100) for e in range(2, 101, 2)] * 2  # 2 groups x 50 epochs, counted across groups
    for bad in (0, 1.5, True, "some"):
        with pytest.raises(ValueError, match="group"):
            train.fit_grid(model.apply, params, x, y, jax.random.split(getkey(), 4), epochs=2, group=bad)
    assert train._auto_group(x, 0) is None or train._auto_group(x, 0) >= 4  # tiny inputs: all at once
    assert train._auto_group(jnp.zeros((2, 8000, 128)), 0) == 1  # 4 MiB per run: one at a time
