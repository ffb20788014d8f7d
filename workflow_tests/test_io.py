"""Ingestion: every technology's published layout -> the ingested.h5mu contract; bad input -> clear errors.

Fixtures are written at run time in each technology's GEO / Cell Ranger ARC layout from one small known
dataset (`truth`), so every reader is checked against the exact counts it should return.
"""
from __future__ import annotations

import gzip
import io
import os
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import h5py
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from conftest import snakemake
from scmvp.errors import InputError
from scmvp.io import parse_peak_names, read_dataset, validate_ingested

N_CELLS, N_GENES, N_PEAKS = 30, 12, 20


@dataclass
class Truth:
    barcodes: list
    symbols: list
    gene_ids: list
    peaks: list  # (chrom, start, end)
    rna: np.ndarray  # cells x genes, int
    atac: np.ndarray  # cells x peaks, int

    @property
    def peak_names(self):
        return [f"{c}:{s}-{e}" for c, s, e in self.peaks]


@pytest.fixture(scope="module")
def truth() -> Truth:
    rng = np.random.default_rng(7)
    bases = np.array(list("ACGT"))
    barcodes = []
    while len(barcodes) < N_CELLS:
        bc = "".join(rng.choice(bases, 16)) + "-1"
        if bc not in barcodes:
            barcodes.append(bc)
    # A repeated symbol (as in real annotations) must come out unique.
    symbols = ["ACTB", "GAPDH", "CD74", "MS4A1", "HBG2", "COL1A2", "FN1", "NR3C1", "PER1", "FKBP5", "TSC22D3", "ACTB"]
    gene_ids = [f"ENSG{i:011d}" for i in range(N_GENES)]
    peaks = [(f"chr{1 + i // 8}", 1000 * (i % 8) + 100, 1000 * (i % 8) + 600) for i in range(N_PEAKS - 2)]
    peaks += [("chrX", 5000, 5500), ("chrX", 7000, 7450)]
    rna = rng.poisson(2.0, (N_CELLS, N_GENES))
    atac = rng.poisson(0.5, (N_CELLS, N_PEAKS))
    rna[:, 0] += 1  # no empty cell
    return Truth(barcodes, symbols, gene_ids, peaks, rna, atac)


# ----------------------------------------------------------------------------------------------------------
# Writers of the published layouts
def write_bytes(path: Path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)


def write_text(path: Path, text: str):
    write_bytes(path, text.encode())


def write_lines(path: Path, lines):
    write_text(path, "".join(f"{line}\n" for line in lines))


def write_mtx(path: Path, matrix):
    buffer = io.BytesIO()
    scipy.io.mmwrite(buffer, sp.coo_matrix(matrix))
    write_bytes(path, buffer.getvalue())


def write_dense(path: Path, features, barcodes, matrix, corner=None):
    """features x cells table; header = barcodes only (R write.table), or with a corner field."""
    header = ([corner] if corner else []) + list(barcodes)
    rows = ["\t".join(header)] + ["\t".join([f, *map(str, row)]) for f, row in zip(features, matrix)]
    write_lines(path, rows)


def write_mtx_folder(root: Path, truth: Truth, rna_cells=None, atac_cells=None):
    """Layout `mtx`: rna/ and atac/ triplets (features x cells)."""
    rna_cells = list(range(N_CELLS)) if rna_cells is None else rna_cells
    atac_cells = list(range(N_CELLS)) if atac_cells is None else atac_cells
    write_mtx(root / "rna" / "matrix.mtx.gz", truth.rna[rna_cells].T)
    write_lines(root / "rna" / "features.tsv.gz", truth.symbols)
    write_lines(root / "rna" / "barcodes.tsv.gz", [truth.barcodes[i] for i in rna_cells])
    write_mtx(root / "atac" / "matrix.mtx", truth.atac[atac_cells].T)
    write_lines(root / "atac" / "features.tsv", truth.peak_names)
    write_lines(root / "atac" / "barcodes.tsv", [truth.barcodes[i] for i in atac_cells])
    return root


def arc_features(truth: Truth):
    genes = pd.DataFrame({"id": truth.gene_ids, "name": truth.symbols, "feature_type": "Gene Expression",
                          "interval": [f"chr1:{100000 + 5000 * i}-{101000 + 5000 * i}" for i in range(N_GENES)]})
    genes.loc[3, "interval"] = "NA"  # ARC writes NA for genes without a location
    peaks = pd.DataFrame({"id": truth.peak_names, "name": truth.peak_names, "feature_type": "Peaks",
                          "interval": truth.peak_names})
    return pd.concat([genes, peaks], ignore_index=True)


