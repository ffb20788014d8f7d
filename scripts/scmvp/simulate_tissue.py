"""A harder simulated tissue: many unequal cell types at low depth, some told apart by one modality only.

The example (:mod:`scmvp.simulate`) is easy: six well separated labels that every method recovers. Real tissue
is not. :func:`simulate_tissue` draws, on the same synthetic genome and the same count models:

* ``n_types - 2`` discrete types ``C1..`` in a few lineages, with very unequal sizes: ``C1`` holds
  ``largest_share`` of the cells and the sizes decay geometrically, so that several types are below 1 %;
  each type = its lineage's programme (DE genes + specific peaks) + a smaller programme of its own;
* ``n_chromatin_only`` types whose RNA is exactly that of a sibling in the lineage: only their own
  specific peaks tell them apart;
* ``n_rna_only`` types whose chromatin is exactly that of a sibling (promoters and enhancers follow the
  sibling's expression, the same specific peaks): only their own DE genes tell them apart;
* a batch-free continuous trajectory (``T_early`` / ``T_late`` split at pseudotime 0.5), as in the example;
* low depth: ``rna_umis`` UMIs and ``atac_fragments`` fragments in peaks per cell (medians; log-normal
  spread shared by both modalities through a cell-quality factor).

It returns a :class:`scmvp.simulate.SimulatedDataset`, so :func:`scmvp.simulate_write.write_simulated` writes it in
the Cell Ranger ARC layout with its references and truth, and the workflow runs it as `technology: simulated`
with `simulate: {scenario: tissue}`. ``extra`` records which types are chromatin-only / RNA-only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .simulate import (TRAJECTORY_LABELS, SimulatedDataset, _barcodes, _enhancer_links, _genome, _place_peaks,
                       _programs, _sigmoid, _trajectory_lfc, cell_type_names, cut_site_counts,
                       expression_proportions, nb_counts, reference_tables, representative_cells)

# A specific peak is ~5.7x more open in its programme's cells than elsewhere (log2 FC ~2.5, the order of real
# cell-type marker peaks; the example's 0.85 / 0.03 is a 28x contrast that makes ATAC alone near-perfect)
OPEN, CLOSED, SHARED_OPEN, BACKGROUND = 0.85, 0.15, 0.75, 0.04
TRAJECTORY_SHARE = 0.08
MIN_CELLS_PER_TYPE = 10   # a 5-fold label-transfer score needs a few cells of every type


@dataclass
class _Tissue:
    rna_lfc: np.ndarray        # (n_discrete, genes) log fold changes of expression
    chrom_lfc: np.ndarray      # (n_discrete, genes) the expression state promoters/enhancers follow
    programme_of: np.ndarray   # (n_discrete, 2) indices of the lineage and own specific-peak programme
    lineage: np.ndarray        # (n_discrete,) lineage of each type
    chromatin_only: list
    rna_only: list


def type_sizes(n_cells, n_discrete, largest_share, trajectory_share=TRAJECTORY_SHARE, decay=0.72):
    """Cells per discrete type (largest first, geometric decay, >= MIN_CELLS_PER_TYPE) and on the trajectory."""
    n_traj = int(round(n_cells * trajectory_share))
    rest = n_cells - n_traj
    tail = decay ** np.arange(n_discrete - 1)
    share = np.concatenate([[largest_share], (1 - largest_share - trajectory_share) * tail / tail.sum()])
    sizes = np.maximum(MIN_CELLS_PER_TYPE, np.floor(share / share.sum() * rest)).astype(int)
    sizes[0] += rest - sizes.sum()
    if sizes[0] < sizes[1:].max():
        raise ValueError(f"{n_cells} cells are too few for {n_discrete} types of at least {MIN_CELLS_PER_TYPE}")
    return sizes, n_traj


def _tissue_programmes(rng, n_genes, n_discrete, n_lineages, n_chromatin_only, n_rna_only):
    """Lineage + own DE programmes; picks the single-modality types among the mid-sized ones (not C1, not
    the smallest few, whose handful of cells would make them untestable) and a sibling in their lineage."""
    lineage = np.arange(n_discrete) % n_lineages
    order = rng.permutation(n_genes)
    pos = 0

    def take(n):
        nonlocal pos
        idx = order[np.arange(pos, pos + n) % n_genes]
        pos += n
        return idx

    def lfc(n, up_mean, down_mean):
        up = rng.random(n) < 0.7
        return np.where(up, rng.normal(up_mean, 0.4, n), -rng.normal(down_mean, 0.3, n))

    n_lineage_de = max(5, int(0.04 * n_genes))
    n_own_de = max(3, int(0.02 * n_genes))
    lineage_lfc = np.zeros((n_lineages, n_genes))
    for g in range(n_lineages):
        idx = take(n_lineage_de)
        lineage_lfc[g, idx] = lfc(n_lineage_de, 1.8, 1.3)
    own_lfc = np.zeros((n_discrete, n_genes))
    for k in range(n_discrete):
        idx = take(n_own_de)
        own_lfc[k, idx] = lfc(n_own_de, 1.5, 1.1)
    rna_lfc = lineage_lfc[lineage] + own_lfc
    # own specific-peak programme of type k: n_lineages + k; lineage programme: lineage[k]
    programme_of = np.stack([lineage, n_lineages + np.arange(n_discrete)], axis=1)

    candidates = [k for k in range(n_lineages, n_discrete - 3)]  # each has a sibling k - n_lineages
    if n_chromatin_only + n_rna_only > len(candidates):
        raise ValueError(f"{n_discrete} discrete types leave room for at most {len(candidates)} "
                         "chromatin-only + RNA-only types")
    picked = rng.choice(candidates, size=n_chromatin_only + n_rna_only, replace=False)
    chromatin_only, rna_only = sorted(picked[:n_chromatin_only]), sorted(picked[n_chromatin_only:])
    chrom_lfc = rna_lfc.copy()   # promoters and enhancers follow expression, unless overridden below
    # in increasing order, so that a type copies its sibling's final state even when the sibling is special too
    for k in sorted(picked):
        sibling = k - n_lineages
        if k in chromatin_only:    # the sibling's expression (and promoters/enhancers); its own specific peaks
            rna_lfc[k] = rna_lfc[sibling]
            chrom_lfc[k] = chrom_lfc[sibling]
        else:                      # own expression; the sibling's chromatin and specific peaks
            chrom_lfc[k] = chrom_lfc[sibling]
            programme_of[k, 1] = programme_of[sibling, 1]
    return _Tissue(rna_lfc, chrom_lfc, programme_of, lineage, [int(k) for k in chromatin_only],
                   [int(k) for k in rna_only])


@dataclass
class _Chromatin:
    prom_cols: np.ndarray
    prom_genes: np.ndarray
    prom_offset: np.ndarray
    enh_cols: np.ndarray
    enh_weights: sp.csr_matrix
    enh_offset: np.ndarray
    spec_cols: np.ndarray
    spec_programme: np.ndarray   # (specific peaks,) programme index: lineages, types, then early/late
    shared_cols: np.ndarray
    strength: np.ndarray
    n_peaks: int


def _chromatin(rng, peaks, links, base, n_programmes):
    kind = peaks["kind"].to_numpy()
    prom_cols = np.flatnonzero(kind == "promoter")
    prom_genes = peaks["origin_gene"].to_numpy()[prom_cols]
    zbase = (base - base.mean()) / base.std()
    prom_offset = -0.8 + 0.8 * zbase[prom_genes] + rng.normal(0, 0.3, len(prom_cols))
    enh_cols = np.flatnonzero(kind == "enhancer")
    col_of = np.full(len(peaks), -1)
    col_of[enh_cols] = np.arange(len(enh_cols))
    w = sp.csr_matrix((np.ones(len(links)), (links["gene_index"], col_of[links["peak_index"]])),
                      shape=(len(base), len(enh_cols)))
    w = (w @ sp.diags(1.0 / np.maximum(np.asarray(w.sum(axis=0)).ravel(), 1))).tocsr()
    enh_offset = rng.normal(-1.5, 0.6, len(enh_cols))
    spec_cols = np.flatnonzero(kind == "specific")
    spec_programme = rng.integers(0, n_programmes, size=len(spec_cols))
    return _Chromatin(prom_cols, prom_genes, prom_offset, enh_cols, w, enh_offset, spec_cols, spec_programme,
                      np.flatnonzero(kind == "shared"), rng.lognormal(0.0, 0.5, len(peaks)), len(peaks))


def _membership(tissue, group, t, n_programmes):
    """Cells x specific-peak programmes: lineage + own (or the sibling's), soft along the trajectory."""
    m = np.zeros((len(group), n_programmes))
    discrete = np.flatnonzero(group >= 0)
    rows = tissue.programme_of[group[discrete]]
    m[discrete, rows[:, 0]] = 1.0
    m[discrete, rows[:, 1]] = 1.0
    traj = np.flatnonzero(group < 0)
    late = _sigmoid((t[traj] - 0.5) / 0.08)
    m[traj, -2], m[traj, -1] = 1 - late, late
    return m


def _openness(chrom: _Chromatin, chrom_lfc, membership):
    o = np.full((chrom_lfc.shape[0], chrom.n_peaks), BACKGROUND)
    o[:, chrom.prom_cols] = _sigmoid(chrom.prom_offset + 2.0 * chrom_lfc[:, chrom.prom_genes])
    o[:, chrom.enh_cols] = _sigmoid(chrom.enh_offset + 2.0 * np.asarray(chrom_lfc @ chrom.enh_weights))
    o[:, chrom.spec_cols] = CLOSED + (OPEN - CLOSED) * np.clip(membership[:, chrom.spec_programme], 0, 1)
    o[:, chrom.shared_cols] = SHARED_OPEN
    return o


def simulate_tissue(n_cells=5000, n_genes=2000, n_peaks=20000, n_types=17, n_chromosomes=5, seed=0,
                    rna_umis=1000, atac_fragments=2000, largest_share=0.32, n_lineages=4, n_chromatin_only=3,
                    n_rna_only=3, genome="synthetic", chunk_entries=8_000_000) -> SimulatedDataset:
    """Simulate the hard tissue (module docstring). Same arguments -> same numbers."""
    label_names = cell_type_names(n_types)
    n_discrete = n_types - 2
    streams = np.random.SeedSequence([seed, 7]).spawn(8)
    rng_genome, rng_prog, rng_cells, rng_acc, rng_links, rng_bc, rng_marks, rng_tissue = (
        np.random.default_rng(s) for s in streams)

    genes, chrom_sizes = _genome(rng_genome, n_genes, n_chromosomes)
    peaks = _place_peaks(rng_genome, genes, chrom_sizes, n_peaks)
    links = _enhancer_links(rng_links, genes, peaks)
    prog = _programs(rng_prog, n_genes, n_discrete)        # baseline expression + the trajectory's programme
    tissue = _tissue_programmes(rng_tissue, n_genes, n_discrete, n_lineages, n_chromatin_only, n_rna_only)
    n_programmes = n_lineages + n_discrete + 2
    chrom = _chromatin(rng_acc, peaks, links, prog.base, n_programmes)

    sizes, n_traj = type_sizes(n_cells, n_discrete, largest_share)
    group = np.concatenate([np.repeat(np.arange(n_discrete), sizes), np.full(n_traj, -1)])
    t = np.full(n_cells, np.nan)
    t[group < 0] = rng_cells.random(n_traj)
    perm = rng_cells.permutation(n_cells)
    group, t = group[perm], t[perm]
    labels = np.where(group >= 0, np.array(label_names)[np.maximum(group, 0)],
                      np.where(t < 0.5, TRAJECTORY_LABELS[0], TRAJECTORY_LABELS[1]))
    barcodes = _barcodes(rng_bc, n_cells)
    quality = rng_cells.normal(size=n_cells)
    library = rna_umis * np.exp(0.5 * quality + 0.3 * rng_cells.normal(size=n_cells))
    fragments_in_peaks = atac_fragments * np.exp(0.4 * quality + 0.4 * rng_cells.normal(size=n_cells))
    theta = rng_prog.lognormal(np.log(3.0), 0.5, n_genes)

    def states(idx):
        """RNA and chromatin log fold changes and programme membership of cells ``idx``."""
        g = group[idx]
        rna = np.empty((len(idx), n_genes))
        chr_ = np.empty_like(rna)
        on = g >= 0
        rna[on], chr_[on] = tissue.rna_lfc[g[on]], tissue.chrom_lfc[g[on]]
        if (~on).any():
            rna[~on] = chr_[~on] = _trajectory_lfc(prog, t[idx][~on])
        return rna, chr_, _membership(tissue, g, t[idx], n_programmes)

    chunk = max(16, int(chunk_entries // max(n_peaks, n_genes)))
    rna_parts, atac_parts = [], []
    starts = range(0, n_cells, chunk)
    chunk_rngs = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, 8]).spawn(len(starts))]
    for c0, crng in zip(starts, chunk_rngs):
        idx = np.arange(c0, min(n_cells, c0 + chunk))
        rna_lfc, chrom_lfc, member = states(idx)
        rna_parts.append(nb_counts(crng, library[idx, None] * expression_proportions(prog.base, rna_lfc), theta))
        weight = _openness(chrom, chrom_lfc, member) * chrom.strength
        atac_parts.append(cut_site_counts(crng, fragments_in_peaks[idx, None] * weight
                                          / weight.sum(axis=1, keepdims=True)))
    rna = sp.vstack(rna_parts).tocsr()
    atac = sp.vstack(atac_parts).tocsr()

    true_p = np.zeros((len(label_names), n_genes))
    openness = np.zeros((len(label_names), n_peaks))
    for j, name in enumerate(label_names):
        cells = representative_cells(labels, name)
        if not len(cells):
            continue
        rna_lfc, chrom_lfc, member = states(cells)
        true_p[j] = expression_proportions(prog.base, rna_lfc).mean(axis=0)
        openness[j] = _openness(chrom, chrom_lfc, member).mean(axis=0)
    bulk_rna, de_genes, links_table = reference_tables(label_names, true_p, genes, peaks, chrom.prom_cols,
                                                       chrom.prom_genes, links)
    names = np.array(label_names)
    return SimulatedDataset(
        barcodes=barcodes, labels=labels, pseudotime=t, genes=genes, peaks=peaks, rna=rna, atac=atac,
        chrom_sizes=chrom_sizes, links=links_table, de_genes=de_genes, bulk_rna=bulk_rna,
        peak_openness=pd.DataFrame(openness.T, columns=label_names, index=peaks["peak"].to_numpy()),
        genome=genome,
        extra={"marks_seed": int(rng_marks.integers(2**31)),
               "chromatin_only": {str(names[k]): str(names[k - n_lineages]) for k in tissue.chromatin_only},
               "rna_only": {str(names[k]): str(names[k - n_lineages]) for k in tissue.rna_only}},
    )
