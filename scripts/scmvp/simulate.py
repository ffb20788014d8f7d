"""The embedded example: a simulated paired scRNA-seq + scATAC-seq dataset with known truth.

The simulated cells come from ``n_types - 2`` discrete cell types ``C1..Cn`` (the last two, e.g. C3 and C4,
differ by only a few genes and peaks) and a continuous trajectory whose cells are labelled ``T_early`` /
``T_late`` by pseudotime (< or >= 0.5). Everything hangs on one synthetic genome:

* RNA: negative binomial counts around per-state means (log-normal baseline, type programmes of DE genes,
  smooth pseudotime programmes on the trajectory), with log-normal library sizes.
* ATAC: sparse cut-site counts over promoter peaks (following their gene's expression), enhancer peaks
  within 500 kb of 1-3 genes (open where those genes are up), type-specific, shared and background peaks,
  with per-cell depth: Poisson fragments per cell and peak, each leaving one or two cut sites in the peak
  (so counts are mostly 1 or 2), scaled to ~3% non-zero entries.

:func:`simulate` returns a :class:`SimulatedDataset`; :mod:`scmvp.simulate_write` writes it (Cell Ranger ARC
layout, references, truth tables) or turns it into a MuData. Cells x peaks is never held dense: counts are drawn
in chunks of cells and kept sparse.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

MAX_LINK_DISTANCE = 500_000
TARGET_ATAC_DENSITY = 0.03
BOTH_ENDS_IN_PEAK = 0.5
TRAJECTORY_LABELS = ("T_early", "T_late")
BARCODE_BASES = np.array(list("ACGT"))

# Shares of the peak set by kind (promoter peaks: one per gene, capped by PROMOTER_SHARE of the peaks).
PROMOTER_SHARE = 0.2
ENHANCER_SHARE = 0.45
SPECIFIC_SHARE = 0.15
SHARED_SHARE = 0.10  # the rest are background peaks


@dataclass
class SimulatedDataset:
    barcodes: np.ndarray                 # (n_cells,) str, sorted like Cell Ranger
    labels: np.ndarray                   # (n_cells,) str
    pseudotime: np.ndarray               # (n_cells,) float, NaN off the trajectory
    genes: pd.DataFrame                  # gene_id, gene_name, chrom, start, end, strand, tss (BED coordinates)
    peaks: pd.DataFrame                  # peak, chrom, start, end, kind
    rna: sp.csr_matrix                   # cells x genes, int32
    atac: sp.csr_matrix                  # cells x peaks, int32
    chrom_sizes: dict
    links: pd.DataFrame                  # peak, gene, distance, kind
    de_genes: pd.DataFrame               # label, gene, log2_fold_change
    bulk_rna: pd.DataFrame               # gene + one column per label (CPM)
    peak_openness: pd.DataFrame          # peaks x labels: mean accessibility (0..1) of each label
    genome: str = "synthetic"
    extra: dict = field(default_factory=dict)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def cell_type_names(n_types: int) -> list[str]:
    """Labels of a simulation with ``n_types`` labels: C1..C(n_types-2), T_early, T_late."""
    if n_types < 5:
        raise ValueError("the simulator needs n_types >= 5 (three discrete types + the trajectory's two labels)")
    return [f"C{i + 1}" for i in range(n_types - 2)] + list(TRAJECTORY_LABELS)


def unique_barcodes(rng, n, taken=(), oversample=2, extra=8) -> list:
    """``n`` distinct random 16-base 10x-style barcodes (``-1`` suffix), none of them in ``taken``, in draw order.

    Draws ``oversample * missing + extra`` candidates per round (the numbers fix the random stream)."""
    seen, out = set(taken), []
    while len(out) < n:
        batch = rng.integers(0, 4, size=(oversample * (n - len(out)) + extra, 16))
        for row in batch:
            code = "".join(BARCODE_BASES[row]) + "-1"
            if code not in seen:
                seen.add(code)
                out.append(code)
                if len(out) == n:
                    break
    return out


def _barcodes(rng, n):
    return np.array(sorted(unique_barcodes(rng, n)))


# --------------------------------------------------------------------------------------------- genome
def _genome(rng, n_genes, n_chromosomes):
    """Genes spread over chr1..chrN at ~150 kb spacing; returns genes table and chromosome sizes."""
    per_chrom = np.full(n_chromosomes, n_genes // n_chromosomes)
    per_chrom[: n_genes % n_chromosomes] += 1
    rows, sizes = [], {}
    gene_index = 0
    for c, n in enumerate(per_chrom):
        chrom = f"chr{c + 1}"
        length = int(n * 150_000 + 2_000_000)
        sizes[chrom] = length
        tss = np.sort(rng.choice(np.arange(1_000_000, length - 1_000_000, 1000), size=n, replace=False))
        strand = rng.choice(["+", "-"], size=n)
        body = np.clip(rng.lognormal(np.log(20_000), 0.8, size=n).astype(int), 1000, 120_000)
        for t, s, b in zip(tss, strand, body):
            gene_index += 1
            start, end = (t, t + b) if s == "+" else (t - b + 1, t + 1)
            rows.append((f"SIMG{gene_index:06d}", f"Gene{gene_index:05d}", chrom, int(start), int(end), s, int(t)))
    genes = pd.DataFrame(rows, columns=["gene_id", "gene_name", "chrom", "start", "end", "strand", "tss"])
    return genes, sizes


def _place_peaks(rng, genes, chrom_sizes, n_peaks):
    """Peak positions by kind; overlapping peaks are pushed apart. Returns peaks and origin gene per peak."""
    n_genes = len(genes)
    n_prom = min(n_genes, int(PROMOTER_SHARE * n_peaks))
    n_enh = int(ENHANCER_SHARE * n_peaks)
    n_spec = int(SPECIFIC_SHARE * n_peaks)
    n_shared = int(SHARED_SHARE * n_peaks)
    n_bg = n_peaks - n_prom - n_enh - n_spec - n_shared

    prom_genes = np.sort(rng.choice(n_genes, size=n_prom, replace=False))
    width = lambda n: rng.integers(300, 1500, size=n)  # noqa: E731
    centers, chroms, kinds, origin = [], [], [], []
    tss = genes["tss"].to_numpy()
    gchrom = genes["chrom"].to_numpy()
    centers.append(tss[prom_genes] + rng.integers(-150, 150, size=n_prom))
    chroms.append(gchrom[prom_genes])
    kinds.append(np.full(n_prom, "promoter"))
    origin.append(prom_genes)
    # enhancers: near an origin gene (5-450 kb, most within 100 kb), either side
    enh_genes = rng.choice(n_genes, size=n_enh)
    offset = np.clip(rng.exponential(60_000, size=n_enh), 5_000, 450_000).astype(int)
    offset *= rng.choice([-1, 1], size=n_enh)
    centers.append(tss[enh_genes] + offset)
    chroms.append(gchrom[enh_genes])
    kinds.append(np.full(n_enh, "enhancer"))
    origin.append(enh_genes)
    # specific / shared / background: anywhere on the genome
    names = list(chrom_sizes)
    lengths = np.array([chrom_sizes[c] for c in names], dtype=float)
    for kind, n in (("specific", n_spec), ("shared", n_shared), ("background", n_bg)):
        which = rng.choice(len(names), size=n, p=lengths / lengths.sum())
        centers.append((rng.random(n) * (lengths[which] - 20_000) + 10_000).astype(int))
        chroms.append(np.array(names)[which])
        kinds.append(np.full(n, kind))
        origin.append(np.full(n, -1))
    peaks = pd.DataFrame({
        "chrom": np.concatenate(chroms), "center": np.concatenate(centers).astype(np.int64),
        "kind": np.concatenate(kinds), "origin_gene": np.concatenate(origin),
    })
    peaks["width"] = width(len(peaks))
    peaks["chrom_order"] = peaks["chrom"].map({c: i for i, c in enumerate(names)})
    peaks = peaks.sort_values(["chrom_order", "center"], kind="stable").reset_index(drop=True)
    starts = (peaks["center"] - peaks["width"] // 2).to_numpy().copy()
    ends = starts + peaks["width"].to_numpy()
    chrom_codes = peaks["chrom_order"].to_numpy()
    for i in range(1, len(peaks)):  # keep peaks disjoint, >= 50 bp apart, as a peak caller would
        if chrom_codes[i] == chrom_codes[i - 1] and starts[i] < ends[i - 1] + 50:
            shift = ends[i - 1] + 50 - starts[i]
            starts[i] += shift
            ends[i] += shift
    peaks["start"], peaks["end"] = starts, ends
    peaks["peak"] = peaks["chrom"] + ":" + peaks["start"].astype(str) + "-" + peaks["end"].astype(str)
    return peaks[["peak", "chrom", "start", "end", "kind", "origin_gene"]]


def _enhancer_links(rng, genes, peaks):
    """Each enhancer links its origin gene plus up to 2 more genes with a TSS within 500 kb."""
    rows = []
    tss = genes["tss"].to_numpy()
    by_chrom = {c: np.flatnonzero(genes["chrom"].to_numpy() == c) for c in genes["chrom"].unique()}
    mid = ((peaks["start"] + peaks["end"]) // 2).to_numpy()
    peak_chrom = peaks["chrom"].to_numpy()
    peak_origin = peaks["origin_gene"].to_numpy()
    for i in np.flatnonzero(peaks["kind"].to_numpy() == "enhancer"):
        same = by_chrom[peak_chrom[i]]
        near = same[np.abs(tss[same] - mid[i]) <= MAX_LINK_DISTANCE]
        origin = peak_origin[i]
        candidates = near[near != origin]
        n_extra = min(len(candidates), rng.choice([0, 1, 2], p=[0.5, 0.35, 0.15]))
        chosen = [origin] if origin in near else []
        if n_extra:
            # nearer genes are likelier partners
            weights = 1.0 / (np.abs(tss[candidates] - mid[i]) + 20_000)
            chosen += list(rng.choice(candidates, size=n_extra, replace=False, p=weights / weights.sum()))
        for g in chosen:
            rows.append((i, int(g), int(abs(tss[g] - mid[i]))))
    return pd.DataFrame(rows, columns=["peak_index", "gene_index", "distance"])


# ------------------------------------------------------------------------------------ expression states
@dataclass
class _Programs:
    base: np.ndarray            # (genes,) baseline log expression
    discrete: np.ndarray        # (n_discrete, genes) log fold changes of each discrete type
    traj_base: np.ndarray       # (genes,) lineage offset of the trajectory
    traj_amp: np.ndarray        # (genes,) amplitude of the pseudotime programme
    traj_shape: np.ndarray      # (genes,) 0 none, 1 rising, 2 falling, 3 transient
    traj_mid: np.ndarray        # (genes,) midpoint / peak time
    traj_width: np.ndarray


def _programs(rng, n_genes, n_discrete):
    base = rng.normal(0.0, 1.3, size=n_genes)
    order = rng.permutation(n_genes)
    n_de = max(5, int(0.06 * n_genes))
    n_close = max(2, int(0.012 * n_genes))      # own genes of each member of the close pair
    pos = 0

    def take(n):
        nonlocal pos
        idx = order[np.arange(pos, pos + n) % n_genes]
        pos += n
        return idx

    def lfc(n):
        up = rng.random(n) < 0.75
        return np.where(up, rng.normal(2.0, 0.5, n), -rng.normal(1.5, 0.4, n))

    discrete = np.zeros((n_discrete, n_genes))
    for k in range(n_discrete - 2):
        idx = take(n_de)
        discrete[k, idx] += lfc(n_de)
    pair = take(n_de)
    pair_lfc = lfc(n_de)
    for k in (n_discrete - 2, n_discrete - 1):
        discrete[k, pair] += pair_lfc
        own = take(n_close)
        discrete[k, own] += np.abs(rng.normal(2.0, 0.4, n_close))
    traj_base = np.zeros(n_genes)
    idx = take(n_de)
    traj_base[idx] = lfc(n_de)
    traj_amp = np.zeros(n_genes)
    traj_shape = np.zeros(n_genes, dtype=int)
    n_traj = max(6, int(0.1 * n_genes))
    idx = take(n_traj)
    traj_shape[idx] = rng.choice([1, 2, 3], size=n_traj, p=[0.4, 0.4, 0.2])
    traj_amp[idx] = rng.normal(2.2, 0.4, n_traj)
    traj_mid = rng.uniform(0.3, 0.7, n_genes)
    traj_width = rng.uniform(0.06, 0.12, n_genes)
    return _Programs(base, discrete, traj_base, traj_amp, traj_shape, traj_mid, traj_width)


def _trajectory_lfc(prog: _Programs, t):
    """Log fold changes (cells x genes) of trajectory cells at pseudotime ``t``."""
    t = np.asarray(t, dtype=float)[:, None]
    rising = _sigmoid((t - prog.traj_mid) / prog.traj_width)
    transient = np.exp(-((t - prog.traj_mid) ** 2) / (2 * 0.15 ** 2))
    shape = prog.traj_shape
    f = np.where(shape == 1, rising, np.where(shape == 2, 1 - rising, np.where(shape == 3, transient, 0.0)))
    return prog.traj_base + prog.traj_amp * f


def _cell_lfc(prog, group, t):
    """Log fold changes vs baseline for cells of discrete group index ``group`` (-1: trajectory)."""
    out = np.empty((len(group), len(prog.base)))
    on_traj = group < 0
    out[~on_traj] = prog.discrete[group[~on_traj]]
    if on_traj.any():
        out[on_traj] = _trajectory_lfc(prog, t[on_traj])
    return out


# ------------------------------------------------------------------------------------- accessibility
@dataclass
class _Accessibility:
    prom_cols: np.ndarray       # peak indices of promoter peaks
    prom_genes: np.ndarray      # their genes
    prom_offset: np.ndarray
    enh_cols: np.ndarray
    enh_weights: sp.csr_matrix  # genes x enhancers (column-normalised links)
    enh_offset: np.ndarray
    spec_cols: np.ndarray
    spec_membership: np.ndarray  # (programmes, specific peaks) 0/1
    shared_cols: np.ndarray
    strength: np.ndarray         # (peaks,) peak strength
    n_peaks: int


OPEN_SPECIFIC, CLOSED_SPECIFIC, OPEN_SHARED, BACKGROUND = 0.85, 0.03, 0.75, 0.04


def _accessibility_model(rng, peaks, links, prog, n_discrete):
    kind = peaks["kind"].to_numpy()
    n_genes = len(prog.base)
    prom_cols = np.flatnonzero(kind == "promoter")
    prom_genes = peaks["origin_gene"].to_numpy()[prom_cols]
    zbase = (prog.base - prog.base.mean()) / prog.base.std()
    # inactive promoters are mostly closed, so that opening follows the gene's expression
    prom_offset = -0.8 + 0.8 * zbase[prom_genes] + rng.normal(0, 0.3, len(prom_cols))
    enh_cols = np.flatnonzero(kind == "enhancer")
    col_of = np.full(len(peaks), -1)
    col_of[enh_cols] = np.arange(len(enh_cols))
    w = sp.csr_matrix((np.ones(len(links)), (links["gene_index"], col_of[links["peak_index"]])),
                      shape=(n_genes, len(enh_cols)))
    counts = np.asarray(w.sum(axis=0)).ravel()
    w = (w @ sp.diags(1.0 / np.maximum(counts, 1))).tocsr()
    enh_offset = rng.normal(-1.5, 0.6, len(enh_cols))
    # specific programmes: each discrete type but the close pair, the pair together, each member alone
    # (few), early and late trajectory
    spec_cols = np.flatnonzero(kind == "specific")
    n_prog = (n_discrete - 2) + 3 + 2
    weights = np.ones(n_prog)
    weights[n_discrete - 2 + 1: n_discrete - 2 + 3] = 0.15
    which = rng.choice(n_prog, size=len(spec_cols), p=weights / weights.sum())
    membership = np.zeros((n_prog, len(spec_cols)))
    membership[which, np.arange(len(spec_cols))] = 1.0
    shared_cols = np.flatnonzero(kind == "shared")
    strength = rng.lognormal(0.0, 0.5, len(peaks))
    return _Accessibility(prom_cols, prom_genes, prom_offset, enh_cols, w, enh_offset, spec_cols, membership,
                          shared_cols, strength, len(peaks))


def _programme_membership(group, t, n_discrete):
    """Cells x specific programmes (see _accessibility_model), soft along the trajectory."""
    n_prog = (n_discrete - 2) + 3 + 2
    m = np.zeros((len(group), n_prog))
    for i, g in enumerate(group):
        if g < 0:
            late = _sigmoid((t[i] - 0.5) / 0.08)
            m[i, -2], m[i, -1] = 1 - late, late
        elif g < n_discrete - 2:
            m[i, g] = 1
        else:
            m[i, n_discrete - 2] = 1                          # the pair's shared peaks
            m[i, n_discrete - 2 + 1 + (g - (n_discrete - 2))] = 1  # the member's own few
    return m


def _openness(acc: _Accessibility, lfc, membership):
    """Accessibility in [0, 1] (cells x peaks, dense for one chunk of cells)."""
    o = np.full((lfc.shape[0], acc.n_peaks), BACKGROUND, dtype=np.float64)
    o[:, acc.prom_cols] = _sigmoid(acc.prom_offset + 2.0 * lfc[:, acc.prom_genes])
    o[:, acc.enh_cols] = _sigmoid(acc.enh_offset + 2.0 * np.asarray(lfc @ acc.enh_weights))
    o[:, acc.spec_cols] = CLOSED_SPECIFIC + (OPEN_SPECIFIC - CLOSED_SPECIFIC) * np.clip(
        membership @ acc.spec_membership, 0, 1)
    o[:, acc.shared_cols] = OPEN_SHARED
    return o


def _atac_scale(acc, prog, n_discrete, depth_quantiles, t_grid, target):
    """Scale k so that the expected fraction of non-zero cells x peaks entries is ``target``."""
    groups = np.concatenate([np.arange(n_discrete), np.full(len(t_grid), -1)])
    t = np.concatenate([np.full(n_discrete, np.nan), t_grid])
    rates = _openness(acc, _cell_lfc(prog, groups, t), _programme_membership(groups, t, n_discrete)) * acc.strength
    # the density is a mean over peaks: an evenly spaced subset of peaks estimates it well enough
    subset = np.unique(np.linspace(0, acc.n_peaks - 1, min(acc.n_peaks, 4000)).astype(int))
    rates = rates[:, subset].astype(np.float32)

    def density(k):
        return np.mean([np.mean(1 - np.exp(-k * d * rates)) for d in depth_quantiles])

    lo, hi = 1e-4, 10.0
    for _ in range(40):
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if density(mid) < target else (lo, mid)
    return np.sqrt(lo * hi)


# ------------------------------------------------------------------------------------------ counts
def expression_proportions(base, lfc):
    """Per-cell expression proportions (cells x genes, rows sum to 1): softmax of baseline + log fold changes."""
    logits = base + lfc
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def nb_counts(rng, mean, theta):
    """Negative binomial counts (CSR, int32) around ``mean`` with inverse dispersion ``theta`` (gamma-Poisson)."""
    return sp.csr_matrix(rng.poisson(rng.gamma(theta, mean / theta)).astype(np.int32))


def cut_site_counts(rng, rates):
    """ATAC counts (CSR, int32): Poisson fragments per cell and peak at ``rates``; a fragment inside a peak puts
    one or (often) both of its cut sites there."""
    fragments = sp.csr_matrix(rng.poisson(rates).astype(np.int32))
    fragments.data += rng.binomial(fragments.data, BOTH_ENDS_IN_PEAK).astype(np.int32)
    return fragments


def representative_cells(labels, name, max_trajectory_cells=500):
    """Cells whose true state stands for label ``name``: a discrete type's cells share one state (one cell), a
    trajectory label's states are averaged over an evenly spaced subset of its cells."""
    cells = np.flatnonzero(labels == name)
    if not len(cells):
        return cells
    keep = 1 if name not in TRAJECTORY_LABELS else min(len(cells), max_trajectory_cells)
    return cells[np.unique(np.linspace(0, len(cells) - 1, keep).astype(int))]


