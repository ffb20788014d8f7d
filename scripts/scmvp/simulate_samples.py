"""Several simulated Cell Ranger ARC libraries of one experiment, and their sample sheet.

One paired dataset is simulated with :func:`scmvp.simulate.simulate` (shared cell types, labels, genome, true
peaks); its cells are split over ``n_samples`` libraries, and each library gets what distinguishes real runs:

* its own depth: RNA and ATAC counts thinned (binomially) to ``depths[s]`` of the simulated counts;
* a library-specific shift in expression: a random ``batch_gene_fraction`` of the genes is scaled by
  ``exp(N(0, batch_lfc))`` in that library (thinned when below 1, Poisson-topped-up when above);
* its own peak calls: every true peak's boundaries move by up to ``peak_shift`` of its width (at most 24 bp, so a
  library's peaks stay disjoint: the simulator keeps true peaks >= 50 bp apart), ``peak_drop`` of the peaks are
  not called (their counts are lost, as a run that misses a peak loses them) and ``peak_split`` of them are
  called as two peaks (a cell's counts split binomially between the halves). Merging the libraries' calls
  gives back one merged peak per true peak called by at least one library, two where every call of it was split
  with gaps that do not overlap (:attr:`SimulatedSamples.n_merged_peaks`, computed from the truth);
* its own barcodes from the 10x-style generator, ``shared_barcodes`` of them equal to barcodes of the first
  library (10x libraries draw from the same whitelist), so the joined cells need the sample in their names.

:func:`write_samples` writes each library as ``{sample}/outs/filtered_feature_bc_matrix/`` (``matrix.mtx.gz``,
``features.tsv.gz`` with ARC's six columns, ``barcodes.tsv.gz``) plus ``{sample}/labels.tsv``, and
``samples.tsv`` (sample, technology, path, labels, donor, condition; paths relative to the sheet) and
``truth.tsv`` (per library: cells, depth, peaks called, and the expected merged peak count) next to them. With
``fragments=True`` (the default) each ``outs/`` also gets Cell Ranger ARC's ``atac_fragments.tsv.gz`` (+ ``.tbi``)
and ``per_barcode_metrics.csv``, drawn by :func:`scmvp.simulate_fragments.write_simulated_fragments` from the
library's thinned counts in the true peaks (so a shallow library has fewer fragments), named by the library's own
barcodes.

Command line (the package is under scripts/)::

    PYTHONPATH=scripts python -m scmvp.simulate_samples OUTDIR [--n-samples 3] [--n-cells 1200] [--seed 0]
        [--depths 1 0.75 0.5] [--batch-gene-fraction 0.3] [--batch-lfc 1.0]
"""
from __future__ import annotations

import argparse
import gzip
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from .simulate import simulate, unique_barcodes

MAX_BOUNDARY_SHIFT = 24  # < half the simulator's minimum gap between true peaks (50 bp)
SPLIT_GAP = 20


@dataclass
class Library:
    sample: str
    barcodes: np.ndarray          # (cells,) str, sorted
    labels: np.ndarray            # (cells,) str
    rna: sp.csr_matrix            # cells x genes, int
    atac: sp.csr_matrix           # cells x called peaks, int
    peaks: pd.DataFrame           # chrom, start, end, true_peak (index into the true peaks)
    depth: float
    covariates: dict
    atac_true: sp.csr_matrix | None = None   # cells x true peaks, int (before peak calling): the fragments' source
    fragments_seed: int = 0


@dataclass
class SimulatedSamples:
    genes: pd.DataFrame           # the simulator's genes table
    true_peaks: pd.DataFrame      # the simulator's peaks table
    libraries: list
    genome: str
    chrom_sizes: dict | None = None

    @property
    def n_merged_peaks(self) -> int:
        """Merged peaks expected from the libraries' calls, computed from the truth, not with bedtools.

        Calls of different true peaks never touch (true peaks lie >= 50 bp apart, boundaries move <= 24 bp), so
        the merged peaks are, per true peak, the connected groups of its calls over all libraries: usually one;
        two when every library that called it split it and the halves' gaps overlap. Touching calls (start ==
        the previous end) join, as ``bedtools merge`` joins book-ended intervals.
        """
        calls = pd.concat([lib.peaks for lib in self.libraries]).sort_values(["true_peak", "start"])
        reach = calls.groupby("true_peak")["end"].cummax()
        previous = reach.groupby(calls["true_peak"]).shift()
        return int((previous.isna() | (calls["start"] > previous)).sum())


