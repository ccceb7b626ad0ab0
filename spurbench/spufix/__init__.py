"""Class-wise neural PCA, SpuFix and its transfer to other models."""

from spurbench.spufix.npca import (
    NPCA,
    ClassDirections,
    CovarianceAccumulator,
    DirectionMatcher,
    fit_npca,
    fit_npca_streaming,
    match_directions,
    match_directions_streaming,
    projection_coefficients,
)

__all__ = [
    "NPCA",
    "ClassDirections",
    "CovarianceAccumulator",
    "DirectionMatcher",
    "fit_npca",
    "fit_npca_streaming",
    "match_directions",
    "match_directions_streaming",
    "projection_coefficients",
]
