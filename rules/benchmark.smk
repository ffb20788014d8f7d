# Stage: clustering benchmark (paper 3.2). Every method embeds the same cells of preprocessed.h5mu;
# each embedding is scored by KMeans and Leiden at the true number of labels, and drawn as a UMAP.
# One rule per method because a rule's conda env cannot depend on a wildcard.


BENCHMARK_METHODS = list(config["benchmark"]["methods"])
# Every method runs once per seed (default: model.seed alone, i.e. scMVP's main model and no extra training);
# the scores (KMeans, Leiden, kNN folds) use the one benchmark.seed.
BENCHMARK_SEEDS = [int(seed) for seed in (config["benchmark"].get("seeds") or [config["model"]["seed"]])]
# (method, seed) of every embedding the scores read, method by method.
BENCHMARK_RUNS = [(method, seed) for method in BENCHMARK_METHODS for seed in BENCHMARK_SEEDS]
# Inputs of the scoring rule: every method's embedding + its time/memory per seed, and the WNN graph per seed.
BENCHMARK_INPUTS = dict(
    data=out("{ds}", "preprocessed.h5mu"),
    embeddings=[benchmark_seed_out("{ds}", s, "embeddings", f"{m}.tsv") for m, s in BENCHMARK_RUNS],
    resources=[benchmark_seed_out("{ds}", s, "embeddings", f"{m}.json") for m, s in BENCHMARK_RUNS],
    **(
        {"wnn_graphs": [benchmark_seed_out("{ds}", s, "embeddings", "wnn_graph.npz") for s in BENCHMARK_SEEDS]}
        if "wnn" in BENCHMARK_METHODS
        else {}
    ),
)
# The UMAP grid draws each method once: its embedding of the first seed.
UMAP_SEED = BENCHMARK_SEEDS[0]
UMAP_INPUTS = dict(
    data=out("{ds}", "preprocessed.h5mu"),
    embeddings=[benchmark_seed_out("{ds}", UMAP_SEED, "embeddings", f"{m}.tsv") for m in BENCHMARK_METHODS],
    **(
        {"wnn_graph": benchmark_seed_out("{ds}", UMAP_SEED, "embeddings", "wnn_graph.npz")}
        if "wnn" in BENCHMARK_METHODS
        else {}
    ),
)
BENCHMARK_PARAMS = dict(
    # the method's own seed: one run per entry of benchmark.seeds
    seed=lambda wildcards: int(wildcards.seed),
    n_top_genes=config["qc"]["n_top_genes"],
    n_pcs=config["qc"]["n_pcs"],
    n_lsi_components=config["qc"]["n_lsi_components"],
    mofa_factors=config["benchmark"]["mofa_factors"],
    mofa_iterations=config["benchmark"]["mofa_iterations"],
    scvi=config["benchmark"]["scvi"],
    multivi=config["benchmark"]["multivi"],
    # scvi-tools takes "auto" (GPU when present) or "cpu"; follows the model's device setting.
    accelerator="cpu" if config["model"]["device"] == "cpu" else "auto",
    # the batches (model.batch_key: null = obs sample when it has several values) reach every method
    batch_key=config["model"]["batch_key"],
)


