"""One home for each repeated mechanism: file locks go through ``filelock`` (no ``fcntl`` in the package,
so every stage imports on every OS) with the semantics they had, and the strict pydantic base and the
``ValidationError`` -> one line formatting live once, in ``spurbench.schemas``, with every message as before."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from spurbench.errors import SpurbenchError

PACKAGE = Path(__file__).resolve().parents[1] / "spurbench"


def _sources() -> dict[Path, str]:
    return {path: path.read_text(encoding="utf-8") for path in PACKAGE.rglob("*.py")}


# ------------------------------------------------------------------------------------------ locks


def _without_fcntl(tmp_path: Path, body: str) -> None:
    """Run ``body`` in a fresh interpreter where fcntl cannot be imported, as on Windows."""
    script = (
        "import sys, warnings; sys.modules['fcntl'] = None; warnings.simplefilter('ignore')\nfrom pathlib import Path\n"
        + body
        + "\nprint('locked')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "locked", proc.stderr[-2000:]


def test_no_fcntl_in_the_package_and_the_ledger_imports_and_locks_without_it(tmp_path) -> None:
    """Windows has no fcntl: a stage that imports it cannot even be imported there. Here fcntl is made
    unimportable, and the stages that lock still import and still take their locks."""
    users = [
        str(path.relative_to(PACKAGE.parent))
        for path, text in _sources().items()
        if re.search(r"^\s*(import fcntl|from fcntl import)", text, re.M)
    ]
    assert users == []
    _without_fcntl(
        tmp_path, "import spurbench.files, spurbench.ledger\nwith spurbench.files.exclusive_lock(Path(sys.argv[1]) / 'a.lock'): pass"
    )


@pytest.mark.slow
def test_the_sweep_driver_imports_and_locks_without_fcntl(tmp_path) -> None:
    _without_fcntl(tmp_path, "from spurbench.sweeps.executors import _driving\nwith _driving(Path(sys.argv[1])): pass")


_HOLD = """
import sys, time
from pathlib import Path
{take}
folder = Path(sys.argv[1])
with lock:
    (folder / "log").open("a").write("child in\\n")
    (folder / "held").touch()
    while not (folder / "go").exists():  # hold the lock until the parent says so (or until killed)
        time.sleep(0.2)
    (folder / "log").open("a").write("child out\\n")
