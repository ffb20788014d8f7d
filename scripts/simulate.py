"""Rule `simulate`: write the embedded example (Cell Ranger ARC h5, labels, references, truth)."""
from scmvp.rule import log, run
from scmvp.simulate import simulate
from scmvp.simulate_write import summary, write_simulated
from scmvp.simulate_tissue import simulate_tissue

TISSUE_ONLY = ("rna_umis", "atac_fragments")


def main(smk):
    settings = dict(smk.params.simulate)
    if settings.pop("scenario", "example") == "tissue":
        sim = simulate_tissue(**settings, genome=smk.params.genome)
        log.info("chromatin-only types (sibling): %s; RNA-only types (sibling): %s",
                 sim.extra["chromatin_only"], sim.extra["rna_only"])
    else:
        for key in TISSUE_ONLY:  # the schema fills their defaults; the example has its own depth model
            settings.pop(key, None)
        sim = simulate(**settings, genome=smk.params.genome)
    log.info("simulated: %s", summary(sim))
    write_simulated(sim, dict(smk.output.items()))


run(main, snakemake)  # noqa: F821 - injected by Snakemake
