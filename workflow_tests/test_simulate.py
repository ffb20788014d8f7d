"""The simulator (embedded example): realistic counts, known truth, the exact Cell Ranger ARC h5 layout."""
from __future__ import annotations

import hashlib
import re

import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scmvp.simulate import MAX_LINK_DISTANCE, cell_type_names, simulate
from scmvp.simulate_write import write_simulated

SIZE = dict(n_cells=400, n_genes=300, n_peaks=3000, n_types=6, n_chromosomes=3, seed=7)
KEYS = {
    "matrix": "outs/filtered_feature_bc_matrix.h5", "labels": "labels.tsv", "genes": "references/genes.gtf",
    "bulk_rna": "references/bulk_rna.tsv", "bulk_atac": "references/bulk_atac.bed",
    "H3K4me3": "references/H3K4me3.bed", "H3K27ac": "references/H3K27ac.bed", "links": "truth/links.tsv",
    "de_genes": "truth/de_genes.tsv", "pseudotime": "truth/pseudotime.tsv", "chrom_sizes": "references/chrom.sizes",
    "fragments": "outs/atac_fragments.tsv.gz", "fragments_index": "outs/atac_fragments.tsv.gz.tbi",
    "barcode_metrics": "outs/per_barcode_metrics.csv",
}


def _write(sim, folder):
    paths = {k: folder / v for k, v in KEYS.items()}
    write_simulated(sim, paths)
    return paths


@pytest.fixture(scope="module")
def sim():
    return simulate(**SIZE)


@pytest.fixture(scope="module")
def written(sim, tmp_path_factory):
    return _write(sim, tmp_path_factory.mktemp("sim"))


def _log_pseudobulk(matrix, labels, names):
    rows = []
    for name in names:
        total = np.asarray(matrix[labels == name].sum(axis=0)).ravel().astype(float)
        rows.append(np.log1p(total / total.sum() * 1e4))
    return np.array(rows)


def _pearson(a, b):
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def test_atac_is_sparse_with_small_counts(sim):
    density = sim.atac.nnz / (sim.atac.shape[0] * sim.atac.shape[1])
    assert 0.01 <= density <= 0.05
    values = sim.atac.data
    assert values.min() >= 1
    assert np.mean(values <= 2) > 0.9  # mostly 1 or 2 cut sites per peak
    assert sim.atac.dtype == np.int32 and sim.rna.dtype == np.int32


def test_rna_counts_are_sparse_and_library_sizes_vary(sim):
    density = sim.rna.nnz / (sim.rna.shape[0] * sim.rna.shape[1])
    assert 0.1 <= density <= 0.7
    umis = np.asarray(sim.rna.sum(axis=1)).ravel()
    assert umis.min() > 0
    assert np.std(umis) / np.mean(umis) > 0.3
    assert np.quantile(umis, 0.9) / np.quantile(umis, 0.1) > 2
    atac_depth = np.asarray(sim.atac.sum(axis=1)).ravel()
    assert np.std(atac_depth) / np.mean(atac_depth) > 0.3


def test_labels_discrete_types_and_trajectory(sim):
    names = cell_type_names(6)
    assert names == ["C1", "C2", "C3", "C4", "T_early", "T_late"]
    assert sorted(set(sim.labels)) == names
    assert all((sim.labels == n).sum() >= 10 for n in names)
    on_traj = ~np.isnan(sim.pseudotime)
    assert set(sim.labels[on_traj]) == {"T_early", "T_late"}
    assert np.all((sim.labels[on_traj] == "T_late") == (sim.pseudotime[on_traj] >= 0.5))
    assert len(set(simulate(**{**SIZE, "n_types": 5, "n_cells": 200}).labels)) == 5


def test_close_pair_is_closer_than_other_types(sim):
    names = cell_type_names(6)
    for matrix in (sim.rna, sim.atac):
        centroids = _log_pseudobulk(matrix, sim.labels, names)
        dist = np.linalg.norm(centroids[:, None] - centroids[None], axis=2)
        c3, c4 = names.index("C3"), names.index("C4")
        others = [i for i in range(len(names)) if i not in (c3, c4)]
        assert dist[c3, c4] < dist[c3, others].min()
        assert dist[c3, c4] < dist[c4, others].min()
    de = pd.DataFrame(sim.de_genes)
    # few genes tell C3 from C4: far fewer than tell C1 from C2
    bulk = sim.bulk_rna.set_index("gene")
    lfc = np.abs(np.log2((bulk["C3"] + 1) / (bulk["C4"] + 1)))
    lfc_12 = np.abs(np.log2((bulk["C1"] + 1) / (bulk["C2"] + 1)))
    assert (lfc >= 1).sum() < 0.5 * (lfc_12 >= 1).sum()
    assert set(de["label"]) == set(names)


