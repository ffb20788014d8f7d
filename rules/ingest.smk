# Stage ingest: each technology's native files -> results/{ds}/ingested.h5mu (see scripts/scmvp/io).


rule ingest:
    input:
        # the dataset's file or folder, plus its labels tsv when it has one
        unpack(
            lambda wildcards: {"data": raw_input(wildcards.ds)}
            | ({"labels": labels_file(wildcards.ds)} if labels_file(wildcards.ds) else {})
        ),
    output:
        mudata=out("{ds}", "ingested.h5mu"),
    params:
        technology=lambda wildcards: ingest_technology(wildcards.ds),
        label_column=lambda wildcards: dataset(wildcards.ds).get("label_column"),
    log:
        out("{ds}", "logs", "ingest.log"),
    benchmark:
        out("{ds}", "benchmarks", "ingest.tsv")
    wildcard_constraints:
        # sample-sheet datasets are joined by rule ingest_samples (rules/samples.smk)
        ds=dataset_pattern(SINGLE_INPUT_DATASETS),
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    script:
        "../scripts/ingest.py"


STAGE_TARGETS.append(lambda ds: [out(ds, "ingested.h5mu")])
