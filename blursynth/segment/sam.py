"""Segment-anything (SAM) automatic masks as a segmenter for photos that have no annotation.

`SamSegmenter` wraps segment_anything's `SamAutomaticMaskGenerator` around a model built by its own
`sam_model_registry` (vit_b, vit_l, vit_h) or, for tests and quick CPU runs, a tiny model of the same classes
(`build_sam_tiny`). Weights come from a local checkpoint file; nothing is ever downloaded. The official
checkpoints (see `OFFICIAL_CHECKPOINTS`) have to be fetched by the user.

Calling the segmenter gives the same contract as `graph_segments`: an int32 (H, W) label map. Here label 0 is
the background no mask covers and 1..n are SAM's masks, largest first; smaller masks are painted over larger
ones so that small objects inside large regions survive.

Quality thresholds. SAM scores each candidate mask with its own predicted IoU (`pred_iou_thresh`) and with the
stability of the mask when the logit cutoff moves (`stability_score_thresh`); candidates under either
threshold are dropped. The defaults here (0.86, 0.92) are the ones segment_anything's README suggests for a
trained ViT-H. A model with random weights (checkpoint None) scores almost nothing that high and yields no
masks at all: use thresholds of 0 (or small values) with it, as the tests do.
"""
from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import numpy as np
import torch
from segment_anything import SamAutomaticMaskGenerator, sam_model_registry
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

log = logging.getLogger(__name__)

# Where Meta publishes the trained weights; blursynth only names them in error messages.
OFFICIAL_CHECKPOINTS = {
    "vit_h": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
    "vit_l": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
    "vit_b": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
}

# The tiny model: segment_anything's classes at sizes that run in well under a second on a laptop CPU.
# Its input is 256 px (longest side), its image embedding 16 x 16 x 64, its low-resolution masks 64 x 64.
TINY_IMAGE_SIZE = 256
TINY_PATCH_SIZE = 16
TINY_ENCODER_DIM = 64
TINY_ENCODER_DEPTH = 2
TINY_ENCODER_HEADS = 2
TINY_PROMPT_DIM = 64


def build_sam_tiny(checkpoint: str | Path | None = None) -> Sam:
    """A small SAM with the structure of segment_anything's `_build_sam` (same classes, smaller sizes).

    Its weights are PyTorch's default initialisation from the global RNG (use `SamSegmenter`, which seeds it),
    or those of `checkpoint` (a state dict saved from this model). Returned in eval mode, on the CPU.
    """
    embedding_size = TINY_IMAGE_SIZE // TINY_PATCH_SIZE
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=TINY_ENCODER_DEPTH,
            embed_dim=TINY_ENCODER_DIM,
            img_size=TINY_IMAGE_SIZE,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=TINY_ENCODER_HEADS,
            patch_size=TINY_PATCH_SIZE,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=(TINY_ENCODER_DEPTH - 1,),
            window_size=8,  # divides the 16 x 16 patch grid: no padding in the windowed block
            out_chans=TINY_PROMPT_DIM,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=TINY_PROMPT_DIM,
            image_embedding_size=(embedding_size, embedding_size),
            input_image_size=(TINY_IMAGE_SIZE, TINY_IMAGE_SIZE),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            # embedding_dim / attention_downsample_rate (2) / num_heads must be a whole number
            transformer=TwoWayTransformer(depth=2, embedding_dim=TINY_PROMPT_DIM, mlp_dim=4 * TINY_PROMPT_DIM,
                                          num_heads=4),
            transformer_dim=TINY_PROMPT_DIM,  # upscaling goes to dim // 8 channels: keep it a multiple of 8
            iou_head_depth=3,
            iou_head_hidden_dim=TINY_PROMPT_DIM,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    sam.eval()
    if checkpoint is not None:
        _load_checkpoint(sam, Path(checkpoint), "tiny")
    return sam


