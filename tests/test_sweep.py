"""``spurbench sweep`` on submitit: the local executor runs jobs as separate processes and their
results equal a serial ``run``; a job killed mid-way is resubmitted by --retry-failed and resumes from
the feature cache; the debug executor runs in this process; SLURM arrays are submitted through
submitit's real sbatch path (a recording ``sbatch`` stands in for the scheduler)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from spurbench.errors import SpurbenchError
from spurbench.leaderboard.verify import verify_result
from spurbench.model_lists import load_model_list
from spurbench.results import read_result
from spurbench.settings import FeatureSettings, RunEntry, RunOptions
from spurbench.sweeps import plan_sweep
from spurbench.sweeps.executors import ExecutorSettings, run_sweep
from spurbench.sweeps.jobs import JobSpec, JobStatus, read_status, status_path, write_status
from spurbench.testing import TinyBenchmark  # registers the tiny model and benchmark
from tests.support.in_process import run_in_process

PLANTED_CLASSES = 10


def _tiny_timm(path: Path, label_space: str | None = "planted", num_classes: int = PLANTED_CLASSES) -> Path:
    """A random timm test_resnet with a head for the planted classes; its metadata names the label space."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model("test_resnet", pretrained=False, num_classes=num_classes)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(path),
        metadata={"spurbench.label_space": label_space} if label_space else None,
    )
    return path


def _model_list(path: Path, entries: list[tuple[str, Path | None]]) -> Path:
    lines = ["models:"]
    for model, checkpoint in entries:
        lines += [f"  - model: {model}", "    data: planted"] + ([f"    checkpoint: {checkpoint}"] if checkpoint else [])
    path.write_text("\n".join(lines) + "\n")
    return path


def _models_cache(trained, tmp_path: Path) -> Path:
    """A fresh cache holding only the session's trained planted models (no features of other tests)."""
    cache = tmp_path / "cache"
    shutil.copytree(trained[0] / "planted", cache / "planted")
    return cache


def _without_provenance(path: Path) -> dict:
    data = json.loads(path.read_text())
    data.pop("provenance")
    return data


def _sweep(*args: str, cwd: Path, env: dict, wait: bool = True) -> subprocess.CompletedProcess | subprocess.Popen:
    command = [sys.executable, "-m", "spurbench", "sweep", *args]
    if not wait:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_local_executor_jobs_equal_a_serial_run(trained, tmp_path, cli, monkeypatch) -> None:
    cache = _models_cache(trained, tmp_path)
    monkeypatch.setenv("SPURBENCH_CACHE", str(cache))
    tiny = _tiny_timm(tmp_path / "tiny.safetensors")
    model_list = _model_list(tmp_path / "models.yaml", [("planted:cnn", None), ("planted:resnet", None), ("timm:test_resnet", tiny)])
    common = ["--model-list", str(model_list), "--limit", "6", "--bootstrap", "50", "--batch-size", "16"]
    serial = cli("run", *common, "--no-cache", "-o", "serial", cwd=tmp_path)
    assert serial.returncode == 0, serial.stderr
    # The local executor with two "GPUs": one job per GPU at a time, each process seeing only its own.
    # (No GPU here: the jobs run on the CPU, CUDA_VISIBLE_DEVICES is what the packing sets.)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    entries = [RunEntry(e.model, e.checkpoint) for e in load_model_list(model_list)]
    options = RunOptions(named_options={"limit": 6}, features=FeatureSettings(batch_size=16), bootstrap=50, output=tmp_path / "swept")
    plan = plan_sweep(options, entries, ["planted"])
    assert (len(plan.to_run), len(plan.skipped), len(plan.invalid)) == (3, 0, 0)
    statuses = run_sweep(plan.to_run, ExecutorSettings(kind="local", output=tmp_path / "swept", gpus=[0, 1]), poll_s=0.2)
    assert [s.state for s in statuses] == ["done"] * 3, [s.error for s in statuses]

    files = sorted(p.name for p in (tmp_path / "serial").glob("*.json"))
    assert files == sorted(p.name for p in (tmp_path / "swept").glob("*.json")) and len(files) == 3
    for name in files:
        assert _without_provenance(tmp_path / "swept" / name) == _without_provenance(tmp_path / "serial" / name), name
        read_result(tmp_path / "swept" / name)  # a valid result file (verify refuses --limit runs: not the whole benchmark)
    statuses = [read_status(tmp_path / "swept", name.removesuffix(".json")) for name in files]
    assert all((s.state, s.attempts, s.executor) == ("done", 1, "local") for s in statuses)
    assert len({s.pid for s in statuses}) == 3 and os.getpid() not in {s.pid for s in statuses}  # three job processes
    assert {s.visible_gpus for s in statuses} == {"0", "1"}
    first, second, third = sorted(statuses, key=lambda s: s.started)
    shared = first if first.visible_gpus == third.visible_gpus else second  # the third waited for a GPU to be free
    assert shared.visible_gpus == third.visible_gpus and third.started >= shared.finished

    again = cli("sweep", *common, "--executor", "local", "-o", "swept", cwd=tmp_path)
    assert again.returncode == 0 and "plan: 0 to run, 3 to skip, 0 invalid" in again.stdout  # skipped by config hash


