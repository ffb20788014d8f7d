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
        # linear in the cells: the rule measured 1.3 / 3.1 / 7.9 GB at 10,000 / 20,000 / 50,000 cells x 100k peaks
        # (bench/RESULTS.md, "The scMVP path at 20,000 and 50,000 cells")
        mem_mb=lambda wc, attempt: max(4000, int(0.2 * dataset(wc.ds).get("simulate", {}).get("n_cells", 3000)))
        * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    script:
        "../scripts/simulate.py"
