"""Writing a :class:`scmvp.simulate.SimulatedDataset`: :func:`write_simulated` writes the Cell Ranger ARC
``filtered_feature_bc_matrix.h5`` (+ ``atac_fragments.tsv.gz`` and ``per_barcode_metrics.csv`` from
:mod:`scmvp.simulate_fragments`) and the labels, references (GTF, bulk RNA/ATAC, histone marks) and truth
tables; :func:`to_mudata` gives the counts as the ingested contract, for tests and benchmarks.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .simulate import SimulatedDataset


def to_mudata(sim: SimulatedDataset, labels: bool = True):
    """The simulated counts as an ingested MuData: rna (genes by name) and atac (peaks with chrom/start/end),
    float32 CSR in X and in layers["counts"], cells named by barcode, obs["label"] (with ``labels``)."""
    import anndata as ad
    import mudata as md

    obs = pd.DataFrame({"label": sim.labels} if labels else {}, index=sim.barcodes)
    rna = ad.AnnData(sp.csr_matrix(sim.rna, dtype=np.float32), obs=obs.copy(),
                     var=pd.DataFrame(index=sim.genes["gene_name"].to_numpy()))
    atac = ad.AnnData(sp.csr_matrix(sim.atac, dtype=np.float32), obs=obs.copy(),
                      var=sim.peaks.set_index("peak")[["chrom", "start", "end"]])
    for adata in (rna, atac):
        adata.layers["counts"] = adata.X.copy()
    mdata = md.MuData({"rna": rna, "atac": atac})
    if labels:
        mdata.obs["label"] = sim.labels
    return mdata


def write_arc_h5(sim: SimulatedDataset, path):
    """Write the Cell Ranger ARC ``filtered_feature_bc_matrix.h5`` layout (genes first, then peaks)."""
    import h5py

    matrix = sp.hstack([sim.rna, sim.atac], format="csr")  # barcodes x features == CSC of features x barcodes
    genes, peaks = sim.genes, sim.peaks
    gene_interval = genes["chrom"] + ":" + genes["tss"].astype(str) + "-" + (genes["tss"] + 1).astype(str)
    features = {
        "feature_type": ["Gene Expression"] * len(genes) + ["Peaks"] * len(peaks),
        "genome": [sim.genome] * (len(genes) + len(peaks)),
        "id": list(genes["gene_id"]) + list(peaks["peak"]),
        "interval": list(gene_interval) + list(peaks["peak"]),
        "name": list(genes["gene_name"]) + list(peaks["peak"]),
    }
    opts = dict(compression="gzip", compression_opts=4, track_times=False)
    with h5py.File(path, "w", track_order=False) as f:
        m = f.create_group("matrix", track_order=False)
        m.create_dataset("barcodes", data=np.array(sim.barcodes, dtype="S"), **opts)
        m.create_dataset("data", data=matrix.data.astype(np.int32), chunks=True, **opts)
        m.create_dataset("indices", data=matrix.indices.astype(np.int64), chunks=True, **opts)
        m.create_dataset("indptr", data=matrix.indptr.astype(np.int64), **opts)
        m.create_dataset("shape", data=np.array([matrix.shape[1], matrix.shape[0]], dtype=np.int32),
                         track_times=False)
        fg = m.create_group("features")
        fg.create_dataset("_all_tag_keys", data=np.array(["genome", "interval"], dtype="S"), track_times=False)
        for key, values in features.items():
            fg.create_dataset(key, data=np.array(values, dtype="S"), **opts)


def _gtf(genes: pd.DataFrame) -> str:
    lines = ["#!genome-build synthetic"]
    for g in genes.itertuples(index=False):
        attrs = f'gene_id "{g.gene_id}"; gene_name "{g.gene_name}"; gene_biotype "protein_coding";'
        lines.append("\t".join([g.chrom, "scmvp_simulate", "gene", str(g.start + 1), str(g.end), ".", g.strand, ".",
                                attrs]))
    return "\n".join(lines) + "\n"


def _marks(sim: SimulatedDataset, rng):
    """Bulk ATAC peaks and histone-mark regions: overlapping the true active peaks, widened and shifted."""
    active = sim.peak_openness.max(axis=1).to_numpy() >= 0.5
    peaks = sim.peaks
    kind = peaks["kind"].to_numpy()

    def jitter(mask, widen_lo, widen_hi, prefix):
        sub = peaks[mask]
        width = (sub["end"] - sub["start"]).to_numpy()
        shift = (rng.uniform(-0.3, 0.3, len(sub)) * width).astype(int)
        left = rng.integers(widen_lo, widen_hi, len(sub))
        right = rng.integers(widen_lo, widen_hi, len(sub))
        bed = pd.DataFrame({"chrom": sub["chrom"].to_numpy(),
                            "start": np.maximum(0, sub["start"].to_numpy() - left + shift),
                            "end": sub["end"].to_numpy() + right + shift})
        bed["name"] = [f"{prefix}_{i + 1}" for i in range(len(bed))]
        return bed

    bulk_atac = jitter(active, 20, 200, "bulk_peak")
    h3k4me3 = jitter(active & (kind == "promoter"), 500, 1500, "H3K4me3")
    h3k27ac = jitter(active & np.isin(kind, ["promoter", "enhancer"]), 300, 1200, "H3K27ac")
    return bulk_atac, h3k4me3, h3k27ac


def write_simulated(sim: SimulatedDataset, paths: dict, atomic=None):
    """Write every simulator output. ``paths``: SIMULATED key -> path (plus optional 'chrom_sizes'; the
    fragments, its index and the per-barcode metrics when their keys are given).

    ``atomic(path)`` is a context manager yielding a temporary path (scmvp.rule.atomic_path by default).
    """
    if atomic is None:
        from .rule import atomic_path as atomic

    def tsv(df, key, **kw):
        with atomic(paths[key]) as tmp:
            df.to_csv(tmp, sep="\t", index=False, **kw)

    with atomic(paths["matrix"]) as tmp:
        write_arc_h5(sim, tmp)
    if paths.get("fragments") or paths.get("barcode_metrics"):
        from .simulate_fragments import write_simulated_fragments

        metrics = write_simulated_fragments(sim.barcodes, sim.atac, sim.rna, sim.peaks, sim.genes, sim.chrom_sizes,
                                            sim.extra["marks_seed"], paths.get("fragments"),
                                            paths.get("fragments_index"), atomic, sim.genome)
        if paths.get("barcode_metrics"):
            with atomic(paths["barcode_metrics"]) as tmp:
                metrics.to_csv(tmp, index=False)
    tsv(pd.DataFrame({"barcode": sim.barcodes, "label": sim.labels}), "labels")
    with atomic(paths["genes"]) as tmp:
        with open(tmp, "w") as fh:
            fh.write(_gtf(sim.genes))
    tsv(sim.bulk_rna, "bulk_rna", float_format="%.4f")
    bulk_atac, h3k4me3, h3k27ac = _marks(sim, np.random.default_rng(sim.extra["marks_seed"]))
    tsv(bulk_atac, "bulk_atac", header=False)
    tsv(h3k4me3, "H3K4me3", header=False)
    tsv(h3k27ac, "H3K27ac", header=False)
    tsv(sim.links, "links")
    tsv(sim.de_genes, "de_genes")
    on_traj = ~np.isnan(sim.pseudotime)
    tsv(pd.DataFrame({"barcode": sim.barcodes[on_traj], "pseudotime": np.round(sim.pseudotime[on_traj], 6)}),
        "pseudotime")
    if paths.get("chrom_sizes"):
        tsv(pd.DataFrame({"chrom": list(sim.chrom_sizes), "length": list(sim.chrom_sizes.values())}),
            "chrom_sizes", header=False)


def summary(sim: SimulatedDataset) -> dict:
    """A few numbers worth logging."""
    n_cells = len(sim.barcodes)
    return {
        "cells": n_cells, "genes": sim.rna.shape[1], "peaks": sim.atac.shape[1],
        "rna_density": sim.rna.nnz / max(1, sim.rna.shape[0] * sim.rna.shape[1]),
        "atac_density": sim.atac.nnz / max(1, sim.atac.shape[0] * sim.atac.shape[1]),
        "median_umis": float(np.median(np.asarray(sim.rna.sum(axis=1)).ravel())),
        "median_atac_counts": float(np.median(np.asarray(sim.atac.sum(axis=1)).ravel())),
        "labels": pd.Series(sim.labels).value_counts().sort_index().to_dict(),
        "links": len(sim.links), "de_genes": len(sim.de_genes),
    }
