"""Rule `preprocess`: QC filtering, RNA log-normalisation/HVG/PCA, ATAC TF-IDF/LSI; the QC tables."""
import mudata as md

from scmvp.errors import InputError
from scmvp.preprocessing import preprocess
from scmvp.qc import summary_table
from scmvp.qc_samples import sample_table
from scmvp.rule import log, run, write_h5mu, write_tsv


def main(smk):
    path = smk.input.mdata
    try:
        mdata = md.read_h5mu(path)
    except (OSError, KeyError, ValueError) as err:
        raise InputError(path, f"cannot read as MuData: {err}") from err
    # a sample sheet's per-sample ARC files: sample -> {"fragments": path, "barcode_metrics": path}
    sample_files = {sample: {kind: getattr(smk.input, name) for kind, name in names.items()}
                    for sample, names in dict(smk.params.sample_files).items()}
    report = preprocess(mdata, dict(smk.params.qc), seed=int(smk.params.seed), path=path,
                        fragments=smk.input.get("fragments"), barcode_metrics=smk.input.get("barcode_metrics"),
                        genes=smk.input.get("genes"), sample_files=sample_files or None)
    log.info("kept %d of %d cells, %d genes, %d peaks", report["cells_out"], report["cells_in"], report["genes_out"],
             report["peaks_out"])
    write_tsv(report["cell_table"].reset_index(), smk.output.cells, float_format="%.6g")
    write_tsv(report["thresholds"], smk.output.thresholds, float_format="%.6g")
    write_tsv(summary_table(report["cell_table"], report), smk.output.summary, float_format="%.6g")
    write_tsv(sample_table(report["cell_table"], name=smk.params.dataset), smk.output.samples, float_format="%.6g")
    write_h5mu(mdata, smk.output.mdata)


run(main, snakemake)  # noqa: F821 - injected by Snakemake
