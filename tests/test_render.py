"""The exposure integrators against independent references and exact analytic cases."""
import cv2
import numpy as np
import pytest
from scipy import ndimage
from skimage import data

from blursynth.motion import Motion, exposure_times, object_motion, rasterize_psf, rotational_motion
from blursynth.render import latent_frames, render, samples_for
from blursynth.scene import Layer, Scene


def photo(h=96, w=128, name="astronaut"):
    img = cv2.resize(getattr(data, name)(), (w, h), interpolation=cv2.INTER_AREA)
    return (img.astype(np.float32) / 255.0) ** 2.2


def opaque(rgb, motion, extend=False):
    return Layer(rgb, np.ones(rgb.shape[:2], np.float32), motion, extend=extend)


def curved_path(n=64, length=14.0):
    t = np.linspace(0.0, 1.0, n)
    xy = np.stack([length * (t - 0.5), 4.0 * np.sin(3.0 * t) - 4.0 * np.sin(1.5)], axis=1)
    return Motion.from_translation(xy)


def filter2d_reference(img, motion, n, border):
    """cv2.filter2D (a correlation, so with the flipped kernel) of the PSF rasterized at the renderer's samples."""
    psf = rasterize_psf(motion.at(exposure_times(n))[:, :2, 2])
    return cv2.filter2D(img, -1, psf[::-1, ::-1].astype(np.float32), borderType=border), psf.shape[0] // 2


def rotation_about(c, angle, n):
    """Rotation by angle * (t - 0.5) about the pixel (c, c), sampled at n times."""
    H = []
    for t in np.linspace(0.0, 1.0, n):
        a = angle * (t - 0.5)
        R = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])
        T = np.array([[1, 0, c], [0, 1, c], [0, 0, 1.0]])
        H.append(T @ R @ np.linalg.inv(T))
    return Motion.from_homographies(np.array(H))


