"""Image quality metrics: PSNR, SSIM, and their ECC-aligned variants (RealBlur's evaluation protocol).

Every function takes numpy images of shape (H, W) or (H, W, C), any real dtype, in the range
[0, ``data_range``], and computes in float64. Images are compared as given (no colour conversion).

- ``psnr``: 10 log10(data_range^2 / MSE) over every pixel and channel.
- ``ssim``: Wang et al. (2004) with an 11x11 Gaussian window (sigma 1.5), population statistics, K1 = 0.01,
  K2 = 0.03, mean over channels of the SSIM map without the 5-pixel border the window does not cover; the same
  number as ``skimage.metrics.structural_similarity(a, b, data_range=..., channel_axis=-1,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``. ``gaussian=False`` gives skimage's
  default instead (7x7 uniform window, sample covariance).
- ``align_ecc``: the RealBlur evaluation's alignment of a restored image to its ground truth: least-squares
  intensity matching, then a homography found by ``cv2.findTransformECC`` on gray images, then an inverse
  warp; pixels the warp brings in from outside the image are masked out of PSNR and SSIM
  (``psnr_aligned`` / ``ssim_aligned``).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
_GAUSS_RADIUS = int(3.5 * SSIM_SIGMA + 0.5)  # scipy.ndimage's truncate=3.5, as skimage uses: an 11x11 window
_UNIFORM_WIN = 7


def psnr(image: np.ndarray, reference: np.ndarray, data_range: float = 1.0, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB, float64; ``inf`` for identical images.

    Args:
        image, reference: (H, W) or (H, W, C) arrays of one shape, values in [0, data_range].
        data_range: the peak value (1.0 for float images in [0, 1], 255 for 8-bit codes).
        mask: optional (H, W) or (H, W, C) weights in [0, 1]; the MSE is the masked sum over the mask's sum
            (RealBlur's masked PSNR after alignment).
    """
    a, b = _pair(image, reference)
    err = (a - b) ** 2
    if mask is None:
        mse = err.mean()
    else:
        m = np.broadcast_to(_mask(mask, a), a.shape)
        if m.sum() <= 0:
            raise ValueError("mask is empty: no pixel to compare")
        mse = (err * m).sum() / m.sum()
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def ssim(image: np.ndarray, reference: np.ndarray, data_range: float = 1.0, gaussian: bool = True,
         mask: np.ndarray | None = None) -> float:
    """Structural similarity, float64 (see the module docstring for the exact convention).

    Args:
        image, reference: (H, W) or (H, W, C) arrays of one shape, values in [0, data_range]; each side at
            least the window (11 px with ``gaussian``, 7 px without).
        data_range: the peak value.
        gaussian: Gaussian 11x11 window with population statistics (Wang et al.); False: skimage's default
            7x7 uniform window with sample covariance.
        mask: optional (H, W) or (H, W, C) weights: the mean of the SSIM map is weighted by it (RealBlur's
            masked SSIM after alignment).
    """
    a, b = _pair(image, reference)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    m = None if mask is None else np.broadcast_to(_mask(mask, a), a.shape)
    smap = ssim_map(a, b, data_range, gaussian)
    pad = _GAUSS_RADIUS if gaussian else (_UNIFORM_WIN - 1) // 2
    inner = (slice(pad, a.shape[0] - pad), slice(pad, a.shape[1] - pad))
    smap = smap[inner]
    if m is None:
        return float(smap.mean())
    w = m[inner]
    per_channel = (smap * w).sum(axis=(0, 1)) / np.maximum(w.sum(axis=(0, 1)), 1e-12)
    return float(per_channel.mean())


def ssim_map(image: np.ndarray, reference: np.ndarray, data_range: float = 1.0, gaussian: bool = True) -> np.ndarray:
    """float64 (H, W, C) per-pixel SSIM of two (H, W, C) images, borders included (reflected, as scipy does)."""
    a, b = _pair(image, reference)
    win = 2 * _GAUSS_RADIUS + 1 if gaussian else _UNIFORM_WIN
    if min(a.shape[:2]) < win:
        raise ValueError(f"SSIM needs images of at least {win}x{win} pixels, got {a.shape[1]}x{a.shape[0]}")
    if gaussian:
        kernel = _gaussian_kernel(SSIM_SIGMA, _GAUSS_RADIUS)
        cov_norm = 1.0
    else:
        kernel = np.full(win, 1.0 / win)
        n = win * win
        cov_norm = n / (n - 1.0)

    def filt(x):
        # BORDER_REFLECT is scipy.ndimage's "reflect" (edge sample repeated), skimage's mode
        return cv2.sepFilter2D(x, cv2.CV_64F, kernel, kernel, borderType=cv2.BORDER_REFLECT)

    out = np.empty(a.shape, np.float64)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    for c in range(a.shape[2]):
        x, y = np.ascontiguousarray(a[..., c]), np.ascontiguousarray(b[..., c])
        ux, uy = filt(x), filt(y)
        vx = cov_norm * (filt(x * x) - ux * ux)
        vy = cov_norm * (filt(y * y) - uy * uy)
        vxy = cov_norm * (filt(x * y) - ux * uy)
        out[..., c] = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return out


