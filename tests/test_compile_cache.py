"""JAX's persistent compilation cache for command-line runs (chaosjax/_cache.py): on by default in the user's cache
directory, off by flag or environment variable, named by `-v`, and harmless where the directory cannot be written."""

import subprocess
import sys

import jax
import pytest
from jax._src import compilation_cache

from chaosjax import _cache, cli


@pytest.fixture
def clean_jax_cache(monkeypatch):
    """No compilation cache set for JAX during the test (conftest.py sets the session's), and JAX's cache settings
    as they were after it."""
    monkeypatch.delenv(_cache.NO_COMPILE_CACHE_ENV, raising=False)
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    saved = {name: getattr(jax.config, name) for name in
             ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
              "jax_compilation_cache_max_size")}
    jax.config.update("jax_compilation_cache_dir", None)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    jax.config.update("jax_compilation_cache_max_size", -1)
    compilation_cache.reset_cache()
    yield
    for name, value in saved.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()


def _args(*argv):
    return cli.build_parser(only=None).parse_args(argv)


def test_the_cache_lives_in_the_users_cache_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("CHAOSJAX_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _cache.compile_cache_dir() == tmp_path / "xdg" / "chaosjax" / "jax"
    monkeypatch.setenv("CHAOSJAX_CACHE", str(tmp_path / "mine"))
    assert _cache.compile_cache_dir() == tmp_path / "mine" / "jax"


@pytest.mark.parametrize("value, off", [("1", True), ("yes", True), ("0", False), ("", False)])
def test_the_environment_variable_turns_it_off(monkeypatch, value, off):
    monkeypatch.setenv(_cache.NO_COMPILE_CACHE_ENV, value)
    assert _cache.compile_cache_disabled_by_env() is off


def test_enabled_in_a_writable_directory(clean_jax_cache, tmp_path):
    directory, note = _cache.enable_compile_cache(tmp_path / "c")
    assert (directory, note) == (tmp_path / "c", "on")
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "c")
    assert jax.config.jax_persistent_cache_min_compile_time_secs == _cache.MIN_COMPILE_SECONDS
    assert jax.config.jax_compilation_cache_max_size == _cache.MAX_CACHE_BYTES  # least recently used deleted past it
    # A directory already set for JAX (by the user) is kept.
    assert _cache.enable_compile_cache(tmp_path / "other") == (tmp_path / "c", "the directory already set for JAX")


def test_a_size_limit_the_user_set_is_kept(clean_jax_cache, tmp_path):
    jax.config.update("jax_compilation_cache_max_size", 5 << 20)
    _cache.enable_compile_cache(tmp_path / "c")
    assert jax.config.jax_compilation_cache_max_size == 5 << 20


def test_programs_cached_without_a_size_limit_do_not_stop_new_ones(clean_jax_cache, tmp_path):
    """A directory filled without a limit (chaosjax before it set one, or JAX's default) has no last-use stamps, and
    JAX's size-limited cache cannot write next to an unstamped program: each stamp is made from its file's time."""
    import warnings

    import jax.numpy as jnp

    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "c"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.jit(lambda x: jnp.sin(x) * 3.0)(jnp.ones(3)).block_until_ready()  # written with no size limit: no stamp
    old = [p.name for p in (tmp_path / "c").iterdir()]
    assert any(name.endswith("-cache") for name in old) and not any(name.endswith("-atime") for name in old)
    jax.config.update("jax_compilation_cache_dir", None)
    compilation_cache.reset_cache()

    _cache.enable_compile_cache(tmp_path / "c")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # JAX warns "Error writing persistent compilation cache entry" per program
        jax.jit(lambda x: jnp.cos(x) * 5.0)(jnp.ones(3)).block_until_ready()
    names = [p.name for p in (tmp_path / "c").iterdir()]
    programs = [n for n in names if n.endswith("-cache")]
    assert len(programs) > len([n for n in old if n.endswith("-cache")])  # the new program was written
    assert all(n.removesuffix("-cache") + "-atime" in names for n in programs)


def test_the_environment_variable_leaves_jax_alone(clean_jax_cache, monkeypatch, tmp_path):
    monkeypatch.setenv(_cache.NO_COMPILE_CACHE_ENV, "1")
    directory, note = _cache.enable_compile_cache(tmp_path / "c")
    assert directory is None and _cache.NO_COMPILE_CACHE_ENV in note
    assert jax.config.jax_compilation_cache_dir is None
    assert not (tmp_path / "c").exists()