"""
_TAKE_EXCLUSIVE = "from spurbench.files import exclusive_lock; lock = exclusive_lock(Path(sys.argv[1]) / 'ledger.lock')"
_TAKE_DRIVER = "from spurbench.sweeps.executors import _driving; lock = _driving(Path(sys.argv[1]) / 'out')"


def _holder(folder: Path, take: str) -> subprocess.Popen:
    """A second process that takes the lock and holds it until ``folder/go`` exists."""
    child = subprocess.Popen([sys.executable, "-c", _HOLD.format(take=take), str(folder)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (folder / "held").exists():
        assert child.poll() is None, child.stderr.read() if child.stderr else ""
        assert time.monotonic() < deadline, "the holder never took the lock"
        time.sleep(0.05)
    return child


def _kill(child: subprocess.Popen) -> None:
    os.kill(child.pid, signal.SIGKILL)  # no cleanup runs: only the kernel can release the lock now
    child.wait(timeout=30)


def test_exclusive_lock_serialises_two_processes(tmp_path) -> None:
    """The parent asks for the lock while another process holds it: it gets it only after the holder
    is done (a lock that let it in at once would write 'parent in' before 'child out')."""
    from spurbench.files import exclusive_lock

    child = _holder(tmp_path, _TAKE_EXCLUSIVE)
    try:
        (tmp_path / "go").touch()  # the holder sees this only on its next poll, 0.2 s away: we ask now
        with exclusive_lock(tmp_path / "ledger.lock"):
            (tmp_path / "log").open("a").write("parent in\n")
        assert child.wait(timeout=60) == 0
    finally:
        if child.poll() is None:
            _kill(child)
    assert (tmp_path / "log").read_text().splitlines() == ["child in", "child out", "parent in"]
    assert (tmp_path / "ledger.lock").exists()  # the file stays: later lockers share its inode


def test_exclusive_lock_of_a_killed_process_is_free_again(tmp_path) -> None:
    from spurbench.files import exclusive_lock

    child = _holder(tmp_path, _TAKE_EXCLUSIVE)
    _kill(child)
    taken = threading.Event()

    def take() -> None:
        with exclusive_lock(tmp_path / "ledger.lock"):
            taken.set()

    threading.Thread(target=take, daemon=True).start()  # a daemon: a lock never freed fails the test, not the session
    assert taken.wait(timeout=30), "the lock of a killed process was never released"


@pytest.mark.slow
def test_a_live_sweep_driver_holds_its_output_and_a_killed_one_does_not(tmp_path) -> None:
    """The driver lock is a try-lock: a second driver is refused at once while the first one runs, and
    a driver that was killed (no cleanup) does not keep the folder from being driven again."""
    from spurbench.sweeps.executors import _driving

    child = _holder(tmp_path, _TAKE_DRIVER)
    try:
        with pytest.raises(SpurbenchError) as refused, _driving(tmp_path / "out"):
            pass
        assert (
            str(refused.value) == f"another spurbench sweep is running jobs into {tmp_path / 'out'}; wait for it, or use another --output"
        )
    finally:
        _kill(child)
    with (
        _driving(tmp_path / "out"),
        pytest.raises(SpurbenchError, match="another spurbench sweep is running jobs into"),
        _driving(tmp_path / "out"),
    ):
        pass  # free again, and not re-entrant by accident: the same folder inside refuses
    with _driving(tmp_path / "out"):  # released at the end of the block
        pass


# ------------------------------------------------------------------------------- strict models


def test_one_strict_base_and_one_error_formatter() -> None:
    from spurbench.schemas import Strict

    sources = _sources()
    again = [str(path.relative_to(PACKAGE.parent)) for path, text in sources.items() if "class _Strict" in text]
    assert again == []
    formatting = [
        str(path.relative_to(PACKAGE.parent)) for path, text in sources.items() if "errors()[0]" in text and path.name != "schemas.py"
    ]
    assert formatting == []
    with pytest.raises(ValidationError, match="extra_forbidden|Extra inputs are not permitted"):
        type("Probe", (Strict,), {"__annotations__": {"a": int}}).model_validate({"a": 1, "b": 2})
    from spurbench.benchmarks.spurious_folder.card import Card, ImageEntry
    from spurbench.results import Aggregate, Result
    from spurbench.sweeps.jobs import JobSpec, JobStatus

    for model in (Card, ImageEntry, Aggregate, Result, JobSpec, JobStatus):
        assert issubclass(model, Strict), model
    with pytest.raises(ValidationError):  # the card stays strict in types too: "1" is not 1
        ImageEntry.model_validate(
            {
                "image_id": "a",
                "file": "f",
                "class_index": "1",
                "component": 0,
                "pool_image_id": "p",
                "source": "s",
                "digest": "d",
                "sha256": "0" * 64,
                "verdicts": {},
            }
        )


class _Inner(BaseModel):
    value: int


class _Outer(BaseModel):
    inner: list[_Inner]


def _validation_error(data: object) -> ValidationError:
    try:
        _Outer.model_validate(data)
    except ValidationError as exc:
        return exc
    raise AssertionError("valid")


def test_first_error_line_forms() -> None:
    from spurbench.schemas import first_error, first_error_line

    nested = _validation_error({"inner": [{"value": "x"}]})
    assert first_error_line(nested) == "inner.0.value: Input should be a valid integer, unable to parse string as an integer"
    assert first_error(nested) == (
        "inner.0.value",
        "Input should be a valid integer, unable to parse string as an integer",
        "int_parsing",
        ("inner", 0, "value"),
    )
    root = _validation_error([])
    assert first_error_line(root) == "Input should be a valid dictionary or instance of _Outer"  # no location: the message alone
    assert first_error_line(root, root="<root>") == "<root>: Input should be a valid dictionary or instance of _Outer"
    assert first_error(nested, limit=10).message == "Input shou"
    plain = ValueError("duplicate\n  key 'a'")
    assert first_error_line(plain) == "duplicate key 'a'" and first_error(plain).kind == ""


def _message(call) -> str:
    try:
        call()
    except SpurbenchError as exc:
        return str(exc)
    raise AssertionError("no error")


def test_every_validation_message_reads_as_before(tmp_path) -> None:
    """Each place that turns a ValidationError into one line, on a fixed bad input: the exact text
    users saw before the formatting moved into one helper (captured from the code before the change)."""
    from spurbench import ledger
    from spurbench.benchmarks import get_benchmark
    from spurbench.benchmarks.spurious_folder.card import FORMAT_VERSION as CARD_FORMAT
    from spurbench.benchmarks.spurious_folder.card import KIND, read_card
    from spurbench.benchmarks.spurious_folder.card import META_FILE as CARD_FILE
    from spurbench.model_lists import load_model_list
    from spurbench.results import read_result
    from spurbench.schemas import read_model
    from spurbench.spufix.artifact import FORMAT_VERSION, META_FILE, TENSORS_FILE, load_artifact
    from spurbench.sweeps.jobs import JobStatus, _read_record

    seen: dict[str, str] = {}
    (tmp_path / "s.json").write_text('{"spec": {"key": 1}}')
    seen["read_model"] = _message(lambda: read_model(tmp_path / "s.json", JobStatus, "job record"))
    (tmp_path / "t.json").write_text('{"a": NaN}')
    seen["read_model_plain"] = _message(lambda: read_model(tmp_path / "t.json", JobStatus, "job record"))
    try:
        JobStatus.model_validate({"spec": {"key": "k"}, "state": "nope", "executor": "x"})
    except ValidationError as exc:
        seen["ledger_why"] = ledger._why(exc)
    seen["ledger_plain"] = ledger._why(ValueError("duplicate   key\n 'a'" + "x" * 300))
    (tmp_path / "r.json").write_text('{"schema_version": "x"}')
    seen["result"] = _message(lambda: read_result(tmp_path / "r.json"))
    (tmp_path / "r2.json").write_text("[]")
    seen["result_root"] = _message(lambda: read_result(tmp_path / "r2.json"))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / META_FILE).write_text(json.dumps({"format": FORMAT_VERSION}))
    (tmp_path / "a" / TENSORS_FILE).write_bytes(b"x")
    seen["artifact"] = _message(lambda: load_artifact(tmp_path / "a"))
    plugin = get_benchmark("planted")
    seen["options_extra"] = _message(lambda: plugin.parse_options({"sigmaa": 1}))
    seen["options_bad"] = _message(lambda: plugin.parse_options({"limit": object()}))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / CARD_FILE).write_text(json.dumps({"kind": KIND, "format_version": CARD_FORMAT, "name": 3}))
    seen["card"] = _message(lambda: read_card(tmp_path / "c"))
    (tmp_path / "j.json").write_text('{"spec": ')
    seen["job_record"] = str(_read_record(tmp_path / "j.json", tmp_path)[1])
    (tmp_path / "m.yaml").write_text("models:\n  - model: a\n    chekpoint: x\n")
    seen["model_list_extra"] = _message(lambda: load_model_list(tmp_path / "m.yaml"))
    (tmp_path / "m2.yaml").write_text("models:\n  - model: a\n    temperature: -1\n")
    seen["model_list_bad"] = _message(lambda: load_model_list(tmp_path / "m2.yaml"))
    (tmp_path / "m3.yaml").write_text("models:\n  - 7\n")
    seen["model_list_root"] = _message(lambda: load_model_list(tmp_path / "m3.yaml"))

    assert {name: text.replace(str(tmp_path), "TMP") for name, text in seen.items()} == {
        "read_model": "TMP/s.json: not a valid job record at spec.key: Input should be a valid string",
        "read_model_plain": "TMP/t.json: not a valid job record: NaN is not a JSON number",
        "ledger_why": "spec.settings: Field required",
        "ledger_plain": "duplicate key 'a'" + "x" * 183,
        "result": "TMP/r.json: invalid result file at schema_version: Input should be 3",
        "result_root": "TMP/r2.json: invalid result file at <root>: Input should be a valid dictionary or instance of Result",
        "artifact": "TMP/a: spufix.json at source_model: Field required",
        "options_extra": "benchmark 'planted' has no option 'sigmaa'. Its options: limit, seed",
        "options_bad": "benchmark 'planted', option 'limit': Input should be a valid integer",
        "card": "TMP/c/spurbench.json: name: Input should be a valid string",
        "job_record": "not a job record: Invalid JSON: EOF while parsing a value at line 1 column 9",
        "model_list_extra": "TMP/m.yaml: models[0].chekpoint: unknown key 'chekpoint'. Did you mean: checkpoint, checkpoint_note? Known keys: model, display_name, architecture, data, checkpoint, temperature, spufix_temperature, paper, note, checkpoint_note",
        "model_list_bad": "TMP/m2.yaml: models[0].temperature: Input should be greater than 0",
        "model_list_root": "TMP/m3.yaml: models[0].<entry>: Input should be a valid dictionary or instance of ModelEntry",
    }


# ------------------------------------------------------------------------------- run configuration


def test_one_home_for_the_run_configuration() -> None:
    """The config hash, the facts a result records of its run, and the value checks are defined once, on
    the typed settings; the loose-argument versions, the sweep's own hash and the untyped job options
    are gone, and no caller parses a skip reason back out of its text."""
    sources = _sources()

    def defined(name: str) -> list[str]:
        return sorted(str(p.relative_to(PACKAGE.parent)) for p, text in sources.items() if re.search(rf"^\s*def {name}\(", text, re.M))

    for name in ("check_bootstrap", "check_temperature", "checkpoint_identity", "config_hash", "planned_facts"):
        assert defined(name) == ["spurbench/settings/run.py"], name
    for gone in (
        r"\brun_config_hash\b",
        r"\bjob_config_hash\b",
        r"\bfeature_kwargs\b",
        r"\brun: dict\b",
        r"startswith\(.in flight",
        r"\bspec\.run\b",
    ):
        assert [str(p.relative_to(PACKAGE.parent)) for p, text in sources.items() if re.search(gone, text)] == [], gone
    named = [str(p.relative_to(PACKAGE.parent)) for p, text in sources.items() if re.search(r'"imagenet_train": imagenet_train', text)]
    assert named == ["spurbench/cli/options.py"]  # run and sweep build their benchmark options in one place
