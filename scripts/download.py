"""Rule `download`: one published file, MD5-checked (see scmvp.download)."""
from scmvp.download import download
from scmvp.rule import run


def main(smk):
    download(smk.params.url, smk.output[0], md5=smk.params.md5 or None, timeout=smk.params.timeout)


run(main, snakemake)  # noqa: F821 - injected by Snakemake
