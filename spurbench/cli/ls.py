"""``spurbench ls``: benchmarks and model families; with a pattern, loadable model names and the model
lists' matching models; with ``-b NAME``, a benchmark's ``-O KEY=VALUE`` options.

Printed as plain lines, never as tables: a name is never cut or folded at the terminal's width (or at 80
columns where output goes to a file), and every line can be grepped.
"""

from __future__ import annotations

import fnmatch
import inspect
import re
import types
import typing
from pathlib import Path
from typing import Any

import typer

from spurbench.cli.common import app, console

# the -O keys `run` also takes as flags of their own
RUN_FLAGS = {
    "data_dir": "--data-dir",
    "imagenet_val": "--imagenet-val",
    "imagenet_train": "--imagenet-train",
    "dataset_repo": "--dataset-repo",
    "revision": "--revision",
    "seed": "--seed",
    "limit": "--limit",
}


def say(text: str = "") -> None:
    """One line, literally (no markup, no highlighting) and never wrapped by rich."""
    console.print(text, markup=False, highlight=False, soft_wrap=True, emoji=False)


@app.command("ls")
def list_models(
    pattern: str | None = typer.Argument(
        None,
        help="Wildcard filter, e.g. 'timm:*convnext*' or 'open_clip:ViT-B-32*'. Without one, only the families and benchmarks are listed.",
    ),
    benchmark: str | None = typer.Option(
        None, "--benchmark", "-b", help="List this benchmark's options (-O KEY=VALUE of `run` and `sweep`): type, default and help."
    ),
    listed_models: bool = typer.Option(
        False, "--listed-models", help="Also list every model of the model lists (a PATTERN lists the matching ones)."
    ),
    model_lists_dir: Path = typer.Option(
        Path("model-lists"), "--model-lists-dir", help="Folder of YAML model lists (a spurbench checkout's model-lists/)."
    ),
    limit: int = typer.Option(50, "--limit", min=1, help="Show at most N names per family."),
) -> None:
    """List benchmarks and model families. With a PATTERN: the matching names that timm
    (`timm.list_models`), open_clip (`open_clip.list_pretrained`) and the other families list, and the
    matching models of model-lists/*.yaml. With -b NAME: that benchmark's options."""
    # lazy: keeps spurbench --help fast (the families import torch)
    from spurbench.adapters import ADAPTERS, split_name
    from spurbench.benchmarks import BENCHMARKS, default_benchmark, get_benchmark
    from spurbench.model_lists import load_model_list, model_list_files

    if benchmark is not None:
        plugin = get_benchmark(benchmark)  # an unknown name: one line with suggestions
        say(f"options of benchmark {plugin.name} (spurbench run -b {plugin.name} -O KEY=VALUE):")
        for line in option_lines(plugin.options_model):
            say(line)
        say(f"protocols of benchmark {plugin.name} (spurbench run --protocol NAME):")
        for name, protocol in plugin.protocols.items():
            say(f"  {name}: {protocol.describe()}")
        return
    default = default_benchmark()
    say("benchmarks (spurbench run -b NAME; spurbench ls -b NAME lists its options):")
    for name in BENCHMARKS.names():
        registered = BENCHMARKS.get(name)
        say(f"  {name}{' (default)' if name == default else ''}: {registered.description}")
        if registered.default_models:
            say(f"      default models: {', '.join(registered.default_models)}")
    say()
    families = ADAPTERS.names()
    if pattern is None:
        say("model families (spurbench run -m FAMILY:SPEC; spurbench ls 'FAMILY:PATTERN' lists names):")
        for family in families:
            say(f"  {family}")
    else:
        wanted = [split_name(pattern)[0]] if ":" in pattern and not any(ch in pattern.split(":")[0] for ch in "*?[") else families
        spec_pattern = pattern.split(":", 1)[1] if ":" in pattern else pattern
        for family in wanted:
            names = ADAPTERS.get(family).list_names(spec_pattern)
            if not names and len(wanted) > 1:
                continue
            say(
                f"{family} models matching {pattern!r}:"
                if names
                else f"{family}: none listed (this family cannot enumerate its models offline, or nothing matches {pattern!r})"
            )
            for name in names[:limit]:
                say(f"  {name}")
            if len(names) > limit:
                say(f"  ... {len(names)} in all (--limit N shows more)")
    say()
    lists = model_list_files(model_lists_dir)
    where = model_lists_dir.resolve()
    if not lists:
        say(f"model lists: none in {where} (run from a spurbench checkout, or give --model-lists-dir DIR)")
        return
    models = {path: load_model_list(path) for path in lists}
    if pattern is None and not listed_models:
        counts = ", ".join(f"{path.name} ({len(entries)} models)" for path, entries in models.items())
        say(f"model lists in {where}: {counts} (--listed-models, or a PATTERN, lists their models)")
        return
    for path, entries in models.items():
        rows = [e for e in entries if pattern is None or fnmatch.fnmatch(e.model, pattern)]
        if rows:
            say(f"{path}" + (f" models matching {pattern!r}:" if pattern else ":"))
            for e in rows:
                extras = ", ".join(x for x in (e.display_name, f"data: {e.data}" if e.data else None) if x)
                say(f"  {e.model}" + (f"  ({extras})" if extras else ""))


def option_lines(options_model: Any) -> list[str]:
    """One line per option: ``KEY: TYPE (default: X) help``. The help is the field's description, else
    the comment after it in its class's source (where the built-in benchmarks document them)."""
    comments = _field_comments(options_model)
    lines = []
    for key, field in options_model.model_fields.items():
        if field.exclude:  # e.g. the Hub token: taken from the environment, never an option on the command line
            continue
        default = "required" if field.is_required() else f"default: {field.get_default(call_default_factory=True)!r}"
        flag = f", also {RUN_FLAGS[key]}" if key in RUN_FLAGS else ""
        text = field.description or comments.get(key, "")
        lines.append(
            f"  {key}: {_type_name(field.annotation)}{_constraints(field.metadata)} ({default}{flag})" + (f"  {text}" if text else "")
        )
    return lines


def _field_comments(model: type) -> dict[str, str]:
    comments: dict[str, str] = {}
    for cls in model.__mro__:
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        for match in re.finditer(r"^\s+(\w+)\s*:[^#\n]*#\s*(.+)$", source, flags=re.M):
            comments.setdefault(match[1], match[2].strip())
    return comments


def _type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0]) + _constraints(args[1:])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (list, tuple, set):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args if a is not Ellipsis)}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _constraints(metadata: Any) -> str:
    """Pydantic's constraints as text, e.g. `` (>= 0, < 1000000000)``."""
    shown = []
    for item in metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="), ("min_length", "length >="), ("max_length", "length <=")):
            value = getattr(item, attr, None)
            if value is not None:
                shown.append(f"{sign} {value}")
    return f" ({', '.join(shown)})" if shown else ""
