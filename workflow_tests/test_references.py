"""Readers of reference files (scmvp.references): the real files in ../shared/data/references read unchanged,
known answers on small files written here, and one InputError (file + problem) per kind of bad input."""
from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from scmvp.errors import InputError
from scmvp.references import (bulk_columns_for_labels, canonical_chrom, normalize_chrom_names, read_bed,
                              read_bulk_rna, read_de_genes, read_pseudotime)


def write(path, text, gz=False):
    if gz:
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------- real files

def test_real_bed3_read_unchanged(shared_data):
    path = shared_data / "references" / "gm12878_h3k4me3.hg19.bed"
    bed = read_bed(path)
    raw = pd.read_csv(path, sep="\t", header=None)
    assert list(bed.columns) == ["chrom", "start", "end"]
    assert len(bed) == len(raw) == 57476
    assert (bed["start"].to_numpy() == raw[1].to_numpy()).all() and (bed["end"].to_numpy() == raw[2].to_numpy()).all()
    assert bed.iloc[0].tolist() == ["chr1", 713207, 713477]
    assert bed["chrom"].nunique() == 23


def test_real_dnase_bed_read_unchanged(shared_data):
    bed = read_bed(shared_data / "references" / "k562_dnase_chr22.hg19.bed")
    assert bed.shape == (3450, 3)
    assert set(bed["chrom"]) == {"chr22"}
    assert bed.iloc[0].tolist() == ["chr22", 16197740, 16197890]
    assert bed["start"].dtype == np.int64


def test_real_narrowpeak_columns_and_values(shared_data):
    bed = read_bed(shared_data / "references" / "k562_h3k27ac_chr1.hg19.narrowPeak")
    assert list(bed.columns) == ["chrom", "start", "end", "name", "score", "strand", "signal_value", "p_value",
                                 "q_value", "peak"]
    assert len(bed) == 5142
    first = bed.iloc[1]
    assert (first["chrom"], first["start"], first["end"], first["name"]) == ("chr1", 713773, 714067, "Peak_9840")
    assert first["signal_value"] == pytest.approx(22.37766) and first["peak"] == 137
    assert bed.iloc[-1]["end"] == 249221000


def test_real_headerless_bulk_rna_table(shared_data):
    path = shared_data / "references" / "k562_bulk_rna_tpm.ENCFF934YBO.tsv"
    bulk = read_bulk_rna(path)
    raw = pd.read_csv(path, sep="\t", header=None, names=["gene", "tpm"])
    assert list(bulk.columns) == ["bulk"]
    assert len(bulk) == raw["gene"].nunique() == 55765
    assert bulk.loc["GAPDH", "bulk"] == pytest.approx(2632.2)
    assert bulk.loc["DPM1", "bulk"] == pytest.approx(121.36)
    # duplicated symbols are summed, so the total is unchanged
    assert bulk["bulk"].sum() == pytest.approx(raw["tpm"].sum())
    # a headerless single-sample table is mapped to labels with bulk_label_map
    assert bulk_columns_for_labels(bulk, ["K562"], {"K562": "bulk"}, path) == {"K562": "bulk"}


def test_real_tss_bed_keeps_six_columns(shared_data):
    bed = read_bed(shared_data / "references" / "tss_hg19.bed")
    assert list(bed.columns[:6]) == ["chrom", "start", "end", "name", "score", "strand"]
    assert bed.iloc[0][["chrom", "start", "end", "name"]].tolist() == ["chr1", 54199777, 54200877, "GLIS1"]


# ------------------------------------------------------------------------------------------- BED variants

def test_bed_header_lines_gzip_and_broadpeak(tmp_path):
    text = ("browser position chr1:1-1000\ntrack name=peaks description=\"x\"\n# comment\n"
            "chr1\t10\t20\tp1\t5\t+\t1.5\t2.5\t3.5\n1\t30\t45\tp2\t6\t-\t1\t2\t3\n")
    bed = read_bed(write(tmp_path / "peaks.broadPeak.gz", text, gz=True))
    assert list(bed.columns) == ["chrom", "start", "end", "name", "score", "strand", "signal_value", "p_value",
                                 "q_value"]
    assert bed[["chrom", "start", "end"]].values.tolist() == [["chr1", 10, 20], ["1", 30, 45]]
    assert bed["q_value"].tolist() == [3.5, 3.0]


def test_bed_with_column_name_line_and_no_gz_suffix(tmp_path):
    path = tmp_path / "peaks.txt"
    with gzip.open(path, "wt") as handle:  # gzip content whatever the name says
        handle.write("chrom\tstart\tend\nchr2\t5\t9\n")
    bed = read_bed(path)
    assert bed.values.tolist() == [["chr2", 5, 9]]


def test_empty_bed_is_an_input_error(tmp_path):
    for text in ("", "# only a comment\ntrack name=x\n"):
        path = write(tmp_path / "empty.bed", text)
        with pytest.raises(InputError, match="no intervals") as err:
            read_bed(path)
        assert str(path) in str(err.value)


def test_bed_with_non_integer_coordinates_is_an_input_error(tmp_path):
    path = write(tmp_path / "bad.bed", "chr1\t10\t20\nchr1\t3.5\t40\n")
    with pytest.raises(InputError, match=r"start on line 2 is not an integer: '3.5'") as err:
        read_bed(path)
    assert str(path) in str(err.value)
    with pytest.raises(InputError, match="end on line 1 is not an integer"):
        read_bed(write(tmp_path / "bad2.bed", "chr1\t10\tabc\n"))


