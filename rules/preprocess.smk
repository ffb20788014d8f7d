# Stage preprocess: QC (cells must pass in both modalities; data-driven MAD outliers by default, see
# scripts/scmvp/qc.py; TSS enrichment, nucleosome signal and FRiP from Cell Ranger ARC's fragments file and
# per-barcode metrics when present, scripts/scmvp/qc_fragments.py; scrublet doublets; all per sample for a sample
# sheet, qc.per_sample), the QC tables and figure, raw counts kept in layers, RNA log-normalisation + highly
# variable genes + PCA, ATAC TF-IDF + LSI (muon).


rule preprocess:
    input:
        # + Cell Ranger ARC's fragments file / per-barcode metrics (fragment QC), when the dataset has them (a sample
        # sheet: each 10x_multiome sample's, fragments_{sample}, tbi_{sample}, barcode_metrics_{sample})
        unpack(lambda wildcards: {"mdata": out(wildcards.ds, "ingested.h5mu")} | fragment_qc_inputs(wildcards.ds)),
    output:
        mdata=out("{ds}", "preprocessed.h5mu"),
        cells=out("{ds}", "qc", "cells.tsv"),
        thresholds=out("{ds}", "qc", "thresholds.tsv"),
        summary=report(
            out("{ds}", "qc", "summary.tsv"),
            caption="../report/qc_summary.rst",
            category="Quality control",
            subcategory="{ds}",
            labels={"dataset": "{ds}", "figure": "QC summary"},
        ),
        # one row per sample of a sample sheet; one row named by the dataset otherwise
        samples=report(
            out("{ds}", "qc", "samples.tsv"),
            caption="../report/qc_samples.rst",
            category="Quality control",
            subcategory="{ds}",
            labels={"dataset": "{ds}", "figure": "QC per sample"},
        ),
    params:
        qc=config["qc"],
        seed=config["model"]["seed"],
        dataset="{ds}",
        # sample -> names of its fragment-QC inputs (sample sheets with Cell Ranger ARC folders)
        sample_files=lambda wildcards: sample_qc_inputs(wildcards.ds),
    log:
        out("{ds}", "logs", "preprocess.log"),
    benchmark:
        out("{ds}", "benchmarks", "preprocess.tsv")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        # measured: 10k / 20k / 50k cells x 100k peaks peaked at 1.7 / 3.1 / 7.4 GB (bench/RESULTS.md, stops 16-17);
        # ingested.h5mu (uncompressed sparse counts) is ~0.44x preprocessed.h5mu (13.6 / 30.9 MB measured for the three
        # libraries), so ~2.1 GB at 50k, where preprocessed.h5mu was 4.8 GB
        # (the fragment files among the inputs are streamed, so only the h5mu counts)
        mem_mb=lambda wildcards, input, attempt: max(6000, int(5 * os.path.getsize(input.mdata) / 1e6) + 2000)
        * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    script:
        "../scripts/preprocess.py"


rule plot_qc:
    input:
        cells=out("{ds}", "qc", "cells.tsv"),
        thresholds=out("{ds}", "qc", "thresholds.tsv"),
    output:
        figure=report(
            out("{ds}", "qc", "qc.png"),
            caption="../report/qc_figure.rst",
            category="Quality control",
            subcategory="{ds}",
            labels={"dataset": "{ds}", "figure": "QC distributions"},
        ),
    params:
        dataset="{ds}",
    log:
        out("{ds}", "logs", "plot_qc.log"),
    benchmark:
        out("{ds}", "benchmarks", "plot_qc.tsv")
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    script:
        "../scripts/plot_qc.py"


STAGE_TARGETS.append(lambda ds: [out(ds, "preprocessed.h5mu"), out(ds, "qc", "qc.png")])
