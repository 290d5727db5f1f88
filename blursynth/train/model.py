"""A small NAFNet-style restoration network (Chen et al., "Simple Baselines for Image Restoration", 2022).

A U-Net of NAF blocks: each block is LayerNorm -> 1x1 conv (x2 channels) -> 3x3 depthwise conv -> SimpleGate
(split channels, multiply halves) -> simplified channel attention -> 1x1 conv, plus a gated feed-forward half,
each with a learned residual scale initialised at 0. The network predicts a residual added to the blurred
input; its last conv starts at zero, so a fresh network is the identity.

Presets (``PRESETS``):

- ``tiny``: width 8, 3 levels, one block each (~60 k parameters); tests.
- ``small`` (default): width 16, 4 levels, one block per stage (~1.1 M parameters, NAFNet-width16's shape
  with one middle block); trains on a CPU.
- ``base``: width 32, 28 middle-stage encoder blocks (~17 M, NAFNet-width32 as trained on GoPro); GPU.
- ``large``: width 64, the same depths (~68 M, NAFNet-width64); GPU.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a ``NAFNet``.

    Attributes:
        width: channels of the first level; each level down doubles them.
        enc_blocks: NAF blocks per encoder level (its length is the number of downsamplings).
        middle_blocks: blocks at the lowest resolution.
        dec_blocks: blocks per decoder level (same length as ``enc_blocks``).
        in_channels: image channels (3 for RGB).
    """

    width: int = 16
    enc_blocks: tuple[int, ...] = (1, 1, 1, 1)
    middle_blocks: int = 1
    dec_blocks: tuple[int, ...] = (1, 1, 1, 1)
    in_channels: int = 3

    def __post_init__(self):
        if self.width < 1 or self.middle_blocks < 0 or self.in_channels < 1:
            raise ValueError(f"bad model config {self}")
        if len(self.enc_blocks) != len(self.dec_blocks):
            raise ValueError(f"enc_blocks {self.enc_blocks} and dec_blocks {self.dec_blocks} differ in length")
        object.__setattr__(self, "enc_blocks", tuple(int(b) for b in self.enc_blocks))
        object.__setattr__(self, "dec_blocks", tuple(int(b) for b in self.dec_blocks))

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


PRESETS = {
    "tiny": ModelConfig(width=8, enc_blocks=(1, 1, 1), middle_blocks=1, dec_blocks=(1, 1, 1)),
    "small": ModelConfig(width=16, enc_blocks=(1, 1, 1, 1), middle_blocks=1, dec_blocks=(1, 1, 1, 1)),
    "base": ModelConfig(width=32, enc_blocks=(1, 1, 1, 28), middle_blocks=1, dec_blocks=(1, 1, 1, 1)),
    "large": ModelConfig(width=64, enc_blocks=(1, 1, 1, 28), middle_blocks=1, dec_blocks=(1, 1, 1, 1)),
}


def build_model(preset: str = "small", width: int | None = None) -> "NAFNet":
    """A ``NAFNet`` from a preset name, optionally with another width (the depth knob is the preset)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r} (known: {', '.join(PRESETS)})")
    cfg = PRESETS[preset]
    if width is not None:
        cfg = ModelConfig(width=width, enc_blocks=cfg.enc_blocks, middle_blocks=cfg.middle_blocks,
                          dec_blocks=cfg.dec_blocks, in_channels=cfg.in_channels)
    return NAFNet(cfg)


class NAFNet(nn.Module):
    """Blurred image in, restored image out.

    Shape:
        input: (B, C, H, W) float in [0, 1], any H, W (padded internally to a multiple of 2^levels).
        output: (B, C, H, W), the input plus the predicted residual (not clamped; clamp for display).
    """

    def __init__(self, config: ModelConfig = PRESETS["small"]):
        super().__init__()
        self.config = config
        c = config.width
        self.intro = nn.Conv2d(config.in_channels, c, 3, padding=1)
        self.ending = nn.Conv2d(c, config.in_channels, 3, padding=1)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        for n in config.enc_blocks:
            self.encoders.append(nn.Sequential(*[NAFBlock(c) for _ in range(n)]))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, stride=2))
            c *= 2
        self.middle = nn.Sequential(*[NAFBlock(c) for _ in range(config.middle_blocks)])
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for n in config.dec_blocks:
            self.ups.append(nn.Sequential(nn.Conv2d(c, 2 * c, 1, bias=False), nn.PixelShuffle(2)))
            c //= 2
            self.decoders.append(nn.Sequential(*[NAFBlock(c) for _ in range(n)]))
        self.multiple = 2 ** len(config.enc_blocks)
        # A fresh network is the identity (the residual starts at 0): short CPU budgets then start from the
        # blurred input's quality instead of below it. (NAFNet initialises this conv randomly.)
        nn.init.zeros_(self.ending.weight)
        nn.init.zeros_(self.ending.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        ph, pw = (-h) % self.multiple, (-w) % self.multiple
        inp = F.pad(x, (0, pw, 0, ph)) if ph or pw else x
        y = self.intro(inp)
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            y = enc(y)
            skips.append(y)
            y = down(y)
        y = self.middle(y)
        for dec, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            y = dec(up(y) + skip)
        y = self.ending(y) + inp
        return y[:, :, :h, :w]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel of a (B, C, H, W) tensor."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) / torch.sqrt(var + self.eps)
        return y * self.weight[:, None, None] + self.bias[:, None, None]


class SimpleGate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    def __init__(self, c: int, expand: int = 2, ffn_expand: int = 2):
        super().__init__()
        dw = c * expand
        self.norm1 = LayerNorm2d(c)
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.sg = SimpleGate()
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1))
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        ffn = c * ffn_expand
        self.norm2 = LayerNorm2d(c)
        self.conv4 = nn.Conv2d(c, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, c, 1)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.sg(self.conv2(self.conv1(self.norm1(x))))
        y = self.conv3(y * self.sca(y))
        x = x + y * self.beta
        y = self.conv5(self.sg(self.conv4(self.norm2(x))))
        return x + y * self.gamma
