"""Rule `impute`: latent means, GMM clusters, the latent's UMAP and Leiden clusters, and imputed RNA/ATAC of every
cell -> imputed.h5mu (scverse conventions: obsm["X_umap"], obs["leiden"], obsp["connectivities"/"distances"])."""
from scmvp import metrics
from scmvp.errors import require_file
from scmvp.io.h5mu_parts import read_h5mu_layer
from scmvp.model import SCMVP
from scmvp.model.imputation import write_imputed
from scmvp.rule import log, run


def add_umap_and_leiden(mdata, n_neighbors, resolution, seed):
    graph = metrics.neighbours_umap_leiden(mdata.obsm["X_scmvp"], n_neighbors, resolution, seed)
    mdata.obsm["X_umap"] = graph.obsm["X_umap"]
    mdata.obs["leiden"] = graph.obs["leiden"].to_numpy()
    mdata.obs["leiden"] = mdata.obs["leiden"].astype("category")
    for key in ("distances", "connectivities"):
        mdata.obsp[key] = graph.obsp[key]
    mdata.uns["neighbors"] = dict(graph.uns["neighbors"], params=dict(graph.uns["neighbors"]["params"],
                                                                      use_rep="X_scmvp"))
    mdata.uns["umap"], mdata.uns["leiden"] = graph.uns["umap"], graph.uns["leiden"]
    log.info("latent UMAP and %d Leiden clusters (resolution %g)", mdata.obs["leiden"].nunique(), resolution)


def main(smk):
    path = require_file(smk.input.mdata, "preprocessed MuData")
    # the counts and the cell / feature tables only; the output is the input file plus what is added here
    mdata = read_h5mu_layer(path, "counts")
    model = SCMVP.load(smk.input.model, mdata, device=smk.params.device, path_of_data=path)
    if model.batch_categories is not None:
        log.info("batches (obs['%s']): %s; imputed in %s", model.batch_key, ", ".join(model.batch_categories),
                 smk.params.reference_batch or "each cell's own batch")
    write_imputed(model, mdata, smk.output.mdata, chunk_size=smk.params.chunk_size,
                  reference_batch=smk.params.reference_batch, dtype=smk.params.dtype, source=path,
                  annotate=lambda m: add_umap_and_leiden(m, smk.params.n_neighbors, smk.params.leiden_resolution,
                                                         smk.params.seed))


run(main, snakemake)  # noqa: F821 - provided by Snakemake
