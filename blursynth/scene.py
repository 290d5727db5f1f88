"""Scenes from photos: `compose` turns a photo and instance masks into a scene. It linearizes with the
sample's response curve, picks the moving segments, fills the background behind them (cv2.inpaint) so
disoccluded regions show plausible background, orders layers by depth, and gives the camera and every segment
a motion (the camera's from `motion.SHAKE_MODELS`, each segment's from `motion.OBJECT_MODELS`). Sampling
(`sample_scene`, which draws every random number and returns plain data for the meta) is separate from
building (`build_scene`, a pure function of that data). The scene itself (`Layer`, `Scene`) is defined in
`blursynth/layers.py` and re-exported here.
"""
from __future__ import annotations

import math

import cv2
import numba
import numpy as np

from .camera import Response
from .layers import Layer, Scene
from .motion import OBJECT_MODELS, Motion, shake_motion
from .recipe import Recipe, SceneRecipe, ShakeRecipe, scale_range
from .seeding import child_seed

__all__ = ["Layer", "Scene", "build_scene", "camera_motion", "compose", "sample_scene"]


def compose(image: np.ndarray, masks: np.ndarray, labels: list[str], recipe: Recipe, rng: np.random.Generator,
            response: Response, lights: np.ndarray | None = None) -> tuple[Scene, dict]:
    """Build a scene from a photo and its instance masks.

    Args:
        image: uint8 (H, W, 3) encoded RGB.
        masks: bool (K, H, W) instance masks (K may be 0).
        labels: K class names.
        recipe: the run's recipe. This is the one function here that reads the whole recipe: it hands
            `sample_scene` and `build_scene` the sections they read (shake, scene, the output size's pixel scale
            `px_factor`, render.reference_time).
        rng: the sample's scene stream.
        response: the sample's camera response, used to linearize the photo.
        lights: optional bool (H, W) mask of light sources; they get the full highlight boost.
    Returns:
        (scene, params): params is plain data (JSON-able) from which `build_scene` rebuilds the same scene.
    """
    params = sample_scene(masks, labels, recipe.shake, recipe.scene, recipe.px_factor, rng)
    return build_scene(image, masks, params, recipe.scene, recipe.render.reference_time, response, lights), params


def sample_scene(masks: np.ndarray, labels: list[str], shake: ShakeRecipe, scene: SceneRecipe, px_factor: float,
                 rng: np.random.Generator) -> dict:
    """Draw every random choice of a scene: moving segments, depths, motions, highlight boost.

    Args:
        shake, scene: the recipe's sections; their pixel ranges (shake.length_px, shake.parallax_px,
            scene.objects.speed_px) are multiplied by `px_factor` (`Recipe.px_factor`: output width /
            reference_width), so the drawn values are pixels of this output.
    """
    k, h, w = masks.shape
    obj = scene.objects
    areas = np.array([np.count_nonzero(m) for m in masks], dtype=np.float64) / float(h * w)
    candidates = np.flatnonzero((areas >= obj.min_area) & (areas <= obj.max_area))
    want = int(rng.integers(obj.count[0], obj.count[1] + 1))
    chosen = np.sort(rng.choice(candidates, size=min(want, len(candidates)), replace=False)) if len(candidates) else []
    object_model = OBJECT_MODELS[obj.model]
    names = sorted(shake.models)
    probs = np.array([shake.models[n] for n in names], dtype=np.float64)
    model = names[int(rng.choice(len(names), p=probs / probs.sum()))]
    # pixel ranges hold at the recipe's reference width; the drawn values are pixels of this output
    camera = {"model": model, "length_px": _uniform(rng, scale_range(shake.length_px, px_factor)), "seed": child_seed(rng),
              "fov_deg": _uniform(rng, shake.fov_deg), "roll_deg": _uniform(rng, shake.roll_deg)}
    parallax = {"px": _uniform(rng, scale_range(shake.parallax_px, px_factor)), "angle_rad": _uniform(rng, (0.0, 2 * math.pi))}
    objects = []
    for index in chosen:
        rows = np.flatnonzero(masks[index].any(axis=1))
        y0, y1 = int(rows[0]), int(rows[-1])
        ys, xs = np.nonzero(masks[index][y0:y1 + 1])
        ys = ys + y0
        objects.append({
            "mask_index": int(index),
            "label": labels[index] if index < len(labels) else "",
            "area_px": int(len(xs)),
            "bbox": [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())],
            "center": [float(xs.mean()), float(ys.mean())],
            "depth": _uniform(rng, obj.depth),
            "speed_px": _uniform(rng, scale_range(obj.speed_px, px_factor)),
            "heading_rad": _uniform(rng, (0.0, 2 * math.pi)),
            "curvature_rad": _uniform(rng, obj.curvature),
            "rotation_deg": _uniform(rng, obj.rotation_deg),
            "scale": _uniform(rng, obj.scale),
        })
        if object_model.draw is not None:
            objects[-1].update(object_model.draw(rng))
    return {"camera": camera, "parallax": parallax, "objects": objects,
            "highlight_boost": _uniform(rng, scene.highlight_boost)}


