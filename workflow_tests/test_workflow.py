"""Structure of the workflow itself: lint-clean, every rule fully specified, the default DAG builds."""
from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO

RULE_KEYS = ("log:", "benchmark:", "conda:", "threads:", "resources:")


def rule_blocks():
    """(file, rule name, body) of every rule in rules/*.smk."""
    for smk in sorted((REPO / "rules").glob("*.smk")):
        text = smk.read_text()
        starts = [(m.start(), m.group(1)) for m in re.finditer(r"^(?:rule|checkpoint) (\w+):", text, re.M)]
        for i, (pos, name) in enumerate(starts):
            end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
            yield smk.name, name, text[pos:end]


def test_every_rule_has_log_benchmark_conda_threads_resources():
    missing = [f"{f}:{name} lacks {key}" for f, name, body in rule_blocks() for key in RULE_KEYS
               if not re.search(rf"^\s+{key}", body, re.M)]
    assert not missing, "\n".join(missing)


def test_snakemake_lint_is_clean():
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]


def test_default_config_builds_a_dag():
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--quiet", "rules"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]


# Loads the workflow with the default config through Snakemake's API and calls every rule's mem_mb and runtime
# as Snakemake would, at attempt 1 and 2: wildcards name the first configured dataset and seed 0; every input is a
# real 10 GiB (sparse) file, so functions of input.size_mb or os.path.getsize(input.x) get a value.
_RESOURCES_BY_ATTEMPT = r"""
import atexit, inspect, json, os, shutil, sys, tempfile
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings

folder = tempfile.mkdtemp()
atexit.register(shutil.rmtree, folder)
big = Path(folder) / "input.bin"
with open(big, "wb") as fh:
    fh.truncate(10 * 1024 ** 3)

class Wildcards:
    def __init__(self, ds):
        self.ds, self.seed, self.method = ds, "0", "scmvp"
    def __getattr__(self, name):
        return "x"

class Input(list):
    size_mb = os.path.getsize(big) / 1024 / 1024
    def __getattr__(self, name):
        return str(big)

with SnakemakeApi(OutputSettings()) as api:
    workflow = api.workflow(resource_settings=ResourceSettings(), config_settings=ConfigSettings(),
                            storage_settings=StorageSettings(), snakefile=Path("Snakefile"), workdir=Path("."))._workflow
    ds = next(iter(workflow.config["datasets"]))
    values = {}
    for rule in workflow.rules:
        for name in ("mem_mb", "runtime"):
            try:
                resource = rule.resources[name]
            except KeyError:
                continue
            evaluate = resource._evaluator
            for attempt in (1, 2):
                if evaluate is None:
                    value = resource.value
                else:
                    given = {"wildcards": Wildcards(ds), "wc": Wildcards(ds), "input": Input([str(big)]),
                             "attempt": attempt, "threads": 1}
                    value = evaluate(*[given[p] for p in inspect.signature(evaluate).parameters])
                values.setdefault(f"{rule.name}.{name}", []).append(value)
json.dump(values, sys.stdout)
"""


def test_every_rule_asks_for_more_memory_and_time_on_a_retry():
    """A job killed for memory or time comes back with more (`retries` in the profiles): every rule's mem_mb and
    runtime, evaluated as Snakemake does, grow from attempt 1 to attempt 2."""
    import json

    proc = subprocess.run([sys.executable, "-c", _RESOURCES_BY_ATTEMPT], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-5000:]
    values = json.loads(proc.stdout.strip().splitlines()[-1])
    rules_with_memory = {key.split(".")[0] for key in values if key.endswith(".mem_mb")}
    assert rules_with_memory == {name for _, name, _ in rule_blocks()}, sorted(values)
    assert all(f"{name}.runtime" in values for name in rules_with_memory), sorted(values)
    fixed = {key: pair for key, pair in values.items() if not (isinstance(pair[0], int) and pair[1] > pair[0] > 0)}
    assert not fixed, fixed
    # the model rules scale with their input: 10 GiB of preprocessed.h5mu -> 1.2 * 10,240 + 2,000 MB
    assert values["train.mem_mb"] == values["impute.mem_mb"] == [14288, 2 * 14288]


