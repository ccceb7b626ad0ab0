"""Names of ``spurbench.benchmarks.shared.spurious_build`` handed on where callers import them: the
Spurious ImageNet format lives there, shared with ``spurious-folder`` (no plugin imports another)."""

from spurbench.benchmarks.shared.spurious_build import (
    build_from_upstream,
    download,
    push_to_hub,
)

__all__ = ["build_from_upstream", "download", "push_to_hub"]
