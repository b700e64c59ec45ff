"""Scoring: map a trial's probe signature to a predicted final metric (higher is better)."""

from ._estimator import SignatureRegressor
from ._features import FeatureSchema, signature_matrix, signature_row
from ._common import ScorerFileError
from ._files import DEFAULT_SCORER, load_scorer, save_scorer
from ._interval import COLUMNS as INTERVAL_COLUMNS
from ._interval import BOUND_FILE, MIN_HEADROOM, FinalInterval, interval_row, load_bound, save_bound
from ._lookahead import PREDICTOR_FILE, FinalPredictor, load_predictor, save_predictor
from ._probe_features import (NEIGHBOUR_CANDIDATES, PROBE_FEATURES, candidate_sets, choose_neighbours,
                              choose_probe_features, probe_feature_row, probes_read, refit_errors)
from ._record_features import RECORD_FEATURE_NAMES, record_feature_row
from ._fit import FitSettings, FittedScorer, fit_scorer, grouped_spearman
from ._rank import ProbeRankScorer
from ._ridge import RungModel, margin_from, rung_gaps
from ._transfer import Rule, TransferScorer, rung_rows, transfer_features

__all__ = ["BOUND_FILE", "INTERVAL_COLUMNS", "MIN_HEADROOM", "RungModel", "interval_row", "margin_from", "rung_gaps",
           "rung_rows", "DEFAULT_SCORER", "FinalInterval", "load_bound", "save_bound", "PREDICTOR_FILE",
           "FinalPredictor", "load_predictor", "save_predictor", "PROBE_FEATURES", "candidate_sets", "choose_probe_features",
           "NEIGHBOUR_CANDIDATES", "choose_neighbours",
           "RECORD_FEATURE_NAMES", "record_feature_row",
           "probe_feature_row", "probes_read", "refit_errors", "FeatureSchema", "FitSettings", "FittedScorer", "ProbeRankScorer", "Rule",
           "ScorerFileError", "SignatureRegressor", "TransferScorer", "fit_scorer", "grouped_spearman", "load_scorer", "save_scorer",
           "signature_matrix", "signature_row", "transfer_features"]
