"""Data-parallel `spufix fit` and `discover` (spurbench.distributed): two gloo ranks on CPU give the
single-process results within 1e-10 (float64), only rank 0 writes, and ranks given other inputs, a rank
that dies or one that does not answer fail in one line with nothing half-written.

The fast tests fork two ranks from this process (no interpreter start-up, as torchrun would start them:
RANK, WORLD_SIZE, MASTER_ADDR, ...) on the tiny model; the slow ones run the real `torchrun` on the
trained planted models, through the CLI.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import multiprocessing
import os
import pickle
import queue as queues
import shutil
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from spurbench import distributed
from spurbench.discovery.index import INDEX_FILE
from spurbench.discovery.pipeline import discover
from spurbench.errors import SpurbenchError
from spurbench.settings import DiscoverySettings, FeatureSettings
from spurbench.spufix.fit import fit_source, fit_transfer, self_artifact
from spurbench.testing import TinyAdapter, tiny_benchmark
from tests.test_spufix_fit import WideTiny

# shard_batches=1: several shards per class, so the top images are merged across shards as well
SETTINGS = FeatureSettings(batch_size=4, shard_batches=1, progress=False, num_workers=0)
COMPONENTS = {0: [0, 2], 3: [1]}
TOL = 1e-10


def _train(drop_last: bool = False):
    bench = tiny_benchmark(per_role=10)
    bench.name = "tiny-train"
    if drop_last:
        bench.images = bench.images[:-1]
    return bench


def _settings(out: Path, **values: Any) -> DiscoverySettings:
    """A discovery of the tiny model into ``out`` (no feature visualisations)."""
    return DiscoverySettings(model="tiny:net", benchmark="tiny", out=out, npfv_steps=0, features=SETTINGS, **values)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


forked_ranks = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods() or not torch.distributed.is_gloo_available(),
    reason="needs fork and torch's gloo backend",
)


def _rank_main(rank: int, world: int, port: int, queue: Any, target: Callable, env: dict[str, str]) -> None:
    os.environ.update(
        {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), **env}
    )
    torch.set_num_threads(1)  # as torchrun's OMP_NUM_THREADS=1 (and no OpenMP pool inherited across fork)
    try:
        distributed.setup("cpu")
        outcome: tuple = ("ok", target(rank))
    except SpurbenchError as exc:
        outcome = ("error", type(exc).__name__, str(exc))
    except BaseException:  # a bug: shown by the test
        outcome = ("crash", traceback.format_exc())
    # plain pickle: the queue's own pickler would hand tensors over as shared memory of a process that is gone
    queue.put(pickle.dumps((rank, *outcome)))


def run_ranks(target: Callable[[int], Any], world: int = 2, env: dict[str, str] | None = None, timeout: float = 120) -> dict[int, tuple]:
    """``target(rank)`` on ``world`` forked ranks of one gloo group: {rank: ("ok", value) | ("error", class, message)};
    a rank that died without answering is missing."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    port = _free_port()
    procs = [context.Process(target=_rank_main, args=(r, world, port, queue, target, env or {})) for r in range(world)]
    for proc in procs:
        proc.start()
    outcomes: dict[int, tuple] = {}
    deadline = time.monotonic() + timeout
    while len(outcomes) < world and time.monotonic() < deadline:
        if not any(p.is_alive() for p in procs) and queue.empty():
            break
        try:
            rank, *outcome = pickle.loads(queue.get(timeout=0.2))
        except queues.Empty:
            continue
        outcomes[rank] = tuple(outcome)
    for proc in procs:
        proc.join(timeout=max(1.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
    crashes = [o[1] for o in outcomes.values() if o[0] == "crash"]
    assert not crashes, crashes[0]
    return outcomes


def assert_same_tree(got: Any, want: Any, path: str = "") -> None:
    """Equal structure and strings; numbers within TOL (relative to their size, at least TOL absolute)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), path
        for key in want:
            assert_same_tree(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_tree(g, w, f"{path}[{i}]")
    elif isinstance(want, torch.Tensor):
        assert got.shape == want.shape and got.dtype == want.dtype == torch.float64, path
        assert (got - want).abs().max().item() <= TOL * max(1.0, want.abs().max().item()), path
    elif isinstance(want, float) and not isinstance(want, bool):
        assert math.isclose(got, want, rel_tol=TOL, abs_tol=TOL), (path, got, want)
    else:
        assert got == want, (path, got, want)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------
# one process: nothing changes


def test_without_torchrun_every_helper_is_the_identity(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.setup("cuda:3") == "cuda:3" and not distributed.active()  # (no device check: that is check_device's)
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    t = torch.arange(3.0)
    assert distributed.all_sum(t) is t and distributed.gather_all("x") == ["x"] and distributed.from_main(lambda: 7) == 7
    distributed.check_same(["anything"], "inputs")
    with distributed.main_first():
        pass
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(SpurbenchError, match="WORLD_SIZE=2 but .* is not set; start data-parallel runs with torchrun"):
        distributed.setup("cpu")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "soon")
    with pytest.raises(SpurbenchError, match="SPURBENCH_DISTRIBUTED_TIMEOUT='soon': expected a positive number"):
        distributed.timeout_seconds()


@pytest.mark.parametrize("count, unit, world", [(20, 4, 2), (21, 4, 3), (5, 4, 4), (1300, 64, 8), (0, 4, 2), (7, 1, 7)])
def test_shares_are_contiguous_batch_aligned_and_cover_every_item_once(count: int, unit: int, world: int) -> None:
    bounds = [distributed.share_bounds(count, unit, r, world) for r in range(world)]
    assert bounds[0][0] == 0 and bounds[-1][1] == count
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))  # contiguous, in rank order
    assert all(start % unit == 0 and start <= end for start, end in bounds)  # cut only at batch boundaries
    sizes = [-(-(end - start) // unit) for start, end in bounds]  # batches per rank: as even as they can be
    assert max(sizes) - min(sizes) <= 1


# ------------------------------------------------------------------------------------------------
# two forked ranks on the tiny model


def _fit_everything(rank: int):
    train = _train()
    alphas, npcas = fit_source(TinyAdapter(), train, COMPONENTS, settings=SETTINGS)
    own = distributed.from_main(lambda: self_artifact(TinyAdapter(), npcas, alphas))
    transfer = fit_transfer(WideTiny(), train, alphas, settings=SETTINGS)
    chosen = {k: (n.mean, n.eigenvectors[:, COMPONENTS[k]], n.num_images) for k, n in npcas.items()}
    return alphas.image_ids, alphas.alphas, chosen, own.directions, transfer.directions, transfer.images_per_class


@forked_ranks
def test_two_ranks_fit_what_one_process_fits() -> None:
    want_ids, want_alphas, want_chosen, want_own, want_transfer, want_counts = _fit_everything(0)
    outcomes = run_ranks(_fit_everything)
    assert sorted(outcomes) == [0, 1] and all(o[0] == "ok" for o in outcomes.values()), outcomes
    for rank, (_, (ids, alphas, chosen, own, transfer, counts)) in outcomes.items():
        assert ids == want_ids and counts == want_counts == {0: 20, 3: 20}
        assert_same_tree(alphas, want_alphas)  # every row, in image order, on every rank (sign conventions: eigh's, unchanged)
        assert_same_tree(own, want_own)  # the self artifact: class means and spurious eigenvectors
        assert_same_tree(transfer, want_transfer)  # matched directions of another model
        if rank:
            assert chosen == {}  # the NPCAs stay on rank 0
    assert_same_tree(outcomes[0][1][2], want_chosen)  # its means and chosen eigenvectors, signs as one process's


def _discover_into(folder: Path, basis: str):
    def target(rank: int):
        out = folder if rank == 0 else folder.with_name(folder.name + "-rank1")  # rank 1 is given its own --out
        index = discover(
            _settings(out, classes=[1, 2], components_per_class=4, top_images=3, basis=basis), model=TinyAdapter(), train=_train()
        )
        return index.model_dump()

    return target


@forked_ranks
@pytest.mark.parametrize("basis", ["npca", "neurons"])
def test_two_ranks_discover_what_one_process_discovers(tmp_path: Path, basis: str) -> None:
    want = _discover_into(tmp_path / "one", basis)(0)
    outcomes = run_ranks(_discover_into(tmp_path / "two", basis))
    assert all(o[0] == "ok" for o in outcomes.values()), outcomes
    for _, index in outcomes.values():
        assert_same_tree(index, want)  # statistics within 1e-10, the same top images in the same order
    assert_same_tree(json.loads((tmp_path / "two" / INDEX_FILE).read_text()), json.loads((tmp_path / "one" / INDEX_FILE).read_text()))
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert sorted(two) == sorted(one) and len(one) > 10
    assert all(two[name] == one[name] for name in one if name.endswith(".png"))  # thumbnails and GradCAM overlays, byte for byte
    assert not (tmp_path / "two-rank1").exists()  # only rank 0 writes


@forked_ranks
def test_ranks_given_other_images_fail_on_every_rank_in_one_line(tmp_path: Path) -> None:
    def target(rank: int):
        fit_source(TinyAdapter(), _train(drop_last=rank == 1), COMPONENTS, settings=SETTINGS)

    outcomes = run_ranks(target)
    messages = {o[2] for o in outcomes.values()}
    assert sorted(outcomes) == [0, 1] and {o[1] for o in outcomes.values()} == {"DataError"} and len(messages) == 1, outcomes
    (message,) = messages
    assert (
        message.startswith("rank 1 of 2 was given other source model, training images, components or options than rank 0")
        and "\n" not in message
    )

    def discovering(rank: int):
        discover(_settings(tmp_path / "d", classes=[1], components_per_class=2, top_images=2 + rank), model=TinyAdapter(), train=_train())

    outcomes = run_ranks(discovering)
    assert {o[1] for o in outcomes.values()} == {"DataError"} and len(outcomes) == 2, outcomes
    assert not (tmp_path / "d").exists()  # refused before anything was written


@forked_ranks
def test_a_refusal_on_rank_0_reaches_every_rank(tmp_path: Path) -> None:
    discover(_settings(tmp_path / "d", classes=[0], components_per_class=2, top_images=2), model=TinyAdapter(), train=_train())
    before = _files(tmp_path / "d")

    def other_settings(rank: int):  # rank 0 alone reads the folder; the others learn its verdict
        discover(_settings(tmp_path / "d", classes=[0], components_per_class=3, top_images=2), model=TinyAdapter(), train=_train())

    outcomes = run_ranks(other_settings)
    assert sorted(outcomes) == [0, 1] and len({o[1:] for o in outcomes.values()}) == 1, outcomes
    assert outcomes[1][:2] == ("error", "SpurbenchError") and "holds a discovery of tiny:net" in outcomes[1][2]
    assert _files(tmp_path / "d") == before


@forked_ranks
def test_a_rank_that_dies_fails_the_others_in_one_line_and_a_rerun_resumes(tmp_path: Path) -> None:
    def target(rank: int):
        if rank == 1:  # test harness: rank 1 dies (no cleanup) when it opens the second class's features
            from spurbench.features import FeatureStream

            real, opened = FeatureStream.open.__func__, []

            def dying(cls, *args, **kwargs):
                opened.append(1)
                if len(opened) == 3:
                    os._exit(1)
                return real(cls, *args, **kwargs)

            FeatureStream.open = classmethod(dying)
        discover(_settings(tmp_path / "two", classes=[1, 2], components_per_class=3, top_images=2), model=TinyAdapter(), train=_train())

    outcomes = run_ranks(target)
    assert list(outcomes) == [0] and outcomes[0][1] == "SpurbenchError", outcomes  # rank 1 said nothing: it died
    message = outcomes[0][2]
    assert message.startswith("rank 0 of 2: ") and "another rank stopped" in message and "\n" not in message
    partial = json.loads((tmp_path / "two" / INDEX_FILE).read_text())
    assert list(partial["classes"]) == ["1"]  # the finished class, complete; nothing of class 2
    assert not [p for p in (tmp_path / "two").rglob("*") if "class2" in p.name or p.name.endswith(".tmp")]
    # one process continues the same discovery and ends where a 1-process run ends
    discover(_settings(tmp_path / "two", classes=[1, 2], components_per_class=3, top_images=2), model=TinyAdapter(), train=_train())
    discover(_settings(tmp_path / "one", classes=[1, 2], components_per_class=3, top_images=2), model=TinyAdapter(), train=_train())
    assert_same_tree(json.loads((tmp_path / "two" / INDEX_FILE).read_text()), json.loads((tmp_path / "one" / INDEX_FILE).read_text()))


@forked_ranks
def test_a_rank_that_does_not_answer_times_out_in_one_line() -> None:
    def target(rank: int):
        if rank == 1:
            time.sleep(3)  # longer than the timeout below
        fit_source(TinyAdapter(), _train(), COMPONENTS, settings=SETTINGS)

    started = time.monotonic()
    outcomes = run_ranks(target, env={distributed.TIMEOUT_ENV: "1"}, timeout=60)
    assert outcomes[0][:2] == ("error", "SpurbenchError"), outcomes
    assert outcomes[0][2].startswith("rank 0 of 2: comparing source model") and "no answer from every rank within 1 s" in outcomes[0][2]
    assert outcomes.get(1, ("error",))[0] == "error"  # rank 1 finds rank 0 gone (or is stopped): no result either
    assert time.monotonic() - started < 30


# ------------------------------------------------------------------------------------------------
# the real torchrun, through the CLI, on the planted models


@pytest.fixture(scope="session")
def pycache(tmp_path_factory) -> Iterator[tuple[Path, subprocess.Popen] | None]:
    """A bytecode folder for the torchrun workers, being filled by a background import meanwhile; None
    when the installed packages are compiled already (``uv pip install --compile-bytecode``, as .ci/run
    installs them): a private folder would make every worker compile torch, timm, ... again instead.
    Why a folder otherwise: with PYTHONDONTWRITEBYTECODE (as here) every worker would compile them."""
    if Path(importlib.util.cache_from_source(torch.__file__)).is_file():
        yield None
        return
    folder = tmp_path_factory.mktemp("pycache")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    warm = "import spurbench.cli, spurbench.runs, spurbench.discovery, spurbench.benchmarks.planted.models, torch.distributed.run"
    proc = subprocess.Popen([sys.executable, "-c", warm], env={**env, "PYTHONPYCACHEPREFIX": str(folder)})
    yield folder, proc
    proc.kill()  # (long done, unless the session ended early)
    proc.wait()


@pytest.fixture
def planted_env(pycache, trained, tmp_path_factory) -> dict[str, str]:
    """The environment of torchrun runs: a fresh cache holding the trained planted models (no training).
    (``pycache`` first: its compiling overlaps the planted models' training when they are not trained yet.)"""
    cache = tmp_path_factory.mktemp("cache")
    shutil.copytree(trained[0] / "planted", cache / "planted")
    dropped = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", *(("PYTHONDONTWRITEBYTECODE",) if pycache else ()))
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(SPURBENCH_CACHE=str(cache), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    if pycache:
        env["PYTHONPYCACHEPREFIX"] = str(pycache[0])
    return env


def torchrun(
    args: list[str], env: dict[str, str], cwd: Path, logs: Path, pycache: tuple[Path, subprocess.Popen] | None
) -> tuple[int, dict[int, tuple[str, str]]]:
    """``torchrun --standalone --nproc-per-node 2 ARGS``: its exit status and each rank's (stdout, stderr)."""
    if pycache:
        pycache[1].wait(timeout=300)
    launcher = Path(sys.executable).with_name("torchrun")
    command = [str(launcher)] if launcher.exists() else [sys.executable, "-m", "torch.distributed.run"]
    proc = subprocess.run(
        [*command, "--standalone", "--nproc-per-node", "2", "--log-dir", str(logs), "--redirects", "3", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    streams = {}
    for rank in (0, 1):
        (folder,) = logs.glob(f"*/attempt_0/{rank}")
        streams[rank] = ((folder / "stdout.log").read_text(), (folder / "stderr.log").read_text())
    return proc.returncode, streams


WORKER = str(Path(__file__).with_name("support") / "distributed_worker.py")
COMMON = ["--limit", "64", "--batch-size", "16", "-q"]  # 4 batches per class: 2 per rank


@pytest.mark.slow
def test_torchrun_fit_transfer_and_discover_equal_one_process(cli, planted_env, pycache, tmp_path: Path) -> None:
    fit = ["spufix", "fit", "--model", "planted:cnn", "--components-from-ground-truth", *COMMON]
    transfer = ["spufix", "fit", "--model", "planted:resnet", *COMMON]
    disc = [
        "discover",
        "-m",
        "planted:cnn",
        "--classes",
        "2,8",
        "--components-per-class",
        "3",
        "--top-images",
        "3",
        "--npfv-steps",
        "0",
        *COMMON,
    ]
    env = {k: planted_env[k] for k in ("SPURBENCH_CACHE", "HF_HUB_OFFLINE")}
    for args in (
        [*fit, "-o", "one/art", "--save-alphas", "one/alphas"],
        [*transfer, "--source", "one/alphas", "-o", "one/tr"],
        [*disc, "--out", "one/d"],
    ):
        assert cli(*args, cwd=tmp_path, env=env).returncode == 0
    # the command line as it is, then the other two commands in one process group
    status, streams = torchrun(
        ["-m", "spurbench", *fit, "-o", "two/art", "--save-alphas", "two/alphas"], planted_env, tmp_path, tmp_path / "logs1", pycache
    )
    assert status == 0 and streams[1] == ("", "") and streams[0][1] == "", streams
    rank1_elsewhere = [
        "--rank1-replace",
        "two/tr",
        "rank1/tr",
        "--rank1-replace",
        "two/d",
        "rank1/d",
    ]  # (--out is not an input the ranks must share)
    status, streams = torchrun(
        [WORKER, *rank1_elsewhere, *transfer, "--source", "two/alphas", "-o", "two/tr", "::", *disc, "--out", "two/d"],
        planted_env,
        tmp_path,
        tmp_path / "logs2",
        pycache,
    )
    assert status == 0 and streams[1] == ("", "") and streams[0][1] == "" and len(streams[0][0].splitlines()) == 2, streams
    assert not (tmp_path / "rank1").exists()  # only rank 0 writes
    from safetensors.torch import load_file

    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert sorted(two) == sorted(one) and len(one) > 30  # exactly what one process writes: no temporary files
    for name in one:
        if name.endswith(".safetensors"):
            assert_same_tree(load_file(str(tmp_path / "two" / name)), load_file(str(tmp_path / "one" / name)), name)
        elif name.endswith(".json"):
            got, want = json.loads(two[name]), json.loads(one[name])
            got.pop("tensors_sha256", None), want.pop("tensors_sha256", None)  # (digests of the 1e-15-different tensors)
            assert_same_tree(got, want, name)
        else:
            assert two[name] == one[name], name
    assert json.loads(one["art/spufix.json"])["components"]  # the ground truth chose components


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["other-limit", "rank1-dies"])
def test_torchrun_failures_are_one_line_and_write_nothing(planted_env, pycache, tmp_path: Path, fault: str) -> None:
    (tmp_path / "components.json").write_text(json.dumps({"2": [1], "8": [1]}))
    worker = ["--rank1-replace", "64", "63"] if fault == "other-limit" else ["--rank1-exit-at-open", "3"]  # 3: right after the first class
    fit = [
        "spufix",
        "fit",
        "--model",
        "planted:cnn",
        "--components",
        "components.json",
        *COMMON,
        "-o",
        "out/art",
        "--save-alphas",
        "out/alphas",
    ]
    status, streams = torchrun([WORKER, *worker, *fit], planted_env, tmp_path, tmp_path / "logs", pycache)
    assert status != 0
    errors = {rank: err.splitlines() for rank, (_, err) in streams.items()}
    if fault == "other-limit":  # every rank refuses, with the same line
        assert errors[0] == errors[1] and len(errors[0]) == 1 and errors[0][0].startswith("error: rank 1 of 2 was given other"), errors
    else:  # rank 1 vanished without a word; rank 0 says why it stops
        assert errors[1] == [] and len(errors[0]) == 1 and errors[0][0].startswith("error: rank 0 of 2: "), errors
    assert all(out == "" for out, _ in streams.values())
    assert not (tmp_path / "out").exists()  # no artifact, no alphas, nothing half-written
