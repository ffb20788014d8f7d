# Stage: integration metrics (multi-library datasets, i.e. a sample sheet with more than one sample). Every
# benchmark embedding is scored for library mixing (iLISI, kBET, batch silhouette) and, with labels, biology
# conservation (cLISI, label silhouette, graph connectivity) by scib-metrics (scmvp.integration).


rule integration_scores:
    input:
        data=out("{ds}", "preprocessed.h5mu"),
        # every method's embedding of every benchmark seed, as the clustering scores
        embeddings=[benchmark_seed_out("{ds}", s, "embeddings", f"{m}.tsv") for m, s in BENCHMARK_RUNS],
    output:
        scores=report(
            out("{ds}", "benchmark", "integration.tsv"),
            caption="../report/integration_table.rst",
            category="Integration of libraries",
            subcategory="{ds}",
            labels={"dataset": "{ds}", "figure": "integration table"},
        ),
    params:
        # method and seed of each entry of input.embeddings, in order
        methods=[method for method, _ in BENCHMARK_RUNS],
        seeds=[seed for _, seed in BENCHMARK_RUNS],
        batch_key="sample",
        # the scoring's seed (the kNN graph): the same for every method and seed
        seed=config["benchmark"]["seed"],
    log:
        out("{ds}", "logs", "benchmark", "integration.log"),
    benchmark:
        out("{ds}", "benchmarks", "benchmark", "integration.tsv")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    script:
        "../scripts/integration_scores.py"


rule plot_integration:
    input:
        scores=out("{ds}", "benchmark", "integration.tsv"),
    output:
        figure=report(
            out("{ds}", "benchmark", "integration.png"),
            caption="../report/integration_figure.rst",
            category="Integration of libraries",
            subcategory="{ds}",
            labels={"dataset": "{ds}", "figure": "mixing vs conservation"},
        ),
    params:
        dataset="{ds}",
    log:
        out("{ds}", "logs", "benchmark", "plot_integration.log"),
    benchmark:
        out("{ds}", "benchmarks", "benchmark", "plot_integration.tsv")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, attempt: 5 * attempt,
    script:
        "../scripts/plot_integration.py"


STAGE_TARGETS.append(
    lambda ds: [out(ds, "benchmark", "integration.tsv"), out(ds, "benchmark", "integration.png")]
    if BENCHMARK_METHODS and is_multi_library(ds)
    else []
)
