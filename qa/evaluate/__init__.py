"""Retrieval evaluation: labelled questions, metrics (ranx), reports."""

from .datasets import (GoldMissing, Question, check_gold_in_pool, feedback_to_labels, load_benchmark, load_labelled,
                       merge_pools)
from .metrics import compute, judge
from .report import compare, table, write
from .runner import calibrate, run_eval
from .splits import SEED, TEST_SHARE, select, split_of

__all__ = ["Question", "GoldMissing", "load_labelled", "load_benchmark", "check_gold_in_pool", "merge_pools",
           "feedback_to_labels", "judge", "compute",
           "run_eval", "calibrate", "table", "write", "compare", "select", "split_of", "SEED", "TEST_SHARE"]
