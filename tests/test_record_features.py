"""Record features for the look-ahead's predictor: their values, their refusals, and their choice in the folds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from earlyexit.scoring import RECORD_FEATURE_NAMES, candidate_sets, choose_probe_features, record_feature_row


def test_each_record_feature_is_the_documented_summary():
    labels = np.array([0, 0, 1, 1, 2, 2])
    constant = record_feature_row(np.zeros(6, int), labels, 3)
    assert constant == pytest.approx([0.0, 2 / 3, 0.0])  # one class predicted: no entropy, far from the labels
    perfect = record_feature_row(labels, labels, 3, previous=np.zeros(6, int))
    assert perfect == pytest.approx([1.0, 0.0, 4 / 6])  # every class a third of the time; 4 of 6 changed
    half = record_feature_row(np.array([0, 0, 0, 1, 1, 1]), labels, 3)
    assert half[0] == pytest.approx(math.log(2) / math.log(3))
    assert half[1] == pytest.approx(0.5 * (abs(0.5 - 1 / 3) + abs(0.5 - 1 / 3) + 1 / 3))


def test_bad_records_are_refused_with_what_is_wrong():
    labels = np.array([0, 1, 1])
    with pytest.raises(ValueError, match="one class id per dev example"):
        record_feature_row(np.array([0, 1]), labels, 2)
    with pytest.raises(ValueError, match="0..1"):
        record_feature_row(np.array([0, 2, 1]), labels, 2)
    with pytest.raises(ValueError, match="at least 2"):
        record_feature_row(np.array([0, 0, 0]), np.array([0, 0, 0]), 1)
    with pytest.raises(ValueError, match="differ in length"):
        record_feature_row(labels, labels, 2, previous=np.array([0, 1]))


def _data(informative: bool, seed: int = 0):
    """Readings of four tasks, 12 trials each: the gain to the final is what the entropy shows, or noise."""
    rng = np.random.default_rng(seed)
    X, R, gain, groups, studies, runs = [], [], [], [], [], []
    for task in "abcd":
        for trial in range(12):
            late = rng.uniform(0, 0.5)
            for share in (0.1, 0.2, 0.4):
                X.append([0.3 + share, share, share, 1.0, -4.0, 0.8])
                entropy = late if informative else rng.uniform(0, 0.5)
                R.append([entropy, rng.uniform(0, 1), rng.uniform(0, 1)])
                gain.append(late)
                groups.append(task)
                studies.append(task)
                runs.append(f"{task}{trial}")
    return [np.array(v) for v in (X, R, gain)] + [groups, studies, runs]


def test_the_folds_choose_the_record_feature_that_carries_the_gain_and_none_that_is_noise():
    chosen, scores = choose_probe_features(*_data(True), names=RECORD_FEATURE_NAMES)
    assert chosen == ("prediction_entropy",)
    assert set(scores) == {",".join(c) or "none" for c in candidate_sets(RECORD_FEATURE_NAMES)}
    chosen, _ = choose_probe_features(*_data(False), names=RECORD_FEATURE_NAMES)
    assert chosen == ()


def test_the_chooser_refuses_columns_that_do_not_match_the_names():
    X, R, gain, groups, studies, runs = _data(True)
    with pytest.raises(ValueError, match="3 columns for 2 feature names"):
        choose_probe_features(X, R, gain, groups, studies, runs, names=RECORD_FEATURE_NAMES[:2])