def test_promoter_peaks_follow_their_gene(sim):
    counts = sim.rna.toarray().astype(float)
    lognorm = np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e4)
    atac = sim.atac.tocsc()
    gene_col = {g: i for i, g in enumerate(sim.genes["gene_name"])}
    peak_col = {p: i for i, p in enumerate(sim.peaks["peak"])}
    promoters = sim.links[(sim.links["kind"] == "promoter") & sim.links["gene"].isin(set(sim.de_genes["gene"]))]
    assert len(promoters) >= 30
    rng = np.random.default_rng(0)
    names = cell_type_names(6)
    paired, shuffled, pseudobulk = [], [], []
    label_index = [np.flatnonzero(sim.labels == n) for n in names]
    for peak, gene in zip(promoters["peak"], promoters["gene"]):
        access = atac[:, peak_col[peak]].toarray().ravel().astype(float)
        expr = lognorm[:, gene_col[gene]]
        paired.append(_pearson(expr, access))
        shuffled.append(_pearson(lognorm[rng.permutation(len(expr)), gene_col[gene]], access))
        pseudobulk.append(_pearson(np.array([expr[i].mean() for i in label_index]),
                                   np.array([access[i].mean() for i in label_index])))
    assert np.mean(paired) > np.mean(shuffled) + 0.05
    assert np.median(pseudobulk) > 0.6


def test_links_within_500kb_on_the_same_chromosome(sim):
    links = sim.links
    assert set(links["kind"]) == {"promoter", "enhancer"}
    peaks = sim.peaks.set_index("peak")
    genes = sim.genes.set_index("gene_name")
    assert links["peak"].isin(peaks.index).all() and links["gene"].isin(genes.index).all()
    mid = ((peaks.loc[links["peak"], "start"] + peaks.loc[links["peak"], "end"]) // 2).to_numpy()
    tss = genes.loc[links["gene"], "tss"].to_numpy()
    assert np.array_equal(np.abs(mid - tss), links["distance"].to_numpy())
    assert (peaks.loc[links["peak"], "chrom"].to_numpy() == genes.loc[links["gene"], "chrom"].to_numpy()).all()
    assert links["distance"].max() <= MAX_LINK_DISTANCE
    enhancers = links[links["kind"] == "enhancer"]
    per_peak = enhancers.groupby("peak").size()
    assert per_peak.min() >= 1 and per_peak.max() <= 3
    assert (links.loc[links["kind"] == "promoter", "distance"] < 1000).all()
    assert not links.duplicated(["peak", "gene"]).any()


def test_trajectory_genes_change_smoothly_with_pseudotime(sim):
    on_traj = ~np.isnan(sim.pseudotime)
    t = sim.pseudotime[on_traj]
    counts = sim.rna[on_traj].toarray().astype(float)
    lognorm = np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e4)
    corr = np.array([abs(_pearson(lognorm[:, g], t)) for g in range(lognorm.shape[1])])
    assert (corr > 0.3).sum() >= 0.05 * lognorm.shape[1]  # noise alone: |r| ~ 0.09 for ~130 cells


