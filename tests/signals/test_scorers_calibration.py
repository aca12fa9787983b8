"""IsotonicCalibrator: known answers on synthetic, monotonically miscalibrated scores."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from dynacure.signals.calibration import IsotonicCalibrator


def _probe(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p_true = rng.uniform(0, 1, n)
    raw = p_true**3  # monotone but badly miscalibrated: raw underestimates every probability
    y = (rng.uniform(0, 1, n) < p_true).astype(float)
    return raw, y, p_true


def test_monotone_miscalibration_is_corrected() -> None:
    raw, y, p_true = _probe()
    cal = IsotonicCalibrator(n_folds=5, seed=0).fit(raw, y)
    new_p = np.linspace(0.05, 0.95, 19)
    fitted = cal.transform(new_p**3)
    # Raw scores are off by up to ~0.38; the calibrated ones are close to the true probabilities.
    assert np.max(np.abs(new_p**3 - new_p)) > 0.35
    assert np.mean(np.abs(fitted - new_p)) < 0.08
    assert np.all(np.diff(fitted) >= 0)


def test_cross_fitted_is_mean_preserving_and_out_of_fold() -> None:
    raw, y, _ = _probe()
    cal = IsotonicCalibrator(n_folds=5, seed=1).fit(raw, y)
    oof = cal.cross_fitted()
    assert oof.mean() == pytest.approx(y.mean(), abs=1e-9)
    assert np.all((oof >= 0) & (oof <= 1))
    # In-sample isotonic on the whole probe is mean-preserving too (pool adjacent violators).
    assert cal.transform(raw).mean() == pytest.approx(y.mean(), abs=1e-9)
    # Out-of-fold values differ from in-sample ones (each item was mapped by a model that did not see it).
    assert not np.allclose(oof, cal.transform(raw))


def test_calibrated_mean_interval_covers_truth() -> None:
    raw, y, _ = _probe(300, seed=2)
    cal = IsotonicCalibrator(seed=0).fit(raw, y)
    rng = np.random.default_rng(5)
    p_eval = rng.uniform(0.2, 0.8, 500)  # target population: true mean 0.5
    res = cal.calibrated_mean(p_eval**3, n_boot=200, seed=0)
    assert res.low <= 0.5 <= res.high
    assert res.high - res.low < 0.2
    assert not res.out_of_range
    assert res.n == 500 and res.n_probe == 300
    # The raw mean is far from the truth; the calibrated level is not.
    assert abs(np.mean(p_eval**3) - 0.5) > 0.2
    assert abs(res.value - 0.5) < 0.06


def test_out_of_range_scores_are_flagged(caplog: pytest.LogCaptureFixture) -> None:
    x = np.linspace(0.2, 0.6, 100)
    y = (x > 0.4).astype(float)
    cal = IsotonicCalibrator(out_of_range_threshold=0.05).fit(x, y)
    with caplog.at_level(logging.WARNING):
        res = cal.calibrated_mean(np.r_[np.full(20, 0.9), np.full(80, 0.5)], n_boot=50)
    assert res.out_of_range and res.out_of_range_share == pytest.approx(0.2)
    assert "outside the probe" in caplog.text
    inside = cal.calibrated_mean(np.full(50, 0.5), n_boot=50)
    assert not inside.out_of_range and inside.out_of_range_share == 0.0


def test_save_load_roundtrip_and_version_check(tmp_path) -> None:
    raw, y, _ = _probe(100)
    cal = IsotonicCalibrator(seed=3).fit(raw, y)
    path = tmp_path / "cal.json"
    cal.save(path)
    back = IsotonicCalibrator.load(path)
    s = np.linspace(0, 1, 37)
    np.testing.assert_allclose(back.transform(s), cal.transform(s))
    np.testing.assert_allclose(back.cross_fitted(), cal.cross_fitted())
    data = json.loads(path.read_text())
    data["format_version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="format_version"):
        IsotonicCalibrator.load(path)


def test_bad_probe_is_refused() -> None:
    with pytest.raises(ValueError, match="labels"):
        IsotonicCalibrator().fit(np.arange(20.0), np.arange(19.0) / 20)
    with pytest.raises(ValueError, match="at least"):
        IsotonicCalibrator().fit([0.1, 0.2, 0.3], [0, 1, 1])
    with pytest.raises(ValueError, match="non-finite"):
        IsotonicCalibrator().fit([np.nan] + [0.1] * 19, [0] * 20)
    with pytest.raises(RuntimeError, match="not fitted"):
        IsotonicCalibrator().transform([0.5])