def write_10x_h5(path: Path, truth: Truth, feature_types=None):
    """Cell Ranger ARC filtered_feature_bc_matrix.h5: CSC features x barcodes, byte strings."""
    features = arc_features(truth)
    if feature_types is not None:
        features["feature_type"] = feature_types
    matrix = sp.csc_matrix(np.hstack([truth.rna, truth.atac]).T.astype(np.int32))
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        group = handle.create_group("matrix")
        group.create_dataset("barcodes", data=np.array(truth.barcodes, dtype="S"))
        group.create_dataset("data", data=matrix.data)
        group.create_dataset("indices", data=matrix.indices.astype(np.int64))
        group.create_dataset("indptr", data=matrix.indptr.astype(np.int64))
        group.create_dataset("shape", data=np.array(matrix.shape, dtype=np.int32))
        feats = group.create_group("features")
        for key in ("id", "name", "feature_type", "interval"):
            feats.create_dataset(key, data=np.array(features[key].tolist(), dtype="S"))
        feats.create_dataset("genome", data=np.array(["GRCh38"] * len(features), dtype="S"))
        feats.create_dataset("_all_tag_keys", data=np.array(["genome", "interval"], dtype="S"))
    return path


def write_10x_folder(folder: Path, truth: Truth):
    """Cell Ranger ARC filtered_feature_bc_matrix/: features.tsv.gz with 6 columns."""
    features = arc_features(truth)
    rows = []
    for _, f in features.iterrows():
        if f["interval"] == "NA":
            location = ["", "", ""]  # not located: empty chrom/start/end fields
        else:
            chrom, rest = f["interval"].rsplit(":", 1)
            location = [chrom, *rest.split("-")]
        rows.append("\t".join([f["id"], f["name"], f["feature_type"], *location]))
    write_lines(folder / "features.tsv.gz", rows)
    write_lines(folder / "barcodes.tsv.gz", truth.barcodes)
    write_mtx(folder / "matrix.mtx.gz", np.hstack([truth.rna, truth.atac]).T)
    return folder


def write_snare_dense(folder: Path, truth: Truth):
    """GSE126074 cell-line mixture: dense tables whose header holds only the barcodes; ATAC columns reordered."""
    cells = [bc[:12] for bc in truth.barcodes]  # bare 12-mers
    order = list(reversed(range(N_CELLS)))
    write_dense(folder / "GSE126074_CellLineMixture_SNAREseq_cDNA_counts.tsv.gz", truth.symbols, cells, truth.rna.T)
    write_dense(folder / "GSE126074_CellLineMixture_SNAREseq_chromatin_counts.tsv.gz", truth.peak_names,
                [cells[i] for i in order], truth.atac[order].T)
    return folder, cells


def write_snare_mtx(folder: Path, truth: Truth):
    """GSE126074 brain: mtx triplets; same barcodes, different order in chromatin."""
    cells = [f"09{'ABC'[i % 3]}_{bc[:12]}" for i, bc in enumerate(truth.barcodes)]
    order = np.random.default_rng(3).permutation(N_CELLS)
    prefix = folder / "GSE126074_AdBrainCortex_SNAREseq"
    write_mtx(Path(f"{prefix}_cDNA.counts.mtx.gz"), truth.rna.T)
    write_lines(Path(f"{prefix}_cDNA.genes.tsv.gz"), truth.symbols)
    write_lines(Path(f"{prefix}_cDNA.barcodes.tsv.gz"), cells)
    write_mtx(Path(f"{prefix}_chromatin.counts.mtx.gz"), truth.atac[order].T)
    write_lines(Path(f"{prefix}_chromatin.peaks.tsv.gz"), truth.peak_names)
    write_lines(Path(f"{prefix}_chromatin.barcodes.tsv.gz"), [cells[i] for i in order])
    return folder, cells


SCICAR_PEAKS = ["1-9963-10665", "1-360366-360566", "hs37d5-35430920-35431120", "GL000194.1-1-100"]


