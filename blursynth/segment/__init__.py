"""Instance masks for photos that have no annotation."""
from .graph import graph_segments

__all__ = ["graph_segments"]
