"""Training: ``fit(cfg) -> Run`` and the pieces it wires together."""

from kit.train.loop import Run, fit

__all__ = ["Run", "fit"]
