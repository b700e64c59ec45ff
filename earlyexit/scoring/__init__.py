"""Scoring: map a trial's probe signature to a predicted final metric (higher is better)."""

from ._estimator import SignatureRegressor
from ._features import FeatureSchema, signature_matrix, signature_row
from ._common import ScorerFileError
from ._files import DEFAULT_SCORER, load_scorer, save_scorer
from ._fit import FitSettings, FittedScorer, fit_scorer, grouped_spearman
from ._rank import ProbeRankScorer
from ._transfer import Rule, TransferScorer, transfer_features

__all__ = ["DEFAULT_SCORER", "FeatureSchema", "FitSettings", "FittedScorer", "ProbeRankScorer", "Rule",
           "ScorerFileError", "SignatureRegressor", "TransferScorer", "fit_scorer", "grouped_spearman", "load_scorer", "save_scorer",
           "signature_matrix", "signature_row", "transfer_features"]
