"""Benchmark label space -> model label space columns.

Placeholder covering identical label spaces; the ImageNet-21k maps are added in this module.
"""

from __future__ import annotations

from typing import Sequence

from spurbench.errors import LabelSpaceError


def class_columns(benchmark_space: str, model_space: str, class_indices: Sequence[int], num_classes: int) -> list[int]:
    """Column of the model's head that scores each benchmark class; LabelSpaceError if there is none."""
    if benchmark_space != model_space:
        raise LabelSpaceError(f"no map from benchmark label space {benchmark_space!r} to model label space {model_space!r}")
    bad = [k for k in class_indices if not 0 <= k < num_classes]
    if bad:
        raise LabelSpaceError(f"benchmark class {bad[0]} is outside the model's {num_classes}-class label space {model_space!r}")
    return list(class_indices)