def write_scicar(folder: Path, truth: Truth):
    """GSE117089 A549: CSV cell/feature tables + MatrixMarket features x cells.

    RNA: the 30 co-assayed A549 cells (treatment_time 0/1/3), 3 species-mix cells (293T/3T3, treatment NA)
    and 2 RNA-only cells; ATAC: the same 33 cells in another order plus 2 ATAC-only cells.
    """
    rng = np.random.default_rng(5)
    samples = [f"sci-RNA-A-{i // 10 + 1:03d}.{bc[:10]}" for i, bc in enumerate(truth.barcodes)]
    times = [["0", "1", "3"][i % 3] for i in range(N_CELLS)]
    mix = [f"sci-RNA-B-001.MIX{i:07d}" for i in range(3)]
    rna_only = [f"sci-RNA-C-001.RNA{i:07d}" for i in range(2)]
    atac_only = [f"sci-RNA-C-001.ATC{i:07d}" for i in range(2)]
    rna_table = pd.DataFrame({
        "sample": samples + mix + rna_only,
        "cell_name": ["A549"] * N_CELLS + ["293T", "3T3", "293T"] + ["A549"] * 2,
        "experiment": ["coassay"] * (N_CELLS + 5),
        "treatment_time": times + ["NA"] * 3 + ["1", "3"]})
    rna_counts = np.vstack([truth.rna, rng.poisson(2.0, (5, N_GENES))])
    write_text(folder / "GSM3271040_RNA_sciCAR_A549_cell.txt.gz", rna_table.to_csv(index=False))
    genes = pd.DataFrame({"gene_id": [g + ".1" for g in truth.gene_ids], "gene_type": "protein_coding",
                          "gene_short_name": truth.symbols})
    write_text(folder / "GSM3271040_RNA_sciCAR_A549_gene.txt.gz", genes.to_csv(index=False))
    write_mtx(folder / "GSM3271040_RNA_sciCAR_A549_gene_count.txt.gz", rna_counts.T)

    atac_cells = samples + mix + atac_only
    order = rng.permutation(len(atac_cells))
    atac_table = pd.DataFrame({
        "sample": [atac_cells[i] for i in order],
        "source": ["Human"] * len(order),
        "group": [("A549_" + times[i] + "h") if i < N_CELLS else "NA" for i in order],
        "experiment": ["coassay"] * len(order)})
    atac_counts = np.vstack([truth.atac, rng.poisson(0.5, (5, N_PEAKS))])[order]
    write_text(folder / "GSM3271041_ATAC_sciCAR_A549_cell.txt", atac_table.to_csv(index=False))
    names = SCICAR_PEAKS + [f"{c[3:]}-{s}-{e}" for c, s, e in truth.peaks[len(SCICAR_PEAKS):]]
    peak_table = pd.DataFrame({"id": range(1, N_PEAKS + 1), "peak": names,
                               "chr": [n.rsplit("-", 2)[0] for n in names],
                               "start": [n.rsplit("-", 2)[1] for n in names],
                               "end": [n.rsplit("-", 2)[2] for n in names]})
    write_text(folder / "GSM3271041_ATAC_sciCAR_A549_peak.txt", peak_table.to_csv(index=False))
    write_mtx(folder / "GSM3271041_ATAC_sciCAR_A549_peak_count.txt", atac_counts.T)
    return folder, samples, times


def write_pairedseq(root: Path, truth: Truth):
    """GSE130399: extracted tarball with Cell_Mix_RNA/ and Cell_Mix_DNA/ (uncompressed 10x-v2 triplets)."""
    bins = [f"{c}:{s}-{e}" for c, s, e in truth.peaks]
    cells = [f"{i % 96:02d}:{bc[:8]}" for i, bc in enumerate(truth.barcodes)]
    rna_dir, dna_dir = root / "Cell_Mix" / "Cell_Mix_RNA", root / "Cell_Mix" / "Cell_Mix_DNA"
    write_lines(rna_dir / "genes.tsv", [f"{i}\t{s}" for i, s in zip(truth.gene_ids, truth.symbols)])
    write_lines(rna_dir / "barcodes.tsv", cells)
    write_mtx(rna_dir / "matrix.mtx", truth.rna.T)
    order = list(reversed(range(N_CELLS)))
    write_lines(dna_dir / "genes.tsv", bins)
    write_lines(dna_dir / "barcodes.tsv", [cells[i] for i in order])
    write_mtx(dna_dir / "matrix.mtx", truth.atac[order].T)
    return root, cells


def share_barcode(i, sep):
    return sep.join([f"R1.{1 + i % 96:02d}", f"R2.{1 + i // 96:02d}", f"R3.{1 + (i * 7) % 96:02d}", "P1.55"])


def write_share(folder: Path, truth: Truth):
    """GSE140203 skin: dense RNA (comma barcodes, corner `gene`), ATAC MatrixMarket + BED + barcodes, cell types."""
    comma = [share_barcode(i, ",") for i in range(N_CELLS)]
    dots = [share_barcode(i, ".") for i in range(N_CELLS)]
    write_dense(folder / "GSM4156608_skin.late.anagen.rna.counts.txt.gz", truth.symbols, comma, truth.rna.T,
                corner="gene")
    order = np.random.default_rng(11).permutation(N_CELLS)
    write_mtx(folder / "GSM4156597_skin.late.anagen.counts.txt.gz", truth.atac[order].T)
    write_lines(folder / "GSM4156597_skin.late.anagen.peaks.bed.gz", [f"{c}\t{s}\t{e}" for c, s, e in truth.peaks])
    write_lines(folder / "GSM4156597_skin.late.anagen.barcodes.txt.gz", [dots[i] for i in order])
    types = [["TAC-1", "Hair Shaft-cuticle.cortex", "Dermal Fibrobalst"][i % 3] for i in range(N_CELLS)]
    atac_bc = [d.replace("P1.55", "P1.05") for d in dots]
    write_lines(folder / "GSM4156597_skin_celltype.txt.gz",
                ["atac.bc\trna.bc\tcelltype"] + [f"{a}\t{r}\t{t}" for a, r, t in zip(atac_bc, dots, types)])
    return folder, dots, types


