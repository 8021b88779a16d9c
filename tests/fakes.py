"""Hand-made stand-ins shared by several test files (imported as ``from fakes import ...``)."""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class FakeWindows:
    """The ``labkit.data.Windows`` interface on hand-made arrays: 2 features (T, rh), targets = both."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    feature_names: list
    target_names: list
    feature_mean: np.ndarray
    feature_std: np.ndarray
    target_mean: np.ndarray
    target_std: np.ndarray

    def denormalize_targets(self, y):
        return np.asarray(y) * self.target_std + self.target_mean

    def last_observed(self, split):
        return getattr(self, f"x_{split}")[:, -1, :] * self.feature_std + self.feature_mean

    def calibration_inputs(self):
        return np.concatenate([self.x_train, self.x_val])


def sine_windows(n: int = 600, seed: int = 0, split: tuple[float, float] = (0.7, 0.9)) -> FakeWindows:
    """6-in/6-out windows over a noisy daily-like sine: temperature (degC) and humidity (%RH), normalised.

    ``split`` holds the fractions of ``n`` where validation and test start."""
    rng = np.random.default_rng(seed)
    t = np.arange(n + 12)
    temp = 15 + 5 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.3, t.size)
    rh = 70 - 15 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1.0, t.size)
    raw = np.stack([temp, rh], axis=1)
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    z = ((raw - mean) / std).astype(np.float32)
    x = np.stack([z[i:i + 6] for i in range(n)])
    y = np.stack([z[i + 6:i + 12] for i in range(n)])
    a, b = int(split[0] * n), int(split[1] * n)
    names = ["T (degC)", "rh (%)"]
    return FakeWindows(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], names, names, mean, std, mean, std)
