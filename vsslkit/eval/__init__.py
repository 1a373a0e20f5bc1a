"""Downstream evaluation with the protocol recorded next to every number.

Modules: `metrics` (clip/video accuracy, Hit@k, per-class), `retrieval` (R@k, seed-000
protocol), `svm` (leave-one-out and pair-similarity linear SVMs, seed 003), `confusion`,
`features` (10-clip video features from a backbone layer), `video_level` (classifier accuracy and
the finetune/evaluate test protocol), `pretext` (held-out pretext accuracy of a pretext model),
`probe` (motion-energy floor), `cam`, `results` (Protocol + JSON + markdown tables). Import the
module you need; this package file stays empty so that `import vsslkit.eval.metrics` never pulls
in torch.
"""
