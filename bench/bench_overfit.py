"""Does scMVP memorise its training cells? Trains once per model seed and compares the cells it trained on with
the cells the trainer held out for validation (`validation_fraction`, never trained on):

* the validation RNA / ATAC negative log-likelihood over the epochs (rising = the model fits the training cells'
  noise);
* the within-label spread of each expert's means and of the joint latent (summed standard deviation over the
  latent dimensions, label means removed), on training and on held-out cells;
* a split-half test of the ATAC expert: each cell's ATAC non-zeros are split at random into two disjoint halves
  (independent Poisson thinnings of the same rates), each half is encoded alone, and the within-label Spearman
  correlation of the two encodings is averaged over the latent dimensions that vary. Both halves share only the
  cell's true state, so on held-out cells this is ~0 unless the expert reads real within-label structure; on
  training cells a high value with ~0 on held-out ones means the expert recalls the cells it was trained on;
* the label silhouette (sklearn, -1..1) of the joint latent on training and on held-out cells, and the criterion's
  scores of the joint latent on all cells.

    .venv/bin/python bench/bench_overfit.py --dataset tissue:6 [--seeds 0] [--set KEY=VALUE ...]
    .venv/bin/python bench/bench_overfit.py --mdata results/three_libraries/preprocessed.h5mu --batch-key sample \
        --set n_latent=16

`--dataset` takes `bench_criterion.py`'s names (`example:D`, `tissue:D`, `snare:CELLS:D`, `scicar`); `--mdata` a preprocessed.h5mu
with `obs[--label-key]` (the model reads its counts, as the workflow's train rule does).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "scripts")]

EPOCHS_SHOWN = (5, 10, 20, 30, 40)


def within_label(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """x with each label's mean removed."""
    out = np.asarray(x, dtype=np.float64).copy()
    for label in np.unique(labels):
        rows = labels == label
        out[rows] -= out[rows].mean(axis=0)
    return out


def split_nonzeros(matrix, rng):
    """Two disjoint halves of a CSR count matrix: each non-zero entry goes wholly to one of them."""
    keep = rng.random(matrix.nnz) < 0.5
    halves = []
    for mask in (keep, ~keep):
        half = matrix.copy()
        half.data = np.where(mask, matrix.data, 0).astype(matrix.data.dtype)
        half.eliminate_zeros()
        halves.append(half)
    return halves


def atac_expert_of(model, atac):
    """The ATAC expert's means of the model's cells with ATAC counts `atac` (genome order, as model.data's)."""
    from scmvp.model.data import PairedData

    full = model.data
    model.data = PairedData(full.rna, atac, None, full.n_tokens, peak_order=np.arange(full.n_peaks), idf=full.idf,
                            batch_codes=full.batch_codes)
    try:
        return model.get_expert_latents()["atac"][0]
    finally:
        model.data = full


def split_half_agreement(a: np.ndarray, b: np.ndarray, labels: np.ndarray) -> float:
    """Mean within-label Spearman correlation of two encodings over the dimensions that vary."""
    from scipy.stats import spearmanr

    ra, rb = within_label(a, labels), within_label(b, labels)
    varying = np.flatnonzero((ra.std(axis=0) > 1e-3) & (rb.std(axis=0) > 1e-3))
    if not len(varying):
        return float("nan")
    return float(np.mean([spearmanr(ra[:, d], rb[:, d])[0] for d in varying]))


def diagnose(model, history, labels: np.ndarray, seed: int) -> dict:
    from sklearn.metrics import silhouette_score

    from bench_tissue import score
    from scmvp.model.trainer import split_cells

    train, held_out = split_cells(model.data.n_cells, model.config["validation_fraction"], model.config["seed"])
    if len(held_out) < 2:
        raise SystemExit("validation_fraction leaves no held-out cells to compare with")
    row = {}
    for epoch in EPOCHS_SHOWN:
        if epoch <= len(history):
            for term in ("rna_nll", "atac_nll"):
                row[f"val_{term}_e{epoch}"] = float(history[f"validation_{term}"].iloc[epoch - 1])
    experts = model.get_expert_latents()
    joint = model.get_latent()
    for name, means in (("atac_expert", experts["atac"][0]), ("rna_expert", experts["rna"][0]), ("joint", joint)):
        for part, cells in (("train", train), ("held_out", held_out)):
            row[f"{name}_spread_{part}"] = float(within_label(means[cells], labels[cells]).std(axis=0).sum())
    halves = [atac_expert_of(model, half) for half in split_nonzeros(model.data.atac, np.random.default_rng(seed))]
    for part, cells in (("train", train), ("held_out", held_out)):
        row[f"split_half_{part}"] = split_half_agreement(halves[0][cells], halves[1][cells], labels[cells])
        row[f"silhouette_{part}"] = float(silhouette_score(joint[cells], labels[cells]))
    row.update(score(joint, labels, seed))
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="a bench_criterion dataset: example:D, tissue:D, snare:CELLS:D or scicar")
    source.add_argument("--mdata", type=Path, help="a preprocessed.h5mu")
    parser.add_argument("--label-key", default="label")
    parser.add_argument("--batch-key", default=None, help="with --mdata: the obs column of the libraries")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="scMVP model settings")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    from bench_tissue import parse_settings
    from scmvp.model import SCMVP

    settings = parse_settings(args.set)
    if args.dataset:
        from bench_criterion import load

        mdata, labels = load(args.dataset)
    else:
        import mudata as md

        mdata = md.read_h5mu(args.mdata)
        if args.label_key not in mdata.obs:
            raise SystemExit(f"{args.mdata}: obs has no column {args.label_key!r}")
        labels = mdata.obs[args.label_key]
    labels = np.asarray(labels).astype(str)
    for seed in args.seeds:
        cfg = {"device": "cpu", "threads": args.threads, "seed": seed, "joint_posterior": "poe", **settings}
        start = time.perf_counter()
        if args.dataset:
            model = SCMVP(mdata.mod["rna"].X, mdata.mod["atac"].X, mdata.mod["atac"].var, cfg)
        else:
            model = SCMVP.from_mudata(mdata, cfg, path=args.mdata, batch_key=args.batch_key)
        history = model.train(progress=False)
        row = diagnose(model, history, labels, seed)
        print(f"# {args.dataset or args.mdata} seed {seed} {' '.join(args.set) or 'defaults'}: "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        for key, value in row.items():
            print(f"{key}\t{value:.4f}", flush=True)


if __name__ == "__main__":
    main()
