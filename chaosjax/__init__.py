"""chaosjax: do attribution methods find the few features that matter among many that don't?

A JAX-native reimplementation and extension of the ChaosMining benchmark (arXiv 2406.12150).
The flat API re-exports the attribution methods; the rest lives in small modules:

- `chaosjax.attribution`: pure methods `method(f, x, *, ...)`, `METHODS`, `target`.
- `chaosjax.data`, `chaosjax.models`, `chaosjax.metrics`, `chaosjax.train`: the benchmark's parts.
- `chaosjax.tracks`: each track end to end; `chaosjax.rfe`: feature elimination; `chaosjax.sweep`: grids at scale.
- `chaosjax.proxies`: metrics that need no ground truth (deletion, ROAD, infidelity, ...), also re-exported here.
"""

from typing import TYPE_CHECKING

# The one source of the version: setuptools reads this line statically (pyproject's `dynamic = ["version"]`),
# `chaosjax --version` prints it, and CHANGELOG.md has an entry per release.
__version__ = "0.1.0"

if TYPE_CHECKING:
    from chaosjax.attribution import (
        METHODS,
        NEEDS_KEY,
        deeplift,
        deeplift_shap,
        feature_ablation,
        feature_permutation,
        gradient_shap,
        guided_backprop,
        input_x_gradient,
        integrated_gradients,
        kernel_shap,
        lime,
        occlusion,
        random_baseline,
        saliency,
        shapley_exact,
        shapley_sampling,
        smoothgrad,
        target,
    )
    from chaosjax.proxies import (
        complexity,
        curve_auc,
        deletion_auc,
        deletion_curve,
        faithfulness_correlation,
        infidelity,
        insertion_auc,
        insertion_curve,
        kendall_agreement,
        max_sensitivity,
        model_parameter_randomisation,
        random_logit,
        road_curve,
        road_impute,
        sparseness,
    )

_PROXIES = frozenset({
    "complexity", "curve_auc", "deletion_auc", "deletion_curve", "faithfulness_correlation", "infidelity",
    "insertion_auc", "insertion_curve", "kendall_agreement", "max_sensitivity", "model_parameter_randomisation",
    "random_logit", "road_curve", "road_impute", "sparseness",
})
_SUBMODULES = frozenset({"attribution", "data", "models", "metrics", "train", "tracks", "rfe", "sweep", "report",
                         "proxies"})


def __getattr__(name: str):
    """The methods are imported on first use, so that `import chaosjax` (and `chaosjax --help`) do not load JAX."""
    import importlib

    if name in _PROXIES:
        return getattr(importlib.import_module("chaosjax.proxies"), name)
    if name in __all__:
        return getattr(importlib.import_module("chaosjax.attribution"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"chaosjax.{name}")
    raise AttributeError(f"module 'chaosjax' has no attribute {name!r}")


__all__ = [
    "METHODS",
    "NEEDS_KEY",
    "deeplift",
    "deeplift_shap",
    "feature_ablation",
    "feature_permutation",
    "gradient_shap",
    "guided_backprop",
    "input_x_gradient",
    "integrated_gradients",
    "kernel_shap",
    "lime",
    "occlusion",
    "random_baseline",
    "saliency",
    "shapley_exact",
    "shapley_sampling",
    "smoothgrad",
    "target",
    # chaosjax.proxies
    *sorted(_PROXIES),
]
