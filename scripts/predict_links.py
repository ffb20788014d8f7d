"""Rule cre_links: peak-gene links (LASSO and correlation, raw and imputed) -> cre/links.tsv."""
from scmvp.cre import LinkingData, predict_links
from scmvp.genes import read_genes
from scmvp.rule import run, write_tsv


def main(smk):
    cfg = smk.params.cre
    annotation = read_genes(smk.input.genes)
    with LinkingData(smk.input.h5mu) as data:
        links = predict_links(
            data, annotation, window=cfg["window"], methods=cfg["methods"], n_metacells=cfg["n_metacells"],
            n_permutations=cfg["n_permutations"], fdr=cfg["fdr"], max_genes=cfg.get("max_genes"),
            seed=cfg.get("seed", 0), correlation_null=cfg.get("correlation_null", "background"),
            genes_path=smk.input.genes, genome=smk.params.genome, n_jobs=smk.threads)
    write_tsv(links, smk.output.links)


run(main, snakemake)  # noqa: F821 - injected by Snakemake
