"""QC + normalisation (rule `preprocess`): the preprocessed.h5mu contract, thresholds, errors, real data."""
from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from conftest import TINY_CONFIG, snakemake
from scmvp.errors import InputError
from scmvp.preprocessing import QCConfig, preprocess
from scmvp.simulate import simulate

QC = dict(min_genes_per_cell=60, min_peaks_per_cell=40, max_genes_per_cell=180, min_cells_per_gene=5,
          min_cells_per_peak=4, max_mito_fraction=0.2, n_top_genes=100, n_top_peaks=500, n_lsi_components=8,
          n_pcs=6)
N_MITO_GENES = 5
N_DAMAGED_CELLS = 12


@pytest.fixture(scope="module")
def sim():
    return simulate(n_cells=300, n_genes=250, n_peaks=2000, n_types=6, n_chromosomes=2, seed=3)


def _mudata(sim, damaged=True):
    """The ingested contract built from simulated counts; a few mito genes and damaged (mito-rich) cells."""
    rna_counts = sim.rna.astype(np.float32).tolil()
    names = list(sim.genes["gene_name"])
    for i in range(N_MITO_GENES):
        names[i] = f"MT-CO{i + 1}"
    if damaged:
        for cell in range(N_DAMAGED_CELLS):
            rna_counts[cell, 0] = 5 * rna_counts[cell].sum()
    obs = pd.DataFrame({"label": sim.labels}, index=sim.barcodes)
    rna = ad.AnnData(sp.csr_matrix(rna_counts), obs=obs.copy(), var=pd.DataFrame(index=names))
    peaks = sim.peaks.set_index("peak")[["chrom", "start", "end"]]
    atac = ad.AnnData(sim.atac.astype(np.float32).tocsr(), obs=obs.copy(), var=peaks)
    mdata = md.MuData({"rna": rna, "atac": atac})
    mdata.obs["label"] = sim.labels
    return mdata


@pytest.fixture(scope="module")
def processed(sim):
    mdata = _mudata(sim)
    report = preprocess(mdata, QC, seed=0)
    return mdata, report


def test_layers_and_embeddings(processed):
    mdata, _ = processed
    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    for adata in (rna, atac):
        counts = adata.layers["counts"]
        assert sp.isspmatrix_csr(counts)
        assert np.array_equal(counts.data, np.round(counts.data)) and counts.data.min() > 0
    assert sp.isspmatrix_csr(atac.layers["tfidf"])
    assert (atac.layers["tfidf"] != atac.X).nnz == 0
    assert atac.layers["tfidf"].nnz == atac.layers["counts"].nnz
    # rna.X: log1p of counts scaled to 10,000 per cell
    assert np.allclose(np.expm1(rna.X.toarray()).sum(axis=1), 1e4, rtol=1e-3)
    assert rna.var["highly_variable"].sum() == QC["n_top_genes"]
    assert atac.var["highly_accessible"].sum() == QC["n_top_peaks"]
    flagged = atac.var.loc[atac.var["highly_accessible"], "n_cells"].min()
    assert flagged >= atac.var.loc[~atac.var["highly_accessible"], "n_cells"].max()
    assert rna.obsm["X_pca"].shape == (mdata.n_obs, QC["n_pcs"])
    assert atac.obsm["X_lsi"].shape == (mdata.n_obs, QC["n_lsi_components"])
    assert np.isfinite(atac.obsm["X_lsi"]).all() and np.isfinite(rna.obsm["X_pca"]).all()
    for column in ("n_counts", "n_genes", "mito_fraction"):
        assert column in rna.obs
    for column in ("n_counts", "n_peaks"):
        assert column in atac.obs
    assert "label" in mdata.obs