def test_an_unwritable_directory_leaves_the_cache_off_with_a_warning(clean_jax_cache, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where a directory should be: unwritable even for root
    with pytest.warns(UserWarning, match="compilation cache off: cannot write"):
        directory, note = _cache.enable_compile_cache(blocker / "jax")
    assert directory is None and "cannot be written" in note
    assert jax.config.jax_compilation_cache_dir is None
    assert float(jax.jit(lambda x: x * 2.0)(1.5)) == 3.0  # compiling still works


def test_the_flag_turns_it_off_and_report_never_touches_it(clean_jax_cache, capsys):
    cli._compile_cache(_args("-v", "--no-compile-cache", "symbolic"))
    assert capsys.readouterr().err.strip() == "compilation cache: off (--no-compile-cache)"
    assert jax.config.jax_compilation_cache_dir is None
    cli._compile_cache(_args("-v", "report"))  # `report` compiles nothing: no cache, no line
    assert capsys.readouterr().err == "" and jax.config.jax_compilation_cache_dir is None


def test_a_program_compiled_once_is_loaded_the_next_time(clean_jax_cache, tmp_path):
    from jax._src import monitoring

    hits = []
    monitoring.register_event_listener(lambda event, **kw: hits.append(event) if event.endswith("cache_hits") else None)
    _cache.enable_compile_cache(tmp_path / "c")

    def program(x):
        return jax.numpy.sin(x) @ x.T + 0.123

    x = jax.numpy.ones((3, 3))
    first = jax.jit(program)(x)
    assert any((tmp_path / "c").iterdir())
    jax.clear_caches()  # as a new process would: nothing compiled in memory
    assert not hits
    again = jax.jit(program)(x)
    assert hits and (again == first).all()


def test_a_cli_run_names_the_cache_and_fills_it(tmp_path):
    """End to end, in a fresh process: -v names the directory, and the run writes compiled programs there."""
    env = {**_env(), "CHAOSJAX_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "chaosjax", "-v", *_TINY_RUN, "--out", str(tmp_path / "a")],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert f"compilation cache: {tmp_path / 'cache' / 'jax'} (on)" in done.stderr
    assert any((tmp_path / "cache" / "jax").iterdir())  # compiled programs written


def test_a_cli_run_where_the_cache_cannot_be_written_warns_and_succeeds(clean_jax_cache, monkeypatch, tmp_path,
                                                                        capsys):
    (tmp_path / "blocker").write_text("")
    monkeypatch.setenv("CHAOSJAX_CACHE", str(tmp_path / "blocker"))
    assert cli.main(["-v", *_TINY_RUN, "--out", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    assert "chaosjax: warning: compilation cache off: cannot write" in err
    assert "compilation cache: off" in err
    assert (tmp_path / "b" / "results.csv").exists()


_TINY_RUN = ["symbolic", "--formulas", "0", "--noise", "2", "--n", "100", "--epochs", "3", "--depth", "1",
             "--width", "4", "--methods", "saliency", "--quiet"]


def _env():
    import os

    env = dict(os.environ)
    env.pop(_cache.NO_COMPILE_CACHE_ENV, None)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    return env


def test_training_without_a_progress_listener_is_cached_and_loaded(clean_jax_cache, tmp_path, getkey, caplog):
    """JAX will not cache a program with a host callback: training compiles its progress ticks in only when a
    progress sink listens, so a quiet run (a sweep's cells, a library call, --quiet) loads its training program
    from the cache the next time, with the same numbers as a run that showed progress."""
    import logging

    from chaosjax import train
    from chaosjax.models.mlp import mlp

    _cache.enable_compile_cache(tmp_path / "c")
    model = mlp(3, depth=1, width=4)
    args = (model.apply, model.init(getkey()), jax.numpy.ones((8, 3)), jax.numpy.ones((8,)), getkey())
    first = train.fit(*args, epochs=7)
    jax.clear_caches()  # as a new process would: nothing compiled in memory
    with caplog.at_level(logging.DEBUG, logger="jax._src.compiler"):
        again = train.fit(*args, epochs=7)
    loaded = [r.getMessage() for r in caplog.records if "Persistent compilation cache hit for" in r.getMessage()]
    assert any("_fit_single" in message for message in loaded), loaded
    shown = train.fit(*args, epochs=7, progress=True)
    assert (again.losses == first.losses).all() and (shown.losses == first.losses).all()
