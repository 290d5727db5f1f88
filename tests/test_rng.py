"""The counter-based random numbers behind the camera noise (blursynth/rng.py): SplitMix64 against an independent
pure-Python implementation, the ziggurat's normal deviates against the normal distribution (body, layer edges
and tail), and the noise kernel's determinism and Poisson counts."""
import numba
import numpy as np
import pytest
from scipy import stats

from blursynth import rng as R
from blursynth.camera import add_noise

MASK = (1 << 64) - 1


def splitmix64_stream(seed: int, n: int) -> list[int]:
    """Vigna's splitmix64.c, written out in Python integers."""
    out, x = [], seed
    for _ in range(n):
        x = (x + 0x9E3779B97F4A7C15) & MASK
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        out.append(z ^ (z >> 31))
    return out


@numba.njit
def _hashes(key, n):
    out = np.empty(n, np.uint64)
    for i in range(n):
        out[i] = R.hash64(key, i)
    return out


def test_hash_is_the_splitmix64_stream():
    for seed in (0, 1234567, 2**63 - 1):
        assert _hashes(np.uint64(seed), 50).tolist() == splitmix64_stream(seed, 50)
    # the published first output of splitmix64 seeded with 1234567
    assert splitmix64_stream(1234567, 1)[0] == 6457827717110365317


def test_uniform_is_uniform_on_the_open_interval():
    u = R.uniform(42, 1_000_000)
    assert 0.0 < u.min() and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    # consecutive values are uncorrelated
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 5 / np.sqrt(u.size)


@pytest.mark.parametrize("key", [7, 2**62 + 12345])
def test_normal_matches_the_normal_distribution(key):
    n = 2_000_000
    z = R.standard_normal(key, n)
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert z.var() == pytest.approx(1.0, abs=5 * np.sqrt(2 / n))
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # a fine histogram: a wrong layer table or a biased edge shows as a chi-square far above its degrees of freedom
    bins = 600
    h, edges = np.histogram(z, bins=bins, range=(-5.0, 5.0))
    p = np.diff(stats.norm.cdf(edges)) * n
    keep = p > 20
    chi2 = ((h[keep] - p[keep]) ** 2 / p[keep]).sum()
    dof = keep.sum() - 1
    assert chi2 < dof + 5 * np.sqrt(2 * dof)
    # the tail beyond R (the ziggurat's base layer) and further out
    for c in (2.0, 3.0, R.ZIG_R, 4.0):
        expected = 2 * stats.norm.sf(c) * n
        assert abs(np.count_nonzero(np.abs(z) > c) - expected) < 5 * np.sqrt(expected)
    # symmetric, and neighbours independent
    assert abs(np.count_nonzero(z > 0) - n / 2) < 5 * np.sqrt(n / 4)
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 5 / np.sqrt(n)


def test_the_tail_beyond_r_is_the_normal_tail():
    # the base layer's tail is drawn by Marsaglia's exponential rejection: beyond R the values must follow the
    # normal distribution truncated at R
    z = R.standard_normal(3, 4_000_000)
    tail = np.abs(z[np.abs(z) > R.ZIG_R])
    assert tail.size > 1500
    assert stats.kstest(tail, stats.truncnorm(R.ZIG_R, np.inf).cdf).pvalue > 1e-3
    assert np.isfinite(z).all()
    assert not np.array_equal(z[:1000], R.standard_normal(4, 1000))


def test_noise_is_the_same_on_any_number_of_threads():
    x = np.random.default_rng(0).uniform(0.0, 1.2, (64, 96, 3)).astype(np.float32)
    before = numba.get_num_threads()
    try:
        outs = []
        for threads in (1, numba.config.NUMBA_NUM_THREADS):
            numba.set_num_threads(threads)
            outs.append(add_noise(x, 1e-3, 2e-3, np.random.default_rng(5)))
    finally:
        numba.set_num_threads(before)
    assert outs[0].tobytes() == outs[1].tobytes()
    # a different stream state, different noise
    assert not np.array_equal(outs[0], add_noise(x, 1e-3, 2e-3, np.random.default_rng(6)))


@pytest.mark.parametrize("lam", [0.3, 5.0, 7.62, 24.5, 31.97])
def test_poisson_counts_follow_the_poisson_pmf(lam):
    shot, n = 1e-3, 400_000
    y = add_noise(np.full(n, lam * shot, np.float32), shot, 0.0, np.random.default_rng(9))
    k = np.rint(y / shot).astype(np.int64)
    assert np.allclose(k * shot, y, atol=1e-6)
    ks = np.arange(0, int(lam + 8 * np.sqrt(lam) + 8))
    expected = stats.poisson.pmf(ks, lam) * n
    observed = np.bincount(k, minlength=ks.size)[: ks.size]
    keep = expected > 20
    chi2 = ((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    dof = keep.sum() - 1
    assert chi2 < dof + 5 * np.sqrt(2 * dof) + 10


def test_poisson_uniform_and_gaussian_normal_are_independent_streams():
    # read noise on top of the Poisson count: the residual (y - shot * k) / read must be N(0, 1) and
    # uncorrelated with the count
    shot, read, n = 1e-3, 1e-5, 400_000  # read << shot: k is recovered by rounding
    y = add_noise(np.full(n, 4.0 * shot, np.float32), shot, read, np.random.default_rng(2)).astype(np.float64)
    k = np.rint(y / shot)
    r = (y - k * shot) / read
    assert abs(r.mean()) < 5 / np.sqrt(n) + 0.01 and r.std() == pytest.approx(1.0, abs=0.02)
    assert abs(np.corrcoef(k, r)[0, 1]) < 5 / np.sqrt(n)
