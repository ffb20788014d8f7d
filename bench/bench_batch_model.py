"""scMVP with and without the batch covariate on a multi-library preprocessed.h5mu (issue 12 item 2): KMeans and
Leiden label ARI at the true k (scmvp.metrics.score_clusterings, as the workflow's clustering.tsv), 15-NN label
transfer accuracy (5-fold; plain and balanced) and scib-metrics integration scores (iLISI, kBET, batch silhouette, cLISI, label silhouette) of
the latent, per seed.

    # the three simulated ARC libraries of the README, to preprocessed.h5mu:
    PYTHONPATH=scripts .venv/bin/python -m scmvp.simulate_samples data/three_libraries --n-samples 3
    .venv/bin/snakemake results/three_libraries/preprocessed.h5mu --cores 1 --configfile config/three_libraries.yaml
    .venv/bin/python bench/bench_batch_model.py results/three_libraries/preprocessed.h5mu --seeds 0 1 2
    # the baselines with their own batch handling, next to scMVP with the covariate:
    .venv/bin/python bench/bench_batch_model.py results/three_libraries/preprocessed.h5mu --seeds 0 \
        --baselines rna_pca wnn scvi multivi --variants "no batch" batch_key

Model settings: config/three_libraries.yaml's (n_latent 16, the rest defaults), on the CPU, one thread. Prints one
tab-separated row per (variant, seed) and the mean per variant.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
SCORES = ("ilisi", "kbet", "silhouette_batch", "clisi", "silhouette_label")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mdata", help="a preprocessed.h5mu with obs['sample'] (or --batch-key) and obs['label']")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch-key", default="sample")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="model config overrides (bench_tissue.parse_settings)")
    parser.add_argument("--baselines", nargs="*", default=[], metavar="METHOD",
                        help="also score these baselines with the batches their own way (rna_pca/atac_lsi/wnn: "
                             "Harmony; scvi/multivi: batch_key; mofa: groups) and without (variant 'no batch')")
    parser.add_argument("--variants", nargs="+", default=["no batch", "batch_key"],
                        help="which of the two variants to run ('no batch', 'batch_key')")
    parser.add_argument("--skip-scmvp", action="store_true", help="baselines only")
    args = parser.parse_args()

    import mudata as md
    from bench_tissue import parse_settings
    from scmvp.integration import integration_scores
    from scmvp.metrics import knn_graph, knn_label_transfer, score_clusterings
    from scmvp.model import SCMVP

    mdata = md.read_h5mu(args.mdata)
    labels = mdata.obs["label"].astype(str).to_numpy()
    batches = mdata.obs[args.batch_key].astype(str).to_numpy()
    overrides = parse_settings(args.set)
    rows = []

    def record(method, variant, seed, latent, seconds):
        clusterings = {row["clustering"]: row["ari"] for row in score_clusterings(latent, knn_graph(latent), labels)}
        scores = integration_scores(latent, batches, labels, seed=0, path=args.mdata)
        row = {"method": method, "variant": variant, "seed": seed, "ari": clusterings["kmeans"],
               "leiden_ari": clusterings["leiden"], **knn_label_transfer(latent, labels),
               **{s: float(scores[s]) for s in SCORES}, "seconds": seconds}
        rows.append(row)
        print("\t".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()), flush=True)

    from scmvp.baselines import embed
    from bench_tissue import print_weight_choice

    for seed in args.seeds:
        for method in args.baselines:
            for variant in args.variants:
                start = time.perf_counter()
                latent, _ = embed(method, mdata, seed=seed, threads=args.threads,
                                  batches=batches if variant == "batch_key" else None)
                record(method, variant, seed, latent, time.perf_counter() - start)
        for variant, batch_key in (("no batch", None), ("batch_key", args.batch_key)):
            if variant not in args.variants or args.skip_scmvp:
                continue
            cfg = {"n_latent": 16, "device": "cpu", "threads": args.threads, "seed": seed, **overrides,
                   "batch_key": batch_key}
            start = time.perf_counter()
            model = SCMVP.from_mudata(mdata, cfg, path=args.mdata, batch_key=batch_key)
            model.train(progress=False)
            print_weight_choice(model, seed)
            latent = model.get_latent()
            record("scmvp", variant, seed, latent, time.perf_counter() - start)
    table = pd.DataFrame(rows)
    print(table.drop(columns="seed").groupby(["method", "variant"], sort=False).mean().round(3).to_string())


if __name__ == "__main__":
    main()
