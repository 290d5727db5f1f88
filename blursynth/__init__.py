"""blursynth: sharp/blurred training pairs for motion deblurring, rendered from one exposure model."""

__version__ = "0.1.0"
