"""Which modality does scMVP's joint latent use? With `joint_posterior: poe`, q(z | x, y) is N(0, I) x an RNA
expert x an ATAC expert; this trains scMVP once per model seed on a criterion dataset and scores, by the
criterion's scores (KMeans ARI at the true k, 5-fold 15-NN label transfer), the joint latent, each expert's means
alone, the two experts side by side, and RNA PCA / ATAC LSI of the same cells. On the hard tissue it adds each
kind of type's mean 15-NN recall (chromatin-only, RNA-only, both), and it prints each expert's median precision per
latent dimension (the weight of that modality in the product).

    .venv/bin/python bench/bench_experts.py [--dataset tissue:6] [--seeds 0] [--set KEY=VALUE ...]
        [--threads 1] [--atac-only] [--per-label] [--out bench_results/experts.tsv]

`--atac-only` replaces the RNA by two genes of Poisson(5) noise (the same for every cell type), so the joint latent
is the ATAC model's alone (the RNA expert and RNA PCA then score at chance); `--per-label` prints the joint latent's
and ATAC LSI's 15-NN recall of every label with its size.

Datasets as `bench_criterion.py`'s (`example:D`, `tissue:D`, `snare:CELLS:D`, `scicar`).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "scripts")]

from bench_criterion import load, simulation  # noqa: E402
from bench_tissue import label_kinds, parse_settings, score  # noqa: E402

KINDS = ("chromatin-only", "RNA-only", "both")
PER_LABEL = ("joint", "atac_lsi")   # the embeddings --per-label prints


def tissue_kinds(dataset: str, labels) -> dict | None:
    """label -> kind for `tissue:D` / `snare:C:D` (simulate_tissue records its single-modality types), else None."""
    if not dataset.startswith(("tissue:", "snare:")):
        return None
    names = sorted(set(labels))
    return dict(zip(names, label_kinds(simulation(dataset), names)))   # the simulation load() made (cached)


def without_rna_information(mdata, seed: int = 0):
    """The same cells with their RNA replaced by two genes of Poisson(5) noise: what the ATAC side alone learns."""
    import anndata as ad
    import mudata as md
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    rna = ad.AnnData(sp.csr_matrix(rng.poisson(5.0, (mdata.n_obs, 2)).astype(np.float32)),
                     obs=mdata.mod["rna"].obs.copy())
    rna.var_names = ["noise1", "noise2"]
    return md.MuData({"rna": rna, "atac": mdata.mod["atac"]})


def embeddings(mdata, seed: int, settings: dict, threads: int) -> tuple[dict, dict]:
    """({name: embedding} of the joint latent, the experts, both experts and the two baselines;
    {expert: median precision per latent dimension})."""
    from scmvp import baselines
    from scmvp.model import SCMVP

    cfg = {"device": "cpu", "threads": threads, "seed": seed, "joint_posterior": "poe", **settings}
    model = SCMVP(mdata.mod["rna"].X, mdata.mod["atac"].X, mdata.mod["atac"].var, cfg)
    history = model.train(progress=False)
    reseeded = history["reseeded_components"].fillna(0).astype(int) if "reseeded_components" in history else []
    print(f"# seed {seed}: GMM prior of {model.module.n_components or 0} components; components re-seeded per "
          f"epoch: {' '.join(map(str, reseeded))}", flush=True)
    if model.atac_weight_choice is not None:        # a weight choice, or the watched warm-up kept / given up
        print(f"# seed {seed}: {model.atac_weight_choice.to_string(index=False)}", flush=True)
    experts = model.get_expert_latents()
    out = {"joint": model.get_latent(), "rna_expert": experts["rna"][0], "atac_expert": experts["atac"][0],
           "both_experts": np.hstack([experts["rna"][0], experts["atac"][0]])}
    for method in ("rna_pca", "atac_lsi"):
        out[method] = baselines.embed(method, mdata, seed=seed, threads=threads)[0]
    return out, {name: np.median(precision, axis=0) for name, (_, precision) in experts.items()}


def main(argv=None) -> pd.DataFrame:
    from scmvp import metrics

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="tissue:6")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="scMVP model settings")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--atac-only", action="store_true", help="replace the RNA by two genes of Poisson noise")
    parser.add_argument("--per-label", action="store_true", help="print each label's 15-NN recall (joint, ATAC LSI)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    settings = parse_settings(args.set)
    mdata, labels = load(args.dataset)
    settings_name = (" ".join(args.set) or "defaults") + (" [atac-only]" if args.atac_only else "")
    if args.atac_only:
        mdata = without_rna_information(mdata)
    kinds = tissue_kinds(args.dataset, labels)
    rows = []
    for seed in args.seeds:
        found, precisions = embeddings(mdata, seed, settings, args.threads)
        for name, precision in precisions.items():
            print(f"# seed {seed}: median precision of the {name} expert per latent dimension: "
                  + " ".join(f"{p:.1f}" for p in precision), flush=True)
        recalls = {}
        for name, embedding in found.items():
            row = {"dataset": args.dataset, "settings": settings_name, "seed": seed, "embedding": name,
                   **score(embedding, labels, seed)}
            if kinds is not None or (args.per_label and name in PER_LABEL):
                recalls[name] = recall = metrics.knn_label_recall(embedding, labels, seed=0)
            if kinds is not None:
                for kind in KINDS:
                    row[f"recall_{kind}"] = float(np.mean([recall[label] for label, k in kinds.items() if k == kind]))
            rows.append(row)
            print(" ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
                  flush=True)
        if args.per_label:
            sizes = pd.Series(labels).value_counts()
            for name in PER_LABEL:
                print(f"# seed {seed}: {name} recall per label (cells): "
                      + " ".join(f"{label}({sizes[label]}) {recalls[name][label]:.2f}" for label in sizes.index),
                      flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, sep="\t", index=False, float_format="%.4f")
    return table


if __name__ == "__main__":
    main()