def test_bed_with_too_few_columns_or_inverted_interval(tmp_path):
    with pytest.raises(InputError, match="at least 3 columns"):
        read_bed(write(tmp_path / "two.bed", "chr1\t10\n"))
    with pytest.raises(InputError, match="start 50 > end 20"):
        read_bed(write(tmp_path / "inverted.bed", "chr1\t50\t20\n"))


def test_missing_bed_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_bed(tmp_path / "absent.bed")


# ------------------------------------------------------------------------------------------- chromosomes

def test_normalize_chrom_names_both_directions():
    assert canonical_chrom("chrX") == canonical_chrom("X") == "X"
    assert canonical_chrom("chrM") == canonical_chrom("MT") == "M"
    renamed = normalize_chrom_names(["1", "2", "MT", "X", "GL000192.1"], like=["chr1", "chr2", "chrM", "chrX"])
    assert renamed.tolist() == ["chr1", "chr2", "chrM", "chrX", "GL000192.1"]
    assert normalize_chrom_names(["chr1", "chrM"], like=["1", "MT"]).tolist() == ["1", "MT"]
    assert normalize_chrom_names(["chr1"], like=["chr1"]).tolist() == ["chr1"]


# ------------------------------------------------------------------------------------------- bulk RNA

def test_bulk_table_with_header_and_label_map(tmp_path):
    path = write(tmp_path / "bulk.tsv", "gene_id\tTcell\tBcell\tdescription\nCD3E\t10\t0.5\tx\nMS4A1\t0\t20\ty\n"
                                         "CD3E\t2\t0.5\tz\nNAgene\tNA\t1\tw\n")
    bulk = read_bulk_rna(path)
    assert list(bulk.columns) == ["Tcell", "Bcell"]  # the text column is dropped
    assert bulk.loc["CD3E"].tolist() == [12.0, 1.0]
    assert "NAgene" not in bulk.index
    columns = bulk_columns_for_labels(bulk, ["T", "Bcell", "NK"], {"T": "Tcell"}, path)
    assert columns == {"T": "Tcell", "Bcell": "Bcell"}


def test_bulk_table_without_gene_column(tmp_path):
    path = write(tmp_path / "bulk.tsv", "a\tb\n1\t2\n3\t4\n5\t6\n")
    with pytest.raises(InputError, match="first column must hold gene names") as err:
        read_bulk_rna(path)
    assert str(path) in str(err.value)


def test_bulk_table_without_matching_label_column(tmp_path):
    path = write(tmp_path / "bulk.tsv", "gene\tliver\nA\t1\n")
    bulk = read_bulk_rna(path)
    with pytest.raises(InputError, match="no column of the bulk table matches a cell label") as err:
        bulk_columns_for_labels(bulk, ["Tcell"], {}, path)
    assert str(path) in str(err.value)


def test_unknown_labels_or_columns_in_bulk_label_map(tmp_path):
    path = write(tmp_path / "bulk.tsv", "gene\tliver\nA\t1\n")
    bulk = read_bulk_rna(path)
    with pytest.raises(InputError, match="bulk_label_map names labels absent from the cell labels: hepatocyte"):
        bulk_columns_for_labels(bulk, ["liver"], {"hepatocyte": "liver"}, path)
    with pytest.raises(InputError, match="bulk_label_map names columns absent from the bulk table: kidney"):
        bulk_columns_for_labels(bulk, ["liver"], {"liver": "kidney"}, path)


def test_bulk_table_negative_or_not_numeric(tmp_path):
    with pytest.raises(InputError, match="negative values"):
        read_bulk_rna(write(tmp_path / "neg.tsv", "gene\tx\nA\t-1\nB\t2\n"))
    with pytest.raises(InputError, match="no numeric sample column"):
        read_bulk_rna(write(tmp_path / "text.tsv", "gene\tx\nA\tfoo\nB\tbar\n"))
    with pytest.raises(InputError, match="is empty"):
        read_bulk_rna(write(tmp_path / "empty.tsv", ""))


# ------------------------------------------------------------------------------------------- DE list, pseudotime

def test_de_genes_list(tmp_path):
    table = read_de_genes(write(tmp_path / "de.tsv", "label\tgene\tlogfc\nT\tCD3E\t2\nT\tCD3E\t2\nB\tMS4A1\t3\n"))
    assert table.values.tolist() == [["T", "CD3E"], ["B", "MS4A1"]]


def test_de_genes_without_label_or_gene_column(tmp_path):
    path = write(tmp_path / "de.tsv", "cluster\tgene\nT\tCD3E\n")
    with pytest.raises(InputError, match="lacks column\\(s\\) label") as err:
        read_de_genes(path)
    assert str(path) in str(err.value)
    with pytest.raises(InputError, match="lacks column\\(s\\) gene"):
        read_de_genes(write(tmp_path / "de2.tsv", "label\tsymbol\nT\tCD3E\n"))
    with pytest.raises(InputError, match="lists no genes"):
        read_de_genes(write(tmp_path / "de3.tsv", "label\tgene\n"))


def test_pseudotime(tmp_path):
    series = read_pseudotime(write(tmp_path / "pt.tsv", "barcode\tpseudotime\nc1\t0.5\nc2\tNA\nc3\t1\n"))
    assert series.to_dict() == {"c1": 0.5, "c3": 1.0}
    with pytest.raises(InputError, match="lacks column\\(s\\) pseudotime"):
        read_pseudotime(write(tmp_path / "pt2.tsv", "barcode\ttime\nc1\t1\n"))
    with pytest.raises(InputError, match="twice"):
        read_pseudotime(write(tmp_path / "pt3.tsv", "barcode\tpseudotime\nc1\t1\nc1\t2\n"))
