# Stage preprocess: QC (cells must pass in both modalities), raw counts kept in layers, RNA
# log-normalisation + highly variable genes + PCA, ATAC TF-IDF + LSI (muon).


rule preprocess:
    input:
        mdata=out("{ds}", "ingested.h5mu"),
    output:
        mdata=out("{ds}", "preprocessed.h5mu"),
    params:
        qc=config["qc"],
        seed=config["model"]["seed"],
    log:
        out("{ds}", "logs", "preprocess.log"),
    benchmark:
        out("{ds}", "benchmarks", "preprocess.tsv")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        # measured: 5,000 cells x 100k peaks x 10k genes (3% of peaks open) peaked at 1.2 GB, 45 s (LSI most)
        mem_mb=lambda wildcards, attempt: 6000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    script:
        "../scripts/preprocess.py"


STAGE_TARGETS.append(lambda ds: [out(ds, "preprocessed.h5mu")])
