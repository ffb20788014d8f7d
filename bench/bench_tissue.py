"""scMVP vs the baselines on the hard simulated tissue (scmvp.simulate_tissue), over seeds.

    .venv/bin/python bench/bench_tissue.py [--seeds 0 1 2 3 4] [--methods scmvp rna_pca atac_lsi wnn]
        [--cells 4000] [--set atac_weight=0.1 ...] [--out bench_results/tissue.tsv] [--per-label] [--every 10]

Seed s simulates the tissue with seed s and runs every method with seed s, so the spread covers both the data
and the methods. Every method gets the same raw counts of the same cells (the baselines' own normalisation;
scMVP with its defaults plus any --set). Scores: KMeans (k = the true number of labels) ARI / NMI and the
15-NN label-transfer accuracy (stratified 5-fold; plain and balanced, so the < 1 % types count) on the
embedding, the ARI of Leiden at k clusters on the embedding's 15-NN graph (`leiden_ari`, as the workflow's
benchmark stage clusters) and, for scMVP, of its mixture's own clusters (`own_ari`: argmax p(c | z), the workflow's
`scmvp_cluster`, with as many components as the model found). Prints one row per method and seed, then mean +- sd
per method; `--per-label` also prints each label's kNN recall per method (mean over seeds;
`scmvp.metrics.knn_label_recall`) with the label's kind (chromatin-only / RNA-only types are told apart by one
modality only), i.e. which types an embedding loses.
`--every N` also scores scMVP's latent after every N epochs of training (`# curve` lines: the same scores and
the single-modality labels' recall), e.g. with `--set n_epochs=60 early_stopping_patience=0`.
"""
from __future__ import annotations

import argparse
import ast
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))


