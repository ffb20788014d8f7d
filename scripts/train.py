"""Rules `train` and `train_seed`: fit scMVP on results/{ds}/preprocessed.h5mu -> model.pt + history.tsv
(resumable); with output `latent` (train_seed, a benchmark seed's extra model) also the latent means of every
cell as an embedding tsv (barcode, dim_1..dim_n), what the benchmark reads."""
import logging

from scmvp.errors import require_file
from scmvp.io.h5mu_parts import read_h5mu_layer
from scmvp.model import SCMVP
from scmvp.rule import run, write_tsv

log = logging.getLogger("scmvp.train")


def main(smk):
    path = require_file(smk.input.mdata, "preprocessed MuData")
    mdata = read_h5mu_layer(path, "counts")          # the model needs the raw counts only
    config = dict(smk.params.model, threads=smk.threads)
    model = SCMVP.from_mudata(mdata, config, path=path)
    log.info("scMVP on %d cells, %d genes, %d peaks, %s, device %s, %d parameters", model.data.n_cells,
             model.data.n_genes, model.data.n_peaks,
             f"{model.n_batches} batches (obs['{model.batch_key}'])" if model.n_batches else "no batches",
             model.device, model.n_parameters())
    # per-epoch progress goes through logging (the rule log and stderr, so SLURM job logs show it too)
    history = model.train(checkpoint_dir=smk.params.checkpoints, progress=False)
    write_tsv(history, smk.output.history)
    model.save(smk.output.model)
    if "latent" in smk.output.keys():
        from scmvp import baselines

        latent = model.get_latent()
        baselines.write_embedding(latent, mdata.obs_names.astype(str), smk.output.latent)
        log.info("latent %s of seed %s written", latent.shape, config["seed"])


run(main, snakemake)  # noqa: F821 - provided by Snakemake
