import numpy as np
import pytest

from pipeline.data.cmvn import apply_cmvn, cmvn_stats
from pipeline.data.deltas import add_deltas


def direct_delta(c, t, window=2):
    """Kaldi's order-1 delta at frame t, written out with edge replication."""
    T = len(c)
    num = sum(n * (c[min(t + n, T - 1)] - c[max(t - n, 0)]) for n in range(1, window + 1))
    return num / (2 * sum(n * n for n in range(1, window + 1)))


def direct_delta_delta(c, t, window=2):
    """Order 2: the order-1 regression applied twice to the *clamped original* frames."""
    T = len(c)
    denom = 2 * sum(n * n for n in range(1, window + 1))
    total = 0.0
    for n in range(-window, window + 1):
        for m in range(-window, window + 1):
            total += n * m * c[min(max(t + n + m, 0), T - 1)]
    return total / denom**2


@pytest.mark.parametrize("T", [1, 3, 7, 20])
def test_deltas_match_direct_formula(T):
    rng = np.random.default_rng(T)
    c = rng.normal(size=(T, 5))
    out = add_deltas(c)
    assert out.shape == (T, 15)
    np.testing.assert_allclose(out[:, :5], c, rtol=1e-6, atol=1e-6)
    for t in range(T):
        np.testing.assert_allclose(out[t, 5:10], direct_delta(c, t), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out[t, 10:], direct_delta_delta(c, t), rtol=1e-5, atol=1e-5)


def test_delta_of_a_ramp_is_its_slope_and_delta_delta_zero():
    c = np.arange(30, dtype=float)[:, None] * 0.5
    out = add_deltas(c)
    np.testing.assert_allclose(out[4:-4, 1], 0.5, atol=1e-6)
    np.testing.assert_allclose(out[4:-4, 2], 0.0, atol=1e-6)


def test_cmvn_stats_layout_and_normalisation():
    rng = np.random.default_rng(0)
    utts = [rng.normal(3.0, 2.0, size=(n, 4)) for n in (50, 70, 30)]
    stats = cmvn_stats(utts)
    allf = np.concatenate(utts)
    assert stats.shape == (2, 5) and stats.dtype == np.float64
    np.testing.assert_allclose(stats[0, :4], allf.sum(0))
    np.testing.assert_allclose(stats[1, :4], (allf**2).sum(0))
    assert stats[0, 4] == 150 and stats[1, 4] == 0
    normed = np.concatenate([apply_cmvn(u, stats) for u in utts]).astype(np.float64)
    np.testing.assert_allclose(normed.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(normed.std(0), 1, atol=1e-5)
    mean_only = apply_cmvn(utts[0], stats, norm_vars=False)
    np.testing.assert_allclose(mean_only, utts[0] - allf.mean(0), atol=1e-5)


def test_cmvn_constant_dimension_is_finite():
    f = np.ones((10, 3))
    out = apply_cmvn(f, cmvn_stats([f]))
    assert np.isfinite(out).all()
