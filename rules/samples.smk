# Stage ingest for a dataset made of several libraries (`samples:` in its config entry, a sample sheet): each
# sample read by its technology's reader, cells named {sample}#{barcode}, genes intersected, peaks merged with
# bedtools, joined into the same results/{ds}/ingested.h5mu as rule ingest writes for a single input
# (scripts/scmvp/samples.py). The two rules never compete: each is constrained to its own datasets.


rule ingest_samples:
    input:
        # the sheet, then every sample's file or folder and labels file
        unpack(
            lambda wildcards: {"sheet": dataset(wildcards.ds)["samples"]}
            | {
                f"{kind}_{sample}": value
                for row in sample_sheet(wildcards.ds).to_dict("records")
                for kind, sample, value in (("data", row["sample"], row["path"]), ("labels", row["sample"], row.get("labels")))
                if isinstance(value, str)
            }
        ),
    output:
        mudata=out("{ds}", "ingested.h5mu"),
    params:
        # the checked sheet (absolute paths, covariates); a changed sheet changes params and reruns the rule
        samples=lambda wildcards: sheet_records(sample_sheet(wildcards.ds)),
    log:
        out("{ds}", "logs", "ingest.log"),
    benchmark:
        out("{ds}", "benchmarks", "ingest.tsv")
    wildcard_constraints:
        ds=dataset_pattern(SAMPLE_SHEET_DATASETS),
    # the cre env: core + pybedtools and the bedtools binary
    conda:
        "../envs/cre.yaml"
    threads: 1
    resources:
        # every sample's matrices are held at once (sparse) plus the joined copy
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    script:
        "../scripts/ingest_samples.py"
