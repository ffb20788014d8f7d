"""Shared fixtures: the package on sys.path, paths to ../shared/data, and real Snakemake runs."""
from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()
sys.path.insert(0, str(REPO / "scripts"))

# A small simulated dataset and fast settings: the end-to-end tests run the real workflow on it.
# Model seed 1: at 400 cells the latent's KMeans ARI moves between 0.63 and 0.80 with the seed and with which
# 14 cells QC removes (measured 2026-12-02; seed 0 gave 0.63 once fragment QC and doublets joined the QC), and
# the single-seed comparisons below (pseudotime, CRE) sit inside that noise.
TINY_CONFIG = {
    "datasets": {
        "tiny": {
            "technology": "simulated",
            "genome": "synthetic",
            "simulate": {"n_cells": 400, "n_genes": 300, "n_peaks": 3000, "n_types": 6, "seed": 1},
        }
    },
    "qc": {"min_genes_per_cell": 5, "min_peaks_per_cell": 5, "min_cells_per_gene": 1,
           "min_cells_per_peak": 1, "n_top_genes": 200, "n_lsi_components": 10, "n_pcs": 10},
    "model": {"n_latent": 8, "n_hidden": 32, "n_components": 6, "n_epochs": 12, "warmup_epochs": 2,
              "kl_warmup_epochs": 4, "cycle_start_epoch": 6, "batch_size": 64, "n_tokens": 16,
              "top_genes_attended": 64, "device": "cpu", "seed": 1},
    # two seeds: seed 1 (= model.seed) reuses the main model, seed 2 trains one more tiny model (train_seed)
    "benchmark": {"methods": ["scmvp", "rna_pca", "atac_lsi"], "scvi": {"max_epochs": 5},
                  "multivi": {"max_epochs": 5}, "seeds": [1, 2]},
    "validation": {"scvi_max_epochs": 5},
    "cre": {"n_metacells": 50, "n_permutations": 50},
}



def pytest_configure(config):
    # `make test` leaves these out (minutes of training at a real scale); `make bench` runs them
    config.addinivalue_line("markers", "scale: a model run at a real dataset's scale (make bench, not make test)")


@pytest.fixture(scope="module")
def small_sim():
    """160 simulated cells, 5 types: the model tests' data (a fresh draw per test module)."""
    from scmvp.simulate import simulate
    return simulate(n_cells=160, n_genes=60, n_peaks=400, n_types=5, seed=3)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.fail(f"{SHARED_DATA} is missing: the tests read real data from ../shared/data")
    return SHARED_DATA


def snakemake(workdir: Path, config: dict, targets=(), extra=(), check=True, timeout=1800):
    """Run the real workflow with `config` (written to workdir/config.yaml); results under workdir.

    Returns the CompletedProcess; with check=True a failure shows Snakemake's output.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    config = copy.deepcopy(config)
    config.setdefault("results", str(workdir / "results"))
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile", str(config_path),
           "--cores", "2", "--nolock", "--rerun-incomplete", "--show-failed-logs", *extra, *targets]
    env = dict(os.environ, PYTHONHASHSEED="0")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        pytest.fail(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-12000:]}")
    return proc


class Workflow:
    """A workflow run on the tiny config, shared by the tests of one session: build targets on demand."""

    def __init__(self, workdir: Path, config: dict):
        self.workdir = Path(workdir)
        self.config = config
        self.results = self.workdir / "results"

    def build(self, *targets: str):
        """Build `targets` (paths relative to the results folder, e.g. 'tiny/imputed.h5mu')."""
        paths = [str(self.results / t) for t in targets]
        snakemake(self.workdir, self.config, targets=paths)
        return [Path(p) for p in paths] if len(paths) != 1 else Path(paths[0])


@pytest.fixture(scope="session")
def tiny_workflow(tmp_path_factory) -> Workflow:
    return Workflow(tmp_path_factory.mktemp("tiny"), TINY_CONFIG)
