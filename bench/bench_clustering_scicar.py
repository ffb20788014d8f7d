"""Clustering benchmark (paper 3.2) on the real sci-CAR A549 data (../shared/data/scicar_a549).

Runs the same package functions as the workflow's benchmark rules (scmvp.baselines, scmvp.metrics) on all
2,641 cells and writes one row per method and clustering (the clustering.tsv columns) to --out.
scMVP's own row needs its embedding: pass --scmvp an imputed.h5mu (obsm["X_scmvp"]) from the workflow.

    .venv/bin/python bench/bench_clustering_scicar.py --out bench_results/scicar_clustering.tsv
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from scmvp import baselines, metrics  # noqa: E402

log = logging.getLogger("bench")
DEFAULT_DATA = REPO / ".." / "shared" / "data" / "scicar_a549"


def read_scicar(folder: Path, min_cells: int = 3):
    """The sci-CAR A549 MuData as the workflow ingests it (technology `mtx`), features seen in fewer than
    ``min_cells`` cells dropped; counts in X and layers["counts"]; obs["label"]."""
    import mudata as md

    from scmvp.io import read_dataset

    ingested = read_dataset("mtx", folder, labels=folder / "labels.tsv")
    mods = {}
    for name, adata in ingested.mod.items():
        adata = adata[:, np.asarray((adata.X > 0).sum(axis=0)).ravel() >= min_cells].copy()
        adata.layers["counts"] = adata.X.copy()
        mods[name] = adata
    mdata = md.MuData(mods)
    mdata.obs["label"] = ingested.obs["label"].to_numpy()
    return mdata


def embed(method, mdata, args):
    if method == "scmvp":
        return baselines.read_obsm(args.scmvp, "X_scmvp", mdata.obs_names.astype(str)), None
    embedding, extra = baselines.embed(method, mdata, seed=args.seed, n_top_genes=args.n_top_genes, n_pcs=args.n_pcs,
                                       n_lsi_components=args.n_lsi, mofa_factors=args.mofa_factors,
                                       scvi={"max_epochs": args.scvi_max_epochs},
                                       multivi={"max_epochs": args.multivi_max_epochs}, threads=args.threads)
    for key, value in extra.items():
        if key != "graph":
            log.info("%s: %s = %s", method, key, value)
    return embedding, extra.get("graph")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=REPO / "bench_results" / "scicar_clustering.tsv")
    parser.add_argument("--methods", nargs="+", default=[m for m in baselines.METHODS if m != "scmvp"])
    parser.add_argument("--scmvp", type=Path, help="imputed.h5mu of the workflow for the scmvp row")
    parser.add_argument("--n-top-genes", type=int, default=2000)
    parser.add_argument("--n-pcs", type=int, default=30)
    parser.add_argument("--n-lsi", type=int, default=30)
    parser.add_argument("--mofa-factors", type=int, default=15)
    # None = scvi-tools' own default (scVI: 400 at this size; MultiVI: 500 with early stopping)
    parser.add_argument("--scvi-max-epochs", type=int, default=None)
    parser.add_argument("--multivi-max-epochs", type=int, default=None)
    parser.add_argument("--n-neighbors", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.scmvp and "scmvp" not in args.methods:
        args.methods = ["scmvp", *args.methods]

    mdata = read_scicar(args.data)
    log.info("sci-CAR A549: %d cells, %d genes, %d peaks", mdata.n_obs, mdata.mod["rna"].n_vars,
             mdata.mod["atac"].n_vars)
    labels = mdata.obs["label"].astype(object).to_numpy()
    import muon  # noqa: F401 - imported before timing, as in the workflow rules
    import scanpy  # noqa: F401

    rows = []
    for method in args.methods:
        if method in ("scvi", "multivi"):
            import scvi  # noqa: F401
        with metrics.track_resources() as usage:
            embedding, graph = embed(method, mdata, args)
        if graph is None:
            graph = metrics.knn_graph(embedding, n_neighbors=args.n_neighbors, seed=args.seed)
        for row in metrics.score_clusterings(embedding, graph, labels, seed=args.seed):
            rows.append({"method": method, **row, **usage})
            log.info("%s", rows[-1])
        table = pd.DataFrame(rows)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, sep="\t", index=False, float_format="%.4f")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