def build_scene(image: np.ndarray, masks: np.ndarray, params: dict, scene: SceneRecipe, reference_time: float,
                response: Response, lights: np.ndarray | None = None) -> Scene:
    """Deterministic: the scene described by `params` (from `sample_scene`) on this photo and masks, with the
    recipe's scene section and render.reference_time (where every layer's motion is the identity)."""
    h, w = image.shape[:2]
    cfg = scene
    lut = response.lut_to_linear()
    boost = params["highlight_boost"]
    linear = _linearize(image, lut, boost, cfg.highlight_threshold)
    if lights is not None and boost > 0 and lights.any():
        # a known light source is brighter than white whatever its encoded value: full boost
        linear[lights] = lut[image[lights]] * np.float32(1.0 + boost)
    objects = params["objects"]
    if objects and cfg.inpaint:
        filled, (x0, y0, x1, y1) = _fill_behind(image, [masks[o["mask_index"]] for o in objects],
                                                [o["bbox"] for o in objects], cfg.feather_px, cfg.inpaint_scale)
        # only the box around the hole differs from the photo
        background = linear.copy()
        box = (slice(y0, y1), slice(x0, x1))
        background[box] = _linearize(filled, lut, boost, cfg.highlight_threshold)
        if lights is not None and boost > 0 and lights.any():
            kept = lights.copy()  # lights outside the inpainted hole
            kept[box] &= (filled == image[box]).all(axis=2)
            background[kept] = linear[kept]
    else:
        background = linear
    camera = camera_motion(params["camera"], (w, h))
    object_model = OBJECT_MODELS[cfg.objects.model]
    t_ref = reference_time
    layers = [Layer(background, np.ones((h, w), np.float32), _layer_motion(Motion.identity(), camera, params, 1.0, t_ref),
                    depth=1.0, label="background", extend=True, _opaque=True)]
    for o in sorted(objects, key=lambda o: -o["depth"]):  # back to front
        alpha, box = _feather(masks[o["mask_index"]], o["bbox"], cfg.feather_px)
        own = object_model.motion(o)
        # a surface of the scene also moves with the camera; an independent kernel (SBDD's model) does not
        motion = _layer_motion(own, camera, params, o["depth"], t_ref) if object_model.with_camera \
            else own.recentered(t_ref)
        layers.append(Layer(linear, alpha, motion, depth=o["depth"], label=o["label"], _box=box))
    return Scene(layers)


def camera_motion(camera: dict, size: tuple[int, int]) -> Motion:
    """The camera's image-space motion from its meta ({"model", "length_px", "seed", "fov_deg", "roll_deg"}): the
    ``motion.SHAKE_MODELS`` entry named by "model"."""
    return shake_motion(camera, size)


def _layer_motion(own: Motion, camera: Motion, params: dict, depth: float, t_ref: float) -> Motion:
    """Object motion, then camera translation parallax (/ depth), then camera shake; identity at t_ref."""
    px, angle = params["parallax"]["px"], params["parallax"]["angle_rad"]
    motion = own.then(camera)
    if px > 0:
        t = np.linspace(0.0, 1.0, 2)[:, None]
        shift = (px / depth) * t * np.array([[math.cos(angle), math.sin(angle)]])
        motion = motion.then(Motion.from_translation(shift))
    return motion.recentered(t_ref)


def _linearize(image: np.ndarray, lut: np.ndarray, boost: float, threshold: float) -> np.ndarray:
    """uint8 (H, W, 3) encoded -> float32 linear, near-white pixels boosted by up to 1 + boost (smoothstep)."""
    out = np.empty(image.shape, dtype=np.float32)
    _linearize_kernel(image.reshape(-1, 3), lut, np.float32(boost), np.float32(threshold), out.reshape(-1, 3))
    return out


@numba.njit(parallel=True, cache=True)
def _linearize_kernel(image, lut, boost, threshold, out):
    inv = np.float32(1.0) / max(np.float32(1.0) - threshold, np.float32(1e-6))
    for i in numba.prange(image.shape[0]):
        r, g, b = image[i, 0], image[i, 1], image[i, 2]
        gain = np.float32(1.0)
        if boost > 0:
            w = (max(r, max(g, b)) / np.float32(255.0) - threshold) * inv
            if w > 0:
                w = min(w, np.float32(1.0))
                gain += boost * w * w * (np.float32(3.0) - np.float32(2.0) * w)
        out[i, 0] = lut[r] * gain
        out[i, 1] = lut[g] * gain
        out[i, 2] = lut[b] * gain