def _scale_counts(rng, matrix: sp.csr_matrix, factor) -> sp.csr_matrix:
    """Counts scaled by ``factor`` (scalar or per column): binomial thinning below 1, a Poisson top-up above."""
    matrix = matrix.tocsr(copy=True)
    f = np.broadcast_to(np.asarray(factor, dtype=float), (matrix.shape[1],))[matrix.indices]
    down = f <= 1
    data = matrix.data.astype(np.int64)
    data[down] = rng.binomial(data[down], f[down])
    data[~down] = data[~down] + rng.poisson(data[~down] * (f[~down] - 1))
    matrix.data = data.astype(np.int32)
    matrix.eliminate_zeros()
    return matrix


def _call_peaks(rng, peaks: pd.DataFrame, atac: sp.csr_matrix, shift, drop, split):
    """One library's peak calls from the true peaks, and its cells x called-peaks counts."""
    n = len(peaks)
    start = peaks["start"].to_numpy(np.int64)
    end = peaks["end"].to_numpy(np.int64)
    bound = np.minimum((shift * (end - start)).astype(np.int64), MAX_BOUNDARY_SHIFT)
    start = start + rng.integers(-bound, bound + 1)
    end = end + rng.integers(-bound, bound + 1)
    called = rng.random(n) >= drop
    halves = called & (rng.random(n) < split)
    rows = []
    for j in np.flatnonzero(called):
        if halves[j]:
            mid = (start[j] + end[j]) // 2
            rows.append((j, start[j], mid - SPLIT_GAP // 2, 0))
            rows.append((j, mid + SPLIT_GAP // 2, end[j], 1))
        else:
            rows.append((j, start[j], end[j], -1))
    table = pd.DataFrame(rows, columns=["true_peak", "start", "end", "half"])
    table.insert(0, "chrom", peaks["chrom"].to_numpy()[table["true_peak"]])
    # counts: each cell's count in a true peak goes to its called peak; split peaks share it binomially
    coo = atac.tocoo()
    first = np.full(n, -1)
    first[table["true_peak"].to_numpy()[::-1]] = np.arange(len(table))[::-1]  # first called peak of each
    keep = called[coo.col]
    r, c, v = coo.row[keep], coo.col[keep], coo.data[keep].astype(np.int64)
    col = first[c]
    in_half = halves[c]
    left = rng.binomial(v[in_half], 0.5)
    rows_out = np.concatenate([r[~in_half], r[in_half], r[in_half]])
    cols_out = np.concatenate([col[~in_half], col[in_half], col[in_half] + 1])
    vals_out = np.concatenate([v[~in_half], left, v[in_half] - left])
    counts = sp.csr_matrix((vals_out.astype(np.int32), (rows_out, cols_out)), shape=(atac.shape[0], len(table)))
    counts.eliminate_zeros()
    return table[["chrom", "start", "end", "true_peak"]], counts


def simulate_samples(n_samples=3, n_cells=1200, n_genes=2000, n_peaks=20000, n_types=6, n_chromosomes=5, seed=0,
                     depths=None, batch_gene_fraction=0.3, batch_lfc=1.0, peak_shift=0.25, peak_drop=0.03,
                     peak_split=0.03, shared_barcodes=5, genome="synthetic") -> SimulatedSamples:
    """Simulate ``n_samples`` libraries of one experiment (see the module docstring). Same arguments -> same data."""
    if n_samples < 1:
        raise ValueError("n_samples must be >= 1")
    depths = list(depths) if depths is not None else list(np.linspace(1.0, 0.5, n_samples))
    if len(depths) != n_samples:
        raise ValueError(f"{len(depths)} depths for {n_samples} samples")
    base = simulate(n_cells=n_cells, n_genes=n_genes, n_peaks=n_peaks, n_types=n_types,
                    n_chromosomes=n_chromosomes, seed=seed, genome=genome)
    rng = np.random.default_rng([seed, 12])
    order = rng.permutation(n_cells)
    parts = np.array_split(order, n_samples)
    libraries, first_barcodes = [], []
    for s, cells in enumerate(parts):
        lib_rng = np.random.default_rng([seed, 12, s])
        cells = np.sort(cells)
        gene_factor = np.full(n_genes, depths[s])
        shifted = lib_rng.random(n_genes) < batch_gene_fraction
        gene_factor[shifted] *= np.exp(lib_rng.normal(0, batch_lfc, int(shifted.sum())))
        rna = _scale_counts(lib_rng, base.rna[cells], gene_factor)
        atac_true = _scale_counts(lib_rng, base.atac[cells], depths[s])
        peaks, atac = _call_peaks(lib_rng, base.peaks, atac_true, peak_shift, peak_drop, peak_split)
        barcodes = unique_barcodes(lib_rng, len(cells))
        if s > 0 and shared_barcodes:
            k = min(shared_barcodes, len(barcodes), len(first_barcodes))
            clash = set(first_barcodes[:k])
            rest = [b for b in barcodes if b not in clash][: len(barcodes) - k]
            barcodes = list(first_barcodes[:k]) + rest
        if s == 0:
            first_barcodes = list(barcodes)
        barcodes = np.asarray(barcodes, dtype=object)
        sort = np.argsort(barcodes, kind="stable")
        name = f"lib{s + 1}"
        libraries.append(Library(
            sample=name, barcodes=barcodes[sort], labels=base.labels[cells][sort], rna=rna[sort].tocsr(),
            atac=atac[sort].tocsr(), peaks=peaks, depth=float(depths[s]),
            covariates={"donor": f"D{s + 1}", "condition": "control" if s % 2 == 0 else "treated"},
            atac_true=atac_true[sort].tocsr(), fragments_seed=1000 * seed + s))
    return SimulatedSamples(genes=base.genes, true_peaks=base.peaks, libraries=libraries, genome=genome,
                            chrom_sizes=dict(base.chrom_sizes))


def write_arc_folder(lib: Library, genes: pd.DataFrame, folder, genome="synthetic"):
    """Cell Ranger ARC's ``filtered_feature_bc_matrix/`` (features x barcodes, genes first, then peaks)."""
    os.makedirs(folder, exist_ok=True)
    matrix = sp.hstack([lib.rna, lib.atac], format="csr").T.tocoo()  # features x barcodes
    with gzip.open(os.path.join(folder, "matrix.mtx.gz"), "wb") as fh:
        scipy.io.mmwrite(fh, matrix.astype(np.int64), field="integer")
    features = pd.DataFrame({
        "id": list(genes["gene_id"]) + [f"{c}:{s}-{e}" for c, s, e in lib.peaks[["chrom", "start", "end"]]
                                        .itertuples(index=False)],
        "name": list(genes["gene_name"]) + [f"{c}:{s}-{e}" for c, s, e in lib.peaks[["chrom", "start", "end"]]
                                            .itertuples(index=False)],
        "type": ["Gene Expression"] * len(genes) + ["Peaks"] * len(lib.peaks),
        "chrom": list(genes["chrom"]) + list(lib.peaks["chrom"]),
        "start": list(genes["tss"]) + list(lib.peaks["start"]),
        "end": list(genes["tss"] + 1) + list(lib.peaks["end"]),
    })
    features.to_csv(os.path.join(folder, "features.tsv.gz"), sep="\t", header=False, index=False)
    pd.Series(lib.barcodes).to_csv(os.path.join(folder, "barcodes.tsv.gz"), header=False, index=False)


def write_arc_fragments(sim: SimulatedSamples, lib: Library, outs):
    """``atac_fragments.tsv.gz`` (+ ``.tbi``) and ``per_barcode_metrics.csv`` of one library in ``outs``."""
    from .rule import atomic_path
    from .simulate_fragments import write_simulated_fragments

    path = os.path.join(outs, "atac_fragments.tsv.gz")
    metrics = write_simulated_fragments(lib.barcodes, lib.atac_true, lib.rna, sim.true_peaks, sim.genes,
                                        sim.chrom_sizes, lib.fragments_seed, path, path + ".tbi", atomic_path,
                                        sim.genome)
    with atomic_path(os.path.join(outs, "per_barcode_metrics.csv")) as tmp:
        metrics.to_csv(tmp, index=False)


def write_samples(sim: SimulatedSamples, outdir, fragments: bool = True) -> str:
    """Write every library, the sample sheet and the truth table under ``outdir``; returns the sheet's path.
    ``fragments``: also each library's ARC fragments file and per-barcode metrics (:func:`write_arc_fragments`)."""
    os.makedirs(outdir, exist_ok=True)
    rows, truth = [], []
    for lib in sim.libraries:
        folder = os.path.join(outdir, lib.sample)
        write_arc_folder(lib, sim.genes, os.path.join(folder, "outs", "filtered_feature_bc_matrix"), sim.genome)
        if fragments and lib.atac_true is not None and sim.chrom_sizes:
            write_arc_fragments(sim, lib, os.path.join(folder, "outs"))
        pd.DataFrame({"barcode": lib.barcodes, "label": lib.labels}).to_csv(
            os.path.join(folder, "labels.tsv"), sep="\t", index=False)
        rows.append({"sample": lib.sample, "technology": "10x_multiome", "path": f"{lib.sample}/outs",
                     "labels": f"{lib.sample}/labels.tsv", **lib.covariates})
        truth.append({"sample": lib.sample, "cells": len(lib.barcodes), "depth": lib.depth,
                      "peaks_called": len(lib.peaks), "merged_peaks_expected": sim.n_merged_peaks})
    sheet = os.path.join(outdir, "samples.tsv")
    pd.DataFrame(rows).to_csv(sheet, sep="\t", index=False)
    pd.DataFrame(truth).to_csv(os.path.join(outdir, "truth.tsv"), sep="\t", index=False)
    return sheet


def main(argv=None):
    parser = argparse.ArgumentParser(description="Simulate several Cell Ranger ARC libraries and their sample sheet.")
    parser.add_argument("outdir")
    parser.add_argument("--n-samples", type=int, default=3)
    parser.add_argument("--n-cells", type=int, default=1200, help="cells over all libraries")
    parser.add_argument("--n-genes", type=int, default=2000)
    parser.add_argument("--n-peaks", type=int, default=20000)
    parser.add_argument("--n-types", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--depths", type=float, nargs="+", help="per library (default 1 .. 0.5, evenly spaced)")
    parser.add_argument("--batch-gene-fraction", type=float, default=0.3, help="genes shifted per library")
    parser.add_argument("--batch-lfc", type=float, default=1.0, help="sd of the shifted genes' log fold change")
    parser.add_argument("--no-fragments", action="store_true",
                        help="write no atac_fragments.tsv.gz / per_barcode_metrics.csv")
    args = parser.parse_args(argv)
    sim = simulate_samples(n_samples=args.n_samples, n_cells=args.n_cells, n_genes=args.n_genes,
                           n_peaks=args.n_peaks, n_types=args.n_types, seed=args.seed, depths=args.depths,
                           batch_gene_fraction=args.batch_gene_fraction, batch_lfc=args.batch_lfc)
    sheet = write_samples(sim, args.outdir, fragments=not args.no_fragments)
    print(f"{sheet}: {len(sim.libraries)} libraries, "
          f"{', '.join(f'{lib.sample} {len(lib.barcodes)} cells / {len(lib.peaks)} peaks' for lib in sim.libraries)}"
          f"; {sim.n_merged_peaks} merged peaks expected")


if __name__ == "__main__":
    main()
