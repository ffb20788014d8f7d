"""Many libraries in one dataset: the sample sheet, the peak merge, the simulated libraries and the workflow."""
from __future__ import annotations

import warnings

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import TINY_CONFIG, snakemake

from scmvp.config_check import config_problems, load_schema
from scmvp.errors import InputError
from scmvp.sample_sheet import read_sample_sheet
from scmvp.samples import ingest_samples, merge_peaks, split_cell_names
from scmvp.simulate_samples import simulate_samples, write_samples


# ----------------------------------------------------------------------------------- a known answer
# Sample a's and b's peaks: overlapping, book-ended, inside another, and one of each alone.
PEAKS_A = ["chr1:100-200", "chr1:300-400", "chr1:1000-1100", "chr2:50-150"]
PEAKS_B = ["chr1:150-250", "chr1:400-450", "chr1:600-700", "chr2:140-160"]
MERGED = ["chr1:100-250", "chr1:300-450", "chr1:600-700", "chr1:1000-1100", "chr2:50-160"]


def _write_h5mu(path, cells, genes, peaks, rna, atac):
    rna = ad.AnnData(sp.csr_matrix(np.asarray(rna, np.float32)), obs=pd.DataFrame(index=cells),
                     var=pd.DataFrame(index=genes))
    atac = ad.AnnData(sp.csr_matrix(np.asarray(atac, np.float32)), obs=pd.DataFrame(index=cells),
                      var=pd.DataFrame(index=peaks))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        md.MuData({"rna": rna, "atac": atac}).write(path)
    return path


@pytest.fixture
def two_samples(tmp_path):
    """Two h5mu samples sharing the barcode AAA-1, with labels and covariates, and their sheet."""
    _write_h5mu(tmp_path / "a.h5mu", ["AAA-1", "CCC-1"], ["g1", "g2", "g3"], PEAKS_A,
                [[1, 2, 3], [0, 1, 0]], [[1, 2, 3, 4], [0, 0, 5, 1]])
    _write_h5mu(tmp_path / "b.h5mu", ["AAA-1", "GGG-1", "TTT-1"], ["g2", "g3", "g4"], PEAKS_B,
                [[5, 0, 1], [1, 1, 1], [0, 2, 0]], [[5, 6, 7, 8], [1, 0, 0, 2], [0, 3, 0, 0]])
    (tmp_path / "a_labels.tsv").write_text("barcode\tcelltype\nAAA-1\tT\nCCC-1\tB\n")
    (tmp_path / "b_labels.tsv").write_text("barcode\tcelltype\nAAA-1\tB\nGGG-1\tT\nTTT-1\tT\n")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("sample\ttechnology\tpath\tlabels\tdonor\tage\n"
                     "a\th5mu\ta.h5mu\ta_labels.tsv\tD1\t30\n"
                     "b\th5mu\tb.h5mu\tb_labels.tsv\tD2\t41\n")
    return sheet


def test_merge_peaks_known_answer():
    from scmvp.io import parse_peak_names

    merged, (map_a, map_b) = merge_peaks([parse_peak_names(PEAKS_A, "a"), parse_peak_names(PEAKS_B, "b")])
    assert list(merged.index) == MERGED
    assert map_a.toarray().argmax(axis=1).tolist() == [0, 1, 3, 4]
    assert map_b.toarray().argmax(axis=1).tolist() == [0, 1, 2, 4]
    assert map_a.sum() == 4 and map_b.sum() == 4  # every sample peak in exactly one merged peak


def test_ingest_samples_sums_counts_into_merged_peaks(two_samples):
    mdata = ingest_samples(read_sample_sheet(two_samples), source=two_samples)
    assert list(mdata.obs_names) == ["a#AAA-1", "a#CCC-1", "b#AAA-1", "b#GGG-1", "b#TTT-1"]
    assert split_cell_names(mdata.obs_names)["barcode"].tolist() == ["AAA-1", "CCC-1", "AAA-1", "GGG-1", "TTT-1"]
    assert list(mdata["atac"].var_names) == MERGED
    assert mdata["atac"].X.toarray().tolist() == [
        [1, 2, 0, 3, 4], [0, 0, 0, 5, 1],          # sample a: peaks -> merged 0, 1, 3, 4
        [5, 6, 7, 0, 8], [1, 0, 0, 0, 2], [0, 3, 0, 0, 0]]  # sample b: peaks -> merged 0, 1, 2, 4
    # genes: the intersection, by name (h5mu samples without gene ids)
    assert list(mdata["rna"].var_names) == ["g2", "g3"]
    assert mdata["rna"].X.toarray().tolist() == [[2, 3], [1, 0], [5, 0], [1, 1], [0, 2]]
    for obs in (mdata.obs, mdata["rna"].obs, mdata["atac"].obs):
        assert list(obs["sample"].astype(str)) == ["a", "a", "b", "b", "b"]
        assert list(obs["donor"].astype(str)) == ["D1", "D1", "D2", "D2", "D2"]
        assert list(obs["age"]) == [30, 30, 41, 41, 41]
        assert list(obs["label"]) == ["T", "B", "B", "T", "T"]  # per-sample labels, own barcodes


