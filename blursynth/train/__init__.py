"""Training from the shards: a small NAFNet-style model (model.py), the training loop (loop.py), metrics (PSNR,
SSIM, ECC-aligned; metrics.py) and evaluation on shards or GoPro / RealBlur folders (evaluate.py).

torch is imported by the submodules, not here, so `blursynth.train.metrics` stays usable without it.
"""
