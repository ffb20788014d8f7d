# Stage validation (paper 3.1, 3.3): imputed RNA/ATAC against bulk references, DE genes against a reference
# list, diffusion pseudotime against a reference pseudotime. Each rule exists for the datasets that have the
# reference (and labels) it needs; validation_targets(ds) lists what a dataset gets.


include: "validation_inputs.smk"


rule validation_bulk_rna:
    input:
        imputed=out("{ds}", "imputed.h5mu"),
        bulk=validation_reference("bulk_rna"),
    output:
        table=report(out("{ds}", "validation", "bulk_rna.tsv"), caption="../report/validation_bulk_rna.rst",
                     category="Imputation validation", subcategory="{ds}"),
        pseudobulk=report(out("{ds}", "validation", "bulk_rna_pseudobulk.tsv"),
                          caption="../report/validation_bulk_rna_pseudobulk.rst", category="Imputation validation",
                          subcategory="{ds}"),
        plot=report(out("{ds}", "validation", "bulk_rna.png"), caption="../report/validation_bulk_rna.rst",
                    category="Imputation validation", subcategory="{ds}"),
    params:
        label_map=lambda wc: dataset(wc.ds).get("bulk_label_map", {}),
        scvi_max_epochs=config["validation"]["scvi_max_epochs"],
        seed=config["validation"]["seed"],
        accelerator=lambda wc: scvi_accelerator(wc.ds),
    log:
        out("{ds}", "logs", "validation_bulk_rna.log"),
    benchmark:
        out("{ds}", "benchmarks", "validation_bulk_rna.tsv")
    conda:
        "../envs/scvi.yaml"
    threads: 2
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    script:
        "../scripts/validate_bulk_rna.py"


rule validation_bulk_atac:
    input:
        imputed=out("{ds}", "imputed.h5mu"),
        bulk=validation_reference("bulk_atac"),
    output:
        table=report(out("{ds}", "validation", "bulk_atac.tsv"), caption="../report/validation_bulk_atac.rst",
                     category="Imputation validation", subcategory="{ds}"),
        plot=report(out("{ds}", "validation", "bulk_atac.png"), caption="../report/validation_bulk_atac.rst",
                    category="Imputation validation", subcategory="{ds}"),
    params:
        top_fraction=config["validation"]["atac_top_fraction"],
        genome=lambda wc: dataset(wc.ds).get("genome"),
    log:
        out("{ds}", "logs", "validation_bulk_atac.log"),
    benchmark:
        out("{ds}", "benchmarks", "validation_bulk_atac.tsv")
    conda:
        "../envs/cre.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    script:
        "../scripts/validate_bulk_atac.py"


rule validation_deg:
    input:
        unpack(de_genes_input),
        imputed=out("{ds}", "imputed.h5mu"),
    output:
        table=report(out("{ds}", "validation", "deg.tsv"), caption="../report/validation_deg.rst",
                     category="Imputation validation", subcategory="{ds}"),
        genes=out("{ds}", "validation", "deg_genes.tsv"),
        plot=report(out("{ds}", "validation", "deg.png"), caption="../report/validation_deg.rst",
                    category="Imputation validation", subcategory="{ds}"),
    params:
        n_de_genes=config["validation"]["n_de_genes"],
    log:
        out("{ds}", "logs", "validation_deg.log"),
    benchmark:
        out("{ds}", "benchmarks", "validation_deg.tsv")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    script:
        "../scripts/deg.py"


rule validation_trajectory:
    input:
        imputed=out("{ds}", "imputed.h5mu"),
        pseudotime=validation_reference("pseudotime"),
    output:
        table=report(out("{ds}", "validation", "trajectory.tsv"), caption="../report/validation_trajectory.rst",
                     category="Imputation validation", subcategory="{ds}"),
        cells=out("{ds}", "validation", "trajectory_cells.tsv"),
        plot=report(out("{ds}", "validation", "trajectory.png"), caption="../report/validation_trajectory.rst",
                    category="Imputation validation", subcategory="{ds}"),
    params:
        trajectory=lambda wc: trajectory(wc.ds),
        seed=config["validation"]["seed"],
        n_dcs=config["validation"]["diffusion_components"],
        n_top_genes=config["qc"]["n_top_genes"],
        n_pcs=config["qc"]["n_pcs"],
        n_lsi_components=config["qc"]["n_lsi_components"],
    log:
        out("{ds}", "logs", "validation_trajectory.log"),
    benchmark:
        out("{ds}", "benchmarks", "validation_trajectory.tsv")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    script:
        "../scripts/trajectory.py"


STAGE_TARGETS.append(lambda ds: validation_targets(ds))