@pytest.mark.slow
def test_killed_job_is_retried_and_resumes_from_the_feature_cache(tmp_path) -> None:
    cache = tmp_path / "cache"
    tiny = _tiny_timm(tmp_path / "tiny.safetensors")
    model_list = _model_list(tmp_path / "models.yaml", [("timm:test_resnet", tiny)])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SPURBENCH_CACHE": str(cache)}
    args = ["--model-list", str(model_list), "--limit", "10", "--bootstrap", "0", "--batch-size", "2", "--executor", "local", "-o", "out"]
    driver = _sweep(*args, cwd=tmp_path, env=env, wait=False)
    key = "planted__timm_test_resnet"
    deadline = time.monotonic() + 300
    shards: list[Path] = []
    while time.monotonic() < deadline:
        shards = sorted(cache.glob("features/*/shard-*.safetensors"))
        status = read_status(tmp_path / "out", key)
        if len(shards) >= 2 and status is not None and status.pid:
            break
        time.sleep(0.05)
    assert len(shards) >= 2, "the job never wrote two feature shards"
    os.kill(status.pid, signal.SIGKILL)  # mid-way: 200 images in 13 shards of 16
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 1, out + err
    assert "job ended without a result" in out and "--retry-failed" in out
    assert not (tmp_path / "out" / f"{key}.json").exists()
    assert read_status(tmp_path / "out", key).state == "failed"

    before = {p.name: p.stat().st_ino for p in sorted(cache.glob("features/*/shard-*.safetensors"))}
    total = 13
    assert 2 <= len(before) < total
    retried = run_in_process(["sweep", "--retry-failed", "--executor", "local", "-o", "out"], tmp_path, {"SPURBENCH_CACHE": str(cache)})
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "plan: 1 failed job(s) to resubmit" in retried.stdout
    after = {p.name: p.stat().st_ino for p in cache.glob("features/*/shard-*.safetensors")}
    assert len(after) == total
    assert all(after[name] == inode for name, inode in before.items())  # finished shards were not forwarded again
    assert read_result(tmp_path / "out" / f"{key}.json").benchmark.num_positives == 100
    status = read_status(tmp_path / "out", key)
    assert (status.state, status.attempts) == ("done", 2)


