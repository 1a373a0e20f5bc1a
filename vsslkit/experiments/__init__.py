"""Experiments that combine training and evaluation: the quickstart and the thesis ablation."""
