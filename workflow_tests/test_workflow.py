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
