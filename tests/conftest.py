"""Strict numerics for every test (equinox style): rank promotion raises, keys come from a fixture. One persistent
compilation cache for the whole session."""

import os
import shutil
import tempfile

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

# One JAX compilation cache for the session, in a temporary directory: the xdist workers and the processes tests
# start (command-line runs, sweeps on fake devices, notebook kernels) inherit it through the environment and load
# a program another process compiled instead of compiling it again. A cached program is the one XLA would compile
# (keyed by its HLO, flags and devices), so no result changes. CHAOSJAX_TEST_COMPILE_CACHE=0 turns it off.
_SESSION_CACHE_ENV = "CHAOSJAX_TEST_SESSION_CACHE"


def pytest_configure(config):
    if os.environ.get("CHAOSJAX_TEST_COMPILE_CACHE", "1") == "0" or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist) makes it; workers inherit it
        os.environ[_SESSION_CACHE_ENV] = tempfile.mkdtemp(prefix="chaosjax-test-jax-cache-")
        config._chaosjax_session_cache = os.environ[_SESSION_CACHE_ENV]
    path = os.environ.get(_SESSION_CACHE_ENV)
    if path:
        os.environ["JAX_COMPILATION_CACHE_DIR"] = path
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def pytest_unconfigure(config):
    path = getattr(config, "_chaosjax_session_cache", None)
    if path:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def getkey():
    """Returns a function handing out fresh, deterministic PRNG keys."""
    counter = iter(range(1_000_000))

    def _getkey():
        return jax.random.key(next(counter))

    return _getkey


# Command-line runs inside tests (`cli.main`, subprocesses) keep off the user's compilation cache
# (chaosjax/_cache.py); tests/test_compile_cache.py turns it on where it tests it.
os.environ.setdefault("CHAOSJAX_NO_COMPILE_CACHE", "1")
