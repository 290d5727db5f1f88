"""Instance masks for photos that have no annotation."""
from .graph import graph_segments

__all__ = ["graph_segments", "SamSegmenter"]


def __getattr__(name):
    # SAM needs torch and segment_anything: import them only when asked for
    if name == "SamSegmenter":
        from .sam import SamSegmenter

        return SamSegmenter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