# ----------------------------------------------------------------------------------------- simulate
def simulate(n_cells=3000, n_genes=2000, n_peaks=20000, n_types=6, n_chromosomes=5, seed=0,
             genome="synthetic", chunk_entries=8_000_000) -> SimulatedDataset:
    """Simulate a paired dataset (see the module docstring). Same arguments -> same numbers."""
    label_names = cell_type_names(n_types)
    n_discrete = n_types - 2
    streams = np.random.SeedSequence(seed).spawn(8)
    rng_genome, rng_prog, rng_cells, rng_acc, rng_links, rng_bc, rng_marks, rng_counts = (
        np.random.default_rng(s) for s in streams)

    genes, chrom_sizes = _genome(rng_genome, n_genes, n_chromosomes)
    peaks = _place_peaks(rng_genome, genes, chrom_sizes, n_peaks)
    links = _enhancer_links(rng_links, genes, peaks)
    prog = _programs(rng_prog, n_genes, n_discrete)
    acc = _accessibility_model(rng_acc, peaks, links, prog, n_discrete)

    # cells: trajectory gets the share of two labels; discrete types share the rest unevenly
    n_traj = int(round(n_cells * 2 / n_types))
    type_share = rng_cells.dirichlet(np.full(n_discrete, 20.0))
    n_per_type = np.floor(type_share * (n_cells - n_traj)).astype(int)
    n_per_type[: (n_cells - n_traj) - n_per_type.sum()] += 1
    group = np.concatenate([np.repeat(np.arange(n_discrete), n_per_type), np.full(n_traj, -1)])
    t = np.full(n_cells, np.nan)
    t[group < 0] = rng_cells.random(n_traj)
    perm = rng_cells.permutation(n_cells)
    group, t = group[perm], t[perm]
    labels = np.where(group >= 0, np.array(label_names)[np.maximum(group, 0)],
                      np.where(t < 0.5, TRAJECTORY_LABELS[0], TRAJECTORY_LABELS[1]))
    barcodes = _barcodes(rng_bc, n_cells)

    # per-cell depth: RNA library size and ATAC depth share a cell-quality factor
    quality = rng_cells.normal(size=n_cells)
    type_size = np.exp(rng_cells.normal(0, 0.2, n_discrete + 1))
    size_factor = type_size[np.where(group >= 0, group, n_discrete)]
    library = n_genes * 1.0 * size_factor * np.exp(0.5 * quality + 0.3 * rng_cells.normal(size=n_cells))
    atac_depth = np.exp(0.4 * quality + 0.4 * rng_cells.normal(size=n_cells))
    theta = rng_prog.lognormal(np.log(3.0), 0.5, n_genes)  # NB inverse dispersion per gene

    depth_quantiles = np.quantile(atac_depth, (np.arange(16) + 0.5) / 16)
    scale = _atac_scale(acc, prog, n_discrete, depth_quantiles, np.linspace(0.05, 0.95, 6), TARGET_ATAC_DENSITY)

    chunk = max(16, int(chunk_entries // max(n_peaks, n_genes)))
    rna_parts, atac_parts = [], []
    starts = range(0, n_cells, chunk)
    chunk_rngs = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, 1]).spawn(len(starts))]
    for c0, crng in zip(starts, chunk_rngs):
        idx = np.arange(c0, min(n_cells, c0 + chunk))
        lfc = _cell_lfc(prog, group[idx], t[idx])
        rna_parts.append(nb_counts(crng, library[idx, None] * expression_proportions(prog.base, lfc), theta))
        rates = scale * atac_depth[idx, None] * _openness(acc, lfc, _programme_membership(group[idx], t[idx],
                                                                                          n_discrete))
        rates *= acc.strength
        atac_parts.append(cut_site_counts(crng, rates))
        del rates
    rna = sp.vstack(rna_parts).tocsr()
    atac = sp.vstack(atac_parts).tocsr()

    # truth and references, from the true per-label means
    true_p = np.zeros((len(label_names), n_genes))
    openness = np.zeros((len(label_names), n_peaks))
    for j, name in enumerate(label_names):
        cells = representative_cells(labels, name)
        if not len(cells):
            continue
        lfc = _cell_lfc(prog, group[cells], t[cells])
        true_p[j] = expression_proportions(prog.base, lfc).mean(axis=0)
        for s in range(0, len(cells), chunk):
            sub = cells[s: s + chunk]
            openness[j] += _openness(acc, lfc[s: s + chunk],
                                     _programme_membership(group[sub], t[sub], n_discrete)).sum(axis=0)
        openness[j] /= max(1, len(cells))
    bulk_rna, de_genes, links_table = reference_tables(label_names, true_p, genes, peaks, acc.prom_cols,
                                                       acc.prom_genes, links)
    return SimulatedDataset(
        barcodes=barcodes, labels=labels, pseudotime=t, genes=genes, peaks=peaks, rna=rna, atac=atac,
        chrom_sizes=chrom_sizes, links=links_table, de_genes=de_genes, bulk_rna=bulk_rna,
        peak_openness=pd.DataFrame(openness.T, columns=label_names, index=peaks["peak"].to_numpy()),
        genome=genome, extra={"marks_seed": int(rng_marks.integers(2**31))},
    )


