# Stage: clustering benchmark (paper 3.2). Every method embeds the same cells of preprocessed.h5mu;
# each embedding is scored by KMeans and Leiden at the true number of labels, and drawn as a UMAP.
# One rule per method because a rule's conda env cannot depend on a wildcard.


BENCHMARK_METHODS = list(config["benchmark"]["methods"])
# Inputs of the scoring and UMAP rules: every method's embedding + its time/memory, and the WNN graph.
BENCHMARK_INPUTS = dict(
    data=out("{ds}", "preprocessed.h5mu"),
    embeddings=[out("{ds}", "benchmark", "embeddings", f"{m}.tsv") for m in BENCHMARK_METHODS],
    resources=[out("{ds}", "benchmark", "embeddings", f"{m}.json") for m in BENCHMARK_METHODS],
    **({"wnn_graph": out("{ds}", "benchmark", "embeddings", "wnn_graph.npz")} if "wnn" in BENCHMARK_METHODS else {}),
)
BENCHMARK_PARAMS = dict(
    seed=config["benchmark"]["seed"],
    n_top_genes=config["qc"]["n_top_genes"],
    n_pcs=config["qc"]["n_pcs"],
    n_lsi_components=config["qc"]["n_lsi_components"],
    mofa_factors=config["benchmark"]["mofa_factors"],
    mofa_iterations=config["benchmark"]["mofa_iterations"],
    scvi=config["benchmark"]["scvi"],
    multivi=config["benchmark"]["multivi"],
    # scvi-tools takes "auto" (GPU when present) or "cpu"; follows the model's device setting.
    accelerator="cpu" if config["model"]["device"] == "cpu" else "auto",
)


rule embed_scmvp:
    input:
        data=out("{ds}", "preprocessed.h5mu"),
        embedding=out("{ds}", "imputed.h5mu"),
    output:
        embedding=out("{ds}", "benchmark", "embeddings", "scmvp.tsv"),
        resources=out("{ds}", "benchmark", "embeddings", "scmvp.json"),
    params:
        method="scmvp",
        model_benchmarks=out("{ds}", "benchmarks"),
    log:
        out("{ds}", "logs", "benchmark", "embed_scmvp.log"),
    benchmark:
        out("{ds}", "benchmarks", "benchmark", "embed_scmvp.tsv")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    script:
        "../scripts/embed.py"


rule embed_rna_pca:
    input:
        data=out("{ds}", "preprocessed.h5mu"),
    output:
        embedding=out("{ds}", "benchmark", "embeddings", "rna_pca.tsv"),
        resources=out("{ds}", "benchmark", "embeddings", "rna_pca.json"),
    params:
        method="rna_pca",
        **BENCHMARK_PARAMS,
    log:
        out("{ds}", "logs", "benchmark", "embed_rna_pca.log"),
    benchmark:
        out("{ds}", "benchmarks", "benchmark", "embed_rna_pca.tsv")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 20 * attempt,
    script:
        "../scripts/embed.py"


rule embed_atac_lsi:
    input:
        data=out("{ds}", "preprocessed.h5mu"),
    output:
        embedding=out("{ds}", "benchmark", "embeddings", "atac_lsi.tsv"),
        resources=out("{ds}", "benchmark", "embeddings", "atac_lsi.json"),
    params:
        method="atac_lsi",
        **BENCHMARK_PARAMS,
    log:
        out("{ds}", "logs", "benchmark", "embed_atac_lsi.log"),
    benchmark:
        out("{ds}", "benchmarks", "benchmark", "embed_atac_lsi.tsv")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 6000 * attempt,
        runtime=lambda wildcards, attempt: 20 * attempt,
    script:
        "../scripts/embed.py"


rule embed_wnn:
    input:
        data=out("{ds}", "preprocessed.h5mu"),
    output:
        embedding=out("{ds}", "benchmark", "embeddings", "wnn.tsv"),
        resources=out("{ds}", "benchmark", "embeddings", "wnn.json"),
        graph=out("{ds}", "benchmark", "embeddings", "wnn_graph.npz"),
    params:
        method="wnn",
        **BENCHMARK_PARAMS,
    log:
        out("{ds}", "logs", "benchmark", "embed_wnn.log"),
    benchmark:
        out("{ds}", "benchmarks", "benchmark", "embed_wnn.tsv")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    script:
        "../scripts/embed.py"


rule embed_mofa:
    input:
        data=out("{ds}", "preprocessed.h5mu"),
    output:
        embedding=out("{ds}", "benchmark", "embeddings", "mofa.tsv"),
        resources=out("{ds}", "benchmark", "embeddings", "mofa.json"),
    params:
        method="mofa",
        **BENCHMARK_PARAMS,
    log:
        out("{ds}", "logs", "benchmark", "embed_mofa.log"),
    benchmark:
        out("{ds}", "benchmarks", "benchmark", "embed_mofa.tsv")
    conda:
        "../envs/mofa.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    script:
        "../scripts/embed.py"