def test_written_tables(sim, written):
    labels = pd.read_csv(written["labels"], sep="\t")
    assert list(labels.columns) == ["barcode", "label"] and len(labels) == SIZE["n_cells"]
    bulk = pd.read_csv(written["bulk_rna"], sep="\t")
    assert list(bulk.columns) == ["gene"] + cell_type_names(6)
    assert len(bulk) == SIZE["n_genes"] and np.allclose(bulk.iloc[:, 1:].sum(), 1e6, rtol=1e-3)
    peaks = sim.peaks
    for key in ("bulk_atac", "H3K4me3", "H3K27ac"):
        bed = pd.read_csv(written[key], sep="\t", header=None)
        assert bed.shape[1] == 4 and len(bed) > 0, key
        assert (bed[1] < bed[2]).all() and bed[0].str.match(r"^chr\d+$").all()
        # overlaps a peak of the matrix, but not with the identical interval
        hits = 0
        for chrom, start, end in bed[[0, 1, 2]].itertuples(index=False):
            on = peaks[peaks["chrom"] == chrom]
            hits += bool(((on["start"] < end) & (on["end"] > start)).any())
        assert hits == len(bed), key
        merged = bed.merge(peaks, left_on=[0, 1, 2], right_on=["chrom", "start", "end"])
        assert len(merged) < 0.05 * len(bed), key
    h3k4me3 = pd.read_csv(written["H3K4me3"], sep="\t", header=None)
    h3k27ac = pd.read_csv(written["H3K27ac"], sep="\t", header=None)
    assert len(h3k27ac) > len(h3k4me3)
    links = pd.read_csv(written["links"], sep="\t")
    assert list(links.columns[:3]) == ["peak", "gene", "distance"]
    de = pd.read_csv(written["de_genes"], sep="\t")
    assert list(de.columns[:2]) == ["label", "gene"]
    pt = pd.read_csv(written["pseudotime"], sep="\t")
    assert list(pt.columns) == ["barcode", "pseudotime"] and pt["pseudotime"].between(0, 1).all()
    assert set(pt["barcode"]) == set(labels.loc[labels["label"].str.startswith("T_"), "barcode"])
    gtf = pd.read_csv(written["genes"], sep="\t", header=None, comment="#")
    assert gtf.shape[1] == 9 and (gtf[2] == "gene").all() and len(gtf) == SIZE["n_genes"]
    assert gtf[8].str.match(r'^gene_id "SIMG\d+"; gene_name "Gene\d+";').all()
    sizes = pd.read_csv(written["chrom_sizes"], sep="\t", header=None)
    assert list(sizes[0]) == ["chr1", "chr2", "chr3"]
    assert (gtf.groupby(0)[4].max() < sizes.set_index(0)[1]).all()


def test_h5_has_the_cell_ranger_arc_layout(sim, written):
    n_genes, n_peaks, n_cells = SIZE["n_genes"], SIZE["n_peaks"], SIZE["n_cells"]
    with h5py.File(written["matrix"], "r") as f:
        assert set(f) == {"matrix"}
        m = f["matrix"]
        assert set(m) == {"barcodes", "data", "indices", "indptr", "shape", "features"}
        assert set(m["features"]) == {"_all_tag_keys", "feature_type", "genome", "id", "interval", "name"}
        assert m["data"].dtype == np.int32 and m["indices"].dtype == np.int64 and m["indptr"].dtype == np.int64
        assert m["shape"].dtype == np.int32 and list(m["shape"][()]) == [n_genes + n_peaks, n_cells]
        for key in ("barcodes", "features/_all_tag_keys", "features/feature_type", "features/genome",
                    "features/id", "features/interval", "features/name"):
            assert m[key].dtype.kind == "S", key
        assert [x.decode() for x in m["features/_all_tag_keys"][()]] == ["genome", "interval"]
        barcodes = [x.decode() for x in m["barcodes"][()]]
        assert all(re.fullmatch(r"[ACGT]{16}-1", b) for b in barcodes) and barcodes == sorted(set(barcodes))
        kinds = [x.decode() for x in m["features/feature_type"][()]]
        assert kinds == ["Gene Expression"] * n_genes + ["Peaks"] * n_peaks
        intervals = [x.decode() for x in m["features/interval"][()]]
        assert all(re.fullmatch(r"chr\d+:\d+-\d+", i) for i in intervals)
        ids = [x.decode() for x in m["features/id"][()]]
        assert ids[n_genes:] == intervals[n_genes:] and ids[0].startswith("SIMG")
        indptr = m["indptr"][()]
        assert indptr[0] == 0 and indptr[-1] == len(m["data"]) and len(indptr) == n_cells + 1
        matrix = sp.csc_matrix((m["data"][()], m["indices"][()], indptr), shape=tuple(m["shape"][()]))
    assert (matrix[:n_genes].T != sim.rna).nnz == 0
    assert (matrix[n_genes:].T != sim.atac).nnz == 0
    assert matrix.data.min() > 0  # no explicit zeros, as Cell Ranger writes


