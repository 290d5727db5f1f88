"""Event-camera simulation from the latent frames of an exposure (ESIM model), see simulate.py."""
from .simulate import EVENT_DTYPE, EventState, simulate

__all__ = ["EVENT_DTYPE", "EventState", "simulate"]
