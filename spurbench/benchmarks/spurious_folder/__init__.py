"""The ``spurious-folder`` benchmark plugin: a benchmark mined by ``spurbench mine`` from an unlabelled
pool and verified by people (``spurbench mine export`` writes it through :meth:`SpuriousFolder.write_mined`).

A mined folder holds the negatives only, in the upstream layout of Spurious ImageNet (one folder per
(class, component) under ``images/``; this plugin writes that layout on purpose, so that one
definition of it, ``shared.spurious_layout``, reads both), with a card (``spurbench.json``: what was
mined with which model from which pool, every image's verdicts, the content checksum) and a README.

Modules: ``plugin`` (the plugin and its options; where the positives come from), ``card`` (the card's
schema), ``readme`` (the dataset card text), ``write`` (writing a folder, atomically), ``publish``
(reading it back in either form; the Hub dataset). This file only hands names on.
"""

from __future__ import annotations

from spurbench.benchmarks.spurious_folder.plugin import NAME, SpuriousFolder, SpuriousFolderOptions, positives_options, positives_plugin

__all__ = ["NAME", "SpuriousFolder", "SpuriousFolderOptions", "positives_options", "positives_plugin"]
