"""Rule `ingest`: a dataset in its technology's native layout -> results/{ds}/ingested.h5mu."""
import warnings

from scmvp.io import read_dataset, validate_ingested
from scmvp.rule import run, write_h5mu


def main(smk):
    labels = smk.input.get("labels")
    mdata = read_dataset(smk.params.technology, smk.input.data, labels=labels or None,
                         label_column=smk.params.label_column)
    validate_ingested(mdata, smk.input.data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # mudata's notice about its future update() default
        write_h5mu(mdata, smk.output.mudata)


run(main, snakemake)  # noqa: F821 - injected by Snakemake
