"""Checks of what a benchmark plugin states: its evaluation protocols (``Benchmark.protocols``), the
crop of the positives it gives others (``GivesPositives.positives_crop_pct``), the capabilities it
names, and where a model of another label space can run instead."""

from __future__ import annotations

from typing import Any

from spurbench.errors import SpurbenchError
from spurbench.label_spaces import maps_to
from spurbench.protocols import EvalProtocol
from spurbench.registry import Registry


def crop_pct_problem(value: Any) -> str | None:
    if value is None:
        return "states none"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        return f"is {value!r}, not a number in (0, 1]"
    return None


def check_protocols(name: str, protocols: Any) -> None:
    """A one-line SpurbenchError unless the benchmark states its protocols: ``{name: EvalProtocol}``,
    each under its own name, at least one (see ``Benchmark.protocols``)."""
    if not isinstance(protocols, dict) or not protocols:
        raise SpurbenchError(
            f"benchmark {name!r} states no evaluation protocols; set Benchmark(protocols=...), e.g. "
            'protocol_table(fixed_paper(224 / 256, by="its authors\' code"), MODEL_TRANSFORM) from spurbench.protocols'
        )
    for key, protocol in protocols.items():
        if not isinstance(protocol, EvalProtocol) or protocol.name != key:
            raise SpurbenchError(
                f"benchmark {name!r}: protocols[{key!r}] is {type(protocol).__name__} {getattr(protocol, 'name', '')!r}, not an EvalProtocol named {key!r}"
            )


def check_plugin_class(cls: type, gives_positives: bool, missing: list[str] | None = None) -> None:
    """A one-line SpurbenchError when a concrete plugin class states no ``protocols`` table, gives
    positives to other benchmarks without their ``positives_crop_pct``, or names a capability whose
    methods it does not implement (``missing``: ``Capability.method`` names)."""
    concrete = not any(
        getattr(getattr(cls, m), "__isabstractmethod__", False) for m in ("load", "reference")
    )  # (ABCMeta sets __abstractmethods__ only after __init_subclass__)
    if concrete and missing:
        raise SpurbenchError(
            f"benchmark plugin {cls.__module__}.{cls.__qualname__} names the capability {missing[0].split('.')[0]} but does not implement {missing[0]}"
        )
    if concrete and not isinstance(getattr(cls, "protocols", None), dict):
        raise SpurbenchError(
            f"benchmark plugin {cls.__module__}.{cls.__qualname__} states no protocols; set the class attribute, e.g. "
            'protocols = protocol_table(fixed_paper(224 / 256, by="its authors\' code"), MODEL_TRANSFORM) from spurbench.protocols'
        )
    problem = crop_pct_problem(getattr(cls, "positives_crop_pct", None)) if gives_positives else None
    if problem:
        raise SpurbenchError(
            f"benchmark plugin {cls.__module__}.{cls.__qualname__} implements positives() but its positives_crop_pct {problem}; set the class attribute "
            "(224 / 256: photos resized and centre-cropped as ImageNet val; 1.0: images already at the model's size)"
        )


def where_it_runs(model_space: str, benchmarks: Registry[Any]) -> str:
    """The benchmarks of ``benchmarks`` (the table of registered plugins) a model of ``model_space`` can
    run on, as the end of a refusal. The table is passed in: this module sits below the plugin contract."""
    fits = []
    for name in benchmarks.names():
        try:
            space = benchmarks.get(name).label_space
        except Exception:  # a third-party plugin that does not import is no suggestion (its own use says why)
            continue
        if space is not None and maps_to(space, model_space):
            fits.append(name)
    return f"benchmarks it can run on: {', '.join(fits)} (--benchmark NAME)" if fits else "no registered benchmark has that label space"


__all__ = ["check_plugin_class", "check_protocols", "crop_pct_problem", "where_it_runs"]
