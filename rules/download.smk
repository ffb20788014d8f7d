# Datasets with `url:` (config/paper.yaml) are fetched by the workflow: each file is downloaded (retried,
# MD5-checked) into results/{ds}/downloads/, then `unpack_{ds}` lays them out as the dataset's `path`
# (tarballs extracted) and, when a downloaded file is named like it, `labels`.
# The downloads are temp(): they are removed once unpacked.

# Dataset -> its layout: `path` is one file when the single non-label download carries its name and is no
# tarball, else a folder.
DOWNLOAD_LAYOUT = {}
for _ds in DATASETS:
    _cfg = dataset(_ds)
    if is_simulated(_ds) or not _cfg.get("url"):
        continue
    _labels = _cfg.get("labels")
    _labels_name = os.path.basename(_labels) if _labels and os.path.basename(_labels) in _cfg["url"] else None
    _rest = [name for name in _cfg["url"] if name != _labels_name]
    _path = _cfg["path"].rstrip("/")
    DOWNLOAD_LAYOUT[_ds] = {
        "path": _path,
        "labels": _labels if _labels_name else None,
        "path_is_file": _rest == [os.path.basename(_path)]
        and not _rest[0].endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2")),
    }


rule download:
    output:
        temp(os.path.join(RESULTS, "{ds}", "downloads", "{file}")),
    params:
        url=lambda wc: dataset(wc.ds)["url"][wc.file]["url"],
        md5=lambda wc: dataset(wc.ds)["url"][wc.file].get("md5", ""),
        timeout=120,
    log:
        os.path.join(RESULTS, "{ds}", "logs", "download", "{file}.log"),
    benchmark:
        os.path.join(RESULTS, "{ds}", "benchmarks", "download", "{file}.tsv")
    wildcard_constraints:
        file=r"[^/]+",
    retries: 3
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, attempt: 480 * attempt,
    script:
        "../scripts/download.py"


for _ds, _layout in DOWNLOAD_LAYOUT.items():

    rule:
        name:
            f"unpack_{_ds}"
        input:
            [out(_ds, "downloads", name) for name in dataset(_ds)["url"]],
        output:
            _layout["path"] if _layout["path_is_file"] else directory(_layout["path"]),
            [_layout["labels"]] if _layout["labels"] else [],
        params:
            names=list(dataset(_ds)["url"]),
            path_is_file=_layout["path_is_file"],
            has_labels=_layout["labels"] is not None,
        log:
            out(_ds, "logs", "unpack.log"),
        benchmark:
            out(_ds, "benchmarks", "unpack.tsv")
        conda:
            "../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=lambda wildcards, attempt: 1000 * attempt,
            runtime=lambda wildcards, attempt: 240 * attempt,
        script:
            "../scripts/unpack.py"
