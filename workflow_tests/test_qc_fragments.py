"""Fragment QC (TSS enrichment, nucleosome signal, FRiP through muon) and scrublet doublets.

Real data: the 10x Multiome PBMC slice in ../shared/data/tenx_multiome_pbmc_subset (1,000 cells, 45 genes,
174 peaks, 367k fragments); the known values are recomputed here from the fragments file read with gzip.
"""
from __future__ import annotations

import gzip
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from scmvp.qc import QCConfig, doublet_scores
from scmvp.qc_fragments import fragment_metrics, read_barcode_metrics

SLICE = "tenx_multiome_pbmc_subset"


@pytest.fixture(scope="module")
def pbmc(shared_data):
    from scmvp.io import read_dataset

    folder = shared_data / SLICE
    mdata = read_dataset("h5mu", folder / "test_rna_atac.h5mu")
    fragments = folder / "test_rna_atac_fragments.tsv.gz"
    return mdata, fragments, fragment_metrics(mdata, fragments, seed=0)


@pytest.fixture(scope="module")
def fragments_by_cell(pbmc):
    """barcode -> list of (chrom, start, end), read directly (gzip), in file order."""
    _, fragments, _ = pbmc
    cells = defaultdict(list)
    with gzip.open(fragments, "rt") as handle:
        for line in handle:
            if line.startswith("#"):
                continue
            chrom, start, end, barcode, _ = line.rstrip("\n").split("\t")
            cells[barcode].append((chrom, int(start), int(end)))
    return cells


def test_nucleosome_signal_matches_a_direct_count(pbmc, fragments_by_cell):
    """muon's definition: fragments of 147 <= length < 294 bp over those < 147 bp (both + 1 when none is
    nucleosome-free); the file is smaller than muon's budget, so every fragment counts."""
    mdata, _, metrics = pbmc
    for barcode in mdata.obs_names[:: 50]:
        lengths = np.array([end - start for _, start, end in fragments_by_cell.get(barcode, [])], dtype=int)
        free, mono = int((lengths < 147).sum()), int(((lengths >= 147) & (lengths < 294)).sum())
        if free == 0:
            free, mono = free + 1, mono + 1
        assert metrics.loc[barcode, "atac_nucleosome_signal"] == pytest.approx(mono / free), barcode
    assert np.isfinite(metrics["atac_nucleosome_signal"]).all()


def test_frip_matches_a_direct_overlap(pbmc, fragments_by_cell):
    """FRiP without per_barcode_metrics.csv: fragment-peak overlaps (muon counts per peak) over all fragments."""
    mdata, _, metrics = pbmc
    peaks = mdata.mod["atac"].var[["chrom", "start", "end"]]
    by_chrom = {c: (g["start"].to_numpy(), g["end"].to_numpy()) for c, g in peaks.groupby("chrom", observed=True)}
    busiest = sorted(mdata.obs_names, key=lambda b: -len(fragments_by_cell.get(b, [])))[:8]
    for barcode in busiest:
        frags = fragments_by_cell[barcode]
        hits = 0
        for chrom, start, end in frags:
            if chrom in by_chrom:
                p_start, p_end = by_chrom[chrom]
                hits += int(((p_start < end) & (p_end > start)).sum())
        assert metrics.loc[barcode, "atac_frip"] == pytest.approx(hits / len(frags)), barcode
    frip = metrics["atac_frip"].dropna()
    assert frip.between(0, 1).all() and 0.3 < frip.median() < 0.95


def test_tss_enrichment_is_finite_and_mostly_above_one(pbmc):
    _, _, metrics = pbmc
    tss = metrics["atac_tss_enrichment"].to_numpy()
    assert np.isfinite(tss).all() and (tss >= 0).all()
    assert np.median(tss) > 1 and (tss > 1).mean() > 0.5
    # same seed (the sampled TSSs), same numbers
    mdata, fragments, _ = pbmc
    again = fragment_metrics(mdata, fragments, seed=0)
    assert np.array_equal(again["atac_tss_enrichment"].to_numpy(), tss)


def test_barcode_metrics_csv(tmp_path):
    csv = tmp_path / "per_barcode_metrics.csv"
    pd.DataFrame({"barcode": ["A-1", "B-1", "C-1"], "is_cell": [1, 1, 0], "atac_fragments": [100, 0, 5],
                  "atac_peak_region_fragments": [60, 0, 1]}).to_csv(csv, index=False)
    table = read_barcode_metrics(csv, pd.Index(["B-1", "A-1", "D-1"]))
    assert table.loc["A-1", "atac_frip"] == pytest.approx(0.6)
    assert np.isnan(table.loc["B-1", "atac_frip"]) and np.isnan(table.loc["D-1", "atac_frip"])