# ----------------------------------------------------------------------------------------------------------
def assert_counts(mdata, truth: Truth, cells, truth_rows=None):
    """mdata holds exactly `cells` (in that order) with the truth's counts for them."""
    truth_rows = list(range(N_CELLS)) if truth_rows is None else truth_rows
    validate_ingested(mdata, "test")
    assert list(mdata.obs_names) == list(cells)
    assert list(mdata["rna"].obs_names) == list(mdata["atac"].obs_names) == list(cells)
    assert sp.isspmatrix_csr(mdata["rna"].X) or sp.issparse(mdata["rna"].X) and mdata["rna"].X.format == "csr"
    np.testing.assert_array_equal(mdata["rna"].X.toarray(), truth.rna[truth_rows])
    np.testing.assert_array_equal(mdata["atac"].X.toarray(), truth.atac[truth_rows])
    assert list(mdata["rna"].var_names) == truth.symbols[:-1] + ["ACTB-1"]
    var = mdata["atac"].var
    assert list(var["start"]) == [s for _, s, _ in truth.peaks][: len(var)]
    assert var["start"].dtype.kind == "i" and var["end"].dtype.kind == "i"


def test_real_scicar_a549_mtx_with_labels(shared_data):
    path = shared_data / "scicar_a549"
    mdata = read_dataset("mtx", path, labels=path / "labels.tsv")
    rna, atac = mdata["rna"], mdata["atac"]
    assert (mdata.n_obs, rna.n_vars, atac.n_vars) == (2641, 1185, 52761)
    assert atac.var_names[0] == "1:9963-10665"
    assert tuple(atac.var.iloc[0][["chrom", "start", "end"]]) == ("1", 9963, 10665)
    assert set(atac.var["chrom"]) >= {"1", "X"}
    assert mdata.obs["label"].value_counts().to_dict() == {"3h": 1075, "1h": 983, "0h": 583}
    assert rna.X.dtype == np.float32 and rna.X.format == "csr"
    assert float(rna.X.sum()) == float(np.round(rna.X.sum())) and rna.X.max() > 1
    assert list(mdata.obs_names[:2]) == ["sci_RNA_A_001_TCTCTCATCC", "sci_RNA_A_001_GACCAATGCG"]


def test_10x_h5_follows_the_arc_layout(tmp_path, truth):
    h5 = write_10x_h5(tmp_path / "outs" / "filtered_feature_bc_matrix.h5", truth)
    for path in (h5, tmp_path / "outs", tmp_path):
        mdata = read_dataset("10x_multiome", path)
        assert_counts(mdata, truth, truth.barcodes)
    assert list(mdata["rna"].var["gene_id"]) == truth.gene_ids
    assert list(mdata["atac"].var_names) == truth.peak_names
    assert list(mdata["atac"].var["chrom"].unique()) == ["chr1", "chr2", "chr3", "chrX"]


def test_10x_folder_and_labels(tmp_path, truth):
    folder = write_10x_folder(tmp_path / "outs" / "filtered_feature_bc_matrix", truth)
    labels = tmp_path / "labels.tsv"
    names = ["B", "T", "NK"]
    # 25 labelled cells (+1 barcode not in the data): the 5 others are dropped
    write_lines(labels, ["barcode\tcell_type\tbatch"] + [f"{bc}\t{names[i % 3]}\tb1" for i, bc in
                                                         enumerate(truth.barcodes[:25])] + ["GHOST-1\tB\tb1"])
    for path in (folder, tmp_path / "outs"):
        mdata = read_dataset("10x_multiome", path, labels=labels)
        assert_counts(mdata, truth, truth.barcodes[:25], list(range(25)))
    assert list(mdata.obs["label"]) == [names[i % 3] for i in range(25)]
    assert list(mdata["rna"].obs["label"]) == list(mdata.obs["label"])
    assert list(mdata["atac"].var_names) == truth.peak_names
    by_column = read_dataset("10x_multiome", folder, labels=labels, label_column="batch")
    assert set(by_column.obs["label"]) == {"b1"}


def test_snare_dense_tables_pair_by_barcode(tmp_path, truth):
    folder, cells = write_snare_dense(tmp_path, truth)
    mdata = read_dataset("snare", folder)
    assert_counts(mdata, truth, cells)
    assert list(mdata["atac"].var_names) == truth.peak_names


