"""The uncertainty rule the notebooks use to say when a difference is noise (labkit.metrics)."""
import numpy as np
import pytest

from labkit import metrics


def test_accuracy_se_matches_a_simulation_of_300_clips():
    # independent derivation: draw many 300-clip test sets from a model that is right 85 % of the time
    rng = np.random.default_rng(0)
    observed = rng.binomial(300, 0.85, size=20_000) / 300
    assert metrics.accuracy_se(0.85, 300) == pytest.approx(observed.std(), rel=0.03)
    assert metrics.accuracy_se(0.85, 300) == pytest.approx(0.0206, abs=1e-4)  # sqrt(.85 * .15 / 300)


def test_accuracy_difference_calls_small_gaps_noise_and_large_ones_real():
    small = metrics.accuracy_difference(0.810, 0.793, 300)  # notebook 06: QAT 8-bit "beating" float
    assert small["noise"] and small["difference"] == pytest.approx(0.017)
    large = metrics.accuracy_difference(0.860, 0.497, 300)  # PTQ W+A 4 bits against float
    assert not large["noise"] and large["band"] == pytest.approx(2 * np.hypot(0.0200, 0.0289), abs=1e-3)
    with pytest.raises(ValueError, match="at least one test clip"):
        metrics.accuracy_se(0.5, 0)
