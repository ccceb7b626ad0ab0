"""``spurbench sweep --executor slurm`` against a real one-node SLURM cluster (Debian's slurm-wlm,
munge, slurmdbd on a private MariaDB), started by ``.ci/slurm-cluster``: the array and its ``%N``,
results equal to a serial ``run``, a real ``scontrol requeue``, a real time limit, ``scancel`` then
``--retry-failed``, two drivers at once, a lost job, and a cluster without accounting.

A machine without SLURM skips these tests (``.ci/slurm-cluster install`` installs it, as ``.ci/run``
does). The array's jobs run the planted benchmark on the CPU. The interrupted jobs must outlast a
requeue, a time limit and a cancel: they run the test plugin's shapes benchmark (tests/plugin_dist,
on the jobs' PYTHONPATH) from slow storage, each image taking a fixed time to open in the loader
worker while using no CPU, so that minutes of job spend no core the other tests need; their features
are cached in shards of 64 images.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from spurbench.results import read_result
from spurbench.settings import RunEntry, RunOptions
from spurbench.sweeps import plan_sweep
from spurbench.sweeps.jobs import JobStatus, read_status, write_status
from tests.support.in_process import run_in_process
from tests.support.plugin_dist import PLUGIN_DIST, plugin_installed

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / ".ci" / "slurm-cluster"


def _long(per_role: int, seconds_per_image: float) -> list[str]:
    """The shapes benchmark with ``per_role`` images per class and role (6 * per_role in all), each taking
    ``seconds_per_image`` to open in a forked loader worker; cached in shards of 64 images."""
    options = ["-O", f"per_role={per_role}", "-O", f"seconds_per_image={seconds_per_image}"]
    return ["-b", "shapes", *options, "--batch-size", "8", "--num-workers", "1", "--bootstrap", "0"]


# A requeued or cancelled job gets TERM, which submitit lets pass, and KILL KillWait seconds later (5 s
# on the test cluster). The cancelled job: 3 shards, 6.4 s each, so the two left outlast that. The
# limited job: a 2-minute limit signals 30-60 s after a run starts; 9 shards of 10.9 s, requeued after
# the first, leave 87 s for the run after the requeue, which therefore meets the signal (planted-salient
# under noise levels did this before, computing: 2 s of one CPU per level, and 40 levels did not always
# outlast the signal on an idle core; waiting does not depend on the core's speed).
LONG = _long(32, 0.1)
LIMITED = _long(96, 0.17)
JOB_KEY = "shapes__shapesnet_{arch}"  # (the plugin's model loads any name: "tiny" and "other" are two jobs)

pytestmark = [pytest.mark.slow, pytest.mark.slurm]


def _cluster_env(state_dir: Path | None = None, *args: str) -> dict[str, str]:
    """Start (idempotently) the cluster whose state lives in ``state_dir`` (None: the default) and
    return the environment its clients need."""
    if shutil.which("slurmctld") is None or shutil.which("sbatch") is None:
        pytest.skip("no SLURM on this machine: `.ci/slurm-cluster install` (Debian) installs one, as .ci/run does")
    env = {**os.environ} | ({"SPURBENCH_SLURM_DIR": str(state_dir)} if state_dir else {})
    started = subprocess.run([str(CLUSTER), "start", *args], env=env, capture_output=True, text=True, timeout=240)
    assert started.returncode == 0, started.stdout + started.stderr  # installed but not starting is a failure, not a skip
    printed = subprocess.run([str(CLUSTER), "env"], env=env, capture_output=True, text=True, timeout=30, check=True).stdout
    conf = printed.strip().removeprefix("export SLURM_CONF=").strip("'\"")
    return {"SLURM_CONF": conf}


@pytest.fixture(scope="module")
def cluster() -> dict[str, str]:
    return _cluster_env()


def _env(cluster: dict[str, str], cache: Path) -> dict[str, str]:
    # (the jobs inherit this environment through sbatch: the same cache, offline, the test plugin installed)
    path = os.pathsep.join(p for p in (str(PLUGIN_DIST), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, **cluster, "SPURBENCH_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "PYTHONPATH": path}


def _driver(args: list[str], cwd: Path, env: dict[str, str], log: str = "driver.log") -> subprocess.Popen:
    handle = open(cwd / log, "w")  # noqa: SIM115 (the driver process writes it until it ends)
    return subprocess.Popen([sys.executable, "-m", "spurbench", "sweep", *args], cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT)


def _sweep(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "spurbench", "sweep", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _slurm(command: list[str], env: dict[str, str]) -> str:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=True).stdout


def _wait(condition, timeout: float, what: str, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _running(output: Path, key: str) -> JobStatus | None:
    status = read_status(output, key)
    return status if status is not None and status.state == "running" and status.job_id else None


def _shards(cache: Path) -> dict[str, tuple[int, int]]:
    """Every finished feature shard: name -> (inode, mtime_ns); a rewritten shard changes both."""
    return {str(p.relative_to(cache)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache.glob("features/*/shard-*.safetensors")}


def _ended(driver: subprocess.Popen, timeout: float) -> int:
    try:
        return driver.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        driver.kill()
        raise AssertionError(f"the driver did not end within {timeout} s") from None


def _without_provenance(path: Path) -> dict:
    data = json.loads(path.read_text())
    data.pop("provenance")
    return data


def test_array_runs_at_most_n_at_a_time_and_equals_a_serial_run(cluster, tmp_path, cli) -> None:
    env = _env(cluster, tmp_path / "cache")
    common = ["-m", "planted:cnn", "-m", "planted:resnet", "-b", "planted", "--bootstrap", "50"]
    driver = _driver([*common, "--executor", "slurm", "--max-parallel", "1", "-o", "swept", "--board", "board"], tmp_path, env)
    first = _wait(lambda: read_status(tmp_path / "swept", "planted__planted_cnn"), 60, "the job records")
    array = _wait(lambda: (read_status(tmp_path / "swept", "planted__planted_cnn") or first).job_id, 60, "the array's id").split("_")[0]
    seen: list[list[tuple[str, str]]] = []
    while driver.poll() is None:  # what squeue says about the array while it runs
        lines = _slurm(["squeue", "--noheader", "--array", "--me", "--format=%i|%T|%r"], env).split()
        seen.append([tuple(line.split("|")[1:]) for line in lines if line.startswith(f"{array}_")])  # type: ignore[misc]
        time.sleep(1)
    assert driver.returncode == 0, (tmp_path / "driver.log").read_text()
    assert max(sum(state == "RUNNING" for state, _ in snapshot) for snapshot in seen) == 1  # %1: one task at a time
    assert any(("PENDING", "JobArrayTaskLimit") in snapshot for snapshot in seen)  # the other held back by the array's limit
    job_ids = {read_status(tmp_path / "swept", key).job_id for key in ("planted__planted_cnn", "planted__planted_resnet")}
    assert {job_id.split("_")[0] for job_id in job_ids} == {array} and len(job_ids) == 2  # two tasks of one array

    serial = cli("run", *common, "--no-cache", "-o", "serial", cwd=tmp_path)
    assert serial.returncode == 0, serial.stderr
    names = sorted(p.name for p in (tmp_path / "serial").glob("*.json"))
    assert len(names) == 2 and names == sorted(p.name for p in (tmp_path / "swept").glob("*.json"))
    for name in names:
        assert _without_provenance(tmp_path / "swept" / name) == _without_provenance(tmp_path / "serial" / name), name
    assert "planted:resnet" in (tmp_path / "board" / "README.md").read_text()


@pytest.fixture(scope="module", autouse=True)
def test_plugin():
    """The test plugin installed here too, for the module's length: a job's record names its benchmark,
    and a record whose settings name no known benchmark is not read."""
    with plugin_installed():
        yield


@pytest.fixture(scope="module")
def interrupted(cluster, tmp_path_factory):
    """Two drivers at once, each with one long job. The first job runs under a 2-minute limit: once it
    has finished a feature shard it is requeued with ``scontrol requeue`` (SLURM sends TERM to the whole
    step, loader workers included); run again, it meets the limit, and SLURM's USR2 makes submitit
    checkpoint and requeue it. The second job is cancelled with ``scancel`` once it has finished a shard."""
    root = tmp_path_factory.mktemp("interrupted")
    limited, cancelled = root / "limited", root / "cancelled"
    for folder in (limited, cancelled):
        folder.mkdir()
    limit_env, cancel_env = _env(cluster, limited / "cache"), _env(cluster, cancelled / "cache")
    limit_driver = _driver(["-m", "shapesnet:tiny", *LIMITED, "--executor", "slurm", "--time", "2", "-o", "out"], limited, limit_env)
    cancel_driver = _driver(["-m", "shapesnet:other", *LONG, "--executor", "slurm", "-o", "out"], cancelled, cancel_env)
    limit_key, cancel_key = JOB_KEY.format(arch="tiny"), JOB_KEY.format(arch="other")

    # each job is interrupted once it has finished its first shard, whichever gets there first
    waiting = {"requeue": (limited, limit_key, limit_env), "scancel": (cancelled, cancel_key, cancel_env)}
    done: dict[str, tuple[JobStatus, dict[str, tuple[int, int]], float]] = {}
    deadline = time.monotonic() + 240
    while waiting and time.monotonic() < deadline:
        for action, (folder, key, env) in list(waiting.items()):
            job = _running(folder / "out", key)
            shards = _shards(folder / "cache")
            if job is not None and shards:
                _slurm(["scontrol", "requeue", job.job_id] if action == "requeue" else ["scancel", job.job_id], env)
                done[action] = (job, shards, time.time())
                del waiting[action]
        time.sleep(0.2)
    assert not waiting, f"timed out waiting for a finished shard before: {', '.join(waiting)}"
    job, before_requeue, _ = done["requeue"]
    _, before_cancel, cancelled_at = done["scancel"]
    # while the requeued job waits and runs again, a third driver into its folder: the same job is in
    # flight, so not submitted again; another job would need a second driver there, which is refused
    in_process = {key: limit_env[key] for key in ("SLURM_CONF", "SPURBENCH_CACHE")}
    same = run_in_process(
        ["sweep", "-m", "shapesnet:tiny", *LIMITED, "--executor", "slurm", "--time", "2", "-o", "out"], limited, in_process
    )
    third = run_in_process(
        ["sweep", "-m", "shapesnet:other", *LIMITED, "--executor", "slurm", "--time", "2", "-o", "out"], limited, in_process
    )
    cancel_code = _ended(cancel_driver, 120)
    noticed_after = (cancelled / "driver.log").stat().st_mtime - cancelled_at  # its last line: the closing table
    return SimpleNamespace(
        limited=limited,
        cancelled=cancelled,
        cancel_env=cancel_env,
        same=same,
        third=third,
        job_id=job.job_id,
        limit_code=_ended(limit_driver, 420),
        before_requeue=before_requeue,
        before_cancel=before_cancel,
        cancel_code=cancel_code,
        noticed_after=noticed_after,
    )


def test_a_second_driver_into_the_same_folder_is_refused(interrupted) -> None:
    same = interrupted.same
    assert same.returncode == 0 and "plan: 0 to run, 1 to skip" in same.stdout, same.stdout + same.stderr
    assert f"in flight (slurm job {interrupted.job_id})" in same.stdout
    third = interrupted.third
    assert third.returncode == 2 and "another spurbench sweep is running jobs into" in third.stderr, third.stdout + third.stderr
    assert len(third.stderr.strip().splitlines()) == 1


def _limited_job(interrupted) -> tuple[JobStatus, str]:
    folder = interrupted.limited
    log = (folder / "driver.log").read_text()
    assert interrupted.limit_code == 0, log
    assert "failed" not in log.split("sweep:")[0]  # no failure reported on the way
    status = read_status(folder / "out", JOB_KEY.format(arch="tiny"))
    assert status.state == "done" and status.error is None, status
    return status, Path(status.log).read_text() + Path(status.log).with_suffix(".out").read_text()


def test_scontrol_requeue_of_a_running_job_finishes_without_a_failure(interrupted) -> None:
    _, job_log = _limited_job(interrupted)
    assert "Bypassing signal SIGTERM" in job_log  # the requeue's TERM reached the job (submitit lets it pass)
    after = _shards(interrupted.limited / "cache")
    assert len(after) > len(interrupted.before_requeue)
    for name, identity in interrupted.before_requeue.items():
        assert after[name] == identity, f"{name} was written again after the requeue"
    assert "DataLoader worker" not in job_log and "killed by signal" not in job_log


def test_a_time_limit_requeues_the_job_through_submitits_checkpoint(interrupted) -> None:
    status, job_log = _limited_job(interrupted)
    assert "this job is timed-out" in job_log  # submitit's handler, set in time
    # Runs: the one requeued by scontrol, then each one the time limit ended, then the last. Each run
    # the limit ended checkpointed once, in its main process (a loader worker that inherited the
    # handler caught the signal too, and the two checkpoints raced: "temporary saved file").
    err = Path(status.log).read_text()
    assert err.count("Caught signal SIGUSR2") == status.attempts - 2 >= 1, err
    assert "Traceback" not in job_log and "temporary saved file" not in job_log and "No file was saved" not in job_log
    assert "User defined signal 2" not in job_log  # not killed by USR2's default action
    read_result(interrupted.limited / "out" / f"{JOB_KEY.format(arch='tiny')}.json")  # a valid result file


def test_scancel_is_noticed_and_said_then_retry_failed_finishes(interrupted, cli) -> None:
    folder, key = interrupted.cancelled, JOB_KEY.format(arch="other")
    log = (folder / "driver.log").read_text()
    assert interrupted.cancel_code == 1 and interrupted.noticed_after < 35, (interrupted.noticed_after, log)
    status = read_status(folder / "out", key)
    assert status.state == "failed" and status.error.startswith("cancelled in SLURM"), status.error
    assert "DataLoader worker" not in status.error

    env = {k: v for k, v in interrupted.cancel_env.items() if k in ("SLURM_CONF", "SPURBENCH_CACHE", "PYTHONPATH")}
    retry = cli("sweep", "--retry-failed", "--executor", "slurm", "-o", "out", cwd=folder, env=env)
    assert retry.returncode == 0 and "plan: 1 failed job(s) to resubmit" in retry.stdout, retry.stdout + retry.stderr
    status = read_status(folder / "out", key)
    assert (status.state, status.attempts) == ("done", 2)
    after = _shards(folder / "cache")
    assert all(after[name] == identity for name, identity in interrupted.before_cancel.items())  # resumed from the cache


def _lost_record(output: Path) -> str:
    """A record of a job this cluster never had (as after a restart with fresh state, which numbers jobs from 1)."""
    plan = plan_sweep(RunOptions(output=output, bootstrap=0), [RunEntry("planted:cnn")], ["planted"])
    spec = plan.to_run[0]
    write_status(JobStatus(spec=spec, state="running", executor="slurm", job_id="987654_0"))
    return spec.key


def test_a_job_neither_squeue_nor_sacct_knows_is_lost_not_in_flight(cluster, tmp_path, cli) -> None:
    _lost_record(tmp_path / "out")
    args = ["-m", "planted:cnn", "-b", "planted", "--bootstrap", "0", "--executor", "slurm", "-o", "out"]
    plan = cli("sweep", *args, "--dry-run", cwd=tmp_path, env=cluster)
    assert plan.returncode == 0 and "plan: 1 to run, 0 to skip" in plan.stdout, plan.stdout + plan.stderr
    retry = cli("sweep", "--retry-failed", "--executor", "slurm", "-o", "out", "--dry-run", cwd=tmp_path, env=cluster)
    assert retry.returncode == 0 and "plan: 1 failed job(s) to resubmit" in retry.stdout, retry.stdout + retry.stderr


@pytest.fixture(scope="module")
def cluster_without_accounting(tmp_path_factory):
    state = Path("/tmp/spurbench-slurm-noacct")
    env = _cluster_env(state, "--no-accounting")
    yield env
    subprocess.run([str(CLUSTER), "stop"], env={**os.environ, "SPURBENCH_SLURM_DIR": str(state)}, capture_output=True, timeout=120)


def test_a_cluster_without_accounting_is_refused_in_one_line(cluster_without_accounting, tmp_path) -> None:
    env = _env(cluster_without_accounting, tmp_path / "cache")
    result = _sweep(["-m", "planted:cnn", "-b", "planted", "--executor", "slurm", "-o", "out"], tmp_path, env, timeout=120)
    assert result.returncode == 2 and "slurmdbd" in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert _slurm(["squeue", "--noheader", "--me"], env).strip() == ""  # nothing was submitted
    assert not list((tmp_path / "out" / ".sweep" / "jobs").glob("*.json")) if (tmp_path / "out" / ".sweep" / "jobs").exists() else True


def test_force_goes_past_a_record_slurm_cannot_answer_for(tmp_path, cli) -> None:
    """SLURM unreachable (its controller down): a recorded job may still run, so it is skipped as maybe
    in flight; --force submits it again."""
    if shutil.which("squeue") is None:
        pytest.skip("no SLURM on this machine")
    conf = tmp_path / "slurm.conf"  # a cluster whose controller does not run
    conf.write_text(
        "ClusterName=gone\nSlurmctldHost=localhost\nSlurmctldPort=1\nMessageTimeout=1\nNodeName=localhost CPUs=1\nPartitionName=p Nodes=ALL Default=YES\n"
    )
    _lost_record(tmp_path / "out")
    args = ["-m", "planted:cnn", "-b", "planted", "--bootstrap", "0", "--executor", "slurm", "-o", "out", "--dry-run"]
    plan = cli("sweep", *args, cwd=tmp_path, env={"SLURM_CONF": str(conf)})
    assert plan.returncode == 0 and "plan: 0 to run, 1 to skip" in plan.stdout and "may be in flight" in plan.stdout, (
        plan.stdout + plan.stderr
    )
    forced = cli("sweep", *args, "--force", cwd=tmp_path, env={"SLURM_CONF": str(conf)})
    assert forced.returncode == 0 and "plan: 1 to run, 0 to skip" in forced.stdout, forced.stdout + forced.stderr
