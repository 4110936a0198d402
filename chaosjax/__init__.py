"""chaosjax: do attribution methods find the few features that matter among many that don't?

A JAX-native reimplementation and extension of the ChaosMining benchmark (arXiv 2406.12150).
The flat API re-exports the attribution methods; the rest lives in small modules:

- `chaosjax.attribution`: pure methods `method(f, x, *, ...)`, `METHODS`, `target`.
- `chaosjax.data`, `chaosjax.models`, `chaosjax.metrics`, `chaosjax.train`: the benchmark's parts.
- `chaosjax.tracks`: each track end to end; `chaosjax.rfe`: feature elimination; `chaosjax.sweep`: grids at scale.
"""

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

__version__ = "0.1.0"

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
]
