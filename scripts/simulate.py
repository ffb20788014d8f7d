"""Rule `simulate`: write the embedded example (Cell Ranger ARC h5, labels, references, truth)."""
from scmvp.rule import log, run
from scmvp.simulate import simulate, summary, write_simulated


def main(smk):
    sim = simulate(**dict(smk.params.simulate), genome=smk.params.genome)
    log.info("simulated: %s", summary(sim))
    write_simulated(sim, dict(smk.output.items()))


run(main, snakemake)  # noqa: F821 - injected by Snakemake
