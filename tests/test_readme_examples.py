"""Every command of the shell examples in README.md and the docs site (docs/**/*.md) is either run here or
listed with why it cannot be.

``readme_commands`` reads a page's fenced ``bash`` / ``sh`` / ``shell`` / ``console`` blocks (continued
lines joined, comments dropped). A command that is in neither ``RUN`` nor ``SKIP`` fails the fast test,
so a new example is run (or classified, with its reason) from the day it is added; an entry whose
command left every page fails it too. The slow test runs every ``RUN`` command, in page order (README.md,
then the docs pages in ``DOC_ORDER``, then any other page by path) and within a page in its order, each in
its folder (one shared folder unless said otherwise: later examples use earlier ones' outputs), with its
own spurbench cache and Hub home, offline, and expects exit status 0.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHELL_BLOCKS = ("bash", "sh", "shell", "console")
# The pages whose examples run first, in this order (later pages' examples use earlier ones' outputs): the
# README, then the docs site in its reading order. A page not named here comes after them, by path.
DOC_ORDER = (
    "README.md",
    "docs/index.md",
    "docs/getting-started.md",
    "docs/concepts.md",
    "docs/benchmarks/index.md",
    "docs/benchmarks/planted.md",
    "docs/benchmarks/spurious-imagenet.md",
    "docs/benchmarks/salient-imagenet.md",
    "docs/benchmarks/imagenet-w.md",
    "docs/benchmarks/mined-folders.md",
    "docs/spufix.md",
    "docs/discovery.md",
    "docs/mining.md",
    "docs/leaderboard.md",
    "docs/scale.md",
)
# .ci/run's last line is the README's test command, verbatim: a README that says otherwise fails the fast test below
CI_COMMAND = " ".join((ROOT / ".ci" / "run").read_text().strip().splitlines()[-1].split())


@dataclass(frozen=True)
class Run:
    command: str | None = None  # what runs where the README line is a synopsis: its form without the optional parts
    folder: str = "readme"  # where it runs; README order within a folder
    why: str = ""  # why it runs otherwise than as written, in its own folder or in another form


RUN: dict[str, Run] = {
    "spurbench spufix fit --model planted:resnet --source-model planted:cnn --train-data planted --components-from-ground-truth --output spufix-resnet": Run(),
    "spurbench run --model planted:resnet --spufix spufix-resnet": Run(),
    "spurbench": Run(),
    "spurbench run": Run(),
    "spurbench run --model-list model-lists/planted.yaml": Run(
        folder="model-list",
        why="an alternative to the default run: beside that run's plain+SpuFix files its plain results are refused, as designed (test_reliability_results case 1)",
    ),
    "spurbench --version": Run(),
    "spurbench ls": Run(),
    "spurbench ls 'timm:*convnext*'": Run(),
    "spurbench ls --listed-models": Run(),
    "spurbench ls -b planted-salient": Run(),
    "spurbench leaderboard verify [RESULTS...]": Run("spurbench leaderboard verify", why="synopsis: the optional RESULTS left out"),
    "spurbench leaderboard build [RESULTS...]": Run("spurbench leaderboard build", why="synopsis: the optional RESULTS left out"),
    "spurbench leaderboard build leaderboard/results --out leaderboard/site --board-dir leaderboard": Run(),
    "spurbench discover --model planted:cnn --train-data planted --out discovery/": Run(
        "spurbench discover --model planted:cnn --train-data planted --classes 0 --out discovery/",
        why="all ten classes take minutes on 2 cores (200 NPFV steps for each of 10 components per class); one, with the command's own option",
    ),
    "spurbench run --benchmark planted-salient": Run(),
    "spurbench run --benchmark planted-salient -O 'sigma=[0.5,1.0]' -o results-sigmas": Run(),
    "spurbench train -m planted:cnn -m planted:resnet.seed3 --out my-weights/": Run(
        "spurbench train -m planted:cnn -m planted:resnet.seed3 --out my-weights/ --epochs 1 --per-class 20",
        folder="train",
        why="the full recipe takes minutes per model on 2 cores; shortened with the command's own options (their file name says so)",
    ),
    "spurbench run -m planted:resnet.seed3 --checkpoint my-weights/resnet-generator-v1-train-v2-seed3.safetensors": Run(
        "spurbench run -m planted:resnet.seed3 --checkpoint my-weights/resnet-generator-v1-train-v2-seed3-epochs1-per-class20.safetensors",
        folder="train",
        why="the shortened training's file, as the line above writes it",
    ),
}

_REAL_DATA = "needs real data (ImageNet, a download or a pool) and a timm model"
_SYNOPSIS = "synopsis with placeholders, not a command"
_LABELS = "needs a person's labels from the browser pages first"
_SERVES = "serves the label pages until Ctrl-C"
_SLURM = "submits to SLURM, with real data"
_TORCHRUN = "torchrun over several GPUs, with real data"
_INSTALLS = "installs the test requirements; .ci/run does the same on every CI run"
_GUIDE_PLUGIN = "needs the plugin guide's example distribution (docs/examples) installed; tests/test_plugin_guide.py runs it with it"

SKIP: dict[str, str] = {
    "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/spurbench run": "installs from the network; its `spurbench run` runs here",
    "python3 -m venv .venv && .venv/bin/pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu && .venv/bin/pip install -e . && .venv/bin/spurbench run": "installs from the network; its `spurbench run` runs here",
    "apt-get install -y chromium chromium-driver fonts-noto-cjk-extra": _INSTALLS,
    ".ci/slurm-cluster install": _INSTALLS,
    ".ci/slurm-cluster start": "starts SLURM's daemons; tests/test_sweep_slurm.py starts the cluster the same way",
    'eval "$(.ci/slurm-cluster env)"': "sets SLURM_CONF in the reader's shell; tests/test_sweep_slurm.py reads the same output",
    ".ci/slurm-cluster stop": "stops the cluster the other tests use; tests/test_sweep_slurm.py stops its second cluster the same way",
    'python3 -m venv .venv && .venv/bin/pip install -e ".[dev,imagenet-w,docs]"': _INSTALLS,
    ".venv/bin/pip install --no-deps --target .ci-typer typer==0.24.1 click==8.2.1": _INSTALLS,
    CI_COMMAND: "the whole test suite (this test is part of it); .ci/run runs it verbatim, and test_workflows checks it against CI",
    "spurbench run --model timm:convnext_base.fb_in22k_ft_in1k --benchmark spurious-imagenet --device cuda": _REAL_DATA,
    "spurbench sweep --model-list model-lists/paper.yaml -b spurious-imagenet --executor slurm|local|debug ...": _SYNOPSIS,
    "spurbench sweep --retry-failed -o RESULTS": _SYNOPSIS,
    "torchrun --nproc-per-node N -m spurbench spufix fit|discover ...": _SYNOPSIS,
    "spurbench dataset build --from-upstream spurious_imagenet/ --out si-hf [--push ORG/NAME] [--benchmark NAME]": "needs the upstream Spurious ImageNet download",
    "spurbench dataset download [--dataset-repo ORG/NAME] [--revision SHA] [--out DIR] [--benchmark NAME]": "downloads from the Hub",
    "spurbench spufix fit --model TARGET --train-data DIR|hub|planted [--benchmark NAME] [--source-model SRC | --source ALPHAS] ...": _SYNOPSIS,
    "spurbench spufix import-alphas UPSTREAM_ALPHAS_DIR --train-data DIR --out source-alphas": _SYNOPSIS,
    "spurbench discover --model M --train-data DIR|hub|planted [--classes all|1,2,5-7] [--basis npca|neurons] --out DIR": _SYNOPSIS,
    "spurbench label DIR [--port 8765] [--labeler NAME]": _SERVES,
    "spurbench label export DIR --out components.json [--min-votes N]": _SYNOPSIS,
    "spurbench mine --model M --discovery DIR --components C | --spufix ART --pool DIR|hf://ORG/NAME --out MINED": _SYNOPSIS,
    "spurbench label MINED": _SYNOPSIS,
    "spurbench mine export MINED --out BENCH [--min-per-class N]": _SYNOPSIS,
    "spurbench run -b dots": _GUIDE_PLUGIN,
    "spurbench run -b dots -O stripe=0.6 -o results-stripe": _GUIDE_PLUGIN,
    "spurbench run -b dots -o results": _GUIDE_PLUGIN,
    "spurbench leaderboard verify results/dots__dotsnet_small.json": _GUIDE_PLUGIN,
    "spurbench run -b dots --seed 3 -o results-seed3": _GUIDE_PLUGIN,
    "pip install .": "installs the plugin guide's example distribution (docs/examples); tests/test_plugin_guide.py registers it in-process instead",
    "uv pip install --no-deps --target plugins .": "installs the plugin guide's example distribution (docs/examples); tests/test_plugin_guide.py registers it in-process instead",
    "PYTHONPATH=plugins spurbench run -b dots": "needs the previous line's install; tests/test_plugin_guide.py runs `spurbench run -b dots` with the plugin registered",
    "spurbench leaderboard push --repo ORG/NAME": "pushes to the Hub",
    "spurbench leaderboard pull [--repo ORG/NAME]": "downloads from the Hub",
    "spurbench spufix fit --model timm:convnext_base.fb_in22k_ft_in1k --source-model timm:resnet50 --source-checkpoint robust_resnet50.safetensors --train-data /data/imagenet/train --save-alphas source-alphas --output spufix-convnext [--push ORG/NAME]": _REAL_DATA,
    "spurbench spufix import-alphas spurious_alphas/ --train-data /data/imagenet/train --out source-alphas": _REAL_DATA,
    "spurbench spufix fit --model timm:vit_base_patch16_224.augreg_in21k_ft_in1k --source source-alphas --train-data /data/imagenet/train": _REAL_DATA,
    "spurbench run --model timm:convnext_base.fb_in22k_ft_in1k --benchmark spurious-imagenet --spufix spufix-convnext": _REAL_DATA,
    "spurbench discover --model timm:resnet50 --checkpoint robust_resnet50.safetensors --train-data /data/imagenet/train --classes 1-50 --components-per-class 10 --out discovery/ --device cuda": _REAL_DATA,
    "spurbench label discovery/ [--port 8765] [--labeler NAME]": _SERVES,
    "spurbench label export discovery/ --out components.json [--min-votes 1]": _LABELS,
    "spurbench discover --model timm:resnet50 --checkpoint robust_resnet50.safetensors --train-data /data/imagenet/train --classes all --out discovery/ --device cuda": _REAL_DATA,
    "spurbench label discovery/ --labeler alice": _SERVES,
    "spurbench label export discovery/ --out components.json": _LABELS,
    "spurbench spufix fit --model timm:resnet50 --checkpoint robust_resnet50.safetensors --train-data /data/imagenet/train --components components.json --output spufix-robust50 --device cuda": _REAL_DATA,
    "spurbench spufix fit --model timm:convnext_base.fb_in22k_ft_in1k --source-model timm:resnet50 --source-checkpoint robust_resnet50.safetensors --train-data /data/imagenet/train --components components.json --output spufix-convnext --device cuda": _REAL_DATA,
    "spurbench run --model timm:convnext_base.fb_in22k_ft_in1k --benchmark spurious-imagenet --data-dir spurious_imagenet/ --spufix spufix-convnext --device cuda": _REAL_DATA,
    "spurbench mine --model timm:resnet50 --checkpoint robust_resnet50.safetensors --discovery discovery/ --components components.json --pool /data/openimages/train --out mined/ --device cuda": _REAL_DATA,
    "spurbench label mined/ --labeler alice": _SERVES,
    "spurbench mine export mined/ --out my-spurious-bench --min-per-class 20": _REAL_DATA,
    "spurbench run --model timm:convnext_base.fb_in22k_ft_in1k --benchmark spurious-folder --data-dir my-spurious-bench --imagenet-val /data/imagenet/val --device cuda": _REAL_DATA,
    "spurbench mine --model M --discovery discovery/ --components components.json --pool /data/pool [--per-component 75] [--require-predicted top1|top5|none] [--dedup-cosine 0.999] --out mined/": _SYNOPSIS,
    "spurbench mine export mined/ --out my-bench [--min-per-class 20] [--min-votes 1] [--name NAME]": _SYNOPSIS,
    "spurbench run --model timm:resnet50 --benchmark spurious-folder --data-dir my-bench [--imagenet-val DIR]": _SYNOPSIS,
    "spurbench dataset build --from-upstream my-bench --out my-bench-hf --push ORG/NAME": "pushes to the Hub, from a mined folder of real images",
    "spurbench run --benchmark salient-imagenet --model timm:resnet50.a1_in1k --device cuda --data-dir salient_imagenet_dataset --imagenet-train /data/ILSVRC2012/train": _REAL_DATA,
    "spurbench run --benchmark imagenet-w --model timm:resnet50.a1_in1k --imagenet-val /data/ILSVRC2012/val --device cuda": _REAL_DATA,
    "spurbench sweep --model-list model-lists/paper.yaml --benchmark spurious-imagenet --data-dir /data/spurious_imagenet --imagenet-val /data/imagenet/val --device cuda --executor slurm --partition gpu --gpus-per-job 1 --cpus-per-job 8 --mem 32 --time 120 --max-parallel 16 --slurm-extra account=vision -o results/ --board board/": _SLURM,
    "spurbench sweep --model-list model-lists/paper.yaml -b spurious-imagenet --data-dir ... --device cuda --executor local --gpus 4 -o results/": _SYNOPSIS,
    "spurbench sweep --retry-failed --executor slurm -o results/": _SLURM,
    "torchrun --standalone --nproc-per-node 4 -m spurbench spufix fit --model timm:resnet50.a1_in1k --train-data /data/ILSVRC2012/train -o spufix-resnet50": _TORCHRUN,
    "torchrun --standalone --nproc-per-node 4 -m spurbench discover -m timm:resnet50.a1_in1k --train-data /data/ILSVRC2012/train --out disc --device cuda": _TORCHRUN,
    "spurbench sweep --model-list model-lists/paper.yaml -b spurious-imagenet --data-dir /shared/spurious_imagenet --imagenet-val /shared/imagenet/val --device cuda --precision bf16 --num-workers 8 --pixel-cache /shared/pixels --executor slurm --partition gpu --gpus-per-job 1 --cpus-per-job 9 --mem 32 --time 120 --max-parallel 16 -o /shared/results --board /shared/board": _SLURM,
    "spurbench sweep --model-list model-lists/paper.yaml -b spurious-imagenet --data-dir ... --imagenet-val ... --device cuda --executor local --gpus 8 --pixel-cache /scratch/pixels -o results --board board": _SYNOPSIS,
    "torchrun --standalone --nproc-per-node 8 -m spurbench spufix fit --model timm:convnext_base.fb_in22k_ft_in1k --train-data /data/ILSVRC2012/train --source alphas/ --device cuda -o spufix-convnext": _TORCHRUN,
}


def _without_comment(line: str) -> str:
    """The line up to a shell comment (a ``#`` at its start or after a space, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def readme_commands(text: str) -> list[tuple[int, str]]:
    """(line number, command) of every command in the shell blocks: continued lines joined, comments
    dropped, spaces collapsed; in a ``console`` block only ``$ `` lines (the rest is output)."""
    commands: list[tuple[int, str]] = []
    lang: str | None = None
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        fence = re.match(r"\s*```\s*([\w-]*)", line)
        if fence:
            lang = fence[1].lower() if lang is None else None
            continue
        if lang not in SHELL_BLOCKS:
            continue
        if not pending:
            if lang == "console":
                if not line.lstrip().startswith("$ "):
                    continue
                line = line.lstrip()[2:]
            start = number
        continued = line.rstrip().endswith("\\")
        pending += line.rstrip()[:-1] + " " if continued else _without_comment(line)
        if continued:
            continue
        command = " ".join(pending.split())
        pending = ""
        if command:
            commands.append((start, command))
    return commands


def documented_pages() -> list[str]:
    """README.md and every page of the docs site, in the order their examples run."""
    pages = {"README.md", *(str(path.relative_to(ROOT)) for path in (ROOT / "docs").rglob("*.md"))}
    first = [page for page in DOC_ORDER if page in pages]
    return first + sorted(pages - set(first))


def documented_commands() -> list[tuple[str, int, str]]:
    """(page, line number, command) of every shell command of README.md and the docs, in run order."""
    return [(page, line, command) for page in documented_pages() for line, command in readme_commands((ROOT / page).read_text())]


def test_readme_commands_are_read_as_written():
    text = "```bash\nspurbench run \\\n    --limit 2   # a comment\n# only a comment\n\nspurbench ls 'a#b'\n```\n```python\nspurbench run\n```\n```console\n$ spurbench --version\nspurbench 0.1.0\n```\n"
    assert readme_commands(text) == [(2, "spurbench run --limit 2"), (6, "spurbench ls 'a#b'"), (12, "spurbench --version")]


def test_the_docs_pages_are_read():
    """The docs' pages are part of the check, in run order: README.md first, the getting-started page before the pages
    whose examples use its outputs."""
    pages = documented_pages()
    assert pages[0] == "README.md" and "docs/getting-started.md" in pages and "docs/spufix.md" in pages
    assert pages.index("docs/getting-started.md") < pages.index("docs/spufix.md") < pages.index("docs/discovery.md")
    assert all((ROOT / page).is_file() for page in DOC_ORDER), [page for page in DOC_ORDER if not (ROOT / page).is_file()]


def test_every_readme_command_is_classified():
    """A command of README.md or the docs this file does not know fails here, as does an entry whose command left
    every page."""
    commands = documented_commands()
    assert not set(RUN) & set(SKIP)
    unknown = [(f"{page}:{line}", command) for page, line, command in commands if command not in RUN and command not in SKIP]
    assert not unknown, (
        f"commands of the README or the docs neither run nor skipped (add each to RUN, or to SKIP with its reason): {unknown}"
    )
    stale = sorted((set(RUN) | set(SKIP)) - {command for _, _, command in commands})
    assert not stale, f"entries whose command is no longer in the README or the docs: {stale}"
    for command, run in RUN.items():
        assert (run.command is None and run.folder == "readme") or run.why, command


def test_an_xdist_worker_runs_torch_on_one_thread():
    """The README's test command runs two pytest-xdist workers on two cores: torch's default of one thread
    per core in each made in-process torch tests 10-15 times slower (perf/p14_ci_time.py). tests/conftest.py
    gives a worker, and every process it starts, one thread (pytest loads it before any test module imports torch)."""
    probe = "import os, tests.conftest, torch; print(torch.get_num_threads(), os.environ.get('OMP_NUM_THREADS'))"
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    worker = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env={**env, "PYTEST_XDIST_WORKER": "gw0"}, capture_output=True, text=True, timeout=300
    )
    assert worker.stdout.split() == ["1", "1"], worker.stderr[-2000:]