@dataclass
class Alignment:
    """Result of ``align_ecc``.

    Attributes:
        image: float64 (H, W[, C]) intensity-matched image warped onto the reference, zero outside ``mask``.
        reference: float64 reference times ``mask``.
        mask: float64 (H, W[, C]) 1 where the warped image has data, 0 where the warp left the image.
        warp: float32 (3, 3) homography from reference to image coordinates (cv2's inverse map).
        converged: False when ECC did not converge (the identity warp is used, mask all ones).
    """

    image: np.ndarray
    reference: np.ndarray
    mask: np.ndarray
    warp: np.ndarray
    converged: bool


def align_ecc(image: np.ndarray, reference: np.ndarray, iterations: int = 100, motion: str = "homography") -> Alignment:
    """Align ``image`` to ``reference`` as RealBlur's evaluation does (after Koehler et al.).

    Args:
        image, reference: (H, W) or (H, W, 3) RGB arrays of one shape, float in [0, 1] (uint8 is divided by 255).
        iterations: ECC iterations (termination epsilon 0, as the RealBlur code).
        motion: "homography" (RealBlur), "affine" or "translation".
    """
    z, x = _pair(image, reference)
    if np.asarray(image).dtype == np.uint8:
        z, x = z / 255.0, x / 255.0
    denom = np.sum(z * z)
    zs = z * (np.sum(x * z) / denom) if denom > 0 else z
    modes = {"homography": cv2.MOTION_HOMOGRAPHY, "affine": cv2.MOTION_AFFINE, "translation": cv2.MOTION_TRANSLATION}
    if motion not in modes:
        raise ValueError(f"motion must be one of {', '.join(modes)}, got {motion!r}")
    mode = modes[motion]
    warp = np.eye(3, 3, dtype=np.float32) if mode == cv2.MOTION_HOMOGRAPHY else np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, int(iterations), 0)
    gray_x, gray_z = _gray32(x), _gray32(zs)
    converged = True
    try:
        _, warp = cv2.findTransformECC(gray_x, gray_z, warp, mode, criteria, None, 5)
    except cv2.error:
        converged = False
    h, w = x.shape[:2]
    src = zs.astype(np.float32)
    ones = np.ones_like(src)
    if not converged:
        mask = ones.astype(np.float64)
        return Alignment(zs, x, mask, np.eye(3, dtype=np.float32), False)
    if mode == cv2.MOTION_HOMOGRAPHY:
        def warp_fn(img, interp, border):
            return cv2.warpPerspective(img, warp, (w, h), flags=interp + cv2.WARP_INVERSE_MAP, borderMode=border,
                                       borderValue=0)
    else:
        def warp_fn(img, interp, border):
            return cv2.warpAffine(img, warp, (w, h), flags=interp + cv2.WARP_INVERSE_MAP, borderMode=border,
                                  borderValue=0)
    zr = warp_fn(src, cv2.INTER_CUBIC, cv2.BORDER_REFLECT).astype(np.float64)
    cr = warp_fn(ones, cv2.INTER_NEAREST, cv2.BORDER_CONSTANT).astype(np.float64)
    zr = zr.reshape(x.shape)
    cr = cr.reshape(x.shape)
    full = warp if warp.shape == (3, 3) else np.vstack([warp, [0, 0, 1]]).astype(np.float32)
    return Alignment(zr * cr, x * cr, cr, full, True)


def psnr_aligned(image: np.ndarray, reference: np.ndarray) -> float:
    """PSNR (data range 1) after ``align_ecc``, masked to the pixels the warp covers."""
    al = align_ecc(image, reference)
    return psnr(al.image, al.reference, 1.0, mask=al.mask)


def ssim_aligned(image: np.ndarray, reference: np.ndarray) -> float:
    """SSIM (data range 1, Gaussian window) after ``align_ecc``, weighted by the covered pixels."""
    al = align_ecc(image, reference)
    return ssim(al.image, al.reference, 1.0, mask=al.mask)


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3) or a.size == 0:
        raise ValueError(f"images must be (H, W) or (H, W, C), got shape {a.shape}")
    return a.astype(np.float64), b.astype(np.float64)


def _mask(mask, like: np.ndarray) -> np.ndarray:
    m = np.asarray(mask, np.float64)
    if m.ndim == 2 and like.ndim == 3:
        m = m[..., None]
    if m.shape[:2] != like.shape[:2]:
        raise ValueError(f"mask of shape {m.shape} does not match images of shape {like.shape}")
    return m


def _gaussian_kernel(sigma: float, radius: int) -> np.ndarray:
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _gray32(img: np.ndarray) -> np.ndarray:
    img = img.astype(np.float32)
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return img if img.ndim == 2 else img[..., 0]
