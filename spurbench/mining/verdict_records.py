"""The record of a verdict on a mined candidate and the ledger that keeps them (``DIR/verify.jsonl``;
``DIR/verify.json`` before the ledger), apart from what ``spurbench.mining.verdicts`` does with them.

A record is one labeler's verdict on one image for one class, with the time and the ranks of the
class's components the image is a candidate of (the verdict applies to each). Records written before
components were recorded have none: they mean the same, a verdict on the image for all of its
components, and are written back (a format-1 file's migration) exactly as they were.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Final, Literal, get_args

from pydantic import Field, SerializerFunctionWrapHandler, StrictInt, StrictStr, model_serializer

from spurbench.errors import SpurbenchError
from spurbench.ledger import LEGACY_FORMAT, Identity, Ledger, LedgerKind
from spurbench.schemas import Strict

FORMAT_VERSION: Final = LEGACY_FORMAT  # of the format-1 file, verify.json
VERIFY_FILE = "verify.jsonl"  # the ledger
LEGACY_VERIFY_FILE = "verify.json"  # written before the ledger; read, then migrated on the first new verdict
LOCK_FILE = ".verify.lock"
Verdict = Literal["absent", "present", "unsure"]
VERDICTS: tuple[str, ...] = get_args(Verdict)
Key = tuple[int, str, str]  # (class index, image id, labeler)


class UnknownCandidateError(SpurbenchError):
    """A class or image that is not among the mining's candidates."""


class VerdictRecord(Strict):
    class_index: StrictInt  # strict: JSON's true is no 1
    image_id: StrictStr
    verdict: Verdict
    labeler: StrictStr = Field(min_length=1)
    at: datetime
    # the ranks of the class's components the image was a candidate of when the verdict was given (it
    # applies to each); None: a record written before, a verdict on the image for all of its components
    components: list[StrictInt] | None = None

    @model_serializer(mode="wrap")
    def _as_written_before(self, handler: SerializerFunctionWrapHandler) -> dict:
        """A record without components is written as before they existed (migrated lines stay as they were)."""
        data = handler(self)
        if self.components is None:
            data.pop("components", None)
        return data


class VerdictsFile(Strict):
    """The verdicts of a folder: the format-1 file as it was written, and what ``read_verdicts`` returns."""

    format: Literal[1] = FORMAT_VERSION
    model: str
    weights_revision: str | None
    pool_revision: str | None
    records: list[VerdictRecord] = Field(default_factory=list)  # the history, oldest first


def _mismatch(found: Identity, mine: Identity) -> str:
    return (
        f"verdicts on a mining of {found.get('model')} ({found.get('weights_revision')}) over pool {found.get('pool_revision')}, "
        f"not this one's ({mine['model']}, {mine['weights_revision']}, {mine['pool_revision']})"
    )


LEDGER: LedgerKind[VerdictRecord, VerdictsFile] = LedgerKind(
    name="verdicts",
    what="verdicts file",
    file=VERIFY_FILE,
    legacy_file=LEGACY_VERIFY_FILE,
    lock_file=LOCK_FILE,
    record=VerdictRecord,
    contents=VerdictsFile,
    mismatch=_mismatch,
)


def verdicts_ledger(folder: Path) -> Ledger[VerdictRecord, VerdictsFile]:
    """The ledger of ``folder``'s verdicts. Keep one per server: its reads are incremental."""
    return LEDGER.open(folder)


__all__ = [
    "LEDGER",
    "LEGACY_VERIFY_FILE",
    "LOCK_FILE",
    "VERDICTS",
    "VERIFY_FILE",
    "Key",
    "UnknownCandidateError",
    "Verdict",
    "VerdictRecord",
    "VerdictsFile",
    "verdicts_ledger",
]
