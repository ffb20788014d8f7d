"""Rule `ingest_samples`: the libraries of a sample sheet -> one results/{ds}/ingested.h5mu (scmvp.samples)."""
import warnings

import pandas as pd

from scmvp.rule import run, write_h5mu
from scmvp.samples import ingest_samples


def main(smk):
    table = pd.DataFrame(list(smk.params.samples))
    mdata = ingest_samples(table, source=smk.input.sheet)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # mudata's notice about its future update() default
        write_h5mu(mdata, smk.output.mudata)


run(main, snakemake)  # noqa: F821 - injected by Snakemake
