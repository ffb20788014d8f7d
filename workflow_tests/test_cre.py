"""CRE stage: genes readers, peak classing, chromosome reconciliation, links, enrichment statistics,
the real reference files, and the simulator claims end to end."""
from __future__ import annotations

import math

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats

from scmvp import cre, cre_evaluation, cre_scores
from scmvp.errors import InputError
from scmvp.genes import read_genes
from scmvp.intervals import parse_peak_names, read_bed, reconcile_chromosomes


# ------------------------------------------------------------------------------------------ statistics
def test_odds_ratio_woolf_ci_on_hand_made_table():
    odds, low, high = cre_evaluation.odds_ratio_ci(10, 20, 30, 240)
    se = math.sqrt(1 / 10 + 1 / 20 + 1 / 30 + 1 / 240)
    assert odds == pytest.approx(4.0)
    assert low == pytest.approx(4.0 * math.exp(-1.959964 * se), rel=1e-5)
    assert high == pytest.approx(4.0 * math.exp(1.959964 * se), rel=1e-5)
    assert low == pytest.approx(1.7119, abs=1e-4) and high == pytest.approx(9.3463, abs=1e-4)


def test_odds_ratio_haldane_correction_when_a_cell_is_zero():
    odds, low, high = cre_evaluation.odds_ratio_ci(0, 5, 10, 20)
    assert odds == pytest.approx((0.5 * 20.5) / (5.5 * 10.5))
    se = math.sqrt(1 / 0.5 + 1 / 5.5 + 1 / 10.5 + 1 / 20.5)
    assert low == pytest.approx(odds * math.exp(-1.959964 * se), rel=1e-5)
    assert low < odds < high


def test_enrichment_row_counts_and_fisher_p():
    # 10 linked peaks (6 in the mark), 40 other tested peaks (8 in the mark)
    linked = np.r_[np.ones(10, bool), np.zeros(40, bool)]
    overlaps = np.r_[np.ones(6, bool), np.zeros(4, bool), np.ones(8, bool), np.zeros(32, bool)]
    row = cre_evaluation.enrichment_row(overlaps, linked)
    assert row["n_linked"] == 10 and row["n_background"] == 50
    assert row["fraction_linked"] == pytest.approx(0.6)
    assert row["fraction_background"] == pytest.approx(14 / 50)
    assert row["odds_ratio"] == pytest.approx(6 * 32 / (4 * 8))
    # two-sided Fisher p from the hypergeometric distribution, computed independently
    dist = stats.hypergeom(50, 14, 10)
    p_obs = dist.pmf(6)
    support = np.arange(0, 11)
    expected = dist.pmf(support)[dist.pmf(support) <= p_obs * (1 + 1e-7)].sum()
    assert row["p_value"] == pytest.approx(expected, rel=1e-6)
    assert row["p_value"] < 0.05


def test_enrichment_row_without_any_marked_peak_has_no_odds_ratio():
    # the H3K4me3 x distal case: no tested peak carries the mark, so the +0.5 correction alone would give an OR
    row = cre_evaluation.enrichment_row(np.zeros(50, bool), np.r_[np.ones(10, bool), np.zeros(40, bool)])
    assert row["n_linked"] == 10 and row["fraction_linked"] == 0
    assert math.isnan(row["odds_ratio"]) and math.isnan(row["p_value"])


def test_benjamini_hochberg_known_values():
    q = cre_scores.benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.5]))
    assert q == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])