def test_snare_mtx_triplets_pair_by_barcode(tmp_path, truth):
    folder, cells = write_snare_mtx(tmp_path, truth)
    mdata = read_dataset("snare", folder)
    assert_counts(mdata, truth, cells)


def test_scicar_pairs_on_sample_and_labels_from_cell_table(tmp_path, truth, caplog):
    folder, samples, times = write_scicar(tmp_path, truth)
    everything = read_dataset("scicar", folder)
    assert everything.n_obs == N_CELLS + 3  # + species-mix cells; one-modality cells dropped
    assert list(everything.obs_names[:N_CELLS]) == samples
    assert {"rna_cell_name", "rna_treatment_time", "atac_group", "atac_source"} <= set(everything.obs.columns)
    assert list(everything["rna"].var["gene_id"][:2]) == [g + ".1" for g in truth.gene_ids[:2]]
    atac_var = everything["atac"].var
    assert list(atac_var["chrom"][:4]) == ["1", "1", "hs37d5", "GL000194.1"]
    assert list(atac_var_names := atac_var.index[:4]) == ["1:9963-10665", "1:360366-360566",
                                                          "hs37d5:35430920-35431120", "GL000194.1:1-100"]
    assert atac_var_names[0] == "1:9963-10665"
    with caplog.at_level("WARNING", logger="scmvp.io"):
        labelled = read_dataset("scicar", folder, label_column="treatment_time")
    assert "3 of 33 cells have no label" in caplog.text
    np.testing.assert_array_equal(labelled["rna"].X.toarray(), truth.rna)
    np.testing.assert_array_equal(labelled["atac"].X.toarray(), truth.atac)
    assert list(labelled.obs["label"]) == times  # "0", not "0.0"
    assert list(labelled.obs["rna_cell_name"].unique()) == ["A549"]


def test_pairedseq_folders(tmp_path, truth):
    root, cells = write_pairedseq(tmp_path, truth)
    mdata = read_dataset("pairedseq", root)
    assert_counts(mdata, truth, cells)
    assert list(mdata["rna"].var["gene_id"]) == truth.gene_ids


def test_share_comma_barcodes_and_celltypes(tmp_path, truth):
    folder, dots, types = write_share(tmp_path, truth)
    mdata = read_dataset("share", folder)
    assert_counts(mdata, truth, dots)
    assert "label" not in mdata.obs
    labelled = read_dataset("share", folder, label_column="celltype")
    assert list(labelled.obs["label"]) == types
    # the cell-type file given as a labels file: its first column (atac.bc) matches no cell, rna.bc does
    celltype_file = folder / "GSM4156597_skin_celltype.txt.gz"
    as_file = read_dataset("share", folder, labels=celltype_file, label_column="celltype")
    assert list(as_file.obs["label"]) == types


def test_h5mu_roundtrip_and_normalisation(tmp_path, truth):
    labels = tmp_path / "labels.tsv"
    write_lines(labels, ["barcode\tlabel"] + [f"{bc}\t{'AB'[i % 2]}" for i, bc in enumerate(truth.barcodes)])
    original = read_dataset("mtx", write_mtx_folder(tmp_path / "mtx", truth), labels=labels)
    original.write(tmp_path / "in.h5mu")
    again = read_dataset("h5mu", tmp_path / "in.h5mu")
    assert_counts(again, truth, truth.barcodes)
    assert list(again.obs["label"]) == list(original.obs["label"])
    # dense X, peaks without chrom/start/end columns: normalised; cells only in RNA are dropped
    rna = ad.AnnData(truth.rna.astype(np.float64), obs=pd.DataFrame(index=truth.barcodes),
                     var=pd.DataFrame(index=truth.symbols[:-1] + ["ACTB-1"]))
    atac = ad.AnnData(truth.atac[:20], obs=pd.DataFrame(index=truth.barcodes[:20]),
                      var=pd.DataFrame(index=[n.replace(":", "-") for n in truth.peak_names]))
    mdata = md.MuData({"rna": rna, "atac": atac})
    mdata.obs["cell_type"] = ["T" if i < 10 else "B" for i in range(N_CELLS)]
    mdata.write(tmp_path / "dense.h5mu")
    dense = read_dataset("h5mu", tmp_path / "dense.h5mu")
    assert_counts(dense, truth, truth.barcodes[:20], list(range(20)))
    assert list(dense["atac"].var_names) == truth.peak_names
    by_annotation = read_dataset("h5mu", tmp_path / "dense.h5mu", label_column="cell_type")
    assert by_annotation.obs["label"].value_counts().to_dict() == {"T": 10, "B": 10}