def test_fragments_and_per_barcode_metrics(sim, written):
    """Cell Ranger ARC's atac_fragments.tsv.gz (bgzip + tabix, sorted, nucleosomal lengths, piled up at TSSs)
    and per_barcode_metrics.csv, consistent with each other and with the matrix."""
    import pysam

    frags = pd.read_csv(written["fragments"], sep="\t", header=None, comment="#",
                        names=["chrom", "start", "end", "barcode", "count"])
    order = frags["chrom"].map({c: i for i, c in enumerate(sim.chrom_sizes)})
    assert (order.diff().fillna(0) >= 0).all()
    assert (frags.groupby("chrom")["start"].apply(lambda s: s.is_monotonic_increasing)).all()
    assert (frags["count"] >= 1).all() and (frags["end"] > frags["start"]).all()
    length = frags["end"] - frags["start"]
    assert 0.35 < (length < 147).mean() < 0.7 and 0.2 < ((length >= 147) & (length < 294)).mean() < 0.5
    with pysam.TabixFile(str(written["fragments"])) as tbx:
        assert set(tbx.contigs) == set(sim.chrom_sizes)
        assert len(list(tbx.fetch("chr1", 0, 10**9))) == (frags["chrom"] == "chr1").sum()
    metrics = pd.read_csv(written["barcode_metrics"])
    for column in ("barcode", "is_cell", "atac_fragments", "atac_peak_region_fragments", "gex_umis_count",
                   "gex_genes_count"):
        assert column in metrics.columns, column
    assert set(metrics.loc[metrics["is_cell"] == 1, "barcode"]) == set(sim.barcodes)
    assert (metrics["is_cell"] == 0).sum() > 0 and metrics["barcode"].is_monotonic_increasing
    per_barcode = frags.groupby("barcode").size()
    assert (metrics.set_index("barcode")["atac_fragments"] == per_barcode.reindex(metrics["barcode"]).to_numpy()).all()
    cells = metrics[metrics["is_cell"] == 1].set_index("barcode").loc[sim.barcodes]
    assert np.array_equal(cells["gex_umis_count"].to_numpy(), np.asarray(sim.rna.sum(axis=1)).ravel())
    frip = cells["atac_peak_region_fragments"] / cells["atac_fragments"]
    assert 0.6 < frip.median() < 0.8 and (frip < 0.45).sum() >= 1  # the few low-quality cells
    # promoter fragments pile up at their gene's TSS: more fragment midpoints within 200 bp than 800-1000 bp away
    tss = sim.genes[["chrom", "tss"]]
    mid = (frags["start"] + frags["end"]) // 2
    near = far = 0
    for chrom, group in tss.groupby("chrom"):
        m = np.sort(mid[frags["chrom"] == chrom].to_numpy())
        for t in group["tss"].to_numpy():
            near += np.searchsorted(m, t + 200) - np.searchsorted(m, t - 200)
            far += (np.searchsorted(m, t + 1000) - np.searchsorted(m, t + 800)
                    + np.searchsorted(m, t - 800) - np.searchsorted(m, t - 1000))
    assert near > 5 * far


def test_h5_reads_with_scanpy(written):
    import scanpy as sc

    adata = sc.read_10x_h5(written["matrix"], gex_only=False)
    assert adata.shape == (SIZE["n_cells"], SIZE["n_genes"] + SIZE["n_peaks"])
    assert set(adata.var["feature_types"]) == {"Gene Expression", "Peaks"}


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_gives_identical_files(written, tmp_path):
    again = _write(simulate(**SIZE), tmp_path / "again")
    for key in KEYS:
        assert _digest(written[key]) == _digest(again[key]), key
    other = simulate(**{**SIZE, "seed": SIZE["seed"] + 1})
    assert (other.rna != simulate(**SIZE).rna).nnz > 0


def test_ingest_reads_back_the_simulated_counts(sim, written):
    """The real 10x reader on the simulated h5: the same counts, peak coordinates and labels."""
    from scmvp.io import read_dataset

    mdata = read_dataset("10x_multiome", written["matrix"], labels=written["labels"])
    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    assert list(mdata.obs_names) == list(sim.barcodes)
    assert (rna.X != sim.rna).nnz == 0 and (atac.X != sim.atac).nnz == 0
    assert list(rna.var_names) == list(sim.genes["gene_name"])
    assert np.array_equal(atac.var["start"].to_numpy(), sim.peaks["start"].to_numpy())
    assert np.array_equal(mdata.obs["label"].astype(str).to_numpy(), sim.labels)


def test_simulate_rule_writes_every_file(tiny_workflow):
    from conftest import TINY_CONFIG

    folder = tiny_workflow.results / "tiny" / "simulated"
    tiny_workflow.build("tiny/simulated/labels.tsv")
    for relative in KEYS.values():
        assert (folder / relative).stat().st_size > 0, relative
    size = TINY_CONFIG["datasets"]["tiny"]["simulate"]
    with h5py.File(folder / KEYS["matrix"], "r") as f:
        assert list(f["matrix/shape"][()]) == [size["n_genes"] + size["n_peaks"], size["n_cells"]]
        assert {x.decode() for x in f["matrix/features/genome"][()]} == {"synthetic"}
    assert (tiny_workflow.results / "tiny" / "benchmarks" / "simulate.tsv").exists()
    assert "simulated:" in (tiny_workflow.results / "tiny" / "logs" / "simulate.log").read_text()
