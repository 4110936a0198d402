"""Attribution methods: pure functions `method(f, x, *, ...) -> attributions` shaped like `x`.

`f` maps a batch `(B, *S)` to per-sample scalars `(B,)`; for a classifier, close over the target
with `target(apply_fn, target)`. Every method works under `jit` and `vmap` and with any float dtype.
`METHODS` maps names to functions, each callable as `m(f, x, key=key)` with its defaults (deterministic methods
ignore `key`); `NEEDS_KEY` names those that use the PRNG `key`, `NEEDS_BASELINES` those that take a distribution
of `baselines` (default: one zero baseline), and `TAKES_GROUPS` those that take feature `groups`.
`completeness_delta` is Captum's convergence delta.
"""

from chaosjax.attribution._core import completeness_delta, target
from chaosjax.attribution.ablation import feature_ablation
from chaosjax.attribution.control import random_baseline
from chaosjax.attribution.deeplift import RESCALE, deeplift, deeplift_multipliers
from chaosjax.attribution.deeplift_shap import deeplift_shap
from chaosjax.attribution.gradient_shap import gradient_shap
from chaosjax.attribution.gradients import input_x_gradient, saliency
from chaosjax.attribution.guided_backprop import guided_backprop, guided_relu
from chaosjax.attribution.integrated_gradients import RULES, integrated_gradients, quadrature
from chaosjax.attribution.kernel_shap import kernel_shap, kernel_shap_coalitions
from chaosjax.attribution.lime import lime, lime_coalitions
from chaosjax.attribution.occlusion import occlusion, occlusion_positions
from chaosjax.attribution.permutation import batch_permutations, feature_permutation
from chaosjax.attribution.shapley import MAX_EXACT_GROUPS, shapley_exact, shapley_permutations, shapley_sampling
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
    "occlusion": occlusion,
    "shapley_exact": shapley_exact,
    "shapley_sampling": shapley_sampling,
    "kernel_shap": kernel_shap,
    "lime": lime,
    "feature_permutation": feature_permutation,
    "guided_backprop": guided_backprop,
    "deeplift_shap": deeplift_shap,
}
NEEDS_KEY = frozenset(
    {"smoothgrad", "gradient_shap", "random_baseline", "shapley_sampling", "kernel_shap", "lime", "feature_permutation"}
)
NEEDS_BASELINES = frozenset({"gradient_shap", "deeplift_shap"})
TAKES_GROUPS = frozenset(
    {"feature_ablation", "shapley_exact", "shapley_sampling", "kernel_shap", "lime", "feature_permutation"}
)

__all__ = [
    "KINDS",
    "MAX_EXACT_GROUPS",
    "METHODS",
    "NEEDS_BASELINES",
    "NEEDS_KEY",
    "RESCALE",
    "RULES",
    "TAKES_GROUPS",
    "batch_permutations",
    "completeness_delta",
    "deeplift",
    "deeplift_multipliers",
    "deeplift_shap",
    "feature_ablation",
    "feature_permutation",
    "gradient_shap",
    "guided_backprop",
    "guided_relu",
    "input_x_gradient",
    "integrated_gradients",
    "kernel_shap",
    "kernel_shap_coalitions",
    "lime",
    "lime_coalitions",
    "occlusion",
    "occlusion_positions",
    "quadrature",
    "random_baseline",
    "saliency",
    "shapley_exact",
    "shapley_permutations",
    "shapley_sampling",
    "smoothgrad",
    "smoothgrad_inputs",
    "target",
]
