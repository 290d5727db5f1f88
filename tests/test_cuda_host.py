"""The per-pixel code the CUDA kernels run (blursynth/csrc/blursynth_math.h), compiled for the host (host.cpp) and
compared with the numba kernels it replaces: renderer, sharp image and blur map, ESIM events, camera noise and
encode. Also compiles the .cu files with nvcc (no GPU needed) when nvcc exists.

Tolerances (blursynth/csrc/README.md): the renderer agrees with numba to 1e-5 of the largest radiance (numba keeps adding
the back layer under a transmittance below 1e-6 where the shared code stops, and accumulates the samples in
float32 where the shared code uses float64); the sharp image, events and camera are equal, the blur map equal to
1e-6 px.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from blursynth import cuda as bcuda
from blursynth import rng as rng_mod
from blursynth.camera import Response, add_noise, encode_u8
from blursynth.events import simulate
from blursynth.motion import Motion, object_motion, rotational_motion
from blursynth.render import render
from blursynth.render.exact import _integrate, integrate_exact, per_sample_transforms, sharp_and_blur_map
from blursynth.render.pack import pack_layers
from blursynth.scene import Layer, Scene

CSRC = bcuda.CSRC  # blursynth/csrc, where the JIT build reads them
CXX = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
# of the largest radiance: early exit below a transmittance of 1e-6 (numba keeps adding the back layer there)
# plus float32 rounding of numba's running sums (float32 accumulators) over at most ~40 samples in these scenes:
# measured up to 4.0e-6 on these scenes
TOL_RENDER = 1e-5
NVCC = shutil.which("nvcc") or next((p for p in ("/usr/local/cuda/bin/nvcc",) if os.path.exists(p)), None)


@pytest.fixture(scope="module")
def host():
    """blursynth/csrc/host.cpp built as a shared library (cached by source hash), loaded with ctypes."""
    if CXX is None:
        pytest.skip("no C++ compiler (g++, c++ or clang++) to build blursynth/csrc/host.cpp")
    sources = [CSRC / "host.cpp", CSRC / "blursynth_math.h"]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources) + CXX.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("BLURSYNTH_TEST_CACHE", Path(tempfile.gettempdir()) / "blursynth-test-cache"))
    lib = cache / f"bs_host_{digest}.so"
    if not lib.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = lib.with_suffix(f".{os.getpid()}.tmp")
        # -ffp-contract=off: no fused multiply-add, as numba (no fastmath) computes
        res = subprocess.run([CXX, "-O2", "-std=c++17", "-ffp-contract=off", "-fPIC", "-shared", "-Wall", "-Werror",
                              str(CSRC / "host.cpp"), "-o", str(tmp)], capture_output=True, text=True)
        assert res.returncode == 0, f"blursynth/csrc/host.cpp does not compile:\n{res.stderr}"
        os.replace(tmp, lib)
    return ctypes.CDLL(str(lib))


def ptr(a: np.ndarray):
    """Address of a C-contiguous array; the caller keeps the array referenced until the call returns."""
    assert a.flags.c_contiguous
    return ctypes.c_void_p(a.ctypes.data)


I64, F64, F32 = ctypes.c_int64, ctypes.c_double, ctypes.c_float


# --------------------------------------------------------------------------------------------------------------
# rendering


def photo(h, w, name, gain=1.0):
    img = cv2.resize(getattr(data, name)(), (w, h), interpolation=cv2.INTER_AREA)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return ((img.astype(np.float32) / 255.0) ** 2.2 * gain).astype(np.float32)


def random_scene(seed: int, h=48, w=64, back_extends=True) -> Scene:
    """A rotating camera over an extending (or transparent) background, three soft-edged objects that rotate,
    scale and occlude each other, highlights up to 6x white (saturation after blur)."""
    rng = np.random.default_rng(seed)
    cam = rotational_motion(seed, (w, h), float(rng.uniform(2, 8)), 60.0, float(rng.uniform(0, 3)))
    bg = photo(h, w, "astronaut")
    bg[rng.random((h, w)) < 0.02] = 6.0  # saturated lights
    back_alpha = np.ones((h, w), np.float32)
    if not back_extends:
        back_alpha[:, : w // 5] = 0.0
    layers = [Layer(bg, back_alpha, cam.recentered(0.5), extend=back_extends)]
    for k, name in enumerate(("coffee", "chelsea", "rocket")):
        a = np.zeros((h, w), np.float32)
        y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
        a[y0:y0 + h // 3, x0:x0 + w // 3] = 1.0
        a = cv2.GaussianBlur(a, (0, 0), 1.2)
        a[a < 1e-3] = 0
        if k == 2:
            a *= 0.6  # translucent
        c = (x0 + w / 6.0, y0 + h / 6.0)
        obj = object_motion(c, float(rng.uniform(3, 20)), float(rng.uniform(0, 6.3)), float(rng.uniform(-1, 1)),
                            float(rng.uniform(-25, 25)), float(rng.uniform(0.9, 1.1)))
        layers.append(Layer(photo(h, w, name, gain=float(rng.uniform(1, 3))), a, obj.then(cam).recentered(0.5)))
    return Scene(layers)


def layer_args(packed):
    """The packed layers as the C arrays BsLayers points to (kept alive by the caller while the call runs)."""
    return (packed.buf, np.ascontiguousarray(packed.offsets, np.int64), np.ascontiguousarray(packed.dims, np.int32),
            packed.extend.astype(np.uint8))


def host_render(host, packed, plan, width, height):
    out = np.empty((height, width, 3), np.float32)
    keep = layer_args(packed) + (np.ascontiguousarray(plan.Hinv, np.float64),
                                 np.ascontiguousarray(plan.boxes, np.int32), plan.start,
                                 np.ascontiguousarray(plan.level, np.int32))
    host.bs_host_render_exact(*map(ptr, keep[:4]), ctypes.c_int(len(packed.offsets)), *map(ptr, keep[4:]),
                              I64(width), I64(height), ptr(out))
    return out


def numba_render(packed, plan, width, height):
    """The reference numba kernel (render/gather.py's _integrate) on the same plan, every pixel gathered (no convolution prefill)."""
    out = np.empty((height, width, 3), np.float32)
    covered = np.ones((height, width), dtype=bool)
    _integrate(packed.buf, packed.offsets, packed.dims, packed.extend, plan.Hinv, plan.boxes, plan.start,
               plan.level.astype(np.int64), covered, False, out)
    return out


@pytest.mark.parametrize("seed,back_extends,samples", [(0, True, None), (1, True, 7), (2, False, None),
                                                       (3, False, 5)])
def test_render_matches_numba_on_random_scenes(host, seed, back_extends, samples):
    scene = random_scene(seed, back_extends=back_extends)
    width, height = scene.size
    packed = pack_layers(scene)
    plan = bcuda.plan_exact(packed, scene, samples)
    assert samples is not None or len(plan.start) > 2  # the adaptive plan holds several sample levels
    ours = host_render(host, packed, plan, width, height)
    ref = numba_render(packed, plan, width, height)
    assert ref.max() > 1.0  # saturated values pass through unclipped
    assert np.abs(ours - ref).max() <= TOL_RENDER * ref.max()
    # and the plan is integrate_exact's own: with a fixed sample count it gathers every pixel too, so they agree
    # (with adaptive counts it may take a background no object reaches by a cheaper route)
    if back_extends and samples is not None:
        blur, n = integrate_exact(packed, scene, samples)
        assert n == plan.samples
        assert np.abs(ours - blur).max() <= TOL_RENDER * blur.max()


def test_render_covers_tiny_crops_and_perspective(host):
    """A 1-pixel-wide layer (no branch-free path), a strong perspective map, a layer moving off the image."""
    h, w = 32, 40
    back = np.full((h, w, 3), 0.3, np.float32)
    sliver = np.zeros((h, w), np.float32)
    sliver[5:25, 17] = 1.0
    H = np.array([np.eye(3), [[1.1, 0.05, 3.0], [0.02, 0.95, -2.0], [4e-3, -3e-3, 1.0]]])
    far = Motion.from_translation(np.array([[0.0, 0.0], [60.0, 10.0]]))
    off = np.zeros((h, w), np.float32)
    off[10:20, 25:38] = 0.8
    scene = Scene([Layer(back, np.ones((h, w), np.float32), Motion.from_homographies(H).recentered(0.5)),
                   Layer(photo(h, w, "coffee", 2.0), sliver, Motion.from_homographies(H[::-1]).recentered(0.5)),
                   Layer(photo(h, w, "chelsea"), off, far.recentered(0.5))])
    packed = pack_layers(scene)
    plan = bcuda.plan_exact(packed, scene, None)
    ours = host_render(host, packed, plan, w, h)
    ref = numba_render(packed, plan, w, h)
    assert np.abs(ours - ref).max() <= TOL_RENDER * ref.max()


@pytest.mark.parametrize("seed", [0, 2])
def test_sharp_and_blur_map_equal_numba(host, seed):
    scene = random_scene(seed, back_extends=seed == 0)
    width, height = scene.size
    packed = pack_layers(scene)
    for t in (0.5, 0.13):
        sharp_ref, map_ref = sharp_and_blur_map(packed, scene, t)
        Hinv, boxes = per_sample_transforms(packed, scene, np.array([t]))
        ref_t = [l.motion.at(t)[0] for l in scene.layers]
        S = np.stack([l.motion.at(0.0)[0] @ np.linalg.inv(r) for l, r in zip(scene.layers, ref_t)])
        E = np.stack([l.motion.at(1.0)[0] @ np.linalg.inv(r) for l, r in zip(scene.layers, ref_t)])
        sharp = np.empty((height, width, 3), np.float32)
        bmap = np.empty((height, width, 3), np.float32)
        keep = layer_args(packed) + (np.ascontiguousarray(Hinv[0]), np.ascontiguousarray(boxes[0], np.int32),
                                     np.ascontiguousarray(S), np.ascontiguousarray(E))
        host.bs_host_sharp_map(*map(ptr, keep[:4]), ctypes.c_int(len(scene.layers)), *map(ptr, keep[4:]),
                               I64(width), I64(height), ptr(sharp), ptr(bmap))
        np.testing.assert_array_equal(sharp, sharp_ref)
        np.testing.assert_allclose(bmap, map_ref, rtol=0, atol=1e-6 * max(1.0, float(map_ref[..., 2].max())))
        assert map_ref[..., 2].max() > 1.0  # something moves


# --------------------------------------------------------------------------------------------------------------
# events


def host_simulate(host, frames, t_s, cpos, cneg, refractory_s, state, scale=1e6, log_eps=1e-3):
    """Count, exclusive scan, fill with the shared per-pixel step; then each frame interval sorted stably by
    time (what the CUDA path does with torch sorts). Advances `state` (EventState) in place."""
    n, h, w = frames.shape
    frames = np.ascontiguousarray(frames, np.float32)
    t_s = np.ascontiguousarray(t_s, np.float64)
    counts = np.empty((n, h, w), np.int64)
    args = [ptr(frames), ptr(t_s), I64(n)]
    st = (ptr(state.last_frame), ptr(state.last_log), ptr(state.ref_log), ptr(state.last_event_s))
    host.bs_host_esim_count(*args, I64(h * w), F64(state.last_t_s), *st, F64(cpos), F64(cneg), F64(log_eps),
                            F64(refractory_s), ptr(counts))
    flat = counts.ravel()
    offsets = np.ascontiguousarray(np.cumsum(flat) - flat)
    total = int(flat.sum())
    t = np.empty(total, np.int64)
    x = np.empty(total, np.int32)
    y = np.empty(total, np.int32)
    p = np.empty(total, np.int8)
    host.bs_host_esim_fill(*args, I64(w), I64(h), F64(state.last_t_s), *st, F64(cpos), F64(cneg), F64(log_eps),
                           F64(refractory_s), F64(scale), ptr(offsets), ptr(t), ptr(x), ptr(y), ptr(p))
    state.last_t_s = float(t_s[-1])
    interval = np.repeat(np.arange(n), counts.reshape(n, -1).sum(axis=1))
    order = np.lexsort((t, interval))  # stable: ties keep production order
    return t[order], x[order], y[order], p[order]


def random_frames(seed, n=9, h=20, w=28):
    """8-bit-like frames (repeated values, so unchanged pixels occur) with large swings, dark pixels near the
    log's offset, and a bright ramp."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h, w))
    frames = []
    for k in range(n):
        step = rng.integers(-90, 91, (h, w)) * (rng.random((h, w)) < 0.6)
        base = np.clip(base + step, 0, 255)
        frames.append(base.copy())
    frames = np.array(frames, np.float32) / 255.0
    frames[:, 0, :] = np.linspace(0.0, 1.0, n)[:, None]  # a monotone ramp row
    t_s = np.cumsum(rng.uniform(1e-4, 4e-3, n))
    return frames, t_s


@pytest.mark.parametrize("seed,cpos,cneg,refractory_s", [(0, 0.2, 0.2, 0.0), (1, 0.15, 0.31, 0.0),
                                                          (2, 0.1, 0.1, 5e-4), (3, 0.05, 0.07, 2e-3)])
def test_esim_step_gives_identical_events(host, seed, cpos, cneg, refractory_s):
    frames, t_s = random_frames(seed)
    ref, ref_state = simulate(frames, t_s, threshold_pos=cpos, threshold_neg=cneg, refractory_s=refractory_s)
    from blursynth.events import EventState

    state = EventState.from_frame(frames[0], t_s[0])
    t, x, y, p = host_simulate(host, frames[1:], t_s[1:], cpos, cneg, refractory_s, state)
    assert len(ref) > 500 and len(t) == len(ref)
    np.testing.assert_array_equal(t, ref["t"])
    np.testing.assert_array_equal(x, ref["x"])
    np.testing.assert_array_equal(y, ref["y"])
    np.testing.assert_array_equal(p, ref["p"])
    for name in ("ref_log", "last_event_s", "last_frame", "last_log"):
        np.testing.assert_array_equal(getattr(state, name), getattr(ref_state, name), err_msg=name)


def test_esim_state_carries_across_chunks(host):
    frames, t_s = random_frames(7, n=12)
    ref, _ = simulate(frames, t_s, threshold_pos=0.12, threshold_neg=0.12, refractory_s=1e-3, time_unit="ns")
    from blursynth.events import EventState

    state = EventState.from_frame(frames[0], t_s[0])
    parts = [host_simulate(host, frames[a:b], t_s[a:b], 0.12, 0.12, 1e-3, state, scale=1e9)
             for a, b in ((1, 4), (4, 5), (5, 12))]
    for i, name in enumerate(("t", "x", "y", "p")):
        np.testing.assert_array_equal(np.concatenate([q[i] for q in parts]), ref[name])


# --------------------------------------------------------------------------------------------------------------
# camera


def test_encode_and_noise_equal_the_camera_kernels(host):
    rng = np.random.default_rng(3)
    # (not +inf: numba's int() of an infinite product is undefined and camera._encode_u8 then reads any code)
    x = np.concatenate([rng.uniform(-0.1, 3.0, 20000), [np.nan, 0.0, -0.0, 1e6]]).astype(np.float32)
    for response in (Response("srgb"), Response("gamma", 2.2), Response("gamma", 1.0)):
        thr = np.ascontiguousarray(response.code_thresholds(), np.float32)
        ref = encode_u8(x, 0.8, response.code_thresholds())
        ours = np.empty(x.size, np.uint8)
        host.bs_host_encode_u8(ptr(x), I64(x.size), F32(0.8), ptr(thr), ptr(ours))
        np.testing.assert_array_equal(ours, ref)
    x = rng.uniform(0.0, 1.5, 30000).astype(np.float32)
    for shot, read in ((1e-4, 1e-3), (1e-2, 0.0), (0.0, 3e-3)):
        ref = add_noise(x, shot, read, np.random.default_rng(11))
        key = rng_mod.key_from(np.random.default_rng(11))
        ours = np.empty_like(x)
        host.bs_host_noise(ptr(x), I64(x.size), F64(shot), F64(read), ctypes.c_uint64(int(key)), *ZIG, *POIS,
                           ptr(ours))
        np.testing.assert_array_equal(ours, ref)


# module-level arrays: always referenced
ZIG = [ptr(t) for t in (rng_mod.ZIG_K, rng_mod.ZIG_W, rng_mod.ZIG_F)]
POIS = [ptr(t) for t in (rng_mod.POIS_CDF, rng_mod.POIS_GUIDE_TABLE)]


def test_normal_stream_equals_numba_including_every_rejection_branch(host):
    # 300k values: ~3600 take the wedge or tail steps of the ziggurat, ~170 the tail beyond R
    n = 300_000
    for key in (0, 2**63 - 1, 987654321):
        ref = rng_mod.standard_normal(key, n)
        ours = np.empty(n, np.float64)
        host.bs_host_normal(ctypes.c_uint64(key), I64(n), *ZIG, ptr(ours))
        np.testing.assert_array_equal(ours, ref)
        assert np.count_nonzero(np.abs(ref) > rng_mod.ZIG_R) > 50


# --------------------------------------------------------------------------------------------------------------
# the CUDA sources and the dispatch, without a GPU


@pytest.mark.skipif(NVCC is None, reason="nvcc not found: the .cu files are compiled only where the toolkit exists")
@pytest.mark.parametrize("source", ["render.cu", "events.cu"])
def test_cuda_sources_compile_for_sm90(source, tmp_path):
    res = subprocess.run([NVCC, "-c", "-O3", "-std=c++17", "-arch=sm_90", "-Werror", "all-warnings",
                          str(CSRC / source), "-o", str(tmp_path / "k.o")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "k.o").stat().st_size > 0


def test_device_names_are_checked():
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        bcuda.check_device("gpu")
    assert bcuda.check_device("cpu") == "cpu"
    if not bcuda.available():
        with pytest.raises(RuntimeError, match="cannot run here"):
            bcuda.check_device("cuda")


def test_cpu_device_is_the_numba_path():
    scene = random_scene(4)
    a = bcuda.render(scene, device="cpu")
    b = render(scene)
    np.testing.assert_array_equal(a.blur, b.blur)
    frames, t_s = random_frames(5, n=4)
    ev, _ = bcuda.simulate(frames, t_s, device="cpu")
    np.testing.assert_array_equal(ev, simulate(frames, t_s)[0])