def _feather(mask: np.ndarray, bbox, radius_px: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Soft alpha from a binary mask (Gaussian edge of `radius_px`), blurred only around the mask's box.

    Returns (alpha float32 (H, W), inclusive box (x0, y0, x1, y1) holding every non-zero alpha).
    """
    h, w = mask.shape
    grow = int(math.ceil(3 * radius_px)) + 1 if radius_px > 0 else 0
    x0, y0 = max(bbox[0] - grow, 0), max(bbox[1] - grow, 0)
    x1, y1 = min(bbox[2] + grow, w - 1), min(bbox[3] + grow, h - 1)
    alpha = np.zeros((h, w), dtype=np.float32)
    crop = mask[y0:y1 + 1, x0:x1 + 1].astype(np.float32)
    if radius_px > 0:
        crop = cv2.GaussianBlur(crop, (0, 0), radius_px, borderType=cv2.BORDER_CONSTANT)
        crop[crop < 1e-3] = 0.0
    alpha[y0:y1 + 1, x0:x1 + 1] = crop
    return alpha, (x0, y0, x1, y1)


def _fill_behind(image: np.ndarray, masks: list[np.ndarray], bboxes: list, feather_px: float,
                 scale: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The photo with the moving segments (grown by their feathered edge) replaced by inpainted background.

    Inpainting runs at 1/scale resolution (Telea's cost grows with the area filled) over the hole's box plus a
    margin of known pixels (the box is aligned to the scale grid, so the downsampled pixels are those of the
    whole frame), and is upsampled into the hole only. Only the window around the segments' boxes is touched.

    Args:
        image: uint8 (H, W, 3).
        masks: bool (H, W) masks of the moving segments; bboxes: their inclusive [x0, y0, x1, y1] boxes.
    Returns:
        (uint8 (y1 - y0, x1 - x0, 3) filled photo inside the box, (x0, y0, x1, y1) half-open box outside which
        the filled photo equals the photo); an empty box when there is no hole.
    """
    h, w = image.shape[:2]
    grow = int(math.ceil(3 * feather_px)) + 2
    # the dilated union lies within the boxes' union grown by `grow`: dilate that window only (same hole)
    wx0 = max(min(b[0] for b in bboxes) - grow - 1, 0)
    wy0 = max(min(b[1] for b in bboxes) - grow - 1, 0)
    wx1 = min(max(b[2] for b in bboxes) + grow + 2, w)
    wy1 = min(max(b[3] for b in bboxes) + grow + 2, h)
    union = np.zeros((wy1 - wy0, wx1 - wx0), dtype=np.uint8)
    for m in masks:
        union |= m[wy0:wy1, wx0:wx1]
    hole_win = cv2.dilate(union, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    ys, xs = np.nonzero(hole_win.max(axis=1))[0] + wy0, np.nonzero(hole_win.max(axis=0))[0] + wx0
    if ys.size == 0:
        return image[0:0, 0:0].copy(), (0, 0, 0, 0)
    margin = _INPAINT_MARGIN * scale
    x0, y0 = max((xs[0] - margin) // scale * scale, 0), max((ys[0] - margin) // scale * scale, 0)
    x1, y1 = min(xs[-1] + margin + 1, w), min(ys[-1] + margin + 1, h)
    if w - x1 < scale:
        x1 = w
    if h - y1 < scale:
        y1 = h
    crop = image[y0:y1, x0:x1]
    crop_hole = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    # the window part that lies inside the crop (the hole is zero elsewhere)
    iy0, iy1, ix0, ix1 = max(y0, wy0), min(y1, wy1), max(x0, wx0), min(x1, wx1)
    crop_hole[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = hole_win[iy0 - wy0:iy1 - wy0, ix0 - wx0:ix1 - wx0]
    ch, cw = crop_hole.shape
    small_size = (max(cw // scale, 1), max(ch // scale, 1))
    small = cv2.resize(crop, small_size, interpolation=cv2.INTER_AREA)
    small_hole = (cv2.resize(crop_hole, small_size, interpolation=cv2.INTER_AREA) > 0).astype(np.uint8)
    filled = cv2.inpaint(small, small_hole, 3, cv2.INPAINT_TELEA)
    up = cv2.resize(filled, (cw, ch), interpolation=cv2.INTER_LINEAR)
    out = crop.copy()
    np.copyto(out, up, where=crop_hole.astype(bool)[..., None])
    return out, (x0, y0, x1, y1)


# known low-resolution pixels kept around the hole: more than Telea's radius (3) plus the upsampling's reach
_INPAINT_MARGIN = 8


def _uniform(rng: np.random.Generator, bounds) -> float:
    lo, hi = bounds
    return float(lo + (hi - lo) * rng.random())