rule embed_scmvp:
    input:
        data=out("{ds}", "preprocessed.h5mu"),
        # imputed.h5mu for model.seed, the extra model's latent.tsv for any other seed (rules/common.smk)
        embedding=scmvp_seed_latent,
    output:
        embedding=benchmark_seed_out("{ds}", "{seed}", "embeddings", "scmvp.tsv"),
        resources=benchmark_seed_out("{ds}", "{seed}", "embeddings", "scmvp.json"),
    params:
        method="scmvp",
        seed=lambda wildcards: int(wildcards.seed),
        # scMVP's seconds and memory: those of the model rules behind this seed's latent
        model_benchmarks=scmvp_seed_cost,
    log:
        seed_log("{ds}", "{seed}", "embed_scmvp.log"),
    benchmark:
        seed_benchmark("{ds}", "{seed}", "embed_scmvp.tsv")
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
        embedding=benchmark_seed_out("{ds}", "{seed}", "embeddings", "rna_pca.tsv"),
        resources=benchmark_seed_out("{ds}", "{seed}", "embeddings", "rna_pca.json"),
    params:
        method="rna_pca",
        **BENCHMARK_PARAMS,
    log:
        seed_log("{ds}", "{seed}", "embed_rna_pca.log"),
    benchmark:
        seed_benchmark("{ds}", "{seed}", "embed_rna_pca.tsv")
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
        embedding=benchmark_seed_out("{ds}", "{seed}", "embeddings", "atac_lsi.tsv"),
        resources=benchmark_seed_out("{ds}", "{seed}", "embeddings", "atac_lsi.json"),
    params:
        method="atac_lsi",
        **BENCHMARK_PARAMS,
    log:
        seed_log("{ds}", "{seed}", "embed_atac_lsi.log"),
    benchmark:
        seed_benchmark("{ds}", "{seed}", "embed_atac_lsi.tsv")
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
        embedding=benchmark_seed_out("{ds}", "{seed}", "embeddings", "wnn.tsv"),
        resources=benchmark_seed_out("{ds}", "{seed}", "embeddings", "wnn.json"),
        graph=benchmark_seed_out("{ds}", "{seed}", "embeddings", "wnn_graph.npz"),
    params:
        method="wnn",
        **BENCHMARK_PARAMS,
    log:
        seed_log("{ds}", "{seed}", "embed_wnn.log"),
    benchmark:
        seed_benchmark("{ds}", "{seed}", "embed_wnn.tsv")
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
        embedding=benchmark_seed_out("{ds}", "{seed}", "embeddings", "mofa.tsv"),
        resources=benchmark_seed_out("{ds}", "{seed}", "embeddings", "mofa.json"),
    params:
        method="mofa",
        **BENCHMARK_PARAMS,
    log:
        seed_log("{ds}", "{seed}", "embed_mofa.log"),
    benchmark:
        seed_benchmark("{ds}", "{seed}", "embed_mofa.tsv")
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
        embedding=benchmark_seed_out("{ds}", "{seed}", "embeddings", "scvi.tsv"),
        resources=benchmark_seed_out("{ds}", "{seed}", "embeddings", "scvi.json"),
    params:
        method="scvi",
        **BENCHMARK_PARAMS,
    log:
        seed_log("{ds}", "{seed}", "embed_scvi.log"),
    benchmark:
        seed_benchmark("{ds}", "{seed}", "embed_scvi.tsv")
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
        embedding=benchmark_seed_out("{ds}", "{seed}", "embeddings", "multivi.tsv"),
        resources=benchmark_seed_out("{ds}", "{seed}", "embeddings", "multivi.json"),
    params:
        method="multivi",
        **BENCHMARK_PARAMS,
    log:
        seed_log("{ds}", "{seed}", "embed_multivi.log"),
    benchmark:
        seed_benchmark("{ds}", "{seed}", "embed_multivi.tsv")
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
        summary=report(
            out("{ds}", "benchmark", "summary.tsv"),
            caption="../report/clustering_summary.rst",
            category="Clustering benchmark",
            subcategory="{ds}",
            labels={"dataset": "{ds}", "figure": "mean and sd over seeds"},
        ),
        knn_recall=report(
            out("{ds}", "benchmark", "knn_recall.tsv"),
            caption="../report/knn_recall.rst",
            category="Clustering benchmark",
            subcategory="{ds}",
            labels={"dataset": "{ds}", "figure": "kNN recall per label (table)"},
        ),
    params:
        # method and seed of each entry of input.embeddings / input.resources, in order
        methods=[method for method, _ in BENCHMARK_RUNS],
        seeds=[seed for _, seed in BENCHMARK_RUNS],
        # the seed of input.wnn_graphs' entries, in order
        graph_seeds=BENCHMARK_SEEDS,
        # the scoring's seed (KMeans, Leiden, the kNN folds): the same for every method and seed
        seed=config["benchmark"]["seed"],
        n_neighbors=config["benchmark"]["n_neighbors"],
        knn_folds=5,
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
        **UMAP_INPUTS,
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
        knn_recall=out("{ds}", "benchmark", "knn_recall.tsv"),
    output:
        bars=report(
            out("{ds}", "benchmark", "clustering.png"),
            caption="../report/clustering_bars.rst",
            category="Clustering benchmark",
            subcategory="{ds}",
            labels={"dataset": "{ds}", "figure": "ARI / NMI"},
        ),
        recall=report(
            out("{ds}", "benchmark", "knn_recall.png"),
            caption="../report/knn_recall_heatmap.rst",
            category="Clustering benchmark",
            subcategory="{ds}",
            labels={"dataset": "{ds}", "figure": "kNN recall per label"},
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
        + (
            [out(ds, "benchmark", name) for name in ("clustering.tsv", "summary.tsv", "clustering.png")]
            if has_labels(ds)
            else []
        )
    )
    if BENCHMARK_METHODS
    else []
)
