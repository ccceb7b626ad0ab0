"""The ``salient-imagenet`` plugin: core vs spurious accuracy under mask noise (Singla & Feizi,
ICLR 2022) on the authors' layout, and its embedded default, ``planted-salient`` (``planted``).

Modules: ``plugin`` (the plugin, its options and protocols), ``layout`` (the authors' dataset folder),
``noise`` (the views: noise on the union of masks), ``metrics`` (core vs spurious accuracy),
``planted`` (the embedded ``planted-salient``), ``pictures`` (masks drawn over their image, for the
board). This file only hands names on.
"""

from __future__ import annotations

from spurbench.benchmarks.salient_imagenet.plugin import NAME, SalientImageNet, SalientOptions, layout_checksum

__all__ = ["NAME", "SalientImageNet", "SalientOptions", "layout_checksum"]
