# Stage cre: peak-gene links (LASSO and correlation, on raw and imputed data), their enrichment in
# histone-mark peaks and, with reference links (the simulator's truth), their precision/recall.


rule cre_links:
    input:
        h5mu=out("{ds}", "imputed.h5mu"),
        genes=lambda wc: reference(wc.ds, "genes"),
    output:
        links=out("{ds}", "cre", "links.tsv"),  # every tested pair: too large for the report
    params:
        cre=config["cre"],
        genome=lambda wc: dataset(wc.ds).get("genome"),
    log:
        out("{ds}", "logs", "cre_links.log"),
    benchmark:
        out("{ds}", "benchmarks", "cre_links.tsv")
    conda:
        "../envs/cre.yaml"
    threads: 2  # worker processes of the LASSO fits (scmvp.cre_scores.lasso_scores)
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    script:
        "../scripts/predict_links.py"


rule cre_enrichment:
    input:
        links=out("{ds}", "cre", "links.tsv"),
        genes=lambda wc: reference(wc.ds, "genes"),
        marks=lambda wc: list(histone_marks(wc.ds).values()),
    output:
        table=report(out("{ds}", "cre", "enrichment.tsv"), caption="../report/cre_enrichment.rst", category="CRE"),
        plot=report(out("{ds}", "cre", "enrichment.png"), caption="../report/cre_enrichment.rst", category="CRE"),
    params:
        marks=lambda wc: list(histone_marks(wc.ds)),
        promoter_distance=config["cre"]["promoter_distance"],
        genome=lambda wc: dataset(wc.ds).get("genome"),
    log:
        out("{ds}", "logs", "cre_enrichment.log"),
    benchmark:
        out("{ds}", "benchmarks", "cre_enrichment.tsv")
    conda:
        "../envs/cre.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    script:
        "../scripts/cre_enrichment.py"


rule cre_link_accuracy:
    input:
        links=out("{ds}", "cre", "links.tsv"),
        truth=lambda wc: reference(wc.ds, "links"),
    output:
        accuracy=report(out("{ds}", "cre", "link_accuracy.tsv"), caption="../report/cre_link_accuracy.rst",
                        category="CRE"),
    log:
        out("{ds}", "logs", "cre_link_accuracy.log"),
    benchmark:
        out("{ds}", "benchmarks", "cre_link_accuracy.tsv")
    conda:
        "../envs/cre.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 15 * attempt,
    script:
        "../scripts/cre_link_accuracy.py"


# Links need a genes reference; enrichment also needs histone marks, accuracy reference links.
STAGE_TARGETS.append(
    lambda ds: (
        [out(ds, "cre", "links.tsv")]
        + ([out(ds, "cre", "enrichment.tsv"), out(ds, "cre", "enrichment.png")] if histone_marks(ds) else [])
        + ([out(ds, "cre", "link_accuracy.tsv")] if reference(ds, "links") is not None else [])
    )
    if reference(ds, "genes") is not None
    else []
)
