"""Vehicle Data Platform: the shared core (settings, errors, topic names) and the `vdp` CLI."""

__version__ = "0.1.0"