# ------------------------------------------------------------------------------------- genes / peaks
def test_read_gtf_and_gff3_tss_by_strand(tmp_path):
    gtf = tmp_path / "genes.gtf"
    gtf.write_text(
        "#!genome-build test\n"
        'chr1\tsrc\tgene\t1001\t5000\t.\t+\t.\tgene_id "G1"; gene_name "Alpha";\n'
        'chr1\tsrc\ttranscript\t1001\t5000\t.\t+\t.\tgene_id "G1"; gene_name "Alpha";\n'
        'chr2\tsrc\tgene\t2001\t9000\t.\t-\t.\tgene_id "G2";\n')
    genes = read_genes(gtf)
    assert list(genes.columns) == ["chrom", "tss", "strand", "gene"]
    assert genes.set_index("gene").loc["Alpha", "tss"] == 1000
    assert genes.set_index("gene").loc["G2", "tss"] == 8999  # minus strand: the end (0-based)
    gff = tmp_path / "genes.gff3"
    gff.write_text("##gff-version 3\n"
                   "1\tsrc\tgene\t101\t500\t.\t-\t.\tID=gene:X;Name=Beta\n"
                   "1\tsrc\tmRNA\t101\t500\t.\t-\t.\tID=tx;Parent=gene:X\n")
    genes = read_genes(gff)
    assert genes.to_dict("records") == [{"chrom": "1", "tss": 499, "strand": "-", "gene": "Beta"}]


def test_real_tss_bed_read_unchanged(shared_data):
    genes = read_genes(shared_data / "references" / "tss_hg19.bed")
    raw = pd.read_csv(shared_data / "references" / "tss_hg19.bed", sep="\t", header=None, keep_default_na=False)
    assert set(genes["gene"]) == set(raw[3].astype(str)) - {""}  # 55 rows without a name are dropped
    glis1 = genes[genes["gene"] == "GLIS1"]
    # GLIS1 (hg19, minus strand) starts at chr1:54,199,877: window centre + distance_to_TSS (-450)
    assert glis1[["chrom", "tss", "strand"]].values.tolist() == [["chr1", 54199877, "-"]]
    lrrc43 = genes[(genes["gene"] == "LRRC43")]["tss"].tolist()
    assert 122652266 in lrrc43  # plus strand: centre - distance


def test_real_interval_files_read_unchanged(shared_data):
    ref = shared_data / "references"
    narrow = read_bed(ref / "k562_h3k27ac_chr1.hg19.narrowPeak")
    lines = (ref / "k562_h3k27ac_chr1.hg19.narrowPeak").read_text().splitlines()
    assert len(narrow) == len(lines)
    first = lines[0].split("\t")
    assert (narrow.loc[0, "chrom"], narrow.loc[0, "start"], narrow.loc[0, "end"]) == (first[0], int(first[1]), int(first[2]))
    bed3 = read_bed(ref / "gm12878_h3k4me3.hg19.bed")
    assert bed3[["chrom", "start", "end"]].iloc[0].tolist() == ["chr1", 713207, 713477]


def test_classify_peaks_promoter_and_distal():
    genes = pd.DataFrame({"chrom": ["chr1", "chr1"], "tss": [10_000, 50_000], "strand": ["+", "-"],
                          "gene": ["A", "B"]})
    peaks = pd.DataFrame({"chrom": ["chr1", "chr1", "chr1", "chr1", "chr2"],
                          "start": [9_900, 11_500, 12_500, 47_000, 10_000],
                          "end": [10_100, 11_600, 12_600, 47_999, 10_100]})
    classes = cre.classify_peaks(peaks, genes, promoter_distance=2000)
    # TSS inside; 1500 bp away; 2500 bp away; 2001 bp before B's TSS; other chromosome
    assert classes.tolist() == ["promoter", "promoter", "distal", "distal", "distal"]


def test_candidate_pairs_window_and_strand_aware_distance():
    genes = pd.DataFrame({"chrom": ["chr1", "chr1"], "tss": [100_000, 100_000], "strand": ["+", "-"],
                          "gene": ["P", "M"], "gene_index": [0, 1]})
    peaks = pd.DataFrame({"chrom": ["chr1", "chr1", "chr1", "chr2"], "start": [89_900, 150_000, 400_000, 100_000],
                          "end": [90_100, 150_200, 400_200, 100_200]})
    pairs = cre.candidate_pairs(peaks, genes, window=60_000)
    got = {(r.gene_index, r.peak_index): r.distance for r in pairs.itertuples()}
    assert got == {(0, 0): -10_000, (0, 1): 50_100, (1, 0): 10_000, (1, 1): -50_100}


