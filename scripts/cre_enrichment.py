"""Rule cre_enrichment: linked peaks in histone-mark peaks vs all tested peaks -> cre/enrichment.tsv + .png."""
import pandas as pd

from scmvp.cre import classify_peaks, reconcile_genes
from scmvp.cre_evaluation import enrichment_table, mark_overlaps, plot_enrichment
from scmvp.genes import read_genes
from scmvp.intervals import parse_peak_names, read_bed
from scmvp.rule import atomic_path, run, write_tsv


def main(smk):
    links = pd.read_csv(smk.input.links, sep="\t", dtype={"peak": str, "gene": str})
    peaks = parse_peak_names(pd.unique(links["peak"]), smk.input.links)
    genome = smk.params.genome
    genes = reconcile_genes(read_genes(smk.input.genes), peaks, smk.input.genes, genome)
    regions = pd.Series(classify_peaks(peaks, genes, smk.params.promoter_distance), index=peaks.index)
    overlaps = {}
    for mark, path in zip(smk.params.marks, smk.input.marks):
        overlaps[mark] = mark_overlaps(peaks, read_bed(path, f"{mark} peaks"), path, mark, genome)
    table = enrichment_table(links, peaks, regions, overlaps)
    write_tsv(table, smk.output.table)
    with atomic_path(smk.output.plot) as tmp:
        plot_enrichment(table, tmp)


run(main, snakemake)  # noqa: F821 - injected by Snakemake
