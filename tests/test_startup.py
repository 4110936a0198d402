"""Start-up: the attribution API and a symbolic run import only what they use (measured with
`python -X importtime`: pandas, matplotlib, sympy, scikit-learn, orbax and scipy.stats each cost 0.3-2 s)."""

import subprocess
import sys

_PROBE = """
import sys
def loaded():
    return sorted(m for m in {heavy!r} if m in sys.modules)
import chaosjax.attribution
print(loaded())
import chaosjax.cli, chaosjax.tracks.symbolic
print(loaded())
"""
_HEAVY = ("pandas", "matplotlib", "sympy", "sklearn", "orbax", "tqdm", "scipy.stats", "torch", "PIL")


def test_the_attribution_api_and_the_symbolic_command_load_no_heavy_library_they_do_not_use():
    out = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=_HEAVY)], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0] == "[]", f"import chaosjax.attribution loaded {out[0]}"
    # The symbolic track parses formulas with sympy; the results table (pandas), the progress bar (tqdm) and the
    # summary's confidence intervals (scipy.special, not scipy.stats) are imported when a run needs them.
    assert out[1] == "['sympy']", f"import chaosjax.cli, chaosjax.tracks.symbolic loaded {out[1]}"

