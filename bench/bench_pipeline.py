"""Whole-pipeline scale benchmark: wall time and peak RSS of every rule on a simulated dataset.

    .venv/bin/python bench/bench_pipeline.py --cells 10000 [20000 50000] [--peaks 100000] [--genes 5000]
        [--methods scmvp rna_pca atac_lsi wnn mofa scvi multivi] [--cores 2] [--out bench_results/pipeline]
        [--set model.n_epochs=20 ...]

For each size it writes a config (one simulated dataset in the Cell Ranger ARC layout, one benchmark seed, scVI /
MultiVI / the validation's scVI capped at 50 epochs as in config/config.yaml, the default settings otherwise),
runs the whole workflow to the report with `snakemake --cores N`, and reads Snakemake's own
`benchmark:` files (wall seconds `s`, peak resident set `max_rss` in MB) of every rule. A run that stops
part-way still reports the rules that finished; rerunning resumes it. Prints one table per size and writes
`{out}/{cells}/rules.tsv`.
"""
from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
ALL_METHODS = ["scmvp", "rna_pca", "atac_lsi", "wnn", "mofa", "scvi", "multivi"]


def parse_overrides(items):
    """`section.key=value` pairs (value parsed as YAML) -> nested dict."""
    overrides = {}
    for item in items or []:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        overrides.setdefault(section, {})[name] = yaml.safe_load(value)
    return overrides


def write_config(path: Path, results: Path, cells: int, genes: int, peaks: int, methods, overrides):
    config = {
        "results": str(results),
        "datasets": {f"sim{cells // 1000}k": {
            "technology": "simulated", "genome": "synthetic",
            "simulate": {"n_cells": cells, "n_genes": genes, "n_peaks": peaks, "n_types": 8, "seed": 0},
        }},
        # one seed, and the example config's epoch caps for the scVI-based steps (scvi-tools' own defaults, 400-500
        # epochs at 10k cells, take hours on a CPU; config/config.yaml says why)
        "benchmark": {"methods": list(methods), "seeds": [0], "scvi": {"max_epochs": 50},
                      "multivi": {"max_epochs": 50}},
        "validation": {"diffusion_components": 2, "scvi_max_epochs": 50},
    }
    for section, values in overrides.items():
        config.setdefault(section, {}).update(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def rule_table(results: Path) -> pd.DataFrame:
    rows = []
    for tsv in sorted(glob.glob(str(results / "*" / "benchmarks" / "**" / "*.tsv"), recursive=True)):
        frame = pd.read_csv(tsv, sep="\t")
        rule = os.path.relpath(tsv, results).split(os.sep, 2)[2][: -len(".tsv")]
        rows.append({"rule": rule, "seconds": float(frame["s"].iloc[0]),
                     "max_rss_mb": float(frame["max_rss"].iloc[0])})
    return pd.DataFrame(rows, columns=["rule", "seconds", "max_rss_mb"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, nargs="+", default=[10000])
    parser.add_argument("--genes", type=int, default=5000)
    parser.add_argument("--peaks", type=int, default=100000)
    parser.add_argument("--methods", nargs="*", default=ALL_METHODS)
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    parser.add_argument("--out", default="bench_results/pipeline")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides, e.g. model.n_epochs=5")
    args = parser.parse_args(argv)
    overrides = parse_overrides(args.set)
    for cells in args.cells:
        base = (REPO / args.out / str(cells)).resolve()
        results = base / "results"
        config = base / "config.yaml"
        write_config(config, results, cells, args.genes, args.peaks, args.methods, overrides)
        command = [sys.executable, "-m", "snakemake", "--profile", "profiles/default", "--cores", str(args.cores),
                   "--configfile", str(config), "--keep-going"]
        start = time.perf_counter()
        status = subprocess.call(command, cwd=REPO)
        report = subprocess.call(command + ["--report", str(results / "report.html")], cwd=REPO) if status == 0 \
            else None
        wall = time.perf_counter() - start
        table = rule_table(results)
        table.to_csv(base / "rules.tsv", sep="\t", index=False)
        print(f"\n{cells} cells x {args.genes} genes x {args.peaks} peaks: snakemake exit {status}, report "
              f"{report}, {wall / 60:.1f} min wall; rule seconds summed {table['seconds'].sum() / 60:.1f} min, "
              f"largest peak RSS {table['max_rss_mb'].max() / 1024:.2f} GiB")
        print(table.sort_values("seconds", ascending=False).to_string(index=False, float_format="%.0f"))


if __name__ == "__main__":
    main()