@pytest.mark.slow
def test_debug_executor_runs_in_process_and_lists_failures(trained, tmp_path, cli, monkeypatch) -> None:
    monkeypatch.setenv("SPURBENCH_CACHE", str(_models_cache(trained, tmp_path)))
    imagenet_head = _tiny_timm(tmp_path / "in1k.safetensors", label_space=None, num_classes=1000)  # no planted classes
    model_list = _model_list(
        tmp_path / "models.yaml", [("planted:cnn", None), ("timm:test_resnet", imagenet_head), ("timm:resnet5O", None)]
    )
    args = ["--model-list", str(model_list), "--bootstrap", "20", "--executor", "debug", "-o", "out"]
    first = cli("sweep", *args, "--board", "board", cwd=tmp_path)
    assert first.returncode == 1
    assert "plan: 2 to run, 0 to skip, 1 invalid" in first.stdout and "invalid timm:resnet5O on planted: unknown timm model" in first.stdout
    failed = read_status(tmp_path / "out", "planted__timm_test_resnet")
    assert failed.state == "failed" and "label space" in failed.error and failed.pid == os.getpid()  # in this process
    assert "failed timm:test_resnet on planted" in first.stdout and "1 job(s) failed" in first.stdout
    verify_result(tmp_path / "out" / "planted__planted_cnn.json")
    # the board, built once by the sweep after its last job, from the results that exist
    assert first.stdout.index("failed timm:test_resnet") < first.stdout.index("board: ")
    assert "planted:cnn" in (tmp_path / "board" / "README.md").read_text() and (tmp_path / "board" / "site" / "index.html").is_file()

    plan = cli("sweep", *args, "--dry-run", cwd=tmp_path)
    assert plan.returncode == 0 and "plan: 1 to run, 1 to skip, 1 invalid" in plan.stdout
    retry = cli("sweep", "--retry-failed", "--executor", "debug", "-o", "out", cwd=tmp_path)
    assert (
        retry.returncode == 1
        and "plan: 1 failed job(s) to resubmit" in retry.stdout
        and "retry timm:test_resnet on planted" in retry.stdout
    )
    assert read_status(tmp_path / "out", "planted__timm_test_resnet").attempts == 2
    assert read_status(tmp_path / "out", "planted__planted_cnn").attempts == 1  # only the failed job ran again


def _fake_slurm(bin_dir: Path, record: Path) -> dict:
    """``sbatch`` that records the script it is given and answers like SLURM; ``srun`` so submitit
    believes it is on a cluster; ``sacct`` answering (accounting works) with no jobs. Only for what the
    one-node cluster of tests/test_sweep_slurm.py cannot show: the lines of a GPU cluster's script."""
    bin_dir.mkdir(exist_ok=True)
    record.mkdir(exist_ok=True)
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {record}/script-$$.sh\necho "Submitted batch job 4242"\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sacct").write_text("#!/bin/sh\nexit 0\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_slurm_array_is_submitted_with_its_options(tmp_path, cli) -> None:
    model_list = _model_list(tmp_path / "models.yaml", [("planted:cnn", None), ("planted:resnet", None)])
    env = _fake_slurm(tmp_path / "bin", tmp_path / "sbatch")
    args = ["--model-list", str(model_list), "--executor", "slurm", "--device", "cuda", "-o", "out"]
    submitted = cli(
        "sweep",
        *args,
        "--no-wait",
        "--partition",
        "gpu",
        "--time",
        "90",
        "--mem",
        "32",
        "--constraint",
        "a100",
        "--cpus-per-job",
        "8",
        "--slurm-extra",
        "account=vision",
        "--slurm-extra",
        "qos=high",
        "--max-parallel",
        "2",
        "--board",
        "board",
        cwd=tmp_path,
        env=env,
    )
    assert submitted.returncode == 0, submitted.stderr
    assert "board not built: --no-wait" in submitted.stdout and not (tmp_path / "board").exists()
    scripts = list((tmp_path / "sbatch").glob("*.sh"))
    assert len(scripts) == 1  # one array, not one sbatch per job
    text = scripts[0].read_text()
    for line in (
        "--array=0-1%2",
        "--partition=gpu",
        "--time=90",
        "--mem=32768MB",
        "--constraint=a100",
        "--gpus-per-node=1",
        "--cpus-per-task=8",
        "--account=vision",
        "--qos=high",
        "--signal=USR2@120",
    ):
        assert f"#SBATCH {line}\n" in text, line
    statuses = {key: read_status(tmp_path / "out", key) for key in ("planted__planted_cnn", "planted__planted_resnet")}
    assert {s.job_id for s in statuses.values()} == {"4242_0", "4242_1"} and {s.state for s in statuses.values()} == {"queued"}
    assert all(s.spec.settings.features.device == "cuda" for s in statuses.values())
    # (what SLURM then does with the array, requeues, cancels and lost jobs included, is tested against a
    # real one-node cluster in tests/test_sweep_slurm.py)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--executor", "pbs"], "unknown executor 'pbs'"),
        (["--executor", "local", "--partition", "gpu"], "are SLURM options"),
        (["--executor", "debug", "--gpus", "2", "--device", "cuda"], "this machine has 0 CUDA device(s)"),
        (["--executor", "local", "--gpus", "0", "--device", "cuda"], "--gpus 0: name at least one GPU"),
        (["--executor", "local", "--gpus", "0,x"], "--gpus '0,x'"),
        (["--executor", "local", "--gpus", "2"], "use --device cuda"),
        (["--executor", "local", "--no-wait"], "--no-wait is for --executor slurm"),
        (["--executor", "slurm", "--slurm-extra", "account"], "--slurm-extra 'account': expected KEY=VALUE"),
        (["--executor", "slurm"], "srun"),
        (["--executor", "local", "--benchmark", "nope"], "unknown benchmark"),
        (["--executor", "local", "--time", "0"], "--time"),
        (["--executor", "slurm", "--time", "1"], "--time 1: too short for SLURM"),
    ],
)
def test_bad_sweep_input_is_one_line_and_exit_2(args, message, tmp_path, cli) -> None:
    model_list = _model_list(tmp_path / "models.yaml", [("planted:cnn", None)])
    no_slurm = {"PATH": str(tmp_path)} if message == "srun" else None  # a machine without SLURM's commands
    result = cli("sweep", "--model-list", str(model_list), "-o", "out", *args, cwd=tmp_path, env=no_slurm)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / ".sweep" / "jobs").exists()  # nothing was queued


