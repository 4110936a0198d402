"""Strict numerics for every test (equinox style): rank promotion raises, keys come from a fixture."""

import os

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


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