def test_chromosome_names_reconciled():
    peaks = pd.DataFrame({"chrom": ["chr1", "chr2", "chrM"], "start": [0, 0, 0], "end": [10, 10, 10]})
    genes = pd.DataFrame({"chrom": ["1", "2", "MT", "GL000192.1"], "tss": [5, 5, 5, 5], "strand": "+",
                          "gene": list("abcd")})
    assert cre.reconcile_genes(genes, peaks, "genes.gtf")["chrom"].tolist() == ["chr1", "chr2", "chrM", "GL000192.1"]
    # and the other way round: peaks without 'chr', reference with it
    assert reconcile_chromosomes(["chr1", "chrX"], ["1", "X", "X"], "marks.bed", "mark").tolist() == ["1", "X"]
    assert parse_peak_names(["1-9963-10665", "chr2:5-9"]).values.tolist() == [["1", 9963, 10665], ["chr2", 5, 9]]


def test_build_mismatch_errors_name_the_file_and_genome():
    peaks = pd.DataFrame({"chrom": ["chr1"] * 200, "start": np.arange(200) * 10_000,
                          "end": np.arange(200) * 10_000 + 500})
    genes = pd.DataFrame({"chrom": ["NC_000001.11"] * 3, "tss": [1, 2, 3], "strand": "+", "gene": list("abc")})
    with pytest.raises(InputError, match=r"genes\.gff3: .*different genome builds.*config `genome`.*'hg38'"):
        cre.reconcile_genes(genes, peaks, "genes.gff3", genome="hg38")
    # shared names, but the mark never overlaps the peaks (e.g. coordinates of another build)
    mark = pd.DataFrame({"chrom": ["1"] * 100, "start": np.arange(100) * 10_000 + 3_000,
                         "end": np.arange(100) * 10_000 + 4_000})
    with pytest.raises(InputError, match=r"H3K27ac\.bed: .*different genome builds.*config `genome`"):
        cre_evaluation.mark_overlaps(peaks, mark, "H3K27ac.bed", "H3K27ac", genome="hg19")
    # the same mark shifted onto the peaks overlaps them all (names '1' vs 'chr1' reconciled)
    mark["start"] -= 3_000
    mark["end"] -= 3_000
    assert np.nansum(cre_evaluation.mark_overlaps(peaks, mark, "H3K27ac.bed", "H3K27ac")) == 100


def test_real_scicar_peaks_against_real_tss_and_h3k27ac(shared_data):
    names = pd.read_csv(shared_data / "scicar_a549" / "atac" / "features.tsv", sep="\t", header=None)[0]
    peaks = parse_peak_names(names)
    assert peaks["chrom"].iloc[0] in {str(i) for i in range(1, 23)} | {"X", "Y"}  # no 'chr' prefix
    genes = cre.reconcile_genes(read_genes(shared_data / "references" / "tss_hg19.bed"), peaks, "tss_hg19.bed")
    classes = cre.classify_peaks(peaks, genes, 2000)
    promoter_fraction = (classes == "promoter").mean()
    assert 0.05 < promoter_fraction < 0.8
    mark = read_bed(shared_data / "references" / "k562_h3k27ac_chr1.hg19.narrowPeak")
    overlap = cre_evaluation.mark_overlaps(peaks, mark, "k562_h3k27ac_chr1.hg19.narrowPeak", "H3K27ac", genome="hg19")
    on_chr1 = (peaks["chrom"] == "1").to_numpy()
    assert np.isnan(overlap[~on_chr1]).all() and not np.isnan(overlap[on_chr1]).any()
    # promoter peaks overlap H3K27ac more often than distal ones (true of any cell type)
    assert np.nanmean(overlap[on_chr1 & (classes == "promoter")]) > np.nanmean(overlap[on_chr1 & (classes == "distal")])


