"""Counter-based random numbers for the per-value kernels (camera noise).

Value i of a draw is a pure function of (key, i): a SplitMix64 hash of the counter, the same 64 bits that
position i of a SplitMix64 stream seeded with `key` yields (Steele, Lea & Flood 2014; passes BigCrush). So a
kernel draws inside its own loop, in any order, on any number of threads or on the GPU, and gets the same
numbers; the caller takes one 64-bit key from the sample's numpy Generator.

Normal deviates use the ziggurat method of Marsaglia & Tsang (2000) with 128 layers. Unlike their RNOR, the
layer index and the value come from disjoint bits of the hash (Doornik 2005 showed that sharing them skews the
tails). About 98.8% of draws take the fast path (one table compare and one multiply); the rest take the exact
wedge / tail rejection steps with extra numbers from a SplitMix64 stream seeded by the value's hash.

Poisson counts below POIS_MAX_LAMBDA are exact: K = A + B with A ~ Poisson(floor(lam)) by inversion through a
guide table of that integer mean's CDF and B ~ Poisson(lam - floor(lam)) by sequential inversion (about
lam - floor(lam) steps), so a count costs a table lookup and one or two steps whatever lam is.

csrc/blursynth_math.h (bs_hash64, bs_normal, bs_poisson) repeats this arithmetic for the CUDA kernels, with the
same tables passed in, and tests/test_cuda_host.py checks that the two agree.
"""
from __future__ import annotations

import numba
import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
# the second stream (rejection steps) is keyed by the value's hash xor this
_REJECT_SALT = np.uint64(0xD1B54A32D192ED03)

ZIG_LAYERS = 128
ZIG_R = 3.442619855899  # start of the tail (Marsaglia & Tsang 2000, 128 layers)
_ZIG_V = 9.91256303526217e-3  # area of each layer


POIS_MAX_LAMBDA = 32  # the tables cover integer means 0 .. POIS_MAX_LAMBDA - 1
POIS_KMAX = 128  # CDF entries per integer mean (P(K >= 128) < 1e-40 for means below 32)
POIS_GUIDE = 256  # guide-table buckets per integer mean


def key_from(rng: np.random.Generator) -> np.uint64:
    """One 64-bit key drawn from `rng` (advances it by one 64-bit draw)."""
    return np.uint64(rng.integers(0, np.iinfo(np.int64).max, dtype=np.int64, endpoint=True))


def _ziggurat_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k, w, f) for 128 layers over 31-bit magnitudes: |j| < k[i] is the fast accept of layer i, x = j * w[i],
    f[i] = exp(-x_i^2 / 2) at the layer's right edge x_i."""
    m1 = 2147483648.0
    k = np.zeros(ZIG_LAYERS, np.int64)
    w = np.zeros(ZIG_LAYERS, np.float64)
    f = np.zeros(ZIG_LAYERS, np.float64)
    dn = tn = ZIG_R
    q = _ZIG_V / np.exp(-0.5 * dn * dn)
    k[0] = int((dn / q) * m1)
    k[1] = 0
    w[0] = q / m1
    w[-1] = dn / m1
    f[0] = 1.0
    f[-1] = np.exp(-0.5 * dn * dn)
    for i in range(ZIG_LAYERS - 2, 0, -1):
        dn = np.sqrt(-2.0 * np.log(_ZIG_V / dn + np.exp(-0.5 * dn * dn)))
        k[i + 1] = int((dn / tn) * m1)
        tn = dn
        f[i] = np.exp(-0.5 * dn * dn)
        w[i] = dn / m1
    for a in (k, w, f):
        a.flags.writeable = False
    return k, w, f


ZIG_K, ZIG_W, ZIG_F = _ziggurat_tables()


def _poisson_tables() -> tuple[np.ndarray, np.ndarray]:
    """(cdf, guide): cdf[n, k] = P(Poisson(n) <= k) in float64 (pmf by the recurrence p_k = p_(k-1) * n / k,
    summed in order); guide[n, j] = the smallest k with cdf[n, k] >= j / POIS_GUIDE."""
    cdf = np.zeros((POIS_MAX_LAMBDA, POIS_KMAX), np.float64)
    guide = np.zeros((POIS_MAX_LAMBDA, POIS_GUIDE), np.int64)
    for n in range(POIS_MAX_LAMBDA):
        p = np.exp(-float(n))
        c = p
        cdf[n, 0] = c
        for k in range(1, POIS_KMAX):
            p *= n / k
            c += p
            cdf[n, k] = c
        guide[n] = np.minimum(np.searchsorted(cdf[n], np.arange(POIS_GUIDE) / POIS_GUIDE, side="left"),
                              POIS_KMAX - 1)
    cdf.flags.writeable = False
    guide.flags.writeable = False
    return cdf, guide


