# Stage: model. Train scMVP on the preprocessed paired data, then embed, cluster and impute every cell.
# Batches: train reads model.batch_key's obs column of preprocessed.h5mu (null: `sample` when it has more than one
# value); impute reads the column the model file names and model.impute_reference_batch.
# GPU: `resources: gpu` is 1 when model.device is "cuda" (0 otherwise); the SLURM profile maps it to a
# GPU request (e.g. --gres=gpu:1). Checkpoints (results/{ds}/scmvp/checkpoints/last.pt, one per epoch) are
# not declared outputs, so Snakemake never deletes them: a killed `train` job resumes when rerun.


# model keys that only the impute rule reads: left out of the training rules' params (no retraining)
IMPUTE_ONLY_MODEL_KEYS = ("impute_reference_batch", "impute_dtype")


rule train:
    input:
        mdata=out("{ds}", "preprocessed.h5mu"),
    output:
        model=out("{ds}", "scmvp", "model.pt"),
        history=out("{ds}", "scmvp", "history.tsv"),
    # imputation, validation, CRE and the benchmark wait for the main model: start it before side jobs
    # (the benchmark's extra seeds, the baselines) when cores are short
    priority: 1
    params:
        # every model key but those only the impute rule reads (changing them does not retrain)
        model={key: value for key, value in config["model"].items() if key not in IMPUTE_ONLY_MODEL_KEYS},
        checkpoints=lambda wildcards: out(wildcards.ds, "scmvp", "checkpoints"),
    log:
        out("{ds}", "logs", "train.log"),
    benchmark:
        out("{ds}", "benchmarks", "train.tsv")
    conda:
        "../envs/model.yaml"
    threads: config["model"]["threads"]
    resources:
        mem_mb=model_mem_mb,
        runtime=lambda wildcards, attempt: 720 * attempt,
        gpu=1 if config["model"]["device"] == "cuda" else 0,
    script:
        "../scripts/train.py"


# The clustering benchmark runs every method with each seed of benchmark.seeds. scMVP's embedding for the seed
# equal to model.seed is the main model's latent (imputed.h5mu); every other seed trains one more model, the same
# way and with the same config but that seed, and writes only its latent (no imputation).
rule train_seed:
    input:
        mdata=out("{ds}", "preprocessed.h5mu"),
    output:
        model=benchmark_seed_out("{ds}", "{seed}", "scmvp", "model.pt"),
        history=benchmark_seed_out("{ds}", "{seed}", "scmvp", "history.tsv"),
        latent=benchmark_seed_out("{ds}", "{seed}", "scmvp", "latent.tsv"),
    params:
        model=lambda wildcards: dict({key: value for key, value in config["model"].items()
                                      if key not in IMPUTE_ONLY_MODEL_KEYS}, seed=int(wildcards.seed)),
        checkpoints=lambda wildcards: benchmark_seed_out(wildcards.ds, wildcards.seed, "scmvp", "checkpoints"),
    log:
        seed_log("{ds}", "{seed}", "train_scmvp.log"),
    benchmark:
        seed_benchmark("{ds}", "{seed}", "train_scmvp.tsv")
    conda:
        "../envs/model.yaml"
    threads: config["model"]["threads"]
    resources:
        mem_mb=model_mem_mb,
        runtime=lambda wildcards, attempt: 720 * attempt,
        gpu=1 if config["model"]["device"] == "cuda" else 0,
    script:
        "../scripts/train.py"


rule impute:
    input:
        mdata=out("{ds}", "preprocessed.h5mu"),
        model=out("{ds}", "scmvp", "model.pt"),
    output:
        mdata=out("{ds}", "imputed.h5mu"),
    # on the same critical path as train: the validation, CRE and benchmark rules wait for it, the QC side jobs
    # (modality_agreement) do not; first when cores are short
    priority: 1
    params:
        device=config["model"]["device"],
        chunk_size=config["model"]["impute_chunk_size"],
        # decode every cell in this batch (null: each in its own); the batches come from the model file
        reference_batch=config["model"].get("impute_reference_batch"),
        dtype=config["model"]["impute_dtype"],
        # the latent's UMAP and Leiden clusters, written into imputed.h5mu
        n_neighbors=config["benchmark"]["n_neighbors"],
        leiden_resolution=config["benchmark"]["leiden_resolution"],
        seed=config["model"]["seed"],
    log:
        out("{ds}", "logs", "impute.log"),
    benchmark:
        out("{ds}", "benchmarks", "impute.tsv")
    conda:
        "../envs/model.yaml"
    threads: config["model"]["threads"]
    resources:
        mem_mb=model_mem_mb,
        runtime=lambda wildcards, attempt: 120 * attempt,
        gpu=1 if config["model"]["device"] == "cuda" else 0,
    script:
        "../scripts/impute.py"


STAGE_TARGETS.append(lambda ds: [out(ds, "imputed.h5mu")])