def rel_err(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_zero_motion_blur_equals_sharp_exactly():
    img = photo()
    fg = np.zeros(img.shape[:2], np.float32)
    fg[20:60, 30:90] = 1.0
    fg[19, 30:90] = 0.4
    scene = Scene([opaque(img, Motion.identity(), extend=True),
                   Layer(photo(name="coffee"), fg, Motion.from_translation(np.zeros((5, 2))))])
    for method in ("exact", "layered"):
        exp = render(scene, method=method)
        assert exp.samples == 1
        assert np.array_equal(exp.blur, exp.sharp)
        assert np.all(exp.blur_map == 0)


@pytest.mark.parametrize("extend", [False, True])
def test_translation_equals_filter2d_in_interior(extend):
    img = photo()
    motion = curved_path()
    scene = Scene([opaque(img, motion, extend=extend)])
    n = samples_for(scene)
    assert n == int(np.ceil(motion.path_length_px(np.array([[0.0, 0.0]])))) + 1
    # a fixed sample count forces the per-pixel gather kernel even for an extending layer
    exp = render(scene, method="exact", samples=n)
    ref, r = filter2d_reference(img, motion, n, cv2.BORDER_REPLICATE if extend else cv2.BORDER_CONSTANT)
    inner = (slice(r, -r), slice(r, -r))
    assert rel_err(exp.blur[inner], ref[inner]) < 1e-2
    # the gather is the convolution: equal to float32 precision, not just within 1%
    assert np.abs(exp.blur[inner] - ref[inner]).max() < 1e-5
    layered = render(scene, method="layered")
    assert rel_err(layered.blur[inner], exp.blur[inner]) < 1e-2


def test_layered_rejects_rotation_and_names_the_layer():
    img = photo()
    scene = Scene([opaque(img, rotational_motion(3, (128, 96), 6.0, 60.0, 2.0), extend=True)])
    with pytest.raises(ValueError, match="translation-only.*layer 0"):
        render(scene, method="layered")


def supersampled_rotation(img, c, angle, mode):
    """Independent reference: scipy's bilinear map_coordinates over 600 time samples of the exact rotation by
    angle * (t - 0.5) about (c, c); mode "constant" (transparent outside) or "nearest" (border replicated)."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    ref = np.zeros_like(img, dtype=np.float64)
    for t in exposure_times(600):
        a = -angle * (t - 0.5)
        u = np.cos(a) * (xx - c) - np.sin(a) * (yy - c) + c
        v = np.sin(a) * (xx - c) + np.cos(a) * (yy - c) + c
        for ch in range(3):
            ref[..., ch] += ndimage.map_coordinates(img[..., ch], [v, u], order=1, mode=mode, cval=0.0)
    return ref / 600


def test_rotation_about_centre_matches_supersampled_reference():
    h = w = 81
    img = photo(h, w)
    angle = np.radians(12.0)
    c = (w - 1) / 2.0
    exp = render(Scene([opaque(img, rotation_about(c, angle, 33))]))
    ref = supersampled_rotation(img, c, angle, "constant")
    yy, xx = np.mgrid[0:h, 0:w]
    inside = (xx - c) ** 2 + (yy - c) ** 2 < (c - 4) ** 2
    assert np.abs(exp.blur - ref)[inside].max() < 1e-2 * ref.max()


def test_rotation_blurs_a_point_into_an_arc_of_length_r_times_angle():
    h = w = 101
    c = 50.0
    r = 40.0
    img = np.zeros((h, w, 3), np.float32)
    img[int(c), int(c + r)] = 1.0
    angle = np.radians(20.0)
    exp = render(Scene([opaque(img, rotation_about(c, angle, 65))]))
    lum = exp.blur[..., 0]
    ys, xs = np.nonzero(lum > 1e-6)
    theta = np.arctan2(ys - c, xs - c)
    weights = lum[ys, xs]
    # a uniform arc of angular extent A has angular standard deviation A / sqrt(12)
    mean = np.sum(weights * theta) / weights.sum()
    std = np.sqrt(np.sum(weights * (theta - mean) ** 2) / weights.sum())
    assert abs(std * np.sqrt(12.0) * r - r * angle) < 1.5
    assert np.isclose(lum.sum(), 1.0, rtol=1e-3)  # energy of the point is conserved
    # blur map: the point's surface moves along the arc; its chord is 2 r sin(angle / 2)
    assert exp.blur_map[int(c), int(c + r), 2] == pytest.approx(2 * r * np.sin(angle / 2), rel=1e-3)


def test_occluding_object_reveals_background_with_exact_coverage():
    h, w = 40, 80
    green = np.zeros((h, w, 3), np.float32)
    green[..., 1] = 0.5
    red = np.zeros((h, w, 3), np.float32)
    red[..., 0] = 0.8
    alpha = np.zeros((h, w), np.float32)
    alpha[10:30, 20:40] = 1.0
    shift = 20.0
    t = np.linspace(0.0, 1.0, 2)
    obj = Motion.from_translation(np.stack([shift * (t - 0.5), 0 * t], axis=1))
    scene = Scene([opaque(green, Motion.identity(), extend=True), Layer(red, alpha, obj)])
    exp = render(scene)
    # the square spans [20, 40) at t = 0.5 and moves from -10 to +10 px: pixel x is covered while
    # 20 + d <= x < 40 + d, d = 20 (t - 0.5); the covered fraction of the exposure is analytic
    n = exp.samples
    d = shift * (exposure_times(n) - 0.5)
    for x in (5, 12, 15, 22, 30, 38, 45, 55, 65):
        frac = np.mean((x >= 20 + d) & (x < 40 + d))
        # bilinear sampling of a hard edge blends at most one sample's worth
        expect_r = 0.8 * frac
        assert exp.blur[20, x, 0] == pytest.approx(expect_r, abs=0.8 / n + 1e-6), x
        assert exp.blur[20, x, 1] == pytest.approx(0.5 * (1 - frac), abs=0.5 / n + 1e-6), x
    # pixels the object never reaches are pure background; rows above it too
    assert np.allclose(exp.blur[20, :9], green[20, :9]) and np.allclose(exp.blur[5], green[5])
    # the sharp image at mid-exposure has the square where the photo had it
    assert np.allclose(exp.sharp[20, 20:40, 0], 0.8) and np.allclose(exp.sharp[20, 45:], green[20, 45:])
    # blur map: 20 px to the right on the square, 0 on the static background
    assert np.allclose(exp.blur_map[20, 25], [1.0, 0.0, shift], atol=1e-5)
    assert np.allclose(exp.blur_map[5, 5], 0.0)


@pytest.mark.parametrize("method", ["exact", "layered"])
def test_energy_is_conserved_before_clipping(method):
    h, w = 96, 128
    img = photo(h, w) * 4.0  # linear values far above 1: nothing is clipped inside the renderer
    alpha = np.zeros((h, w), np.float32)
    alpha[30:70, 40:90] = 1.0
    black = np.zeros((h, w, 3), np.float32)
    if method == "exact":
        motion = object_motion((65.0, 50.0), 16.0, 0.4, 0.8, 10.0, 1.0).recentered(0.5)
    else:
        motion = curved_path()
    scene = Scene([opaque(black, Motion.identity(), extend=True), Layer(img, alpha, motion)])
    exp = render(scene, method=method)
    assert exp.blur.max() > 1.0
    np.testing.assert_allclose(exp.blur.sum(axis=(0, 1)), exp.sharp.sum(axis=(0, 1)), rtol=2e-3)


def test_layered_equals_exact_for_objects_over_a_static_background():
    h, w = 96, 128
    fg = np.zeros((h, w), np.float32)
    fg[25:65, 30:70] = 1.0
    fg = cv2.GaussianBlur(fg, (0, 0), 1.0)
    fg[fg < 1e-3] = 0
    scene = Scene([opaque(photo(h, w), Motion.identity(), extend=True), Layer(photo(h, w, "coffee"), fg, curved_path())])
    layered = render(scene, method="layered")
    exact = render(scene, method="exact", samples=layered.samples)
    assert rel_err(layered.blur, exact.blur) < 1e-4


def test_adaptive_sampling_agrees_with_a_fine_fixed_grid():
    """Per-region sample counts (a fast object, a slowly shaking rotating camera) against one dense grid."""
    h, w = 96, 128
    cam = rotational_motion(5, (w, h), 4.0, 60.0, 1.0)
    fg = np.zeros((h, w), np.float32)
    fg[30:60, 20:50] = 1.0
    obj = object_motion((35.0, 45.0), 30.0, 0.2, 0.5, 5.0, 1.02).then(cam).recentered(0.5)
    scene = Scene([opaque(photo(h, w), cam.recentered(0.5), extend=True), Layer(photo(h, w, "coffee"), fg, obj)])
    adaptive = render(scene)
    dense = render(scene, samples=4 * adaptive.samples)
    assert np.abs(adaptive.blur - dense.blur).mean() < 2e-3
    assert np.abs(adaptive.blur - dense.blur).max() < 0.05


def test_psf_sums_to_one_and_matches_path():
    xy = np.array([[0.0, 0.0], [2.5, 0.0], [5.0, 1.25]])
    psf = rasterize_psf(xy)
    assert psf.sum() == pytest.approx(1.0)
    r = psf.shape[0] // 2
    ys, xs = np.mgrid[-r:r + 1, -r:r + 1]
    assert (psf * xs).sum() == pytest.approx(xy[:, 0].mean())
    assert (psf * ys).sum() == pytest.approx(xy[:, 1].mean())


def occluding_rotation_scene() -> Scene:
    """A background on a curved path behind an opaque object that rotates about a point."""
    img = photo()
    fg = np.zeros(img.shape[:2], np.float32)
    fg[30:70, 40:100] = 1.0
    return Scene([opaque(img, curved_path(length=9.0), extend=True),
                  Layer(photo(name="coffee"), fg, rotation_about(64, 0.3, 17))])


def test_latent_frames_average_to_the_blur_and_match_the_sharp_image():
    """The latent images events see are the ones the blur averages: with a fixed sample count the exact blur is
    their mean, and frame t is the sharp image rendered at reference time t. Occlusion and rotation included."""
    scene = occluding_rotation_scene()
    n = 12
    frames = latent_frames(scene, exposure_times(n))
    assert frames.shape == (n, 96, 128, 3) and frames.dtype == np.float32
    blur = render(scene, method="exact", samples=n).blur
    assert np.abs(frames.mean(axis=0) - blur).max() < 1e-5
    assert np.array_equal(latent_frames(scene, [0.25])[0], render(scene, reference_time=0.25).sharp)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        latent_frames(scene, [1.5])


def test_latent_frames_in_chunks_reuse_one_buffer_and_equal_one_call():
    """LatentFrames, as events call it chunk by chunk: each chunk equals latent_frames over the same times, every
    chunk after the largest is written into the same memory, and what latent_frames returns is its own array."""
    from blursynth.render import LatentFrames

    scene = occluding_rotation_scene()
    times = np.linspace(0.0, 1.0, 11)
    want = latent_frames(scene, times)
    stream = LatentFrames(scene)
    first = stream(times[:5])
    np.testing.assert_array_equal(first, want[:5])
    base = first.__array_interface__["data"][0]
    for a, b in ((5, 10), (10, 11)):
        chunk = stream(times[a:b])
        np.testing.assert_array_equal(chunk, want[a:b])
        assert chunk.__array_interface__["data"][0] == base  # no fresh memory per chunk
    assert not np.shares_memory(latent_frames(scene, times[:2]), latent_frames(scene, times[:2]))


def per_pixel_blur(scene):
    """integrate_exact at its adaptive counts with every pixel gathered (no convolution or tile shortcut for the
    background), and its plan."""
    from blursynth.render.exact import integrate_exact, plan_exact
    from blursynth.render.pack import pack_layers

    packed = pack_layers(scene)
    return integrate_exact(packed, scene, shortcuts=False)[0], plan_exact(packed, scene)


def tiles_bound(background: np.ndarray) -> float:
    """How far shifted tiles may move a background's blur from its per-pixel gather: each sample position is off
    by at most SHIFT_TOL_PX (plus second-order terms), and a bilinear sample then by at most |du| Dx + |dv| Dy
    (Dx, Dy: the largest neighbour differences)."""
    from blursynth.render.exact import SHIFT_TOL_PX

    dx = np.abs(np.diff(background, axis=1)).max()
    dy = np.abs(np.diff(background, axis=0)).max()
    return float((SHIFT_TOL_PX + 1e-3) * (dx + dy))


def runs_bound(scene, largest: float) -> float:
    """How far the object runs may move the blur from the per-pixel gather (see
    test_object_runs_equal_the_per_pixel_gather): float32 coordinates off by < 1e-3 px, OPAQUE_EPS of the largest
    radiance for light skipped behind opaque coverage, and float rounding."""
    from blursynth.render.exact import OPAQUE_EPS

    grad = max(max(np.abs(np.diff(l.rgb * l.alpha[..., None], axis=a)).max() for a in (0, 1)) for l in scene.layers)
    return float(1e-3 * 2 * grad + OPAQUE_EPS * largest + 1e-5 * largest)


def test_rotating_background_tiles_stay_within_the_shift_bound():
    """Where no object reaches, a rotating (camera-shake) background is integrated as shifted 8x8 tiles. Each
    sample position is then off by at most SHIFT_TOL_PX (plus second-order terms), and bilinear interpolation
    changes by at most |du| Dx + |dv| Dy (Dx, Dy: largest neighbour differences), so the blur differs from the
    per-pixel gather by at most SHIFT_TOL_PX (Dx + Dy); pixels an object can reach are gathered as before."""
    h, w = 96, 128
    cam = rotational_motion(11, (w, h), 8.0, 60.0, 1.5)
    bg = photo(h, w) * 3.0
    fg = np.zeros((h, w), np.float32)
    fg[30:60, 20:50] = 1.0
    obj = object_motion((35.0, 45.0), 12.0, 0.2, 0.5, 5.0, 1.02).then(cam).recentered(0.5)
    scene = Scene([opaque(bg, cam.recentered(0.5), extend=True), Layer(photo(h, w, "coffee"), fg, obj)])
    fast = render(scene).blur
    ref, plan = per_pixel_blur(scene)
    assert 0.1 < plan.covered.mean() < 0.5
    diff = np.abs(fast - ref)
    assert diff[plan.covered].max() <= 1e-6
    bound = tiles_bound(bg)
    assert diff[~plan.covered].max() <= bound
    # the tiles are far from that bound on average: a real photo's gradients are mostly small
    assert diff[~plan.covered].mean() < 0.01 * bound


def test_rotating_extended_background_matches_supersampled_reference():
    """The background-tile path (adaptive samples, extending layer, no objects) against scipy's bilinear
    map_coordinates over 600 time samples of the exact rotation, borders replicated."""
    h = w = 81
    img = photo(h, w)
    angle = np.radians(12.0)
    c = (w - 1) / 2.0
    exp = render(Scene([opaque(img, rotation_about(c, angle, 33), extend=True)]))
    ref = supersampled_rotation(img, c, angle, "nearest")
    assert np.abs(exp.blur - ref).max() < 1e-2 * ref.max()


def test_sparse_object_under_perspective_equals_the_mean_of_its_latent_frames():
    """Each object is swept only over the columns where its alpha can be non-zero (render/gather.py, _alpha_columns):
    a thin diagonal stroke (mostly empty box) under a rotating, zooming, perspective path must still equal the
    mean of the latent images, which the sharp-image kernel composites pixel by pixel without that shortcut."""
    h, w = 96, 128
    stroke = np.zeros((h, w), np.float32)
    for i in range(70):
        stroke[15 + i, 25 + i: 29 + i] = 1.0
    stroke = cv2.GaussianBlur(stroke, (0, 0), 0.8)
    stroke[stroke < 1e-3] = 0.0
    H = np.array([np.eye(3), [[0.97, -0.12, 9.0], [0.1, 1.04, -5.0], [3e-4, -2e-4, 1.0]]])
    scene = Scene([opaque(photo(h, w), curved_path(length=6.0), extend=True),
                   Layer(photo(h, w, "coffee") * 2.0, stroke, Motion.from_homographies(H).recentered(0.5))])
    n = 24
    blur = render(scene, samples=n).blur
    mean = latent_frames(scene, exposure_times(n)).mean(axis=0)
    assert np.abs(blur - mean).max() < 1e-5


def _overlapping_objects_scene(rotating_camera):
    """A moving background (a rotational camera: homographies; else a curved translation: objects affine), an
    opaque object that rotates and scales (its interior hides the background: the early exit), a translucent one
    partly in front of it, and a small one leaving the frame across its crop border."""
    h, w = 72, 96
    cam = rotational_motion(7, (w, h), 6.0, 60.0, 2.0) if rotating_camera else curved_path(n=9, length=7.0)
    bg = photo(h, w) * 2.0
    layers = [opaque(bg, cam.recentered(0.5), extend=True)]
    specs = [((20, 50, 15, 55), 1.0, (35.0, 32.0), 14.0, 0.3, 0.6, 9.0, 1.04),
             ((30, 60, 40, 80), 0.6, (60.0, 45.0), 10.0, 2.0, -0.4, -6.0, 0.97),
             ((5, 20, 80, 95), 1.0, (88.0, 12.0), 18.0, 0.1, 0.0, 4.0, 1.0)]
    for k, ((y0, y1, x0, x1), a, c, speed, direction, curve, rot, scale) in enumerate(specs):
        alpha = np.zeros((h, w), np.float32)
        alpha[y0:y1, x0:x1] = a
        obj = object_motion(c, speed, direction, curve, rot, scale).then(cam).recentered(0.5)
        layers.append(Layer(photo(h, w, ("coffee", "chelsea", "rocket")[k]) * 3.0, alpha, obj))
    return Scene(layers), bg


@pytest.mark.parametrize("rotating_camera", [True, False])
def test_object_runs_equal_the_per_pixel_gather(rotating_camera):
    """Where objects reach, the default path sweeps each layer over runs of pixels with the same integer source
    neighbourhood, on crops padded with a transparent pixel (clamped sampling then gives transparent-outside
    samples), float32 coordinates for affine maps, and skips what lies behind opaque coverage (transmittance
    below OPAQUE_EPS). Against every pixel gathered: float32 coordinates are off by < 1e-3 px, which moves a
    bilinear sample by at most 1e-3 (Dx + Dy) (Dx, Dy: the largest neighbour differences of any layer), plus
    OPAQUE_EPS of the largest radiance for the skipped light and float rounding."""
    scene, bg = _overlapping_objects_scene(rotating_camera)
    fast = render(scene).blur
    ref, plan = per_pixel_blur(scene)
    assert 0.2 < plan.covered.mean() < 0.9 and len(plan.start) > 2
    bound = runs_bound(scene, ref.max())
    diff = np.abs(fast - ref)[plan.covered]
    assert diff.max() <= bound
    # a shortcut that read the wrong pixel (a padding off by one) or skipped visible light would be far off
    assert diff.mean() < 1e-3 * bound


def test_object_runs_are_the_same_bytes_for_any_thread_count():
    import numba

    scene, _ = _overlapping_objects_scene(True)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = render(scene).blur
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = render(scene).blur
    finally:
        numba.set_num_threads(before)
    assert one.tobytes() == two.tobytes()


def test_padded_crops_sample_transparent_outside():
    """pad_transparent: every non-extending crop gets a one-pixel zero border; extending crops are not copied."""
    from blursynth.render.pack import pack_layers, pad_transparent

    scene, _ = _overlapping_objects_scene(False)
    packed = pack_layers(scene)
    buf, offsets, dims = pad_transparent(packed)
    assert packed.extend[0] and offsets[0] == -1 and np.array_equal(dims[0], packed.dims[0])
    assert buf.size == sum(int((w + 2) * (h + 2) * 4) for (w, h), e in zip(packed.dims, packed.extend) if not e)
    for l in range(1, len(scene.layers)):
        w, h = packed.dims[l]
        crop = packed.buf[packed.offsets[l]:packed.offsets[l] + w * h * 4].reshape(h, w, 4)
        pw, ph = dims[l]
        padded = buf[offsets[l]:offsets[l] + pw * ph * 4].reshape(ph, pw, 4)
        assert (pw, ph) == (w + 2, h + 2)
        assert np.array_equal(padded[1:-1, 1:-1], crop)
        ring = padded.copy()
        ring[1:-1, 1:-1] = 0.0
        assert not ring.any()
