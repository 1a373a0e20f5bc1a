"""Training: one `fit` loop, atomic checkpoints with exact resume, DDP helpers, supervised classifier.

Import the pieces from their modules (`vsslkit.train.loop.fit`, `vsslkit.train.checkpoint`, ...);
this package file stays import-light so `vsslkit --help` does not pay for torch.
"""
