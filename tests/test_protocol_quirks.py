"""Protocol quirks of docs/protocol.md that no other test file covers (the symbolic track's saliency, RFE's
ranking split)."""

import numpy as np

from chaosjax.data import symbolic as data
from chaosjax.tracks import rfe as rfe_track
from chaosjax.tracks import symbolic as sym


def test_symbolic_saliency_is_absolute_only_under_paper():
    """The study's saliency is Captum's absolute gradient (examples/train_eval_simulation.py:183), scored against
    the signed derivative (l.188-189); corrected attributes the signed gradient against the same truth."""
    assert sym.method_options(sym.SymbolicConfig(protocol="paper"), "saliency") == {"absolute": True}
    assert sym.method_options(sym.SymbolicConfig(protocol="corrected"), "saliency") == {"absolute": False}
    assert sym.TRUTH_FOR["saliency"] == "saliency"
    x = np.array([[-0.5, 0.2]], np.float32)
    truth = np.asarray(data.ground_truth(data.formula("a**2"), x, "saliency"))
    assert truth[0, 0] < 0  # the signed derivative 2a, whatever the protocol


def test_rfe_ranks_on_the_test_split_only_under_paper():
    """examples/RFEwNA_simulation.py:201-202 ranks on X_test, whose MAE it reports (l.184-185)."""
    rng = np.random.default_rng(0)
    x_train, y_train = rng.normal(size=(50, 4)), rng.normal(size=50)
    x_test, y_test = rng.normal(size=(20, 4)), rng.normal(size=20)
    predictive = np.array([True, False, False, False])
    paper = rfe_track._problem(x_train, y_train, x_test, y_test, predictive, "paper", 0)
    assert np.array_equal(paper.x_rank, x_test) and np.array_equal(paper.x_train, x_train)
    corrected = rfe_track._problem(x_train, y_train, x_test, y_test, predictive, "corrected", 0)
    ranked = {tuple(r) for r in np.asarray(corrected.x_rank)}
    assert ranked <= {tuple(r) for r in x_train} and not ranked & {tuple(r) for r in x_test}
    assert not ranked & {tuple(r) for r in np.asarray(corrected.x_train)}  # carved out of the training rows