def test_the_longest_modules_are_collected_first():
    """.ci/run schedules modules in collection order (--no-loadscope-reorder): tests/conftest.py puts its list
    of the longest modules first, and every name in it is a module of the suite."""
    names = re.findall(r'^    "(test_\w+\.py)",$', (ROOT / "tests" / "conftest.py").read_text(), flags=re.M)
    assert len(names) > 5 and all((ROOT / "tests" / name).is_file() for name in names)
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/test_layout.py", f"tests/{names[1]}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    modules = [line.split("::")[0] for line in listed.stdout.splitlines() if "::" in line]
    assert modules and modules[0] == f"tests/{names[1]}" and modules[-1] == "tests/test_layout.py", listed.stdout[-2000:]


@pytest.mark.slow
def test_readme_examples_run_on_planted(trained, cli, tmp_path):
    """Every documented command that runs on planted data, through the CLI's entry point in this process
    (``cli``, as the suite's CLI tests run; a fresh interpreter per command cost about 3 s each, and the
    console script itself is tested in tests/test_cli.py)."""
    cache, _ = trained
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "SPURBENCH_CACHE": str(cache)}
    failures, ran = [], set()
    for page, line, command in documented_commands():
        run = RUN.get(command)
        if run is None:
            continue
        ran.add(command)
        folder = tmp_path / run.folder
        if not folder.exists():  # a checkout's folders, which the examples name by relative path
            folder.mkdir()
            shutil.copytree(ROOT / "model-lists", folder / "model-lists")
            shutil.copytree(ROOT / "leaderboard" / "results", folder / "leaderboard" / "results")
        args = shlex.split(run.command or command)
        assert args[0] == "spurbench", command
        proc = cli(*args[1:], cwd=folder, env=env)
        if proc.returncode != 0:
            failures.append(f"{page} line {line}: {run.command or command}: exit {proc.returncode}: {proc.stderr.strip()[-1500:]}")
    assert not failures, "\n".join(failures)
    assert ran == set(RUN)  # every entry ran


@pytest.mark.slow
def test_a_fresh_cache_run_prints_the_readmes_output(tmp_path):
    """The `spurbench run` output block of the getting-started page, printed as it is by the console script from
    an empty cache: the shipped planted weights make it the same on every machine."""
    text = (ROOT / "docs" / "getting-started.md").read_text()
    block = text.split("<!-- spurbench run output -->\n```text\n", 1)[1].split("\n```", 1)[0]
    env = {
        **os.environ,
        "SPURBENCH_CACHE": str(tmp_path / "cache"),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
        "COLUMNS": "100",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "spurbench", "run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = [line.rstrip() for line in proc.stdout.rstrip("\n").split("\n")]
    assert printed == block.split("\n")
    assert not list((tmp_path / "cache").glob("planted/*.safetensors"))  # nothing was trained