def test_mtx_written_cells_by_features_is_read_transposed(tmp_path, truth):
    root = write_mtx_folder(tmp_path, truth)
    write_mtx(root / "atac" / "matrix.mtx", truth.atac)  # cells x peaks, as some tools write it
    assert_counts(read_dataset("mtx", root), truth, truth.barcodes)


@pytest.mark.parametrize("name, chrom, start, end", [
    ("chr1:100-200", "chr1", 100, 200), ("chr1-100-200", "chr1", 100, 200), ("chr1_100_200", "chr1", 100, 200),
    ("1-100-200", "1", 100, 200), ("GL000194.1-1-100", "GL000194.1", 1, 100),
    ("hs37d5-35430920-35431120", "hs37d5", 35430920, 35431120),
    ("chr1_KI270706v1_random:10-20", "chr1_KI270706v1_random", 10, 20)])
def test_parse_peak_names(name, chrom, start, end):
    table = parse_peak_names([name], "peaks.tsv")
    assert tuple(table.iloc[0]) == (chrom, start, end)
    assert table.index[0] == f"{chrom}:{start}-{end}"


def test_parse_peak_names_names_file_and_bad_names():
    with pytest.raises(InputError) as err:
        parse_peak_names(["chr1:1-2", "peak_one", "chr2:5", "chr3:9-8"], "my_peaks.tsv")
    message = str(err.value)
    assert "my_peaks.tsv" in message and "'peak_one'" in message and "'chr2:5'" in message
    with pytest.raises(InputError, match="end before they start.*chr3:9-8"):
        parse_peak_names(["chr3:9-8"], "p.tsv")


# ----------------------------------------------------------------------------------------------------------
# Bad input at the function level: each error names the file and the problem.
def expect_error(technology, path, file_part, problem, **kwargs):
    with pytest.raises(InputError) as err:
        read_dataset(technology, path, **kwargs)
    message = str(err.value)
    assert file_part in message, message
    assert problem in message, message
    return message


