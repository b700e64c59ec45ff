"""Scoring: map a trial's probe signature to a predicted final metric (higher is better)."""

from ._estimator import SignatureRegressor
from ._features import FeatureSchema, signature_matrix, signature_row
from ._fit import FitSettings, FittedScorer, ScorerFileError, fit_scorer, grouped_spearman, load_scorer, save_scorer
from ._rank import ProbeRankScorer

__all__ = ["FeatureSchema", "FitSettings", "FittedScorer", "ProbeRankScorer", "ScorerFileError", "SignatureRegressor",
           "fit_scorer", "grouped_spearman", "load_scorer", "save_scorer", "signature_matrix", "signature_row"]