def test_qc_thresholds_hold_on_the_output(processed, sim):
    mdata, report = processed
    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    genes_per_cell = np.diff(rna.layers["counts"].indptr)
    peaks_per_cell = np.diff(atac.layers["counts"].indptr)
    assert genes_per_cell.min() >= QC["min_genes_per_cell"] and genes_per_cell.max() <= QC["max_genes_per_cell"]
    assert peaks_per_cell.min() >= QC["min_peaks_per_cell"]
    assert np.bincount(rna.layers["counts"].indices, minlength=rna.n_vars).min() >= QC["min_cells_per_gene"]
    assert np.bincount(atac.layers["counts"].indices, minlength=atac.n_vars).min() >= QC["min_cells_per_peak"]
    assert np.array_equal(rna.obs["n_genes"].to_numpy(), genes_per_cell)
    assert np.array_equal(atac.obs["n_peaks"].to_numpy(), peaks_per_cell)
    assert rna.obs["mito_fraction"].max() <= QC["max_mito_fraction"]
    # the damaged cells are gone from BOTH modalities; the counts are the input's, unchanged
    assert not set(sim.barcodes[:N_DAMAGED_CELLS]) & set(mdata.obs_names)
    assert list(rna.obs_names) == list(atac.obs_names) == list(mdata.obs_names)
    assert 0.5 * len(sim.barcodes) < mdata.n_obs < len(sim.barcodes) - N_DAMAGED_CELLS + 1
    cells = pd.Index(sim.barcodes).get_indexer(atac.obs_names)
    peaks = pd.Index(sim.peaks["peak"]).get_indexer(atac.var_names)
    assert (sim.atac[cells][:, peaks] != atac.layers["counts"]).nnz == 0
    assert report["cells_out"] == mdata.n_obs and report["cells_failing"]["rna_mito_fraction_high"] >= N_DAMAGED_CELLS
    # QC-passing genes are all kept, not only the highly variable ones
    assert rna.n_vars > QC["n_top_genes"]


def test_same_input_same_numbers(processed, sim):
    first, _ = processed
    again = _mudata(sim)
    preprocess(again, QC, seed=0)
    for mod, key in (("rna", "X_pca"), ("atac", "X_lsi")):
        assert np.array_equal(first.mod[mod].obsm[key], again.mod[mod].obsm[key])
    assert np.array_equal(first.mod["rna"].var["highly_variable"], again.mod["rna"].var["highly_variable"])