# ---------------------------------------------------------------------------------------------- links
def test_max_genes_keeps_the_most_variable_genes():
    pairs = pd.DataFrame({"gene_index": [0, 0, 1, 2, 2], "peak_index": [0, 1, 1, 2, 3], "distance": 0})
    expr = np.array([[0.0, 5.0, 1.0], [0.1, -5.0, -1.0], [0.0, 5.0, 1.0]])
    kept = cre.most_variable_gene_pairs(pairs, expr, max_genes=2)
    assert kept["gene_index"].tolist() == [1, 2, 2]
    assert cre.most_variable_gene_pairs(pairs, expr, None) is pairs


def test_lasso_recovers_planted_link():
    rng = np.random.default_rng(0)
    n_meta, n_cand = 60, 25
    acc = rng.normal(size=(n_meta, n_cand)).astype(np.float32)
    expr = (1.5 * acc[:, 7] + 0.3 * rng.normal(size=n_meta))[:, None].astype(np.float32)
    pairs = pd.DataFrame({"gene_index": np.zeros(n_cand, int), "peak_index": np.arange(n_cand),
                          "distance": np.arange(n_cand) * 1000})
    score, selected = cre_scores.lasso_scores(expr, acc, pairs)
    assert np.argmax(score) == 7 and selected[7]
    assert selected.sum() <= 3


def test_lasso_in_worker_processes_gives_the_sequential_result():
    # 150 genes x 8 candidates, each gene driven by one planted candidate: two workers (several gene blocks
    # each) must give bit-identical scores and selections, and still find every planted link
    rng = np.random.default_rng(3)
    n_meta, n_genes, n_cand = 60, 150, 8
    acc = rng.normal(size=(n_meta, n_genes * n_cand)).astype(np.float32)
    planted = np.arange(n_genes) * n_cand + np.arange(n_genes) % n_cand
    expr = (1.5 * acc[:, planted] + 0.3 * rng.normal(size=(n_meta, n_genes))).astype(np.float32)
    pairs = pd.DataFrame({"gene_index": np.repeat(np.arange(n_genes), n_cand),
                          "peak_index": np.arange(n_genes * n_cand), "distance": 0})
    blocks = cre_scores._gene_blocks(cre_scores.gene_bounds(pairs["gene_index"].to_numpy()), n_jobs=2)
    assert len(blocks) == 3 and blocks[0][0] == 0 and blocks[-1][-1] == len(pairs)
    assert all(left[-1] == right[0] for left, right in zip(blocks[:-1], blocks[1:]))
    score, selected = cre_scores.lasso_scores(expr, acc, pairs)
    score2, selected2 = cre_scores.lasso_scores(expr, acc, pairs, n_jobs=2)
    np.testing.assert_array_equal(score2, score)
    np.testing.assert_array_equal(selected2, selected)
    assert (score.reshape(n_genes, n_cand).argmax(axis=1) == np.arange(n_genes) % n_cand).all()
    assert selected[planted].all()


def test_lasso_model_size_is_scored_against_the_observed_expression():
    # "imputed" expression: an exact, smooth mix of many candidates (a function of the latent); the observed
    # expression follows only candidate 3. Scored against itself the fit keeps the whole mix; scored against
    # the observed expression it stops early, with candidate 3 in (measured: 4 of the 10).
    rng = np.random.default_rng(1)
    n_meta, n_cand = 60, 20
    acc = rng.normal(size=(n_meta, n_cand)).astype(np.float32)
    smooth = acc[:, :10] @ rng.uniform(0.5, 1.0, 10)
    observed = (2.0 * acc[:, 3] + 0.5 * rng.normal(size=n_meta))[:, None].astype(np.float32)
    pairs = pd.DataFrame({"gene_index": np.zeros(n_cand, int), "peak_index": np.arange(n_cand),
                          "distance": np.arange(n_cand) * 1000})
    _, self_scored = cre_scores.lasso_scores(smooth[:, None].astype(np.float32), acc, pairs)
    _, observed_scored = cre_scores.lasso_scores(smooth[:, None].astype(np.float32), acc, pairs, cv_expr=observed)
    assert self_scored[:10].all()
    assert observed_scored[3] and observed_scored.sum() <= self_scored.sum() // 2