rule embed_scvi:
    input:
        data=out("{ds}", "preprocessed.h5mu"),
    output:
        embedding=out("{ds}", "benchmark", "embeddings", "scvi.tsv"),
        resources=out("{ds}", "benchmark", "embeddings", "scvi.json"),
    params:
        method="scvi",
        **BENCHMARK_PARAMS,
    log:
        out("{ds}", "logs", "benchmark", "embed_scvi.log"),
    benchmark:
        out("{ds}", "benchmarks", "benchmark", "embed_scvi.tsv")
    conda:
        "../envs/scvi.yaml"
    # torch threads as for scMVP (model.threads): more threads than free cores slow torch many times over
    threads: config["model"]["threads"]
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 240 * attempt,
    script:
        "../scripts/embed.py"


rule embed_multivi:
    input:
        data=out("{ds}", "preprocessed.h5mu"),
    output:
        embedding=out("{ds}", "benchmark", "embeddings", "multivi.tsv"),
        resources=out("{ds}", "benchmark", "embeddings", "multivi.json"),
    params:
        method="multivi",
        **BENCHMARK_PARAMS,
    log:
        out("{ds}", "logs", "benchmark", "embed_multivi.log"),
    benchmark:
        out("{ds}", "benchmarks", "benchmark", "embed_multivi.tsv")
    conda:
        "../envs/scvi.yaml"
    threads: config["model"]["threads"]
    resources:
        mem_mb=lambda wildcards, attempt: 16000 * attempt,
        runtime=lambda wildcards, attempt: 480 * attempt,
    script:
        "../scripts/embed.py"


rule benchmark_scores:
    input:
        **BENCHMARK_INPUTS,
    output:
        scores=report(
            out("{ds}", "benchmark", "clustering.tsv"),
            caption="../report/clustering_table.rst",
            category="Clustering benchmark",
            subcategory="{ds}",
            labels={"dataset": "{ds}", "figure": "scores table"},
        ),
    params:
        methods=BENCHMARK_METHODS,
        seed=config["benchmark"]["seed"],
        n_neighbors=config["benchmark"]["n_neighbors"],
    log:
        out("{ds}", "logs", "benchmark", "scores.log"),
    benchmark:
        out("{ds}", "benchmarks", "benchmark", "scores.tsv")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    script:
        "../scripts/cluster_scores.py"


rule benchmark_umap:
    input:
        **BENCHMARK_INPUTS,
    output:
        umap=out("{ds}", "benchmark", "umap.tsv"),
    params:
        methods=BENCHMARK_METHODS,
        seed=config["benchmark"]["seed"],
        n_neighbors=config["benchmark"]["n_neighbors"],
        leiden_resolution=config["benchmark"]["leiden_resolution"],
    log:
        out("{ds}", "logs", "benchmark", "umap.log"),
    benchmark:
        out("{ds}", "benchmarks", "benchmark", "umap.tsv")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    script:
        "../scripts/benchmark_umap.py"


rule plot_benchmark_scores:
    input:
        scores=out("{ds}", "benchmark", "clustering.tsv"),
    output:
        bars=report(
            out("{ds}", "benchmark", "clustering.png"),
            caption="../report/clustering_bars.rst",
            category="Clustering benchmark",
            subcategory="{ds}",
            labels={"dataset": "{ds}", "figure": "ARI / NMI"},
        ),
    params:
        dataset="{ds}",
    log:
        out("{ds}", "logs", "benchmark", "plot_scores.log"),
    benchmark:
        out("{ds}", "benchmarks", "benchmark", "plot_scores.tsv")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, attempt: 5 * attempt,
    script:
        "../scripts/plot_benchmark.py"


rule plot_benchmark_umap:
    input:
        umap=out("{ds}", "benchmark", "umap.tsv"),
    output:
        umap=report(
            out("{ds}", "benchmark", "umap.png"),
            caption="../report/umap_grid.rst",
            category="Clustering benchmark",
            subcategory="{ds}",
            labels={"dataset": "{ds}", "figure": "UMAP per method"},
        ),
    params:
        dataset="{ds}",
    log:
        out("{ds}", "logs", "benchmark", "plot_umap.log"),
    benchmark:
        out("{ds}", "benchmarks", "benchmark", "plot_umap.tsv")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, attempt: 5 * attempt,
    script:
        "../scripts/plot_benchmark.py"


# Final outputs: the UMAP grid of the methods; their scores and bars only for datasets with true labels. No
# method, no benchmark rule.
STAGE_TARGETS.append(
    lambda ds: (
        [out(ds, "benchmark", "umap.png")]
        + ([out(ds, "benchmark", "clustering.tsv"), out(ds, "benchmark", "clustering.png")] if has_labels(ds) else [])
    )
    if BENCHMARK_METHODS
    else []
)
