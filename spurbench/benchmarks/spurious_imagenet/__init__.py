"""The ``spurious-imagenet`` benchmark plugin (Neuhaus et al., ICCV 2023): 100 ImageNet classes x 75
spurious-only images, against the ImageNet validation images of the same classes.

The plugin is in ``plugin``. Its formats (the upstream folder and built parquet layouts, the content
checksum), the loading of the spurious images and the Hub dataset's build, publish and fetch live in
``spurbench.benchmarks.shared`` (``spurious_layout``, ``spurious_negatives``, ``spurious_build``), which
``spurious-folder`` reads too. Positives and the training split (for ``spufix fit``) come from the
shared ImageNet loaders in ``spurbench.benchmarks.imagenet``. This file only hands names on.
"""

from __future__ import annotations

from spurbench.benchmarks.spurious_imagenet.plugin import NAME, OPENIMAGES_CREDIT, SpuriousImageNet, SpuriousImageNetOptions

__all__ = ["NAME", "OPENIMAGES_CREDIT", "SpuriousImageNet", "SpuriousImageNetOptions"]