def test_force_evaluates_again_and_one_driver_per_output(tmp_path, cli) -> None:
    tiny = _tiny_timm(tmp_path / "tiny.safetensors")
    model_list = _model_list(tmp_path / "models.yaml", [("timm:test_resnet", tiny)])
    args = ["--model-list", str(model_list), "--limit", "2", "--bootstrap", "0", "--executor", "debug", "-o", "out"]
    assert cli("sweep", *args, cwd=tmp_path).returncode == 0
    result = tmp_path / "out" / "planted__timm_test_resnet.json"
    first = read_result(result).provenance.date, result.stat().st_mtime_ns
    assert "plan: 0 to run, 1 to skip" in cli("sweep", *args, cwd=tmp_path).stdout
    forced = cli("sweep", *args, "--force", "--no-cache", cwd=tmp_path)
    assert forced.returncode == 0 and "plan: 1 to run, 0 to skip" in forced.stdout
    assert (read_result(result).provenance.date, result.stat().st_mtime_ns) != first  # a new result, not the old one
    assert read_status(tmp_path / "out", "planted__timm_test_resnet").attempts == 2

    import fcntl

    with open(tmp_path / "out" / ".sweep" / "driver.lock", "a") as handle:  # another sweep drives this folder
        fcntl.flock(handle, fcntl.LOCK_EX)
        busy = cli("sweep", *args, "--force", cwd=tmp_path)
    assert busy.returncode == 2 and "another spurbench sweep is running jobs into" in busy.stderr


def test_sweep_needs_models(tmp_path, cli) -> None:
    result = cli("sweep", "--executor", "debug", "-o", "out", cwd=tmp_path)
    assert result.returncode == 2 and "a sweep needs models" in result.stderr


def test_a_preempted_job_requeues_the_same_call() -> None:
    """On preemption or at its time limit submitit asks the job for its checkpoint and requeues what it
    returns: the same job and spec, which resumes from the feature cache (see the kill-and-retry test)."""
    from spurbench.sweeps.entry import SweepJob

    job = SweepJob("slurm")
    spec = {"key": "planted__planted_cnn", "model": "planted:cnn"}
    requeued = job.checkpoint(spec)
    assert requeued.function is job and requeued.args == (spec,) and requeued.kwargs == {}