def test_labels_for_some_samples_only_is_an_error(two_samples):
    text = two_samples.read_text().replace("b_labels.tsv", "")
    two_samples.write_text(text)
    with pytest.raises(InputError, match="give labels .* for every sample or for none"):
        ingest_samples(read_sample_sheet(two_samples), source=two_samples)


@pytest.mark.parametrize("rows, message", [
    ("a\th5mu\ta.h5mu\na\th5mu\ta.h5mu\n", "duplicate sample name 'a' (rows 2, 3)"),
    ("a\th5mu\tmissing.h5mu\n", "row 2 (sample 'a'): path missing.h5mu does not exist"),
    ("a\tnanopore\ta.h5mu\n", "row 2 (sample 'a'): unknown technology 'nanopore'"),
    ("a#1\th5mu\ta.h5mu\n", "row 2: sample name 'a#1' contains '#'"),
    ("a b\th5mu\ta.h5mu\n", "row 2 (sample 'a b'): sample: 'a b' does not match"),  # the schema's pattern
    ("a\th5mu\ta.h5mu\n", None),
], ids=["duplicate", "missing_path", "unknown_technology", "separator", "schema_pattern", "reserved_covariate"])
def test_sample_sheet_errors_name_the_file(tmp_path, rows, message):
    (tmp_path / "a.h5mu").write_text("")
    sheet = tmp_path / "samples.tsv"
    if message is None:  # a covariate named like a column the join sets
        sheet.write_text("sample\ttechnology\tpath\tbarcode\n" + rows.replace("\n", "\tx\n"))
        message = "column 'barcode' cannot be a covariate"
    else:
        sheet.write_text("sample\ttechnology\tpath\n" + rows)
    with pytest.raises(InputError) as err:
        read_sample_sheet(sheet)
    assert str(err.value).startswith(f"{sheet}: ") and message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_sample_sheet_without_required_column(tmp_path):
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("sample\tpath\na\t.\n")
    with pytest.raises(InputError, match="lacks column.s. technology"):
        read_sample_sheet(sheet)


def test_config_samples_excludes_technology_and_path(repo_root):
    schema = load_schema(repo_root / "config/schemas/config.schema.yaml")
    both = {"datasets": {"x": {"samples": "s.tsv", "technology": "10x_multiome", "path": "p"}}}
    assert config_problems(both, schema) == [
        "config: datasets.x: give either `samples` (a sample sheet) or `technology`/`path`, not both: `samples` "
        "replaces technology, path, labels, label_column, url (found technology, path; put labels and covariates "
        "in the sample sheet)"]
    assert config_problems({"datasets": {"x": {"samples": "s.tsv", "genome": "hg38"}}}, schema) == []
    assert config_problems({"datasets": {"x": {"genome": "hg38"}}}, schema) == [
        "config: datasets.x: 'technology' is a required property (or `samples`: a sample sheet of several "
        "libraries)"]


# ------------------------------------------------------------------------------------- the simulator
def test_simulated_libraries_differ_and_merge_to_the_truth():
    sim = simulate_samples(n_samples=3, n_cells=300, n_genes=100, n_peaks=600, seed=2)
    libs = sim.libraries
    depth = [np.median(np.asarray(lib.rna.sum(axis=1)).ravel()) for lib in libs]
    assert depth[0] > depth[1] > depth[2]
    assert len({len(lib.peaks) for lib in libs}) > 1 or any(
        not libs[0].peaks[["start", "end"]].equals(lib.peaks[["start", "end"]]) for lib in libs[1:])
    assert set(libs[0].barcodes) & set(libs[1].barcodes)  # 10x libraries share barcodes: the sample disambiguates
    assert all(set(lib.labels) == set(libs[0].labels) for lib in libs)  # shared cell types
    merged, _ = merge_peaks([lib.peaks for lib in libs])
    assert len(merged) == sim.n_merged_peaks
    assert len(merged) < sum(len(lib.peaks) for lib in libs)


