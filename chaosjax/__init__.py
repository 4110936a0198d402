"""chaosjax: attribution methods tested where signal is scarce, in JAX."""

__version__ = "0.1.0"
