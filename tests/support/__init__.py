"""Helpers the tests share: local servers and fixtures standing in for the Hub and the label pages, data
in upstream formats, the torchrun worker, and the one-line-error assertion. The tiny model and
benchmark are public, in ``spurbench.testing``."""
