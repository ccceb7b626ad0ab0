"""The planted generator's names, handed on from ``spurbench.benchmarks.shared.planted_generator``, where it
lives so that ``planted-salient`` can share it without importing this plugin."""

from spurbench.benchmarks.shared.planted_generator import *
# and the names outside its __all__ that callers read
from spurbench.benchmarks.shared.planted_generator import (
    _BADGE_SIZE,
    BADGE_DESCRIPTION,
    CARRIERS_PER_CLASS,
    NEGATIVES_PER_CLASS,
    TEST_PER_CLASS,
    TRAIN_PER_CLASS,
    __all__,
)
