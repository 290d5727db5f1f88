"""Device resolution for --device: which device a command runs its kernels on, checked before any work. Imports
neither torch nor the numba stages at load (torch is imported only to ask whether CUDA can run)."""
from __future__ import annotations

import logging

from .build import extension

log = logging.getLogger(__name__)


def available() -> bool:
    """A CUDA device is visible to torch and the extension loads (built at install or just in time)."""
    return unavailable_reason() is None


def unavailable_reason() -> str | None:
    """Why the CUDA path cannot run here, or None when it can."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    try:
        extension()
    except RuntimeError as exc:
        return str(exc)
    return None


def check_device(device: str) -> str:
    """Validate a device name: "cpu", "cuda" or "cuda:N" (ValueError otherwise, RuntimeError when CUDA is asked
    for and cannot run here, or N is not a visible device). Returns it."""
    check_device_name(device)
    if device != "cpu":
        reason = unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"device {device!r} asked for but the CUDA kernels cannot run here: {reason}")
        if device.startswith("cuda:"):
            import torch

            if int(device[5:]) >= torch.cuda.device_count():
                raise RuntimeError(f"device {device!r} asked for but torch sees {torch.cuda.device_count()} CUDA "
                                   "device(s)")
    return device


CUDA_METHODS = ("exact",)
"""Render methods with a CUDA kernel (render.method)."""


def check_device_name(device: str) -> None:
    """ValueError unless `device` is "cpu", "cuda" or "cuda:N" (whether it can run here is check_device's)."""
    if device != "cpu" and device != "cuda" and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise ValueError(f"unknown device {device!r}: use cpu, cuda or cuda:N")


def check_method(device: str, method: str) -> None:
    """ValueError when `device` is a CUDA device and the render `method` has no CUDA kernel."""
    if device != "cpu" and method not in CUDA_METHODS:
        raise ValueError(f"render.method={method!r} has no CUDA kernel (only {', '.join(CUDA_METHODS)}): use "
                         f"--device cpu, or --set render.method=exact")


def resolve_device(device: str, method: str = "exact") -> str:
    """The device a command runs its kernels on, checked before any work starts.

    Args:
        device: "cpu", "cuda", "cuda:N" or "auto" (cuda when the CUDA kernels can run here and have `method`,
            else cpu).
        method: the recipe's render.method; on a CUDA device only CUDA_METHODS exist.
    Returns:
        "cpu", "cuda" or "cuda:N".
    Raises:
        ValueError: an unknown device name, or a render method without a CUDA kernel on a CUDA device.
        RuntimeError: CUDA asked for and unusable here; the message says why (`unavailable_reason`).
    """
    if device == "auto":
        chosen = "cuda" if method in CUDA_METHODS and available() else "cpu"
        log.info("--device auto: %s (%s)", chosen, unavailable_reason() or f"render.method={method}")
        return chosen
    check_method(device, method)
    return check_device(device)


def device_kind(device: str) -> str:
    """"cpu" or "cuda": the part of a device name that can change the bytes written (which GPU does not)."""
    return "cpu" if device == "cpu" else "cuda"
