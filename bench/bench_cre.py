"""Benchmark of CRE link prediction at scale: seconds and peak RSS for N peaks x G genes.

Usage: .venv/bin/python bench/bench_cre.py [--cells 2000] [--peaks 100000] [--genes 20000] [--workdir DIR]

Writes a synthetic imputed.h5mu (sparse counts; dense imputed layers written chunk by chunk, never whole
in memory) in a first process, then times `predict_links` (both methods, raw + imputed, defaults of the
config schema: window 500 kb, 300 metacells, 200 background peaks, background null) in a fresh process, so the peak RSS
printed is that of the linking alone.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))

CHROM_SIZES = {f"chr{i}": int(250e6 * (1 - 0.03 * (i - 1))) for i in range(1, 23)}


def write_dataset(workdir, n_cells, n_peaks, n_genes, seed=0):
    import anndata as ad
    import h5py
    import mudata as md
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    names, sizes = list(CHROM_SIZES), np.array(list(CHROM_SIZES.values()), dtype=float)
    peak_chrom = rng.choice(names, n_peaks, p=sizes / sizes.sum())
    peak_start = (rng.random(n_peaks) * sizes[[names.index(c) for c in peak_chrom]]).astype(np.int64)
    atac_var = pd.DataFrame({"chrom": peak_chrom, "start": peak_start, "end": peak_start + 500})
    atac_var.index = [f"{c}:{s}-{s + 500}" for c, s in zip(peak_chrom, peak_start)]
    gene_chrom = rng.choice(names, n_genes, p=sizes / sizes.sum())
    tss = (rng.random(n_genes) * sizes[[names.index(c) for c in gene_chrom]]).astype(np.int64)
    gene_names = [f"G{i}" for i in range(n_genes)]
    obs = pd.DataFrame(index=[f"c{i}" for i in range(n_cells)])
    rna = sp.random(n_cells, n_genes, density=0.05, format="csr", random_state=seed, dtype=np.float32)
    atac = sp.random(n_cells, n_peaks, density=0.02, format="csr", random_state=seed + 1, dtype=np.float32)
    rna.data = np.ceil(rna.data * 5)
    atac.data = np.ceil(atac.data * 2)
    rna_ad = ad.AnnData(rna, obs=obs.copy(), var=pd.DataFrame(index=gene_names))
    atac_ad = ad.AnnData(atac, obs=obs.copy(), var=atac_var)
    rna_ad.layers["counts"], atac_ad.layers["counts"] = rna, atac
    mdata = md.MuData({"rna": rna_ad, "atac": atac_ad})
    mdata.obsm["X_scmvp"] = rng.normal(size=(n_cells, 16)).astype(np.float32)
    path = os.path.join(workdir, "imputed.h5mu")
    mdata.write(path)
    with h5py.File(path, "a") as f:  # dense imputed layers, written in row chunks
        for mod, n_vars in (("rna", n_genes), ("atac", n_peaks)):
            dset = f.create_dataset(f"mod/{mod}/layers/imputed", shape=(n_cells, n_vars), dtype="float32",
                                    chunks=(min(n_cells, 64), min(n_vars, 4096)))
            dset.attrs["encoding-type"], dset.attrs["encoding-version"] = "array", "0.2.0"
            for start in range(0, n_cells, 256):
                stop = min(n_cells, start + 256)
                dset[start:stop] = rng.gamma(1.0, 0.1, size=(stop - start, n_vars)).astype(np.float32)
    genes = pd.DataFrame({"chrom": gene_chrom, "start": tss, "end": tss + 1, "name": gene_names,
                          "score": 0, "strand": "+"})
    genes.to_csv(os.path.join(workdir, "genes.bed"), sep="\t", header=False, index=False)
    return path


def run_linking(workdir):
    import logging

    from scmvp.cre import LinkingData, predict_links
    from scmvp.genes import read_genes

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    start = time.perf_counter()
    annotation = read_genes(os.path.join(workdir, "genes.bed"))
    with LinkingData(os.path.join(workdir, "imputed.h5mu")) as data:
        links = predict_links(data, annotation, window=500_000, methods=["lasso", "correlation"],
                              n_metacells=300, n_permutations=200, fdr=0.05, max_genes=None, seed=0)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": round(seconds, 1), "peak_rss_mb": round(peak_mb), "pairs": int(len(links) // 4),
                      "links_rows": int(len(links))}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=2000)
    parser.add_argument("--peaks", type=int, default=100_000)
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--workdir")
    parser.add_argument("--link-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.link_only:
        run_linking(args.workdir)
        return
    with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
        t0 = time.perf_counter()
        write_dataset(workdir, args.cells, args.peaks, args.genes)
        print(f"synthetic data: {args.cells} cells x {args.peaks} peaks x {args.genes} genes "
              f"written in {time.perf_counter() - t0:.0f} s")
        result = subprocess.run([sys.executable, __file__, "--link-only", "--workdir", workdir],
                                stdout=subprocess.PIPE, text=True)  # progress goes to stderr
        print("predict_links:", result.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
