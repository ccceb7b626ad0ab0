"""mkdocs hooks (mkdocs.yml ``hooks:``): the references that must not drift from the code are generated
here at build time, as pages of the build that are never written into docs/:

* ``reference/cli.md``: every command of the typer app, its usage, help and options, read from the
  click command typer builds (``typer.main.get_command``), the same object ``spurbench --help`` prints;
* ``reference/results.md`` and ``reference/schema/<task>.json``: each built-in task's result file, from
  its pydantic model's JSON Schema (``model_json_schema()``), with the fields' comments from the source
  and the schema-version history from the comments above ``SCHEMA_VERSION``.

mkdocs-click is not used for the CLI: typer >= 0.29 builds its commands from its own copy of click
(``typer._click``), and mkdocs-click recognises options by ``isinstance(param, click.Option)`` against
the ``click`` package, so every option would silently drop out of the page. ``get_help_record`` is the
same in both clicks.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

DOCS = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("spurbench_docs_griffe_comments", DOCS / "griffe_comments.py")
assert _spec and _spec.loader
griffe_comments = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(griffe_comments)

BUILT_IN_TASKS = ("spurious-auc", "views")


# --------------------------------------------------------------------------- Markdown helpers


def cell(text: str) -> str:
    """Text for a table cell: one line, no bare ``|``, ``<`` or ``>`` outside inline code (they would be HTML)."""
    parts = " ".join(str(text).split()).split("`")
    for i in range(0, len(parts), 2):  # even parts are outside backticks
        parts[i] = parts[i].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts).replace("|", "\\|")


def paragraphs(text: str) -> str:
    """A help text as Markdown paragraphs (click's ``\\b`` no-rewrap markers dropped)."""
    blocks = [block.replace("\b", "").strip() for block in re.split(r"\n\s*\n", text or "")]
    return "\n\n".join(cell(block) for block in blocks if block)


# --------------------------------------------------------------------------- the CLI reference


def cli_page() -> str:
    import typer  # lazy: the hook module loads with mkdocs; the app only when the page is built

    from spurbench.cli import app
    from spurbench.cli.common import tidy_help

    root = tidy_help(typer.main.get_command(app))
    lines = [
        "# CLI reference",
        "",
        "Generated from the typer app at docs build time (`docs/hooks.py`): the same commands, options and",
        "help that `spurbench COMMAND --help` prints. Every error a user can cause is one line on stderr",
        "(`error: ...`) and exit status 2.",
        "",
    ]
    commands: list[tuple[list[str], Any]] = []

    def walk(path: list[str], command: Any) -> None:
        commands.append((path, command))
        for name in sorted(getattr(command, "commands", {}) or {}):
            sub = command.commands[name]
            if not getattr(sub, "hidden", False):
                walk([*path, name], sub)

    walk(["spurbench"], root)
    lines += ["| command | what it does |", "|---|---|"]
    for path, command in commands[1:]:
        anchor = "-".join(path)
        summary = (command.help or "").split("\n\n")[0]
        lines.append(f"| [`{' '.join(path)}`](#{anchor}) | {cell(summary)} |")
    lines.append("")
    for path, command in commands:
        lines += command_section(path, command)
    return "\n".join(lines) + "\n"


def command_section(path: list[str], command: Any) -> list[str]:
    context_class = type(command).context_class
    ctx = context_class(command, info_name=path[-1], resilient_parsing=True)
    usage = " ".join([*path, *command.collect_usage_pieces(ctx)])
    anchor = "-".join(path)
    lines = [f"## `{' '.join(path)}` {{ #{anchor} }}", "", "```text", usage, "```", "", paragraphs(command.help or ""), ""]
    subcommands = [name for name, sub in sorted((getattr(command, "commands", {}) or {}).items()) if not getattr(sub, "hidden", False)]
    if subcommands:
        lines += ["Commands: " + ", ".join(f"[`{name}`](#{anchor}-{name})" for name in subcommands), ""]
    params = [p for p in command.get_params(ctx) if not getattr(p, "hidden", False)]
    rows = [param_row(p, ctx) for p in sorted(params, key=lambda p: p.param_type_name != "argument")]
    if rows:
        lines += ["| argument or option | description |", "|---|---|", *rows, ""]
    return lines


def param_row(param: Any, ctx: Any) -> str:
    """One table row: the parameter as ``--help`` shows it (an argument in capitals) and its help."""
    record = param.get_help_record(ctx)
    if record is None:  # click's own arguments have no help record
        record = (" ".join(param.get_usage_pieces(ctx)) or str(param.name).upper(), getattr(param, "help", None) or "")
    required = " (required)" if param.param_type_name == "argument" and param.required else ""
    return f"| `{record[0]}` | {cell(record[1])}{required} |"


# --------------------------------------------------------------------------- the result-file reference


def pydantic_classes(model: type) -> dict[str, type]:
    """Every pydantic model reachable from ``model``'s fields, by class name (what its JSON Schema's ``$defs`` names)."""
    from pydantic import BaseModel  # lazy: only the results page needs it

    found: dict[str, type] = {}

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and annotation.__name__ not in found:
            found[annotation.__name__] = annotation
            for field in annotation.model_fields.values():
                visit(field.annotation)
        for arg in getattr(annotation, "__args__", ()) or ():
            visit(arg)

    visit(model)
    return found


def field_comment(klass: type, field: str) -> str:
    """The source comment of ``field`` in the class (or base class) that declares it."""
    for owner in klass.__mro__:
        if field not in vars(owner).get("__annotations__", {}):
            continue
        path = inspect.getsourcefile(owner)
        if path is None:
            return ""
        for node in ast.walk(ast.parse(Path(path).read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name == owner.__name__:
                for statement in node.body:
                    if isinstance(statement, ast.AnnAssign) and getattr(statement.target, "id", None) == field:
                        return griffe_comments.attribute_comment(path, statement.lineno, statement.end_lineno) or ""
        return ""
    return ""


def schema_type(node: dict[str, Any], anchors: dict[str, str]) -> str:
    """A JSON Schema node as a short Markdown type, with links to the records it names."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{anchors[name]})"
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "enum" in node:
        return " \\| ".join(f"`{json.dumps(value)}`" for value in node["enum"])
    if "anyOf" in node:
        return " or ".join(schema_type(option, anchors) for option in node["anyOf"])
    kind = node.get("type", "any")
    if kind == "array":
        return f"list of {schema_type(node.get('items', {}), anchors)}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"{{key: {schema_type(node['additionalProperties'], anchors)}}}"
    bounds = [f"{word} {node[key]}" for key, word in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤")) if key in node]
    return kind + (f" ({', '.join(bounds)})" if bounds else "")


def record_table(schema: dict[str, Any], klass: type | None, anchors: dict[str, str]) -> list[str]:
    lines = ["| field | type | required | description |", "|---|---|---|---|"]
    required = set(schema.get("required", ()))
    for name, node in schema.get("properties", {}).items():
        text = node.get("description") or (field_comment(klass, name) if klass else "")
        if "default" in node and name not in required:
            text = f"{text} (default `{json.dumps(node['default'])}`)".strip()
        lines.append(f"| `{name}` | {schema_type(node, anchors)} | {'yes' if name in required else 'no'} | {cell(text)} |")
    return lines


def schema_history() -> tuple[int, list[tuple[str, str]]]:
    """(current schema version, [(version, what changed)]) from the comments above ``SCHEMA_VERSION``."""
    from spurbench import results  # lazy: imported when the page is built

    path = inspect.getsourcefile(results)
    assert path is not None
    lineno = next(i for i, line in enumerate(Path(path).read_text().splitlines(), 1) if line.startswith("SCHEMA_VERSION"))
    comment = griffe_comments.attribute_comment(path, lineno) or ""
    changes = re.findall(r"(\d+): (.*?)(?= \d+: |$)", comment)
    return results.SCHEMA_VERSION, [("1", "the first result files"), *changes]


def results_page(files: dict[str, str]) -> str:
    from spurbench.results import TASKS  # lazy: imported when the page is built

    schemas = {name: TASKS.get(name).result_model.model_json_schema() for name in BUILT_IN_TASKS}
    classes: dict[str, type] = {}
    for name in BUILT_IN_TASKS:
        classes.update(pydantic_classes(TASKS.get(name).result_model))
    definitions: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for task, schema in schemas.items():
        for def_name, node in schema.get("$defs", {}).items():
            definitions.setdefault(def_name, []).append((task, node))
    shared = sorted(n for n, where in definitions.items() if len(where) == len(schemas) and all(w[1] == where[0][1] for w in where))
    version, history = schema_history()
    lines = [
        "# Result files",
        "",
        "One JSON file per (model, benchmark), written by `spurbench run` and checked by `spurbench leaderboard verify`.",
        "Each file is the result model of the task that scored it (its `kind`). This page is generated at docs build",
        "time from the pydantic models' JSON Schema (`model_json_schema()`), with the fields' descriptions from their",
        "comments in the source; a plugin's task brings its own model (see [Tasks](../extending/tasks.md)).",
        "",
        "| task (`kind`) | result model | JSON Schema |",
        "|---|---|---|",
    ]
    for task in BUILT_IN_TASKS:
        model = TASKS.get(task).result_model
        files[f"reference/schema/{task}.json"] = json.dumps(schemas[task], indent=2) + "\n"
        lines.append(f"| `{task}` | [`{model.__name__}`](#{task}) | [{task}.json](schema/{task}.json) |")
    lines += ["", "## Schema versions", "", f"The current `schema_version` is **{version}**; a file of another version is refused.", ""]
    lines += ["| version | what changed |", "|---|---|", *[f"| {v} | {cell(what)} |" for v, what in history], ""]
    for task in BUILT_IN_TASKS:
        schema, model = schemas[task], TASKS.get(task).result_model
        anchors = {n: (f"shared-{n.lower()}" if n in shared else f"{task}-{n.lower()}") for n in schema.get("$defs", {})}
        lines += [f"## `{task}`: {model.__name__} {{ #{task} }}", "", paragraphs(schema.get("description", "")), ""]
        lines += [*record_table(schema, model, anchors), ""]
        for def_name, node in sorted(schema.get("$defs", {}).items()):
            if def_name not in shared:
                lines += [f"### {def_name} {{ #{anchors[def_name]} }}", "", paragraphs(node.get("description", "")), ""]
                lines += [*record_table(node, classes.get(def_name), anchors), ""]
    lines += ["## Records every task's file shares { #shared }", ""]
    first = schemas[BUILT_IN_TASKS[0]]
    anchors = {n: f"shared-{n.lower()}" for n in shared}
    for def_name in shared:
        node = first["$defs"][def_name]
        lines += [f"### {def_name} {{ #shared-{def_name.lower()} }}", "", paragraphs(node.get("description", "")), ""]
        lines += [*record_table(node, classes.get(def_name), anchors), ""]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the hook


def on_files(files: Files, config: Any) -> Files:
    generated: dict[str, str] = {"reference/cli.md": cli_page()}
    generated["reference/results.md"] = results_page(generated)
    for src_uri, content in generated.items():
        files.append(File.generated(config, src_uri, content=content))
    return files