# segment_anything's own builders, plus the tiny one
MODEL_BUILDERS = {
    "vit_b": sam_model_registry["vit_b"],
    "vit_l": sam_model_registry["vit_l"],
    "vit_h": sam_model_registry["vit_h"],
    "tiny": build_sam_tiny,
}


class SamSegmenter:
    """SAM automatic mask generation as a label-map segmenter.

    Arguments are checked at construction (a missing checkpoint, an unknown model type or an unavailable
    device fail at once); the model itself is built and loaded on first use, so a segmenter is cheap to make
    in a process that never segments, and pickles as its configuration only.

    Args:
        checkpoint: path of a state dict for `model_type` (an official SAM .pth for vit_b/vit_l/vit_h, or
            `torch.save(SamSegmenter.tiny().model.state_dict(), path)` for tiny). None: random weights drawn
            from `seed`, for tests and timing only (the masks mean nothing).
        model_type: "vit_b", "vit_l", "vit_h" (segment_anything's registry) or "tiny".
        device: "auto" (cuda when available, else cpu), "cpu", "cuda" or "cuda:N".
        points_per_side: the prompt grid is points_per_side x points_per_side points over the image.
        pred_iou_thresh: least predicted IoU of a kept mask, in [0, 1] (see the module docstring).
        stability_score_thresh: least stability score of a kept mask, in [0, 1].
        min_mask_region_area: holes and islands smaller than this many pixels (of the input image) are removed
            from each mask; 0 keeps masks as predicted.
        seed: seed of the random weights when `checkpoint` is None.
        **generator_kwargs: passed on to `SamAutomaticMaskGenerator` (points_per_batch, box_nms_thresh,
            crop_n_layers, ...).
    """

    def __init__(self, checkpoint: str | Path | None, model_type: str = "vit_b", device: str = "auto",
                 points_per_side: int = 16, pred_iou_thresh: float = 0.86, stability_score_thresh: float = 0.92,
                 min_mask_region_area: int = 0, seed: int = 0, **generator_kwargs):
        if model_type not in MODEL_BUILDERS:
            raise ValueError(f"unknown SAM model type {model_type!r}: use one of {', '.join(MODEL_BUILDERS)}")
        self.model_type = model_type
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        if self.checkpoint is not None and not self.checkpoint.is_file():
            raise FileNotFoundError(f"SAM checkpoint {self.checkpoint} not found: {_where_to_get(model_type)}")
        self.device = _resolve_device(device)
        if points_per_side < 1:
            raise ValueError(f"points_per_side must be at least 1, got {points_per_side}")
        for name, value in (("pred_iou_thresh", pred_iou_thresh), ("stability_score_thresh", stability_score_thresh)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        if min_mask_region_area < 0:
            raise ValueError(f"min_mask_region_area must be >= 0, got {min_mask_region_area}")
        self.seed = seed
        self.generator_kwargs = dict(points_per_side=points_per_side, pred_iou_thresh=pred_iou_thresh,
                                     stability_score_thresh=stability_score_thresh,
                                     min_mask_region_area=min_mask_region_area, **generator_kwargs)
        self._generator: SamAutomaticMaskGenerator | None = None

    @classmethod
    def tiny(cls, seed: int = 0, **kwargs) -> "SamSegmenter":
        """The tiny model with random weights from `seed` (deterministic); `kwargs` as for the constructor."""
        return cls(None, model_type="tiny", seed=seed, **kwargs)

    @property
    def model(self) -> Sam:
        """The SAM model (built and loaded on first access), in eval mode on `self.device`."""
        return self._mask_generator().predictor.model

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Segment a photo into SAM's masks.

        Args:
            image: uint8 (H, W, 3) RGB, any size (SAM resizes it to its input, longest side first).
        Returns:
            int32 (H, W) label map: 0 where no mask lies, 1..n the masks from largest to smallest, consecutive.
        """
        masks, _ = self.masks(image)
        return paint_labels(masks)

    def masks(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """SAM's instance masks for a photo, largest first (masks may overlap).

        Args:
            image: uint8 (H, W, 3) RGB.
        Returns:
            (bool (K, H, W) masks, float32 (K,) the model's predicted IoU of each); K may be 0.
        """
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"SAM needs a uint8 (H, W, 3) RGB image, got {image.dtype} {image.shape}")
        generator = self._mask_generator()
        with torch.inference_mode():
            records = generator.generate(np.ascontiguousarray(image))
        records = sorted((r for r in records if r["area"] > 0), key=lambda r: -r["area"])
        h, w = image.shape[:2]
        if not records:
            return np.zeros((0, h, w), dtype=bool), np.zeros(0, dtype=np.float32)
        masks = np.stack([r["segmentation"] for r in records]).astype(bool, copy=False)
        scores = np.array([r["predicted_iou"] for r in records], dtype=np.float32)
        return masks, scores

    def __getstate__(self) -> dict:
        # ship the configuration, not hundreds of MB of weights; the receiver loads the checkpoint itself
        return {**self.__dict__, "_generator": None}

    def _mask_generator(self) -> SamAutomaticMaskGenerator:
        if self._generator is None:
            sam = _build(self.model_type, self.checkpoint, self.seed)
            self._generator = SamAutomaticMaskGenerator(sam.to(self.device), **self.generator_kwargs)
        return self._generator


def paint_labels(masks: np.ndarray) -> np.ndarray:
    """Flatten overlapping instance masks into a label map.

    Masks are painted in the order given (callers give them largest first) so later, smaller masks stay on
    top; a mask wholly covered by later ones leaves no label, and the rest are renumbered to stay consecutive.

    Args:
        masks: bool (K, H, W).
    Returns:
        int32 (H, W): 0 where no mask lies, else 1..n (n <= K) in painting order.
    """
    k, h, w = masks.shape
    labels = np.zeros((h, w), dtype=np.int32)
    for i, mask in enumerate(masks, start=1):
        labels[mask] = i
    present = np.flatnonzero(np.bincount(labels.ravel(), minlength=k + 1)[1:]) + 1
    lut = np.zeros(k + 1, dtype=np.int32)
    lut[present] = np.arange(1, len(present) + 1, dtype=np.int32)
    return lut[labels]


def _build(model_type: str, checkpoint: Path | None, seed: int) -> Sam:
    # The builders initialise the weights from torch's global RNG: seed a forked copy so the random model is
    # reproducible and the caller's RNG is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = MODEL_BUILDERS[model_type](checkpoint=None)
    if checkpoint is None:
        if model_type != "tiny":
            log.warning("SAM %s with random weights (no checkpoint): its masks are meaningless", model_type)
    else:
        _load_checkpoint(sam, checkpoint, model_type)
    return sam


def _load_checkpoint(sam: Sam, path: Path, model_type: str) -> None:
    # Loaded here rather than by the registry builders: they call torch.load without map_location (a CUDA-saved
    # file then fails on a CPU machine) and report a wrong file only as a long key listing.
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        sam.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[:3]
        raise ValueError(f"SAM checkpoint {path} does not fit model type {model_type!r} "
                         f"(is it a checkpoint of another model?): {' '.join(first)}") from exc


def _where_to_get(model_type: str) -> str:
    if model_type == "tiny":
        return ("a tiny checkpoint is a state dict written with "
                "torch.save(SamSegmenter.tiny().model.state_dict(), PATH)")
    return (f"download the official {model_type} weights yourself ({OFFICIAL_CHECKPOINTS[model_type]}, "
            f"see https://github.com/facebookresearch/segment-anything#model-checkpoints) and pass the file's path; "
            f"blursynth never downloads")


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for but CUDA is not available here")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r}: use auto, cpu, cuda or cuda:N")
    return dev