def test_scrublet_scores_are_seeded_and_bounded(pbmc):
    from scmvp.simulate import simulate
    import anndata as ad

    sim = simulate(n_cells=300, n_genes=250, n_peaks=500, n_types=6, n_chromosomes=2, seed=3)
    rna = ad.AnnData(sim.rna.astype(np.float32).tocsr(), obs=pd.DataFrame(index=sim.barcodes))
    qc = QCConfig()
    first, again = doublet_scores(rna, qc, seed=0), doublet_scores(rna, qc, seed=0)
    assert first["doublet_score"].between(0, 1).all()
    assert np.array_equal(first["doublet_score"].to_numpy(), again["doublet_score"].to_numpy())
    assert np.array_equal(first["predicted_doublet"], first["doublet_score"] > qc.doublet_threshold)
    # the real slice's 45-gene panel leaves scrublet fewer genes than its 30 PCs: fewer PCs, still scored
    mdata, _, _ = pbmc
    real = doublet_scores(mdata.mod["rna"], qc, seed=0)
    scored = real["doublet_score"].dropna()
    assert len(scored) > 0.9 * mdata.n_obs and scored.between(0, 1).all()


def test_fragment_qc_in_the_tiny_workflow(tiny_workflow):
    """The simulated outs/ has atac_fragments.tsv.gz and per_barcode_metrics.csv: rule preprocess reads them."""
    tiny_workflow.build("tiny/qc/qc.png")
    qc = tiny_workflow.results / "tiny" / "qc"
    cells = pd.read_csv(qc / "cells.tsv", sep="\t")
    for column in ("atac_tss_enrichment", "atac_nucleosome_signal", "atac_frip", "doublet_score",
                   "predicted_doublet"):
        assert column in cells.columns, column
    assert cells["atac_tss_enrichment"].median() > 2
    assert cells["atac_frip"].between(0, 1).all() and 0.6 < cells["atac_frip"].median() < 0.8
    assert cells["atac_nucleosome_signal"].between(0, 5).all() and 0.5 < cells["atac_nucleosome_signal"].median() < 1.2
    assert cells["doublet_score"].between(0, 1).all()
    # the simulator's low-quality cells (mostly background fragments) are caught by FRiP
    assert cells["reasons"].fillna("").str.contains("atac_frip_low").sum() >= 2
    assert not cells.loc[cells["predicted_doublet"], "passed"].any()
    thresholds = pd.read_csv(qc / "thresholds.tsv", sep="\t").set_index("metric")
    assert thresholds.loc["atac_frip", "low"] > 0.3 and thresholds.loc["doublet_score", "high"] == 0.25
    summary = pd.read_csv(qc / "summary.tsv", sep="\t").set_index("statistic")["value"]
    assert 0 <= summary["doublet_rate"] < 0.1
    assert summary["median_atac_frip_in"] == pytest.approx(cells["atac_frip"].median())
    assert (qc / "qc.png").stat().st_size > 10_000


def test_fragment_metrics_per_sample_match_the_whole_file(pbmc):
    """The real slice split into two samples named {sample}#{barcode}, each given the slice's fragments file: every
    cell gets the nucleosome signal and FRiP it gets from the whole file (the file is under muon's nucleosome
    budget for either half), under its full name, and the TSS enrichment too, except cells without a fragment in
    the TSS flanks: muon divides their centre by the population's mean flank, now their own sample's (one factor
    per sample); a sample without files gets NaN."""
    import anndata as ad
    import mudata as md

    from scmvp.qc_fragments import sample_fragment_metrics

    mdata, fragments, metrics = pbmc
    barcodes = mdata.obs_names
    samples = np.where(np.arange(len(barcodes)) % 2 == 0, "s1", "s2")
    names = pd.Index([f"{s}#{b}" for s, b in zip(samples, barcodes)])
    rna = ad.AnnData(obs=pd.DataFrame(index=names), var=mdata.mod["rna"].var.copy())
    atac = ad.AnnData(obs=pd.DataFrame(index=names), var=mdata.mod["atac"].var.copy())
    joined = md.MuData({"rna": rna, "atac": atac})
    per_sample = sample_fragment_metrics(joined, {"s1": {"fragments": fragments}, "s2": {"fragments": fragments}})
    assert list(per_sample.index) == list(names)
    whole = metrics.set_axis(names)
    for column in ("atac_nucleosome_signal", "atac_frip"):
        assert np.array_equal(per_sample[column], whole[column], equal_nan=True), column
    tss, tss_whole = per_sample["atac_tss_enrichment"].to_numpy(), whole["atac_tss_enrichment"].to_numpy()
    assert (tss == tss_whole).mean() > 0.5
    for sample in ("s1", "s2"):
        own = (samples == sample) & (tss_whole > 0)
        factors = np.unique(np.round(tss[own] / tss_whole[own], 9))
        assert len(factors) == 2 and 1.0 in factors, (sample, factors)
    assert atac.uns["files"] == {"fragments_s1": str(fragments), "fragments_s2": str(fragments)}
    only_first = sample_fragment_metrics(joined, {"s1": {"fragments": fragments}})
    assert only_first.loc[samples == "s2"].isna().all().all()
    assert np.array_equal(only_first.loc[samples == "s1", "atac_frip"].to_numpy(),
                          whole.loc[samples == "s1", "atac_frip"].to_numpy(), equal_nan=True)


