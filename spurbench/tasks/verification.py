"""What every task's ``verify`` shares: the one-line error, and the checks of a result's images and
probabilities that do not depend on the task."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

from spurbench.benchmarks.base import Reference
from spurbench.errors import SpurbenchError
from spurbench.metrics import TOLERANCE


class VerificationError(SpurbenchError):
    """A result file that does not hold up; the message names the file and the field."""


def same(a: float | None, b: float | None) -> bool:
    """Equal within the tolerance (both None, or both NaN, count as equal)."""
    if a is None or b is None:
        return a is None and b is None
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= TOLERANCE


def check_image_ids(reference: Reference, images: Mapping[str, Any]) -> None:
    """Exactly the reference's image ids (one line naming what is missing or unknown)."""
    missing = sorted(set(reference.images or ()) - set(images))
    extra = sorted(set(images) - set(reference.images or ()))
    if missing or extra:
        what = f"missing {len(missing)} (e.g. {missing[0]!r})" if missing else f"{len(extra)} unknown (e.g. {extra[0]!r})"
        hint = "" if extra else limit_hint(Counter((reference.images or {}).values()), Counter((reference.images or {})[i] for i in images))
        raise VerificationError(f"images: {what} image ids of {reference.name} revision {reference.revision!r}{hint}")


def limit_hint(benchmark: Mapping[Any, int], file: Mapping[Any, int]) -> str:
    """Why images are missing when the file holds, of every (class, role), min(its count, N) images: what
    ``--limit N`` gives. A limited run is a smoke test, so verify rejects it, and says so."""
    n = max(file.values(), default=0)
    if n and any(count > n for count in benchmark.values()) and all(file.get(key, 0) == min(count, n) for key, count in benchmark.items()):
        return f"; the file holds at most {n} images per class and role: it was made with --limit {n}, a smoke run, and verify accepts only full runs"
    return ""


def impossible_for_softmax(prob: float, top1: bool, floor: float) -> bool:
    """What no softmax gives: a class probability above 1/2 that is not the top-1, or a top-1 class
    below 1/C of the probability (``floor``)."""
    return (prob > 0.5 and not top1) or (top1 and prob < floor - TOLERANCE)


__all__ = ["VerificationError", "check_image_ids", "impossible_for_softmax", "limit_hint", "same"]