def _plan(tmp_path, config):
    from conftest import snakemake

    proc = snakemake(tmp_path, config, extra=("-n",), check=True, timeout=300)
    return proc.stdout + proc.stderr


def _labelled_h5mu(path):
    """A tiny MuData whose cell type sits in obs["celltype"] (not "label")."""
    import anndata as ad
    import mudata as md
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    obs = pd.DataFrame({"celltype": ["a", "b"] * 20}, index=[f"c{i}" for i in range(40)])
    rna = ad.AnnData(sp.csr_matrix(np.ones((40, 5), np.float32)), obs=obs.copy(),
                     var=pd.DataFrame(index=[f"g{i}" for i in range(5)]))
    atac = ad.AnnData(sp.csr_matrix(np.ones((40, 3), np.float32)), obs=obs.copy(),
                      var=pd.DataFrame(index=[f"chr1:{i * 100}-{i * 100 + 50}" for i in range(3)]))
    md.MuData({"rna": rna, "atac": atac}).write(path)
    return path


def test_label_column_alone_enables_scoring(tmp_path):
    data = _labelled_h5mu(tmp_path / "mine.h5mu")
    config = {"datasets": {"mine": {"technology": "h5mu", "path": str(data), "label_column": "celltype"}},
              "benchmark": {"methods": ["scmvp", "rna_pca"]}}
    plan = _plan(tmp_path / "labelled", config)
    assert "clustering.tsv" in plan and "rule benchmark_scores:" in plan and "rule validation_deg:" in plan
    # default benchmark.seeds = [model.seed]: one run per method, scMVP's main model, no extra training
    assert "summary.tsv" in plan and "rule train_seed:" not in plan
    assert len(re.findall(r"rule embed_rna_pca:", plan)) == 1
    unlabelled = {"datasets": {"mine": {"technology": "h5mu", "path": str(data)}},
                  "benchmark": {"methods": ["scmvp", "rna_pca"]}}
    plan = _plan(tmp_path / "unlabelled", unlabelled)
    assert "rule benchmark_scores:" not in plan and "rule benchmark_umap:" in plan


def test_no_benchmark_methods_schedule_no_benchmark_rule(tmp_path):
    data = _labelled_h5mu(tmp_path / "mine.h5mu")
    config = {"datasets": {"mine": {"technology": "h5mu", "path": str(data), "label_column": "celltype"}},
              "benchmark": {"methods": []}}
    plan = _plan(tmp_path / "none", config)
    assert "rule train:" in plan and not re.search(r"rule (embed_\w+|benchmark_\w+|plot_benchmark_\w+):", plan)


def test_benchmark_seeds_plan_one_embedding_per_method_and_seed(tmp_path):
    """benchmark.seeds [0, 3] with model.seed 0: every method embedded twice; scMVP's seed 0 is the main model
    (imputed.h5mu), seed 3 one extra model under benchmark/seeds/3/scmvp/."""
    data = _labelled_h5mu(tmp_path / "mine.h5mu")
    config = {"datasets": {"mine": {"technology": "h5mu", "path": str(data), "label_column": "celltype"}},
              "model": {"seed": 0}, "benchmark": {"methods": ["scmvp", "rna_pca"], "seeds": [0, 3]}}
    plan = _plan(tmp_path / "seeds", config)
    for seed in (0, 3):
        for method in ("scmvp", "rna_pca"):
            assert f"benchmark/seeds/{seed}/embeddings/{method}.tsv" in plan, (seed, method)
    assert len(re.findall(r"rule train_seed:", plan)) == 1 and "benchmark/seeds/3/scmvp/model.pt" in plan
    assert "benchmark/seeds/0/scmvp/model.pt" not in plan and len(re.findall(r"rule train:", plan)) == 1
    assert "benchmark/summary.tsv" in plan