def test_scrublet_per_sample(caplog):
    """With samples and qc.per_sample, each sample's scores are scrublet's on that sample alone (same seed); a
    sample too small to score gets NaN with a warning; qc.per_sample false scores the pooled cells."""
    import anndata as ad

    from scmvp.simulate import simulate

    sim = simulate(n_cells=300, n_genes=250, n_peaks=500, n_types=6, n_chromosomes=2, seed=3)
    rna = ad.AnnData(sim.rna.astype(np.float32).tocsr(), obs=pd.DataFrame(index=sim.barcodes))
    samples = pd.Series(np.repeat(["a", "b", "tiny"], [150, 147, 3]), index=rna.obs_names)
    with caplog.at_level("WARNING", logger="scmvp.qc"):
        scores = doublet_scores(rna, QCConfig(), seed=0, samples=samples)
    assert list(scores.index) == list(rna.obs_names)
    for sample in ("a", "b"):
        alone = doublet_scores(rna[(samples == sample).to_numpy()], QCConfig(), seed=0)
        assert np.array_equal(scores.loc[alone.index, "doublet_score"], alone["doublet_score"])
        assert alone["doublet_score"].notna().all()
    assert scores.loc[samples == "tiny", "doublet_score"].isna().all()
    assert not scores.loc[samples == "tiny", "predicted_doublet"].any()
    assert "sample tiny: scrublet needs at least 30 cells, got 3" in caplog.text
    pooled = doublet_scores(rna, QCConfig(per_sample=False), seed=0, samples=samples)
    assert np.array_equal(pooled["doublet_score"], doublet_scores(rna, QCConfig(), seed=0)["doublet_score"])
    assert not np.array_equal(pooled.loc[samples == "a", "doublet_score"], scores.loc[samples == "a", "doublet_score"])


def test_scrublet_in_blocks_finds_the_same_doublets():
    """Above qc.doublet_block_cells, scrublet scores random blocks alone: every cell is scored, each block as
    scrublet scores it alone, and known doublets (sums of two cells of different types) still rank on top."""
    import anndata as ad
    from sklearn.metrics import roc_auc_score

    from scmvp.qc import _scrublet, doublet_blocks
    from scmvp.simulate import simulate

    sim = simulate(n_cells=700, n_genes=300, n_peaks=500, n_types=6, n_chromosomes=2, seed=5)
    counts = sim.rna.astype(np.float32).tocsr()
    rng = np.random.default_rng(0)
    labels = np.asarray(sim.labels)
    first = rng.choice(len(labels), 40, replace=False)
    second = np.array([rng.choice(np.flatnonzero(labels != labels[i])) for i in first])
    import scipy.sparse as sp
    matrix = sp.vstack([counts, counts[first] + counts[second]]).tocsr()
    is_doublet = np.r_[np.zeros(counts.shape[0], bool), np.ones(len(first), bool)]
    names = [f"c{i}" for i in range(matrix.shape[0])]
    rna = ad.AnnData(matrix, obs=pd.DataFrame(index=names))

    whole = doublet_scores(rna, QCConfig(doublet_block_cells=None), seed=0)
    blocked = doublet_scores(rna, QCConfig(doublet_block_cells=400), seed=0)
    blocks = doublet_blocks(rna.n_obs, 400, seed=0)
    assert [len(b) for b in blocks] == [370, 370]
    assert np.array_equal(np.sort(np.concatenate(blocks)), np.arange(rna.n_obs))
    assert list(blocked.index) == names and blocked["doublet_score"].notna().all()
    alone = _scrublet(rna[blocks[1]], QCConfig(), seed=0)
    assert np.allclose(blocked["doublet_score"].to_numpy()[blocks[1]], alone["doublet_score"].to_numpy())
    auc_whole = roc_auc_score(is_doublet, whole["doublet_score"])
    auc_blocked = roc_auc_score(is_doublet, blocked["doublet_score"])
    assert auc_whole > 0.8 and auc_blocked > 0.8 and abs(auc_whole - auc_blocked) < 0.1, (auc_whole, auc_blocked)
    # at or under the block size: one piece, the same scores as without blocks
    assert np.array_equal(doublet_scores(rna, QCConfig(doublet_block_cells=rna.n_obs), seed=0)["doublet_score"],
                          whole["doublet_score"])
    # per sample: only the sample above the block size is split, each sample's blocks drawn among its own cells
    samples = pd.Series(np.where(np.arange(rna.n_obs) < 450, "a", "b"), index=names)
    by_sample = doublet_scores(rna, QCConfig(doublet_block_cells=400), seed=0, samples=samples)
    in_a, in_b = np.flatnonzero(samples == "a"), np.flatnonzero(samples == "b")
    assert list(by_sample.index) == names and by_sample["doublet_score"].notna().all()
    assert np.allclose(by_sample["doublet_score"].to_numpy()[in_b],
                       _scrublet(rna[in_b], QCConfig(), seed=0)["doublet_score"].to_numpy())
    second_of_a = in_a[doublet_blocks(len(in_a), 400, seed=0)[1]]
    assert np.allclose(by_sample["doublet_score"].to_numpy()[second_of_a],
                       _scrublet(rna[second_of_a], QCConfig(), seed=0)["doublet_score"].to_numpy())