POIS_CDF, POIS_GUIDE_TABLE = _poisson_tables()
# every table the noise kernels take, in their argument order (camera._noise, csrc bs_launch_noise)
NOISE_TABLES = (ZIG_K, ZIG_W, ZIG_F, POIS_CDF, POIS_GUIDE_TABLE)
POIS_MAX_STEPS = 1000  # cap of the fractional part's sequential inversion (csrc: the same literal)
_INV_K = 1.0 / np.maximum(np.arange(POIS_MAX_STEPS + 1, dtype=np.float64), 1.0)


@numba.njit(inline="always")
def mix64(z):
    """SplitMix64's output function (z: uint64)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@numba.njit(inline="always")
def hash64(key, i):
    """The i-th (0-based) output of a SplitMix64 stream seeded with key (uint64), i: int64 >= 0."""
    return mix64(key + (np.uint64(i) + np.uint64(1)) * GOLDEN)


@numba.njit(inline="always")
def unit(bits):
    """A uniform float64 in (0, 1) from the top 53 bits of a uint64."""
    return (np.float64(bits >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@numba.njit(inline="always")
def _value_and_layer(h):
    """The ziggurat's draw from 64 random bits: bits 0-31 the signed value j, bits 32-38 the layer."""
    return np.int64(np.int32(np.uint32(h & np.uint64(0xFFFFFFFF)))), \
        np.int64((h >> np.uint64(32)) & np.uint64(ZIG_LAYERS - 1))


@numba.njit(inline="always")
def normal_fast(h, zk, zw):
    """(accepted, value) of the ziggurat's fast path on the hash h."""
    j, layer = _value_and_layer(h)
    return abs(j) < zk[layer], np.float64(j) * zw[layer]


@numba.njit(cache=True)
def normal_slow(h, zk, zw, zf):
    """The ziggurat's exact rejection steps for a value whose fast path failed (h: its hash, uint64).

    Extra uniforms come from a SplitMix64 stream seeded by h ^ _REJECT_SALT; a retry draws a fresh (value, layer)
    from the same stream.
    """
    state = h ^ _REJECT_SALT
    j, layer = _value_and_layer(h)
    while True:
        x = np.float64(j) * zw[layer]
        if layer == 0:  # the tail beyond R (Marsaglia 1964)
            while True:
                state += GOLDEN
                a = -np.log(unit(mix64(state))) / ZIG_R
                state += GOLDEN
                b = -np.log(unit(mix64(state)))
                if b + b >= a * a:
                    break
            return ZIG_R + a if j > 0 else -ZIG_R - a
        state += GOLDEN
        u = unit(mix64(state))
        if zf[layer] + u * (zf[layer - 1] - zf[layer]) < np.exp(-0.5 * x * x):
            return x
        state += GOLDEN
        j, layer = _value_and_layer(mix64(state))
        if abs(j) < zk[layer]:
            return np.float64(j) * zw[layer]


@numba.njit(inline="always")
def normal(h, zk, zw, zf):
    """A standard normal deviate (float64) from the value's hash h (uint64)."""
    ok, x = normal_fast(h, zk, zw)
    if ok:
        return x
    return normal_slow(h, zk, zw, zf)


@numba.njit(inline="always")
def poisson(lam, u1, u2, cdf, guide):
    """An exact Poisson(lam) count for 0 <= lam < POIS_MAX_LAMBDA from two uniforms in (0, 1)."""
    n = min(np.int64(lam), POIS_MAX_LAMBDA - 1)
    f = lam - np.float64(n)  # below 1 (just above 1 only if lam rounds up to POIS_MAX_LAMBDA)
    # A ~ Poisson(n): the smallest k with cdf[n, k] >= u1, starting from the guide
    a = guide[n, np.int64(u1 * POIS_GUIDE)]
    while a < POIS_KMAX - 1 and cdf[n, a] < u1:
        a += 1
    # B ~ Poisson(f), f < 1: sequential inversion
    p = np.exp(-f)
    c = p
    b = 0
    while u2 > c and b < POIS_MAX_STEPS:
        b += 1
        p *= f * _INV_K[b]
        c += p
    return a + b


@numba.njit(parallel=True, cache=True)
def _fill(key, normals, out):
    for i in numba.prange(out.shape[0]):
        h = hash64(key, i)
        if normals:
            out[i] = normal(h, ZIG_K, ZIG_W, ZIG_F)
        else:
            out[i] = unit(h)


def standard_normal(key, n: int) -> np.ndarray:
    """float64 (n,): values 0..n-1 of the normal stream `key` (what the noise kernel draws for value i)."""
    out = np.empty(int(n), np.float64)
    _fill(np.uint64(key), True, out)
    return out


def uniform(key, n: int) -> np.ndarray:
    """float64 (n,) in (0, 1): the top 53 bits of hash64(key, i) for i < n."""
    out = np.empty(int(n), np.float64)
    _fill(np.uint64(key), False, out)
    return out