def corrupt_mtx_folder(tmp_path, truth, case):
    """An `mtx` folder with one defect; returns (folder, file named in the error, problem text)."""
    root = write_mtx_folder(tmp_path / case, truth)
    rna_matrix = root / "rna" / "matrix.mtx.gz"
    if case == "shape":
        write_lines(root / "rna" / "features.tsv.gz", truth.symbols[:-2])
        return root, "rna/matrix.mtx.gz", "matrix is 12 x 30 but"
    if case == "peak":
        write_lines(root / "atac" / "features.tsv", truth.peak_names[:-1] + ["not_a_peak"])
        return root, "atac/features.tsv", "'not_a_peak'"
    if case == "negative":
        counts = truth.rna.T.copy()
        counts[2, 3] = -4
        write_mtx(rna_matrix, counts)
        return root, "rna/matrix.mtx.gz", "negative counts"
    if case == "nan":
        write_text(rna_matrix, "%%MatrixMarket matrix coordinate real general\n12 30 2\n1 1 2.0\n2 2 nan\n")
        return root, "rna/matrix.mtx.gz", "NaN values"
    if case == "fraction":
        write_mtx(rna_matrix, truth.rna.T * 0.5)
        return root, "rna/matrix.mtx.gz", "non-integer counts"
    if case == "garbage":
        write_bytes(rna_matrix, b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
        return root, "rna/matrix.mtx.gz", "not a MatrixMarket file"
    if case == "duplicated":
        write_lines(root / "atac" / "barcodes.tsv", truth.barcodes[:-1] + truth.barcodes[:1])
        return root, "atac/barcodes.tsv", "duplicated barcodes"
    if case == "disjoint":
        write_lines(root / "atac" / "barcodes.tsv", [f"OTHER{i}" for i in range(N_CELLS)])
        return root, "atac/barcodes.tsv", "no barcode in common"
    if case == "no_cells":
        write_text(root / "rna" / "barcodes.tsv.gz", "")
        write_text(rna_matrix, "%%MatrixMarket matrix coordinate integer general\n12 0 0\n")
        return root, "rna/barcodes.tsv.gz", "0 cells"
    if case == "no_features":
        write_text(root / "atac" / "features.tsv", "")
        write_text(root / "atac" / "matrix.mtx", "%%MatrixMarket matrix coordinate integer general\n0 30 0\n")
        return root, "atac/features.tsv", "0 features"
    if case == "missing_file":
        os.remove(root / "atac" / "barcodes.tsv")
        return root, "atac", "no ATAC barcodes.tsv[.gz] found"
    raise ValueError(case)


BAD_MTX_CASES = ["shape", "peak", "negative", "nan", "fraction", "garbage", "duplicated", "disjoint", "no_cells",
                 "no_features", "missing_file"]


@pytest.mark.parametrize("case", BAD_MTX_CASES)
def test_bad_mtx_input_names_file_and_problem(tmp_path, truth, case):
    root, file_part, problem = corrupt_mtx_folder(tmp_path, truth, case)
    expect_error("mtx", root, file_part, problem)


def test_missing_path_and_wrong_formats(tmp_path, truth):
    expect_error("mtx", tmp_path / "nowhere", "nowhere", "does not exist")
    expect_error("10x_multiome", tmp_path / "nowhere.h5", "nowhere.h5", "does not exist")
    png = tmp_path / "filtered_feature_bc_matrix.h5"
    write_bytes(png, b"\x89PNG\r\n\x1a\n" + bytes(200))
    expect_error("10x_multiome", png, "filtered_feature_bc_matrix.h5", "not an HDF5 file")
    csv = tmp_path / "counts.h5"
    write_text(csv, "barcode,gene,count\nAAAC-1,ACTB,3\n")
    expect_error("10x_multiome", csv, "counts.h5", "not an HDF5 file")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as handle:
        handle.create_dataset("X", data=np.zeros(3))
    expect_error("10x_multiome", other, "other.h5", "no 'matrix' group")
    empty = tmp_path / "empty"
    empty.mkdir()
    expect_error("10x_multiome", empty, str(empty), "no filtered_feature_bc_matrix.h5")
    rna_only = write_10x_h5(tmp_path / "rna_only.h5", truth, feature_types=["Gene Expression"] * (N_GENES + N_PEAKS))
    expect_error("10x_multiome", rna_only, "rna_only.h5", "no 'Peaks' features")
    expect_error("h5mu", csv, "counts.h5", "not an .h5mu")
    expect_error("snare", empty, str(empty), "no SNARE-seq cDNA counts")
    expect_error("scicar", empty, str(empty), "no sci-CAR RNA cell table")
    expect_error("share", empty, str(empty), "no SHARE-seq RNA table")
    expect_error("pairedseq", empty, str(empty), "no *_RNA/ folder")
    expect_error("nanopore", empty, str(empty), "unknown technology 'nanopore'")


def test_bad_dense_tables(tmp_path, truth):
    folder, _ = write_snare_dense(tmp_path / "nan", truth)
    table = folder / "GSE126074_CellLineMixture_SNAREseq_cDNA_counts.tsv.gz"
    text = gzip.decompress(table.read_bytes()).decode().splitlines()
    fields = text[3].split("\t")
    write_lines(table, text[:3] + ["\t".join(fields[:4] + ["NaN"] + fields[5:])] + text[4:])
    expect_error("snare", folder, table.name, f"missing or NaN counts in row {fields[0]!r}")
    write_lines(table, text[:3] + ["\t".join(fields[:4] + ["lots"] + fields[5:])] + text[4:])
    expect_error("snare", folder, table.name, "non-numeric count 'lots'")
    write_lines(table, text[:3] + ["\t".join(fields[:-2])] + text[4:])
    expect_error("snare", folder, table.name, f"missing or NaN counts in row {fields[0]!r}")
    write_lines(table, text[:3] + ["\t".join(fields + ["1", "2"])] + text[4:])
    expect_error("snare", folder, table.name, "malformed count table")
    write_lines(table, text[:3] + ["\t".join(fields[:4] + ["-3"] + fields[5:])] + text[4:])
    expect_error("snare", folder, table.name, "negative counts")


def test_bad_labels(tmp_path, truth):
    root = write_mtx_folder(tmp_path / "data", truth)
    labels = tmp_path / "labels.tsv"
    write_lines(labels, ["barcode\tcell_type"] + [f"{bc}\tB" for bc in truth.barcodes])
    expect_error("mtx", root, "labels.tsv", "no column 'celltype'", labels=labels, label_column="celltype")
    write_lines(labels, ["barcode\tcell_type"] + [f"X{i}\tB" for i in range(5)])
    expect_error("mtx", root, "labels.tsv", "no barcode of the labels file matches", labels=labels)
    write_lines(labels, ["barcode,cell_type"] + [f"{bc},B" for bc in truth.barcodes])
    expect_error("mtx", root, "labels.tsv", "two tab-separated columns", labels=labels)
    write_lines(labels, ["barcode\tcell_type", f"{truth.barcodes[0]}\tB", f"{truth.barcodes[0]}\tT"])
    expect_error("mtx", root, "labels.tsv", "several different labels", labels=labels)
    expect_error("mtx", root, "labels.tsv", "does not exist", labels=tmp_path / "missing" / "labels.tsv")
    folder, _, _ = write_scicar(tmp_path / "scicar", truth)
    expect_error("scicar", folder, str(folder), "no such cell annotation", label_column="cell_type")


def test_validate_ingested_rejects_broken_contract(truth):
    def build(rna_cells, atac_cells, peak_names=None):
        rna = ad.AnnData(sp.csr_matrix(truth.rna[: len(rna_cells)].astype(np.float32)),
                         obs=pd.DataFrame(index=rna_cells), var=pd.DataFrame(index=truth.symbols[:-1] + ["X"]))
        names = peak_names or truth.peak_names
        var = pd.DataFrame({"chrom": [c for c, _, _ in truth.peaks], "start": [s for _, s, _ in truth.peaks],
                            "end": [e for _, _, e in truth.peaks]}, index=names)
        atac = ad.AnnData(sp.csr_matrix(truth.atac[: len(atac_cells)].astype(np.float32)),
                          obs=pd.DataFrame(index=atac_cells), var=var)
        return md.MuData({"rna": rna, "atac": atac})

    good = build(truth.barcodes, truth.barcodes)
    assert validate_ingested(good, "x.h5mu") is good
    with pytest.raises(InputError, match="x.h5mu: rna and atac cells differ"):
        validate_ingested(build(truth.barcodes, truth.barcodes[::-1]), "x.h5mu")
    with pytest.raises(InputError, match="var_names must be chrom:start-end"):
        validate_ingested(build(truth.barcodes, truth.barcodes, [f"p{i}" for i in range(N_PEAKS)]), "x.h5mu")
    broken = build(truth.barcodes, truth.barcodes)
    broken["rna"].X = broken["rna"].X.toarray()
    with pytest.raises(InputError, match="expected a CSR sparse matrix"):
        validate_ingested(broken, "x.h5mu")
    only_rna = md.MuData({"rna": good["rna"].copy()})
    with pytest.raises(InputError, match="no 'atac' modality"):
        validate_ingested(only_rna, "x.h5mu")


# ----------------------------------------------------------------------------------------------------------
# The real rule: a bad input stops `snakemake` with the file and problem named, and leaves no output.
@pytest.mark.parametrize("case", ["shape", "peak", "negative"])
def test_ingest_rule_fails_cleanly_on_bad_input(tmp_path, truth, case):
    root, file_part, problem = corrupt_mtx_folder(tmp_path, truth, case)
    results = tmp_path / "results"
    target = results / "bad" / "ingested.h5mu"
    proc = snakemake(tmp_path / "work", {"datasets": {"bad": {"technology": "mtx", "path": str(root)}},
                                         "results": str(results)}, targets=[str(target)], check=False, timeout=300)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    log_text = (results / "bad" / "logs" / "ingest.log").read_text()
    for text in (output, log_text):
        assert file_part in text and problem in text, text[-3000:]
    assert f"ERROR: {root}" in proc.stderr
    assert "Traceback" not in log_text
    assert not target.exists()
    assert not [p for p in (results / "bad").iterdir() if p.name.startswith(".ingested")]


def test_ingest_rule_reads_the_simulated_arc_h5(tiny_workflow):
    path = tiny_workflow.build("tiny/ingested.h5mu")
    mdata = md.read_h5mu(path)
    validate_ingested(mdata, path)
    assert mdata.n_obs == 400 and mdata["rna"].n_vars == 300 and mdata["atac"].n_vars == 3000
    assert mdata.obs["label"].notna().all() and mdata.obs["label"].nunique() == 6
    assert mdata["rna"].X.format == "csr"


def test_h5mu_outputs_are_written_with_pandas_3_strings(tmp_path):
    """pandas 3 makes every string column a nullable string array (emulated with pandas 2's
    future.infer_string), which anndata writes only when asked: write_h5mu asks, and the file reads back."""
    from scmvp.rule import write_h5mu

    with pd.option_context("future.infer_string", True):
        obs = pd.DataFrame({"sample": ["lib_a", "lib_b", "lib_a"], "label": ["T", "B", None]},
                           index=["AAA-1", "CCC-1", "GGG-1"])
        assert isinstance(obs["sample"].dtype, pd.StringDtype)
        rna = ad.AnnData(sp.csr_matrix(np.ones((3, 2), np.float32)), obs=obs.copy(),
                         var=pd.DataFrame(index=["g1", "g2"]))
        atac = ad.AnnData(sp.csr_matrix(np.ones((3, 2), np.float32)), obs=obs.copy(),
                          var=pd.DataFrame({"chrom": ["chr1", "chr2"]}, index=["chr1:1-10", "chr2:1-10"]))
        mdata = md.MuData({"rna": rna, "atac": atac})
        write_h5mu(mdata, tmp_path / "strings.h5mu")
    back = md.read_h5mu(tmp_path / "strings.h5mu")
    assert list(back.mod["rna"].obs["sample"].astype(str)) == ["lib_a", "lib_b", "lib_a"]
    assert list(back.mod["atac"].var["chrom"].astype(str)) == ["chr1", "chr2"]
    assert back.mod["rna"].obs["label"].isna().tolist() == [False, False, True]
