"""Names of ``spurbench.benchmarks.shared.spurious_layout`` handed on where callers import them: the
Spurious ImageNet format lives there, shared with ``spurious-folder`` (no plugin imports another)."""

from spurbench.benchmarks.shared.spurious_layout import (
    checksum_from_digests,
    content_checksum,
    image_id_for,
    parse_folder_name,
    recorded_checksums,
    scan_upstream,
)

__all__ = ["checksum_from_digests", "content_checksum", "image_id_for", "parse_folder_name", "recorded_checksums", "scan_upstream"]
