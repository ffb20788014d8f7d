# Stage: RNA-ATAC pairing check. For every cell, how many of its 15 nearest neighbours in the RNA PCA are also
# among its 15 in the ATAC LSI (depth components dropped), against chance and against shuffled pairings; over all
# cells and per sample of a sample sheet (scripts/scmvp/modality_agreement.py). Near chance means the two
# modalities of a "cell" may come from different cells (e.g. untranslated 10x Multiome ATAC barcodes).


rule modality_agreement:
    input:
        data=out("{ds}", "preprocessed.h5mu"),
    output:
        table=report(
            out("{ds}", "qc", "modality_agreement.tsv"),
            caption="../report/modality_agreement.rst",
            category="Quality control",
            subcategory="{ds}",
            labels={"dataset": "{ds}", "figure": "RNA-ATAC pairing check"},
        ),
    params:
        n_neighbors=15,
        n_top_genes=config["qc"]["n_top_genes"],
        n_pcs=config["qc"]["n_pcs"],
        n_lsi_components=config["qc"]["n_lsi_components"],
        seed=config["model"]["seed"],
    log:
        out("{ds}", "logs", "modality_agreement.log"),
    benchmark:
        out("{ds}", "benchmarks", "modality_agreement.tsv")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        # the raw counts of both modalities (~0.45 x the file) and one working copy of each
        mem_mb=lambda wildcards, input, attempt: (int(os.path.getsize(input.data) / 1e6) + 3000) * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    script:
        "../scripts/modality_agreement.py"


STAGE_TARGETS.append(lambda ds: [out(ds, "qc", "modality_agreement.tsv")])