def test_nan_and_non_integer_counts_are_input_errors(sim):
    mdata = _mudata(sim, damaged=False)
    mdata.mod["atac"].X.data[3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        preprocess(mdata, QC, path="in.h5mu")
    mdata = _mudata(sim, damaged=False)
    mdata.mod["rna"].X.data[:10] = 0.5
    with pytest.raises(InputError, match="not integers"):
        preprocess(mdata, QC, path="in.h5mu")


def test_no_cells_left_names_the_thresholds(sim):
    mdata = _mudata(sim, damaged=False)
    with pytest.raises(InputError) as err:
        preprocess(mdata, {**QC, "max_genes_per_cell": None, "min_peaks_per_cell": 10**6}, path="in.h5mu")
    message = str(err.value)
    assert message.startswith("in.h5mu: no cells left after QC (300 cells came in;")
    assert "qc.min_peaks_per_cell=1000000" in message


def test_scicar_a549_real_data(shared_data):
    """Real sci-CAR counts (2,641 A549 cells): QC, HVGs, TF-IDF and LSI on sparse binarised ATAC."""
    from scmvp.io import read_dataset

    folder = shared_data / "scicar_a549"
    mdata = read_dataset("mtx", folder, labels=folder / "labels.tsv")
    qc = QCConfig(min_genes_per_cell=100, min_peaks_per_cell=100, min_cells_per_gene=3, min_cells_per_peak=10,
                  n_top_genes=500, n_top_peaks=10000, n_lsi_components=20, n_pcs=20)
    report = preprocess(mdata, qc, seed=0, path=folder)
    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    assert report["cells_in"] == 2641 and 1500 < mdata.n_obs < 2641
    assert np.diff(rna.layers["counts"].indptr).min() >= 100 and np.diff(atac.layers["counts"].indptr).min() >= 100
    assert rna.var["highly_variable"].sum() == 500 and atac.var["highly_accessible"].sum() == 10000
    assert 0.005 < atac.layers["counts"].nnz / np.prod(atac.shape) < 0.05
    assert set(atac.layers["counts"].data) == {1.0}  # binarised as shipped
    assert atac.obsm["X_lsi"].shape == (mdata.n_obs, 20)
    # the first LSI component tracks sequencing depth, as known for TF-IDF/LSI on scATAC
    depth = np.log(atac.obs["n_counts"].to_numpy())
    assert abs(np.corrcoef(depth, atac.obsm["X_lsi"][:, 0])[0, 1]) > 0.5
    # dexamethasone time points differ in RNA: 0 h cells sit apart from 3 h cells on the PCs
    labels = mdata.obs["label"].astype(str).to_numpy()
    pcs = rna.obsm["X_pca"][:, :10]
    gap = np.linalg.norm(pcs[labels == "0h"].mean(0) - pcs[labels == "3h"].mean(0))
    assert gap > 0.5 * np.median(np.linalg.norm(pcs - pcs.mean(0), axis=1))


def test_preprocess_rule_on_the_tiny_workflow(tiny_workflow):
    path = tiny_workflow.build("tiny/preprocessed.h5mu")
    mdata = md.read_h5mu(path)
    qc = TINY_CONFIG["qc"]
    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    assert {"counts"} <= set(rna.layers) and {"counts", "tfidf"} <= set(atac.layers)
    assert "X_pca" in rna.obsm and atac.obsm["X_lsi"].shape[1] == qc["n_lsi_components"]
    assert np.diff(rna.layers["counts"].indptr).min() >= qc["min_genes_per_cell"]
    assert np.diff(atac.layers["counts"].indptr).min() >= qc["min_peaks_per_cell"]
    assert rna.var["highly_variable"].sum() == qc["n_top_genes"]
    assert mdata.n_obs >= 0.9 * TINY_CONFIG["datasets"]["tiny"]["simulate"]["n_cells"]
    assert mdata.obs["label"].nunique() == 6
    benchmark = tiny_workflow.results / "tiny" / "benchmarks" / "preprocess.tsv"
    assert benchmark.exists()


def test_rule_stops_with_a_clear_error_when_no_cell_passes(tmp_path):
    config = {
        "datasets": {"small": {"technology": "simulated", "genome": "synthetic",
                               "simulate": {"n_cells": 100, "n_genes": 100, "n_peaks": 500, "seed": 2}}},
        "qc": {"min_genes_per_cell": 5000, "min_peaks_per_cell": 5},
    }
    target = tmp_path / "results" / "small" / "preprocessed.h5mu"
    proc = snakemake(tmp_path, config, targets=[str(target)], check=False)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "ingested.h5mu: no cells left after QC (100 cells came in;" in output
    assert "qc.min_genes_per_cell=5000" in output and "Traceback" not in output
    assert not target.exists()


def test_zero_thresholds_still_drop_empty_cells_and_features(sim):
    mdata = _mudata(sim, damaged=False)
    counts = mdata.mod["atac"].X.tolil()
    counts[5, :] = 0  # a cell without any ATAC count
    mdata.mod["atac"].X = counts.tocsr()
    zero = {k: 0 for k in ("min_genes_per_cell", "min_peaks_per_cell", "min_cells_per_gene", "min_cells_per_peak")}
    preprocess(mdata, {**QC, **zero, "max_genes_per_cell": None, "max_mito_fraction": 1.0, "nmads": None,
                       "nmads_mito": None})
    atac = mdata.mod["atac"]
    assert sim.barcodes[5] not in set(mdata.obs_names) and mdata.n_obs == len(sim.barcodes) - 1
    assert np.diff(atac.layers["counts"].indptr).min() >= 1
    assert np.bincount(atac.layers["counts"].indices, minlength=atac.n_vars).min() >= 1
    assert np.isfinite(atac.layers["tfidf"].data).all() and np.isfinite(mdata.mod["rna"].X.data).all()


def test_mad_thresholds_known_answer():
    """log1p values 1..10 and 30: median 6, MAD 3, so 5 MADs put the bounds at expm1(-9) and expm1(21)."""
    from scmvp.qc import QCConfig, failing_reasons, mad_thresholds

    x = np.r_[np.arange(1, 11), 30.0]
    table = pd.DataFrame({"rna_n_counts": np.expm1(x), "rna_n_genes": np.expm1(x), "rna_mito_fraction": 0.0,
                          "atac_n_counts": np.expm1(x), "atac_n_peaks": np.expm1(x)})
    thresholds = mad_thresholds(table, QCConfig(), has_mito=False).set_index("metric")
    assert thresholds.loc["rna_n_counts", "high"] == pytest.approx(np.expm1(21.0))
    assert thresholds.loc["atac_n_peaks", "low"] == pytest.approx(np.expm1(-9.0))
    assert thresholds.loc["rna_mito_fraction", "rule"] == "none"  # no MT- genes: no mito threshold
    reasons = failing_reasons(table, thresholds.reset_index())
    assert reasons["rna_n_counts_high"].tolist() == [False] * 10 + [True]
    # a fixed minimum applies on top of the MAD bound
    fixed = mad_thresholds(table, QCConfig(min_genes_per_cell=100), has_mito=False).set_index("metric")
    assert fixed.loc["rna_n_genes", "low"] == 100 and "fixed minimum" in fixed.loc["rna_n_genes", "rule"]


def test_default_qc_is_data_driven_and_keeps_a_gene_panel(shared_data, sim):
    """Default QC: MAD outliers only. Real sci-CAR (a 1,185-gene panel; the old fixed 200-genes default removed
    1,356 of 2,641 cells) keeps every cell; simulated cells with a tenth of the usual depth are removed."""
    from scmvp.io import read_dataset

    folder = shared_data / "scicar_a549"
    report = preprocess(read_dataset("mtx", folder, labels=folder / "labels.tsv"), {}, seed=0, path=folder)
    # no cell breaks a count threshold; only scrublet's predicted doublets (19, 0.7%) go
    table = report["cell_table"]
    assert set(table["reasons"]) == {"", "predicted_doublet"}
    n_doublets = int(table["predicted_doublet"].sum())
    assert report["cells_in"] == 2641 and report["cells_out"] == 2641 - n_doublets and 0 < n_doublets < 0.02 * 2641

    mdata = _mudata(sim, damaged=False)
    shallow = np.arange(20, 26)
    for name in ("rna", "atac"):
        counts = mdata.mod[name].X.tolil()
        for cell in shallow:
            row = counts[cell].toarray().ravel()
            keep = np.random.default_rng(cell).random(row.size) < 0.01
            counts[cell] = np.where(keep, row, 0)
        mdata.mod[name].X = counts.tocsr()
    report = preprocess(mdata, {k: v for k, v in QC.items() if k.startswith("n_")}, seed=0)
    table = report["cell_table"]
    assert not table.loc[sim.barcodes[shallow], "passed"].any()
    assert table["passed"].sum() == report["cells_out"] >= 0.9 * len(sim.barcodes)
    assert all("rna_n_counts_low" in r or "atac_n_counts_low" in r for r in table.loc[sim.barcodes[shallow], "reasons"])


def _three_samples():
    """Two libraries at the same depth and one at half of it: log1p counts at each sample's median + 0.05 x the
    normal quantiles (100 cells each), and three cells of the shallow library at the deep libraries' depth."""
    from scipy.stats import norm

    z = norm.ppf((np.arange(100) + 0.5) / 100)
    logs, samples = [], []
    for sample, depth in (("deep1", 1.0), ("deep2", 1.0), ("shallow", 0.5)):
        values = np.log(4000 * depth) + 0.05 * z
        if sample == "shallow":
            values = np.r_[values, np.log(4000) + np.array([0.0, 0.05, 0.1])]
        logs.append(values)
        samples += [sample] * len(values)
    counts = np.expm1(np.concatenate(logs))
    return pd.DataFrame({"sample": samples, "rna_n_counts": counts, "rna_n_genes": counts / 4,
                         "rna_mito_fraction": 0.0, "atac_n_counts": counts, "atac_n_peaks": counts / 2},
                        index=[f"cell{i}" for i in range(len(counts))])


def test_per_sample_mad_thresholds_keep_a_shallow_library():
    """Pooled MADs (qc.per_sample: false) remove all 100 ordinary cells of the half-depth library as low counts and
    keep its three cells at the deep libraries' depth; per-sample MADs keep the 100 and remove the three."""
    from scmvp.qc import failing_reasons, mad_thresholds, thresholds_by_sample

    table = _three_samples()
    outliers = table.index[-3:]
    per_sample = thresholds_by_sample(table, QCConfig(), has_mito=False)
    assert list(per_sample.columns) == ["sample", "metric", "low", "high", "rule"]
    assert list(per_sample["sample"].unique()) == ["deep1", "deep2", "shallow"] and len(per_sample) == 3 * 5
    for sample, rows in per_sample.groupby("sample"):  # each sample's rows: the pooled function on its own cells
        own = mad_thresholds(table[table["sample"] == sample], QCConfig(), has_mito=False)
        pd.testing.assert_frame_equal(rows.drop(columns="sample").reset_index(drop=True), own)
    reasons = failing_reasons(table, per_sample)
    removed = reasons.any(axis=1)
    assert removed.groupby(table["sample"]).sum().to_dict() == {"deep1": 0, "deep2": 0, "shallow": 3}
    assert list(table.index[removed]) == list(outliers) and reasons.loc[outliers, "rna_n_counts_high"].all()

    pooled = thresholds_by_sample(table, QCConfig(per_sample=False), has_mito=False)
    pd.testing.assert_frame_equal(pooled, mad_thresholds(table, QCConfig(), has_mito=False))
    assert "sample" not in pooled.columns
    reasons = failing_reasons(table, pooled)
    removed = reasons.any(axis=1)
    assert removed.groupby(table["sample"]).sum().to_dict() == {"deep1": 0, "deep2": 0, "shallow": 100}
    assert not removed[outliers].any() and reasons.loc[removed, "rna_n_counts_low"].all()

    # fixed thresholds are the same in every sample, on top of each sample's MAD bound
    fixed = thresholds_by_sample(table, QCConfig(min_genes_per_cell=800), has_mito=False)
    genes = fixed[fixed["metric"] == "rna_n_genes"].set_index("sample")
    assert (genes["rule"] == "5 MADs + fixed minimum").all()
    assert genes.loc["shallow", "low"] == 800 and genes.loc["deep1", "low"] > 800


def test_single_sample_qc_is_unchanged(processed, sim):
    """One library (no `sample` column, or one with a single value): no `sample` column anywhere, the thresholds
    are the pooled function's, and a one-sample sheet gives the same tables as no sheet."""
    from scmvp.qc import mad_thresholds
    from scmvp.qc_samples import sample_table

    _, report = processed
    cells, thresholds = report["cell_table"], report["thresholds"]
    assert "sample" not in cells.columns and "sample" not in thresholds.columns
    pd.testing.assert_frame_equal(thresholds, mad_thresholds(cells, QCConfig.from_config(QC), has_mito=True))
    one = _mudata(sim)
    for frame in (one.obs, one.mod["rna"].obs, one.mod["atac"].obs):
        frame["sample"] = "only"
    again = preprocess(one, QC, seed=0)
    pd.testing.assert_frame_equal(again["cell_table"], cells)
    pd.testing.assert_frame_equal(again["thresholds"], thresholds)
    # the per-sample table: one row, named by the caller, agreeing with the summary
    table = sample_table(cells, name="sim")
    assert len(table) == 1 and table.loc[0, "sample"] == "sim"
    assert table.loc[0, "cells_in"] == report["cells_in"] and table.loc[0, "cells_out"] == report["cells_out"]
    assert table.loc[0, "removed_rna_mito_fraction_high"] == report["cells_failing"]["rna_mito_fraction_high"]
