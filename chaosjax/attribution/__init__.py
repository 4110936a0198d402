"""Attribution methods: pure functions `method(f, x, *, ...) -> attributions` shaped like `x`.

`f` maps a batch `(B, *S)` to per-sample scalars `(B,)`; for a classifier, close over the target
with `target(apply_fn, target)`. Every method works under `jit` and `vmap` and with any float dtype.
`METHODS` maps names to functions; `NEEDS_KEY` names those that take a PRNG `key`.
"""

from chaosjax.attribution._core import target
from chaosjax.attribution.ablation import feature_ablation
from chaosjax.attribution.control import random_baseline
from chaosjax.attribution.deeplift import RESCALE, deeplift, deeplift_multipliers
from chaosjax.attribution.gradient_shap import gradient_shap
from chaosjax.attribution.gradients import input_x_gradient, saliency
from chaosjax.attribution.integrated_gradients import RULES, integrated_gradients, quadrature
from chaosjax.attribution.smoothgrad import KINDS, smoothgrad, smoothgrad_inputs

METHODS = {
    "saliency": saliency,
    "input_x_gradient": input_x_gradient,
    "integrated_gradients": integrated_gradients,
    "smoothgrad": smoothgrad,
    "deeplift": deeplift,
    "gradient_shap": gradient_shap,
    "feature_ablation": feature_ablation,
    "random_baseline": random_baseline,
}
NEEDS_KEY = frozenset({"smoothgrad", "gradient_shap", "random_baseline"})

__all__ = [
    "KINDS",
    "METHODS",
    "NEEDS_KEY",
    "RESCALE",
    "RULES",
    "deeplift",
    "deeplift_multipliers",
    "feature_ablation",
    "gradient_shap",
    "input_x_gradient",
    "integrated_gradients",
    "quadrature",
    "random_baseline",
    "saliency",
    "smoothgrad",
    "smoothgrad_inputs",
    "target",
]
