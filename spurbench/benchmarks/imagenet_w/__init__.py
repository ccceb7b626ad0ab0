"""The ``imagenet-w`` benchmark plugin: the watermark shortcut (Li et al., "A Whac-A-Mole Dilemma", CVPR 2023).

Modules: ``plugin`` (the plugin, its options and protocols), ``transform`` (the watermark and its font),
``metrics`` (clean vs watermarked accuracy, the carton shortcut). This file only hands names on.
"""

from __future__ import annotations

from spurbench.benchmarks.imagenet_w.metrics import CARTON, METRICS, inw_metrics
from spurbench.benchmarks.imagenet_w.plugin import NAME, WHAC_A_MOLE, ImageNetW, ImageNetWOptions

__all__ = ["CARTON", "METRICS", "NAME", "WHAC_A_MOLE", "ImageNetW", "ImageNetWOptions", "inw_metrics"]