def _tiny_job(output: Path, **options) -> JobSpec:
    plan = plan_sweep(RunOptions(output=output, bootstrap=0, named_options=options), [RunEntry("tiny:net")], ["tiny"])
    assert len(plan.to_run) == 1, plan
    return plan.to_run[0]


def test_a_job_carries_settings_that_evaluate_accepts(tmp_path) -> None:
    """The plan builds each job's RunSettings (so an entry evaluate would refuse is invalid at planning),
    the jobs never show progress bars, and a record whose settings do not hold is refused where read."""
    spec = _tiny_job(tmp_path / "out", per_role=3)
    assert (
        spec.settings.benchmark == TinyBenchmark.name
        and spec.settings.output == (tmp_path / "out").resolve()
        and spec.settings.features.progress is False
    )
    assert spec.config_hash == spec.settings.config_hash(None) and spec.result_file == str(
        (tmp_path / "out" / "tiny__tiny_net.json").resolve()
    )
    assert JobSpec.model_validate_json(spec.model_dump_json()) == spec
    plan = plan_sweep(RunOptions(output=tmp_path / "out"), [RunEntry("tiny:net"), RunEntry("planted:cnn")], ["spurious-imagenet"])
    assert [(bad.model, "label space" in bad.reason) for bad in plan.invalid] == [
        ("planted:cnn", True)
    ]  # declared: refused before it trains
    raw = json.loads(spec.model_dump_json())
    raw["settings"]["options"] = {"per_rol": 3}
    with pytest.raises(SpurbenchError, match="benchmark 'tiny' has no option 'per_rol'"):
        JobSpec.model_validate(raw)


def test_skip_reasons_are_typed(tmp_path) -> None:
    spec = _tiny_job(tmp_path / "out")
    write_status(JobStatus(spec=spec, state="running", executor="slurm", job_id="77_0"))
    plan = plan_sweep(
        RunOptions(output=tmp_path / "out", bootstrap=0), [RunEntry("tiny:net")], ["tiny"], liveness=lambda status: "in flight"
    )
    assert plan.to_run == [] and [(s.reason, s.running.job_id) for s in plan.in_flight()] == [("in flight", "77_0")]
    plan = plan_sweep(RunOptions(output=tmp_path / "out", bootstrap=0), [RunEntry("tiny:net")], ["tiny"], liveness=lambda status: "ended")
    assert [s.key for s in plan.to_run] == [spec.key] and plan.skipped == []
    # a job whose executor cannot be asked now may still run: skipped, except under --force
    unknown = plan_sweep(
        RunOptions(output=tmp_path / "out", bootstrap=0), [RunEntry("tiny:net")], ["tiny"], liveness=lambda status: "unknown"
    )
    assert unknown.to_run == [] and [s.reason for s in unknown.in_flight()] == ["unknown"]
    forced = RunOptions(output=tmp_path / "out", bootstrap=0, force=True)
    assert [s.key for s in plan_sweep(forced, [RunEntry("tiny:net")], ["tiny"], liveness=lambda status: "unknown").to_run] == [spec.key]
    assert plan_sweep(forced, [RunEntry("tiny:net")], ["tiny"], liveness=lambda status: "in flight").to_run == []


def test_a_record_of_the_untyped_job_format_is_refused_in_one_line(tmp_path, cli) -> None:
    """A job record written before jobs carried RunSettings (``spec.run``: a dict of keyword options)
    cannot be retried: --retry-failed names it in one warning line and says to plan the sweep again."""
    output = tmp_path / "out"
    spec = _tiny_job(output)
    old = {
        "spec": {
            "key": spec.key,
            "model": "tiny:net",
            "checkpoint": None,
            "temperature": 1.0,
            "spufix_temperature": None,
            "benchmark": "tiny",
            "options": {},
            "run": {"protocol": "paper", "batch_size": 64, "device": "cpu", "use_cache": True, "bootstrap": 0},
            "spufix": None,
            "output": str(output.resolve()),
            "result_file": spec.result_file,
            "config_hash": spec.config_hash,
            "force": False,
        },
        "state": "failed",
        "attempts": 1,
        "executor": "debug",
        "error": "error: something",
    }
    path = status_path(output, spec.key)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(old))
    proc = cli("sweep", "--retry-failed", "--executor", "debug", "-o", "out", cwd=tmp_path)
    assert proc.returncode == 1 and "plan: 0 failed job(s) to resubmit from out, 1 job record(s) unusable" in proc.stdout, (
        proc.stdout + proc.stderr
    )
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"{spec.key}.json: a job record of an earlier spurbench" in warnings[0] and "plan the sweep again" in warnings[0]
    assert not (output / f"{spec.key}.json").exists()