@pytest.mark.parametrize("null", ["permutation", "background"])
def test_correlation_null_controls_false_links(null):
    false_links = 0
    for seed in range(4):
        rng = np.random.default_rng(seed)
        n_meta, n_genes, n_cand = 80, 40, 30
        acc = rng.normal(size=(n_meta, n_genes * n_cand)).astype(np.float32)
        expr = rng.normal(size=(n_meta, n_genes)).astype(np.float32)
        expr[:, 0] = acc[:, 5] + 0.3 * rng.normal(size=n_meta)  # one planted link: gene 0 - peak 5
        pairs = pd.DataFrame({"gene_index": np.repeat(np.arange(n_genes), n_cand),
                              "peak_index": np.arange(n_genes * n_cand), "distance": 0})
        chrom = np.repeat(["chr1", "chr2", "chr3", "chr4"], n_genes * n_cand // 4)
        r, selected = cre_scores.correlation_scores(expr, acc, pairs, chrom, n_background=1000, fdr=0.05, seed=0,
                                             null=null)
        assert selected[5] and r[5] > 0.9
        false_links += int(selected.sum()) - 1
    assert false_links <= 2  # of 4 x 1199 null pairs, at FDR 5%


def test_gene_bounds_are_each_genes_run_and_unsorted_pairs_are_refused():
    assert cre_scores.gene_bounds(np.array([0, 0, 3, 3, 3, 7])).tolist() == [0, 2, 5, 6]
    assert cre_scores.gene_bounds(np.array([], dtype=np.int64)).tolist() == [0]
    rng = np.random.default_rng(0)
    expr = rng.normal(size=(30, 4)).astype(np.float32)
    acc = rng.normal(size=(30, 12)).astype(np.float32)
    pairs = pd.DataFrame({"gene_index": np.repeat(np.arange(4), 3), "peak_index": np.arange(12), "distance": 0})
    shuffled = pairs.sample(frac=1.0, random_state=1).reset_index(drop=True)
    chrom = np.repeat(["chr1", "chr2"], 6)
    # a gene's pairs split into several runs would get another gene's null (permutation) or fits (LASSO)
    for null in ("permutation", "background"):
        cre_scores.correlation_scores(expr, acc, pairs, chrom, n_background=20, fdr=0.05, seed=0, null=null)
        with pytest.raises(ValueError, match="not sorted by gene_index"):
            cre_scores.correlation_scores(expr, acc, shuffled, chrom, n_background=20, fdr=0.05, seed=0, null=null)
    with pytest.raises(ValueError, match="not sorted by gene_index"):
        cre_scores.lasso_scores(expr, acc, shuffled, seed=0)


def _synthetic_mudata(path, n_cells=300, seed=0):
    """Cells on a 4-d continuous latent; gene g follows enhancer e(g) 30 kb away; decoy peaks nearby follow
    their own latent programmes; 3 chromosomes. Returns (genes, true links, ATAC counts, latent)."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n_cells, 4))
    n_genes, chroms = 30, ["chr1", "chr2", "chr3"]
    gene_chrom = np.array([chroms[g % 3] for g in range(n_genes)])
    tss = 1_000_000 + (np.arange(n_genes) // 3) * 400_000
    programme = np.exp(0.7 * latent @ rng.normal(size=(4, n_genes)))  # cells x genes
    peak_rows, planted = [], []
    for g in range(n_genes):
        peak_rows.append((gene_chrom[g], tss[g] + 30_000, "enh", g))
        planted.append(len(peak_rows) - 1)
        for k in range(4):  # decoys near the gene with their own programme
            peak_rows.append((gene_chrom[g], tss[g] - 80_000 + k * 45_000, "decoy", g))
    peaks = pd.DataFrame(peak_rows, columns=["chrom", "centre", "kind", "gene"])
    decoy = np.exp(0.7 * latent @ rng.normal(size=(4, len(peaks))))
    is_enh = peaks["kind"].eq("enh").to_numpy()[None, :]
    peak_rate = 0.4 * np.where(is_enh, programme[:, peaks["gene"]], decoy)
    gene_rate = 1.5 * programme
    atac = rng.poisson(peak_rate)
    rna = rng.poisson(gene_rate)
    var_atac = pd.DataFrame({"chrom": peaks["chrom"], "start": peaks["centre"] - 250, "end": peaks["centre"] + 250})
    var_atac.index = var_atac["chrom"] + ":" + var_atac["start"].astype(str) + "-" + var_atac["end"].astype(str)
    obs = pd.DataFrame(index=[f"cell{i}" for i in range(n_cells)])
    rna_ad = ad.AnnData(sp.csr_matrix(rna.astype(np.float32)), obs=obs.copy(),
                        var=pd.DataFrame(index=[f"Gene{g}" for g in range(n_genes)]))
    atac_ad = ad.AnnData(sp.csr_matrix(atac.astype(np.float32)), obs=obs.copy(), var=var_atac)
    rna_ad.layers["counts"] = rna_ad.X.copy()
    atac_ad.layers["counts"] = atac_ad.X.copy()
    rna_ad.layers["imputed"] = gene_rate.astype(np.float32)
    atac_ad.layers["imputed"] = peak_rate.astype(np.float32)
    mdata = md.MuData({"rna": rna_ad, "atac": atac_ad})
    mdata.obsm["X_scmvp"] = latent + rng.normal(scale=0.1, size=latent.shape)
    mdata.write(path)
    genes = pd.DataFrame({"chrom": [c.replace("chr", "") for c in gene_chrom], "tss": tss, "strand": "+",
                          "gene": [f"Gene{g}" for g in range(n_genes)]})
    truth = pd.DataFrame({"peak": var_atac.index[planted], "gene": [f"Gene{g}" for g in range(n_genes)]})
    return genes, truth, atac, latent


def test_linking_data_streams_layers_in_chunks(tmp_path):
    path = tmp_path / "synthetic.h5mu"
    _, _, atac, latent = _synthetic_mudata(path)
    with cre.LinkingData(path, chunk_values=1000) as data:
        labels = cre.metacell_labels(data.embedding, 20, seed=0)
        chunks = list(data.layer_chunks("atac", "counts"))
        assert len(chunks) > 3  # really streamed
        sums = cre.aggregate_chunks(cre.membership(labels), chunks)
        dense_chunks = list(data.layer_chunks("atac", "imputed"))
        assert len(dense_chunks) > 3
    expected = np.stack([atac[labels == k].sum(axis=0) for k in range(labels.max() + 1)])
    np.testing.assert_allclose(sums, expected)
    # metacells are tight in the latent space: within-metacell spread far below the total spread
    within = np.mean([latent[labels == k].var(axis=0).sum() for k in range(labels.max() + 1)])
    assert labels.max() + 1 == 20 and within < 0.5 * latent.var(axis=0).sum()


def test_predict_links_finds_planted_enhancers(tmp_path):
    path = tmp_path / "synthetic.h5mu"
    genes, truth, _, _ = _synthetic_mudata(path)
    with cre.LinkingData(path, chunk_values=5000) as data:
        links = cre.predict_links(data, genes, window=100_000, methods=["lasso", "correlation"], n_metacells=40,
                                  n_permutations=30, fdr=0.1, max_genes=None, seed=0, genes_path="genes.bed")
    assert list(links.columns) == cre.LINK_COLUMNS
    assert set(links["input"]) == {"raw", "imputed"} and set(links["method"]) == {"lasso", "correlation"}
    accuracy = cre_evaluation.link_accuracy(links, truth).set_index(["method", "input"])
    assert (accuracy["n_true"] == 30).all()
    for method in ("lasso", "correlation"):
        assert accuracy.loc[(method, "imputed"), "recall"] >= 0.8, accuracy
    # decoys share the latent space, so they co-vary with genes: only LASSO separates them well
    assert accuracy.loc[("lasso", "imputed"), "precision"] >= 0.5, accuracy
    # the best-scored candidate of (almost) every gene is its planted enhancer
    planted = set(zip(truth["peak"], truth["gene"]))
    top = links.sort_values("score", ascending=False, kind="stable").groupby(["method", "input", "gene"]).head(1)
    top_is_true = top.assign(hit=[pair in planted for pair in zip(top["peak"], top["gene"])])
    hit_rate = top_is_true.groupby(["method", "input"])["hit"].mean()
    assert (hit_rate.xs("imputed", level="input") >= 0.9).all(), hit_rate
    assert (hit_rate.xs("raw", level="input") >= 0.8).all(), hit_rate
    # same config -> same numbers
    with cre.LinkingData(path, chunk_values=5000) as data:
        again = cre.predict_links(data, genes, window=100_000, methods=["lasso", "correlation"], n_metacells=40,
                                  n_permutations=30, fdr=0.1, max_genes=None, seed=0, genes_path="genes.bed")
    pd.testing.assert_frame_equal(links, again)


# ------------------------------------------------------------------------------- simulator end to end
@pytest.fixture(scope="module")
def tiny_cre(tiny_workflow):
    paths = tiny_workflow.build("tiny/cre/links.tsv", "tiny/cre/enrichment.tsv", "tiny/cre/enrichment.png",
                                "tiny/cre/link_accuracy.tsv")
    links, enrichment, plot, accuracy = paths
    return {"links": pd.read_csv(links, sep="\t"), "enrichment": pd.read_csv(enrichment, sep="\t"),
            "plot": plot, "accuracy": pd.read_csv(accuracy, sep="\t"),
            "truth": pd.read_csv(tiny_workflow.results / "tiny" / "simulated" / "truth" / "links.tsv", sep="\t")}


def test_tiny_links_and_enrichment_tables(tiny_cre):
    links, enrichment = tiny_cre["links"], tiny_cre["enrichment"]
    assert list(links.columns) == ["peak", "gene", "distance", "method", "input", "score", "selected"]
    assert set(links["method"]) == {"lasso", "correlation"} and set(links["input"]) == {"raw", "imputed"}
    assert links["distance"].abs().max() <= 500_000
    assert links.groupby(["method", "input"]).size().nunique() == 1  # the same pairs tested everywhere
    assert list(enrichment.columns) == ["mark", "input", "method", "region", "n_linked", "n_background",
                                        "fraction_linked", "fraction_background", "odds_ratio", "ci_low",
                                        "ci_high", "p_value"]
    assert len(enrichment) == 2 * 2 * 2 * 3
    assert set(enrichment["mark"]) == {"H3K4me3", "H3K27ac"}
    assert tiny_cre["plot"].stat().st_size > 10_000


def test_tiny_link_accuracy_reported_and_better_than_chance(tiny_cre):
    accuracy, links, truth = tiny_cre["accuracy"], tiny_cre["links"], tiny_cre["truth"]
    assert set(accuracy["method"]) == {"lasso", "correlation"} and len(accuracy) == 4
    true_pairs = set(zip(truth["peak"], truth["gene"]))
    tested = links[(links["method"] == "lasso") & (links["input"] == "raw")]
    base_rate = np.mean([pair in true_pairs for pair in zip(tested["peak"], tested["gene"])])
    print("\n" + accuracy.to_string(index=False), f"\nbase rate of true pairs among tested: {base_rate:.3f}")
    assert (accuracy["n_true"] > 0).all()
    assert accuracy["recall"].between(0, 1).all()
    assert np.allclose(accuracy["recall"], accuracy["true_positives"] / accuracy["n_true"])
    predicted = accuracy[accuracy["n_predicted"] > 0]
    assert np.allclose(predicted["precision"], predicted["true_positives"] / predicted["n_predicted"])
    # the linking itself works: LASSO links on raw counts are well above chance
    raw_lasso = accuracy[(accuracy["method"] == "lasso") & (accuracy["input"] == "raw")].iloc[0]
    assert raw_lasso["n_predicted"] >= 20 and raw_lasso["precision"] > 1.5 * base_rate, accuracy


@pytest.mark.xfail(strict=False, reason="within seed noise at 400 cells: with the data-driven QC (14 fewer cells) and "
                   "model seed 1 the imputed LASSO recall at the raw links' count (236) is 0.023 vs raw 0.033 "
                   "(seed 0 before the QC change passed); with the watched full-weight warm-up (stop 44) LASSO "
                   "passes (0.019 vs 0.016) and correlation finds no imputed link and one raw one (recall 0 vs 0)")
def test_tiny_imputed_links_recall_more_at_equal_link_count(tiny_cre):
    # "Equal precision": both inputs are cut at the same number of top-scored links (the raw links'
    # count), where the same denominator makes higher recall also higher precision.
    accuracy = tiny_cre["accuracy"].set_index(["method", "input"])
    for method in ("lasso", "correlation"):
        raw = accuracy.loc[(method, "raw")]
        imputed = accuracy.loc[(method, "imputed")]
        assert imputed["k_equal"] == raw["k_equal"] > 0
        assert imputed["recall_at_k_equal"] > raw["recall_at_k_equal"], accuracy


@pytest.mark.parametrize("input_name", ["raw", "imputed"])
def test_tiny_linked_distal_peaks_enriched_in_h3k27ac(tiny_cre, input_name):
    # the paper's links: LASSO, on imputed and on raw data
    enrichment = tiny_cre["enrichment"]
    rows = enrichment[(enrichment["mark"] == "H3K27ac") & (enrichment["region"] == "distal")]
    print("\n" + rows.to_string(index=False))
    row = rows[(rows["method"] == "lasso") & (rows["input"] == input_name)].iloc[0]
    assert row["odds_ratio"] > 1 and row["ci_low"] > 1 and row["p_value"] < 0.05, row


@pytest.mark.xfail(strict=False, reason="within seed noise at 400 cells: with the data-driven QC and model seed 1, imputed "
                   "LASSO links are as precise as raw ones (0.336 vs 0.335) but less enriched in distal H3K27ac (odds "
                   "ratio 2.32 vs 3.59); seed 0 before the QC change gave 0.46 vs 0.33 and 3.1 vs 2.6; with the "
                   "watched full-weight warm-up (stop 44) precision 0.39 vs 0.37 but 36 % vs 51 % of the distal "
                   "links in H3K27ac")
def test_tiny_imputed_lasso_links_beat_raw_ones(tiny_cre):
    # the paper's claim: links predicted from imputed data are more accurate and more enriched in the active
    # enhancer mark than those from raw data (measured: precision 0.46 vs 0.33, distal H3K27ac OR 3.1 vs 2.6)
    accuracy = tiny_cre["accuracy"].set_index(["method", "input"])
    assert accuracy.loc[("lasso", "imputed"), "precision"] > accuracy.loc[("lasso", "raw"), "precision"], accuracy
    enrichment = tiny_cre["enrichment"]
    distal = enrichment[(enrichment["mark"] == "H3K27ac") & (enrichment["region"] == "distal")
                        & (enrichment["method"] == "lasso")].set_index("input")
    assert distal.loc["imputed", "odds_ratio"] > distal.loc["raw", "odds_ratio"], distal