# ------------------------------------------------------------------------------------- the workflow
def test_workflow_from_a_sample_sheet_of_three_arc_libraries(tmp_path):
    sim = simulate_samples(n_samples=3, n_cells=390, n_genes=300, n_peaks=3000, seed=1)
    sheet = write_samples(sim, tmp_path / "libraries")
    config = {key: value for key, value in TINY_CONFIG.items() if key != "datasets"}
    config["datasets"] = {"multi": {"samples": str(sheet), "genome": "synthetic"}}
    config["qc"] = dict(config["qc"], min_cells_per_peak=0)
    config["benchmark"] = dict(config["benchmark"], methods=["scmvp", "rna_pca", "atac_lsi"], seeds=None)
    results = tmp_path / "run" / "results"
    snakemake(tmp_path / "run", config, targets=[str(results / "multi" / "preprocessed.h5mu"),
                                                 str(results / "multi" / "qc" / "qc.png"),
                                                 str(results / "multi" / "qc" / "modality_agreement.tsv"),
                                                 str(results / "multi" / "benchmark" / "integration.png")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ingested = md.read_h5mu(results / "multi" / "ingested.h5mu")
        pre = md.read_h5mu(results / "multi" / "preprocessed.h5mu")
    assert ingested["atac"].n_vars == sim.n_merged_peaks
    assert ingested.n_obs == sum(len(lib.barcodes) for lib in sim.libraries)
    assert set(pre.obs["sample"].astype(str)) == {"lib1", "lib2", "lib3"}
    for mod in ("rna", "atac"):
        assert set(pre[mod].obs["sample"].astype(str)) == {"lib1", "lib2", "lib3"}
        assert {"donor", "condition", "label"} <= set(pre[mod].obs.columns)
    assert (split_cell_names(pre.obs_names)["sample"] == pre.obs["sample"].astype(str).to_numpy()).all()
    # the merged peak set, less the peaks that no kept cell opens (qc.min_cells_per_peak 0 keeps the others)
    open_peaks = ingested["atac"][pre.obs_names].X.getnnz(axis=0) > 0
    assert pre["atac"].n_vars == int(open_peaks.sum())
    assert set(pre["atac"].var_names) <= set(ingested["atac"].var_names)
    # QC per sample: one row per library, thresholds per library, each library's fragment metrics from its own file
    qc = results / "multi" / "qc"
    samples = pd.read_csv(qc / "samples.tsv", sep="\t")
    assert list(samples["sample"]) == ["lib1", "lib2", "lib3"]
    assert samples["cells_in"].sum() == ingested.n_obs and samples["cells_out"].sum() == pre.n_obs
    assert list(samples["cells_out"]) == [int((pre.obs["sample"] == s).sum()) for s in ("lib1", "lib2", "lib3")]
    # the libraries' depths 1 / 0.75 / 0.5 show in their medians
    assert samples["median_rna_n_counts_in"].is_monotonic_decreasing
    thresholds = pd.read_csv(qc / "thresholds.tsv", sep="\t")
    assert list(thresholds.columns[:2]) == ["sample", "metric"]
    assert thresholds.groupby("sample").size().to_dict() == {"lib1": 9, "lib2": 9, "lib3": 9}
    low = thresholds[thresholds["metric"] == "rna_n_counts"].set_index("sample")["low"]
    assert low["lib1"] > low["lib3"]  # each library's bound from its own cells
    cells = pd.read_csv(qc / "cells.tsv", sep="\t")
    assert (cells["sample"] == split_cell_names(cells["barcode"])["sample"]).all()
    tss = cells.groupby("sample")["atac_tss_enrichment"]
    assert tss.count().to_dict() == tss.size().to_dict()  # every cell scored, from its library's fragments
    assert (tss.median() > 2).all() and cells["atac_frip"].between(0, 1).all()
    assert (samples["median_atac_tss_enrichment_in"] > 2).all()
    assert (qc / "qc.png").stat().st_size > 10_000
    # the pairing check: over all cells and within each library, RNA and ATAC neighbours agree far above chance
    agreement = pd.read_csv(qc / "modality_agreement.tsv", sep="\t").set_index("group")
    assert list(agreement.index) == ["all", "lib1", "lib2", "lib3"]
    assert agreement.loc[["lib1", "lib2", "lib3"], "cells"].sum() == agreement.loc["all", "cells"] == pre.n_obs
    assert (agreement["ratio_to_chance"] > 2).all() and not agreement["near_chance"].any()
    # integration metrics of every benchmark embedding, with the labels' biology-conservation half
    scores = pd.read_csv(results / "multi" / "benchmark" / "integration.tsv", sep="\t").set_index("method")
    assert list(scores.index) == ["scmvp", "rna_pca", "atac_lsi"]           # one benchmark seed: one row each
    assert scores["seed"].nunique() == 1
    assert (scores["n_batches"] == 3).all() and (scores["n_cells"] == pre.n_obs).all()
    for column in ("ilisi", "kbet", "silhouette_batch", "clisi", "silhouette_label", "graph_connectivity"):
        assert scores[column].between(0, 1).all(), column
    # scMVP trained batch-aware by default (model.batch_key null -> obs["sample"], three libraries)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imputed = md.read_h5mu(results / "multi" / "imputed.h5mu", backed="r")
    assert dict(imputed.uns["scmvp"])["batch_key"] == "sample"
    assert list(imputed.uns["scmvp"]["batches"]) == ["lib1", "lib2", "lib3"]


def test_bad_sample_sheet_stops_the_workflow_naming_it(tmp_path):
    (tmp_path / "a.h5mu").write_text("")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("sample\ttechnology\tpath\na\th5mu\ta.h5mu\na\th5mu\ta.h5mu\n")
    proc = snakemake(tmp_path / "run", {"datasets": {"multi": {"samples": str(sheet)}}}, extra=("-n",), check=False,
                     timeout=300)
    assert proc.returncode != 0
    expected = f"config: datasets.multi.samples: {sheet}: duplicate sample name 'a' (rows 2, 3): each sample needs its own name"
    assert expected in (proc.stdout + proc.stderr).splitlines(), proc.stderr[-3000:]
