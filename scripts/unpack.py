"""Rules `unpack_<dataset>`: lay the downloaded files out as the dataset's `path` (and `labels`)."""
from scmvp.download import unpack
from scmvp.rule import run


def main(smk):
    files = dict(zip(smk.params.names, smk.input))
    labels = smk.output[1] if smk.params.has_labels else None
    unpack(files, smk.output[0], smk.params.path_is_file, labels=labels)


run(main, snakemake)  # noqa: F821 - injected by Snakemake
