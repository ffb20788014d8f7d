# Stage simulate: the embedded example, a simulated paired dataset with known truth, written in the
# Cell Ranger ARC layout so that the real 10x reader ingests it. Its files feed ingest (no stage target).


rule simulate:
    output:
        **{key: out("{ds}", "simulated", path) for key, path in SIMULATED.items()},
        chrom_sizes=out("{ds}", "simulated", "references", "chrom.sizes"),
    params:
        # sizes and seed; absent keys take the simulator's defaults (= the schema's)
        simulate=lambda wc: dataset(wc.ds).get("simulate", {}),
        genome=lambda wc: dataset(wc.ds).get("genome", "synthetic"),
    log:
        out("{ds}", "logs", "simulate.log"),
    benchmark:
        out("{ds}", "benchmarks", "simulate.tsv")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        # measured: 5,000 cells x 100k peaks x 10k genes peaked at 1.2 GB, 85 s
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    script:
        "../scripts/simulate.py"
