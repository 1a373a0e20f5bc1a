"""vsslkit: self-supervised video representation learning from temporal signals.

The one idea: a training example is a video plus a frame-index plan plus labels
(see docs/architecture.md).
"""

__version__ = "0.1.0"