def parse_settings(pairs) -> dict:
    """`KEY=VALUE` model settings of every bench script: Python literals (40, 1e-3, [0.05, 1], True, None), true /
    false / null as in the YAML config (null: a key switched off, e.g. warmup_atac_weight=null), else the text
    (which the model's config check then names if the key wants a number)."""
    settings = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            settings[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            settings[key] = {"true": True, "false": False, "null": None}.get(value.lower(), value)
    return settings


def embed(method, mdata, seed, model_settings, threads, on_epoch_end=None):
    return embed_with_own_clusters(method, mdata, seed, model_settings, threads, on_epoch_end)[0]


def embed_with_own_clusters(method, mdata, seed, model_settings, threads, on_epoch_end=None):
    """(embedding, the method's own clusters or None): for scMVP its latent and the mixture's argmax p(c | z),
    which the workflow writes as `scmvp_cluster` (as many components as the model found, not the true k)."""
    if method == "scmvp":
        from scmvp.model import SCMVP

        cfg = {"device": "cpu", "threads": threads, "seed": seed, **model_settings}
        model = SCMVP(mdata.mod["rna"].X, mdata.mod["atac"].X, mdata.mod["atac"].var, cfg)
        model.train(progress=False, on_epoch_end=on_epoch_end)
        print_weight_choice(model, seed)
        latent = model.get_latent()
        return latent, model.get_clusters(latent) if model.module.prior is not None else None
    from scmvp import baselines

    embedding, _ = baselines.embed(method, mdata, seed=seed, threads=threads)
    return embedding, None


def print_weight_choice(model, seed):
    """With `--set atac_weight_candidates=[...]` (or `warmup_atac_weight_candidates`): a `# atac_weight` (or
    `# warmup_atac_weight`) line per candidate (held-out NLLs, chosen)."""
    table = model.atac_weight_choice
    if table is not None:
        key = table.columns[0]      # the config key the candidates set
        for row in table.to_dict("records"):
            print(f"# {key} seed {seed}: {row[key]:g} held-out ATAC NLL {row['validation_atac_nll']:.2f} "
                  f"RNA NLL {row['validation_rna_nll']:.2f} after epoch {row['epoch']}"
                  f"{' chosen' if row['chosen'] else ''}", flush=True)


def score(embedding, labels, seed, own_clusters=None):
    """KMeans ARI / NMI and Leiden ARI at the true k, kNN label transfer; with `own_clusters` (scMVP's mixture)
    also their ARI (`own_ari`; NaN without)."""
    from scmvp import metrics

    # KMeans and, as the workflow's benchmark stage clusters, Leiden on the embedding's 15-NN graph, both at the
    # true k, for every method alike (KMeans favours equal sizes and splits a large type that is broad)
    clusterings = {row["clustering"]: row for row in
                   metrics.score_clusterings(embedding, metrics.knn_graph(embedding, 15, seed=0), labels, seed=0)}
    knn = metrics.knn_label_transfer(embedding, labels, seed=0)
    own = float("nan") if own_clusters is None else metrics.clustering_scores(labels, own_clusters)["ari"]
    return {"ari": clusterings["kmeans"]["ari"], "nmi": clusterings["kmeans"]["nmi"],
            "leiden_ari": clusterings["leiden"]["ari"], "own_ari": own, **knn}


def curve_scorer(sim, seed, every):
    """on_epoch_end callback: scores of the latent after every `every` completed epochs (a training curve)."""
    from scmvp import metrics

    labels = sorted(set(sim.labels))
    single = [label for label, kind in zip(labels, label_kinds(sim, labels)) if kind != "both"]

    def callback(epochs_done, model):
        if epochs_done % every:
            return
        latent = model.get_latent()
        scores = score(latent, sim.labels, seed)
        recall = metrics.knn_label_recall(latent, sim.labels, seed=0)
        print(f"# curve seed {seed} epoch {epochs_done}: ari {scores['ari']:.3f} knn {scores['knn_accuracy']:.3f} "
              f"balanced {scores['knn_balanced_accuracy']:.3f} | single-modality recall "
              + " ".join(f"{label} {recall[label]:.2f}" for label in single), flush=True)
    return callback


def label_kinds(sim, labels):
    """'chromatin-only' / 'RNA-only' / 'both' for each label (simulate_tissue records the single-modality types)."""
    chromatin, rna = set(sim.extra.get("chromatin_only", [])), set(sim.extra.get("rna_only", []))
    return ["chromatin-only" if label in chromatin else "RNA-only" if label in rna else "both" for label in labels]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--methods", nargs="+", default=["scmvp", "rna_pca", "atac_lsi", "wnn"])
    parser.add_argument("--cells", type=int, default=4000)
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--peaks", type=int, default=20000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="scMVP model settings")
    parser.add_argument("--out", type=Path, help="also write the rows to this tsv")
    parser.add_argument("--per-label", action="store_true", help="also print the kNN recall of every label")
    parser.add_argument("--every", type=int, default=0, help="score scMVP's latent every N epochs of training")
    args = parser.parse_args(argv)
    settings = parse_settings(args.set)

    from scmvp.simulate_tissue import simulate_tissue
    from scmvp.simulate_write import to_mudata

    rows, recalls = [], []
    print("method\tseed\tari\tnmi\tleiden_ari\town_ari\tknn_accuracy\tknn_balanced_accuracy\tseconds", flush=True)
    for seed in args.seeds:
        sim = simulate_tissue(n_cells=args.cells, n_genes=args.genes, n_peaks=args.peaks, seed=seed)
        mdata = to_mudata(sim)
        for method in args.methods:
            start = time.perf_counter()
            curve = curve_scorer(sim, seed, args.every) if args.every and method == "scmvp" else None
            embedding, own = embed_with_own_clusters(method, mdata, seed, settings, args.threads, curve)
            seconds = time.perf_counter() - start
            row = {"method": method, "seed": seed, **score(np.asarray(embedding), sim.labels, seed, own),
                   "seconds": round(seconds, 1)}
            rows.append(row)
            if args.per_label:
                from scmvp import metrics

                recall = metrics.knn_label_recall(np.asarray(embedding), sim.labels, seed=0)
                recalls.append(pd.DataFrame({"method": method, "seed": seed, "label": recall.index,
                                             "recall": recall.to_numpy(), "kind": label_kinds(sim, recall.index),
                                             "cells": pd.Series(sim.labels).value_counts()
                                             .reindex(recall.index).to_numpy()}))
            print("\t".join(str(round(v, 4)) if isinstance(v, float) else str(v) for v in row.values()), flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, sep="\t", index=False)
    metrics = ["ari", "nmi", "leiden_ari", "own_ari", "knn_accuracy", "knn_balanced_accuracy"]
    summary = table.groupby("method", sort=False)[metrics].agg(["mean", "std"])
    print("\nmean +- sd over seeds", args.seeds, "model settings", settings or "defaults")
    for method, values in summary.iterrows():
        print(method + "\t" + "\t".join(f"{m} {values[(m, 'mean')]:.3f} +- {values[(m, 'std')]:.3f}"
                                         for m in metrics))
    if recalls:
        per_label = pd.concat(recalls).pivot_table(index=["label", "kind", "cells"], columns="method",
                                                   values="recall", aggfunc="mean", sort=False)
        per_label = per_label.reset_index().sort_values("cells", ascending=False)
        print("\nkNN recall per label (mean over seeds; cells = in the last seed)")
        print(per_label.round(2).to_string(index=False))


if __name__ == "__main__":
    main()