def test_a_job_whose_settings_do_not_hold_where_it_runs_says_why_in_its_log(tmp_path, capsys) -> None:
    """A job checks its settings again in its own process (a checkpoint the node does not have): one
    line in its log, which the driver records as the job's failure (its log's last line)."""
    from spurbench.sweeps.entry import SweepJob

    raw = json.loads(_tiny_job(tmp_path / "out").model_dump_json())
    raw["settings"]["checkpoint"] = str(tmp_path / "gone.safetensors")
    assert SweepJob("debug")(raw) is None
    assert capsys.readouterr().err.strip() == f"error: checkpoint '{tmp_path / 'gone.safetensors'}' does not exist"


@pytest.mark.skipif(not hasattr(signal, "SIGUSR2"), reason="no USR2 on this platform")
def test_a_time_limit_signal_after_a_jobs_work_is_over_is_ignored(tmp_path) -> None:
    """A job that ends within --signal's window before its limit: the USR2 that comes once its work is
    over must neither checkpoint and requeue it (submitit's handler) nor kill it (the default action
    Python's shutdown restores; on CI srun reported "task 0: User defined signal 2"). A debug job runs
    in the driver's own process, whose handlers it leaves alone."""
    from spurbench.sweeps.entry import SweepJob

    raw = json.loads(_tiny_job(tmp_path / "out").model_dump_json())
    previous = signal.getsignal(signal.SIGUSR2)
    caught: list[int] = []
    try:
        for executor, ignored in (("debug", False), ("slurm", True)):
            signal.signal(signal.SIGUSR2, lambda signum, frame: caught.append(signum))  # as submitit's handler
            caught.clear()
            assert SweepJob(executor)(raw) is not None
            os.kill(os.getpid(), signal.SIGUSR2)
            time.sleep(0.05)  # Python runs a handler at its next bytecode boundary
            assert (caught == []) is ignored, executor
            assert (signal.getsignal(signal.SIGUSR2) == signal.SIG_IGN) is ignored, executor
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_a_jobs_process_sets_submitits_handlers_before_torch_loads(tmp_path) -> None:
    """What a job's process unpickles (submitit then sets its USR2 and TERM handlers) imports no torch:
    SLURM's time-limit signal may come within seconds of the start, and USR2's default action kills."""
    import cloudpickle

    from spurbench.sweeps.entry import SweepJob

    (tmp_path / "job.pkl").write_bytes(cloudpickle.dumps(SweepJob("slurm")))
    probe = "import pickle, sys; pickle.loads(open(sys.argv[1], 'rb').read()); print(sorted(m for m in ('torch', 'numpy', 'timm') if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "job.pkl")], capture_output=True, text=True, timeout=120, check=True
    )
    assert loaded.stdout.strip() == "[]"


def test_retry_takes_failed_and_ended_jobs_only(tmp_path) -> None:
    """--retry-failed resubmits a failed job and a queued/running one whose executor says it ended; a
    job recorded done is not resubmitted (its result is the user's to keep or delete), nor one in flight."""
    from spurbench.sweeps import failed_jobs

    spec = _tiny_job(tmp_path / "out")
    for state, liveness, retried in [
        ("failed", "in flight", True),
        ("running", "ended", True),
        ("running", "in flight", False),
        ("running", "unknown", False),
        ("done", "ended", False),
    ]:
        write_status(JobStatus(spec=spec, state=state, executor="slurm", job_id="77_0"))
        found, unusable = failed_jobs(tmp_path / "out", lambda status, answer=liveness: answer)
        assert ([s.spec.key for s in found] == [spec.key]) is retried and unusable == [], (state, liveness)
