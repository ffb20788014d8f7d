"""The tiny example pipeline through a real single-node SLURM on localhost, with profiles/slurm.

The cluster (munged, slurmctld, slurmd from the Debian packages) is started by workflow_tests/slurm/start.sh
in a temporary folder and stopped by stop.sh through its PID files, also when the test fails.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import mudata as md
import numpy as np
import pytest
import scipy.sparse as sp

from conftest import TINY_CONFIG, snakemake

REPO = Path(__file__).resolve().parents[1]
HELPERS = REPO / "workflow_tests" / "slurm"
PACKAGES = "slurmctld slurmd slurm-client munge"
BINARIES = ["munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo"]
DAEMONS = ["munged", "slurmctld", "slurmd"]
PARTITION = "scmvptest"


def ensure_slurm_installed():
    if all(shutil.which(b) for b in BINARIES):
        return
    proc = subprocess.run([str(HELPERS / "install.sh")], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 or not all(shutil.which(b) for b in BINARIES):
        pytest.fail(f"SLURM is not installed and install.sh could not install it; as root run "
                    f"`apt-get install -y {PACKAGES}` (Debian/Ubuntu):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


class LocalSlurm:
    """A throw-away SLURM whose every file lives under `root`."""

    def __init__(self, root: Path, partition: str = PARTITION):
        self.root = Path(root)
        self.partition = partition
        self.conf = self.root / "slurm.conf"
        self.started_pids: dict[str, int] = {}

    def start(self):
        proc = subprocess.run([str(HELPERS / "start.sh"), str(self.root), self.partition],
                              capture_output=True, text=True, timeout=120)
        self.started_pids = self.pids()
        if proc.returncode != 0:
            raise RuntimeError(f"start.sh failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")

    def pids(self) -> dict[str, int]:
        found = {}
        for daemon in DAEMONS:
            pidfile = self.root / f"{daemon}.pid"
            if pidfile.exists() and pidfile.read_text().strip():
                found[daemon] = int(pidfile.read_text())
        return found

    def stop(self):
        """Stop the daemons by PID file; raise if one survives."""
        pids = {**self.started_pids, **self.pids()}
        proc = subprocess.run([str(HELPERS / "stop.sh"), str(self.root)], capture_output=True, text=True,
                              timeout=120)
        alive = {d: p for d, p in pids.items() if pid_alive(p)}
        if proc.returncode != 0 or alive:
            raise RuntimeError(f"daemons left running: {alive}\n{proc.stderr}")

    def finished_jobs(self) -> dict[int, dict[str, str]]:
        """jobcomp/filetxt records: SLURM job id -> fields (JobState, Partition, Name, ...)."""
        jobs = {}
        log = self.root / "jobcomp.log"
        for line in log.read_text().splitlines() if log.exists() else []:
            fields = dict(re.findall(r"(\w+)=(\S*)", line))
            jobs[int(fields["JobId"])] = fields
        return jobs


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    ensure_slurm_installed()
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def test_a_failed_start_leaves_no_daemon_behind(tmp_path):
    """slurmctld rejects the config (a partition name with a space) after munged is already up: the stop
    path must still end munged."""
    ensure_slurm_installed()
    cluster = LocalSlurm(tmp_path / "broken", partition="bad name")
    try:
        with pytest.raises(RuntimeError, match="start.sh failed"):
            cluster.start()
        started = cluster.started_pids
        assert "munged" in started and pid_alive(started["munged"])
        assert "slurmctld" not in started
    finally:
        cluster.stop()
    assert not any(pid_alive(pid) for pid in started.values())
    assert not cluster.pids()  # PID files removed
    cluster.stop()  # a second stop is harmless


def read(path):
    return md.read_h5mu(path)


def dense(matrix):
    return matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)


def assert_same_mudata(local, remote, exact=True, atol=0.0):
    a, b = read(local), read(remote)
    assert set(a.mod) == set(b.mod)
    for name in a.mod:
        x, y = a.mod[name], b.mod[name]
        assert list(x.obs_names) == list(y.obs_names), name
        assert list(x.var_names) == list(y.var_names), name
        assert sorted(x.layers) == sorted(y.layers), name
        for layer in [None, *x.layers]:
            mx = x.X if layer is None else x.layers[layer]
            my = y.X if layer is None else y.layers[layer]
            if exact:
                assert (abs(sp.csr_matrix(mx) - sp.csr_matrix(my))).nnz == 0 if sp.issparse(mx) \
                    else np.array_equal(dense(mx), dense(my)), f"{name}.{layer or 'X'} differs"
    for key in a.obsm:
        np.testing.assert_allclose(np.asarray(a.obsm[key]), np.asarray(b.obsm[key]), atol=atol, rtol=0,
                                   err_msg=f"obsm[{key}] of {remote}")


def test_tiny_pipeline_runs_through_slurm_with_the_profile(slurm_cluster, tiny_workflow, tmp_path, monkeypatch):
    # The local reference run: `rule all` of the shared tiny results (built once per session).
    snakemake(tiny_workflow.workdir, tiny_workflow.config)

    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    # start.sh's srun shim: the job step drops SLURM_CONF before its nested srun (see start.sh).
    monkeypatch.setenv("PATH", f"{slurm_cluster.root / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("SCMVP_SLURM_PARTITION", slurm_cluster.partition)
    # the test node has one (count-only) GPU GRES: the profile finds it with sinfo and asks for one GPU
    monkeypatch.delenv("SCMVP_SLURM_GPUS", raising=False)
    # Test overrides of the profile: this cluster has no accounting database (so squeue, see the
    # profile), and short status-check intervals keep the run short.
    overrides = ["--profile", str(REPO / "profiles" / "slurm"), "--slurm-status-command", "squeue",
                 "--slurm-init-seconds-before-status-checks", "1", "--slurm-no-account",
                 "--jobs", "4", "--latency-wait", "5", "--verbose"]
    workdir = tmp_path / "slurm_run"
    # one benchmark seed (model.seed) through SLURM: the same jobs as the local run minus the extra seed's
    # (its model, embeddings), which the local run covers
    config = {**TINY_CONFIG, "benchmark": {**TINY_CONFIG["benchmark"], "seeds": None}}
    proc = snakemake(workdir, config, extra=overrides, timeout=600)
    output = proc.stdout + proc.stderr

    submitted = {int(slurm_id): int(job) for job, slurm_id in
                 re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", output)}
    remote_jobs = re.findall(r"^\s*rule (\w+):", output, re.M)
    assert remote_jobs, output[-3000:]
    assert len(submitted) == len(remote_jobs), "every non-local job goes through SLURM"
    finished = slurm_cluster.finished_jobs()
    for slurm_id in submitted:
        assert finished[slurm_id]["JobState"] == "COMPLETED", finished.get(slurm_id)
        assert finished[slurm_id]["Partition"] == slurm_cluster.partition
    sbatch_calls = re.findall(r"sbatch call: (.*)", output)
    assert len(sbatch_calls) == len(submitted)
    train_calls = [c for c in sbatch_calls if "rule_train" in c]
    if "train" in remote_jobs:
        assert train_calls and all("--gpus=1" in c for c in train_calls), train_calls
        assert all("--mem 16000" in c for c in train_calls), train_calls  # 16000 * attempt, attempt 1

    # Same outputs as the local run: matrices exactly, the learned latent within float tolerance.
    local, remote = tiny_workflow.results / "tiny", workdir / "results" / "tiny"
    compared = 0
    for name, exact, atol in [("ingested.h5mu", True, 0), ("preprocessed.h5mu", True, 0),
                              ("imputed.h5mu", False, 1e-3)]:
        if (local / name).exists():
            assert_same_mudata(local / name, remote / name, exact=exact, atol=atol)
            compared += 1
    assert compared >= 1


def load_slurm_profile(tmp_path, monkeypatch, sinfo_output, gpus=None):
    """profiles/slurm/config.yaml evaluated as Snakemake does (yte), with a stand-in `sinfo` printing
    `sinfo_output`."""
    import yaml
    import yte

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "sinfo").write_text(f"#!/bin/sh\necho '{sinfo_output}'\n")
    (bin_dir / "sinfo").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    if gpus is None:
        monkeypatch.delenv("SCMVP_SLURM_GPUS", raising=False)
    else:
        monkeypatch.setenv("SCMVP_SLURM_GPUS", gpus)
    with open(REPO / "profiles" / "slurm" / "config.yaml") as handle:
        return yte.process_yaml(handle)


def test_slurm_profile_asks_for_a_gpu_only_where_the_cluster_has_one(tmp_path, monkeypatch):
    with_gpus = load_slurm_profile(tmp_path / "a", monkeypatch, "gpu:a100:4(S:0-1)")
    assert with_gpus["set-resources"]["train"]["gpu"] == 1
    # the benchmark seeds' extra scMVP models are trained like the main one
    assert with_gpus["set-resources"]["train_seed"] == with_gpus["set-resources"]["train"]
    without = load_slurm_profile(tmp_path / "b", monkeypatch, "(null)")
    assert "gpu" not in without["set-resources"]["train"]  # trains on CPU instead of a failing sbatch
    forced_cpu = load_slurm_profile(tmp_path / "c", monkeypatch, "gpu:2", gpus="0")
    assert "gpu" not in forced_cpu["set-resources"]["train"]


def test_slurm_profile_stops_with_one_message_when_a_gpu_is_asked_for_but_missing(tmp_path, monkeypatch):
    with pytest.raises(SystemExit) as stop:
        load_slurm_profile(tmp_path, monkeypatch, "(null)", gpus="1")
    message = str(stop.value)
    assert "SCMVP_SLURM_GPUS=1" in message and "SCMVP_SLURM_GPUS=0" in message and "no node" in message
