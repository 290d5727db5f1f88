"""Storage of generated samples: codecs, LMDB shards, the run manifest.

Torch-free; the torch Dataset over these shards is ``blursynth.data.ShardDataset``.
"""
from .codec import (
    IMAGE_CODECS,
    decode_array,
    decode_image,
    decode_meta,
    encode_array,
    encode_image,
    encode_meta,
)
from .manifest import FORMAT_VERSION, MANIFEST_NAME, Manifest, library_versions
from .shard import ShardInfo, ShardReader, ShardWriter, is_complete, shard_name

__all__ = [
    "FORMAT_VERSION",
    "IMAGE_CODECS",
    "MANIFEST_NAME",
    "Manifest",
    "ShardInfo",
    "ShardReader",
    "ShardWriter",
    "decode_array",
    "decode_image",
    "decode_meta",
    "encode_array",
    "encode_image",
    "encode_meta",
    "is_complete",
    "library_versions",
    "shard_name",
]
