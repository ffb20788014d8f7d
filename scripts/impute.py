"""Rule `impute`: latent means, GMM clusters and imputed RNA/ATAC of every cell -> imputed.h5mu."""
import mudata

from scmvp.errors import require_file
from scmvp.model import SCMVP
from scmvp.model.imputation import write_imputed
from scmvp.rule import run


def main(smk):
    path = require_file(smk.input.mdata, "preprocessed MuData")
    mdata = mudata.read_h5mu(path)
    model = SCMVP.load(smk.input.model, mdata, device=smk.params.device, path_of_data=path)
    write_imputed(model, mdata, smk.output.mdata, chunk_size=smk.params.chunk_size)


run(main, snakemake)  # noqa: F821 - provided by Snakemake
