"""Figures (plotly) and widgets (ipywidgets) over plain callback functions."""
