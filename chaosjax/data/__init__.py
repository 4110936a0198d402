"""Benchmark data: the symbolic track's formulas, tables and ground truth."""

from chaosjax.data import symbolic
from chaosjax.data.symbolic import FORMULAS, Formula, SymbolicData, formula, formulas, ground_truth, make_dataset

__all__ = ["FORMULAS", "Formula", "SymbolicData", "formula", "formulas", "ground_truth", "make_dataset", "symbolic"]