def reference_tables(label_names, true_p, genes, peaks, prom_cols, prom_genes, links):
    """Bulk RNA (CPM per label), DE genes (|log2 FC| >= 1 against the other labels) and the true peak-gene
    links (promoter peaks + enhancer links) from the per-label true expression proportions ``true_p``."""
    cpm = true_p * 1e6
    bulk_rna = pd.DataFrame(cpm.T, columns=label_names)
    bulk_rna.insert(0, "gene", genes["gene_name"].to_numpy())
    de_rows = []
    log_cpm = np.log2(cpm + 1)
    for j, name in enumerate(label_names):
        # against the log-space mean of the other labels, so that a marker of one other label does not
        # make the gene "down" in every label
        l2fc = log_cpm[j] - np.delete(log_cpm, j, axis=0).mean(axis=0)
        for g in np.flatnonzero(np.abs(l2fc) >= 1):
            de_rows.append((name, genes["gene_name"].iat[g], round(float(l2fc[g]), 4)))
    de_genes = pd.DataFrame(de_rows, columns=["label", "gene", "log2_fold_change"])

    prom_links = pd.DataFrame({
        "peak_index": prom_cols, "gene_index": prom_genes,
        "distance": np.abs(((peaks["start"] + peaks["end"]) // 2).to_numpy()[prom_cols]
                           - genes["tss"].to_numpy()[prom_genes]),
    })
    all_links = pd.concat([prom_links.assign(kind="promoter"), links.assign(kind="enhancer")], ignore_index=True)
    all_links = all_links.sort_values(["peak_index", "gene_index"]).reset_index(drop=True)
    links_table = pd.DataFrame({
        "peak": peaks["peak"].to_numpy()[all_links["peak_index"]],
        "gene": genes["gene_name"].to_numpy()[all_links["gene_index"]],
        "distance": all_links["distance"].astype(int).to_numpy(),
        "kind": all_links["kind"].to_numpy(),
    })
    return bulk_rna, de_genes, links_table
