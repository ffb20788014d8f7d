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
        # linear in the cells: measured 1.3 GB at 10,000 cells x 100k peaks, 6.9 GB for the data and its
        # fragments at 50,000 (bench/RESULTS.md, "The 45-minute target")
        mem_mb=lambda wc, attempt: max(4000, int(0.2 * dataset(wc.ds).get("simulate", {}).get("n_cells", 3000)))
        * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    script:
        "../scripts/simulate.py"
