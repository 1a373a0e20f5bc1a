"""Reading videos and serving their frames: probe/decode (`video`), the decode-once frame
store (`store`), dataset layouts, the synthetic dataset and clip-consistent transforms.

Deliberately empty of imports: `import vsslkit.data.video` must not pull in torch, so the CLI
and DataLoader workers stay light. Import the submodule you need.
"""
