"""No run silently replaces a result of another configuration: what a result file records differently
from a planned run, and the one-line refusal (``--force`` replaces knowingly)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spurbench.errors import SpurbenchError
from spurbench.results import AnyResult, read_result


def configuration_differences(result: AnyResult, planned: dict[str, Any]) -> list[str]:
    """What a result file records differently from ``planned`` (keys: weights (a checkpoint's digest),
    heads, protocol, precision, bootstrap, temperature, spufix_temperature, spurbench; a key left out or
    None is not compared), as short
    phrases "what: file X, this run Y". Only facts a result records can be named; the config hash
    covers the rest (e.g. the benchmark options)."""
    recorded: dict[str, Any] = {
        "weights": result.model.weights_revision,
        "heads": "+".join(result.heads),
        "protocol": result.protocol.name,
        "precision": result.protocol.precision,
        "temperature": result.heads["plain"].temperature if "plain" in result.heads else None,
        "spurbench": result.provenance.spurbench_version,
    }
    if "spufix" in result.heads:
        recorded["spufix_temperature"] = result.heads["spufix"].temperature
    recorded.update(result.recorded_facts())  # what else a task's result records (spurious AUC: its bootstrap draws)
    names = {
        "weights": "weights",
        "heads": "heads",
        "protocol": "protocol",
        "precision": "precision",
        "bootstrap": "bootstrap draws",
        "temperature": "temperature",
        "spufix_temperature": "SpuFix temperature",
        "spurbench": "spurbench version",
    }
    return [
        f"{names[key]}: file {recorded[key]}, this run {planned[key]}"
        for key in names
        if key in planned and key in recorded and planned[key] is not None and recorded[key] != planned[key]
    ]


def existing_result(path: Path, config_hash: str, planned: dict[str, Any] | None = None) -> bool:
    """Whether ``path`` already holds this configuration's result (True: skip it).

    False when there is nothing valid there to lose (no file, or an invalid or partial one, which the run
    replaces). A valid result of another configuration is refused in one line naming what differs
    (``planned``: see ``results.configuration_differences``): no run silently replaces a result made with
    another configuration; ``--force`` does it knowingly."""
    if not path.exists():
        return False
    try:
        result = read_result(path)
    except SpurbenchError:
        return False
    if result.config_hash == config_hash:
        return True
    raise ConfigurationConflict(path, result, {**(planned or {}), "config_hash": config_hash})


def refuse_other_facts(path: Path, planned: dict[str, Any]) -> None:
    """Refuse (``ConfigurationConflict``) a valid result at ``path`` that records facts other than
    ``planned``, for a check before the config hash is known (the run's SpuFix demo fits first)."""
    try:
        result = read_result(path) if path.exists() else None
    except SpurbenchError:
        return
    if result is not None and configuration_differences(result, planned):
        raise ConfigurationConflict(path, result, planned)


class ConfigurationConflict(SpurbenchError):
    """A result file of another configuration where this run would write its own."""

    def __init__(self, path: Path, result: Any, planned: dict[str, Any]):
        what = (
            "; ".join(configuration_differences(result, planned))
            or f"config hash {result.config_hash}, this run {planned.get('config_hash', 'another')}"
        )
        super().__init__(
            f"{path} holds a result of {result.model.name} on {result.benchmark.name} made with another configuration ({what}); "
            "--force replaces it, or write this run elsewhere with --output"
        )
