"""config/paper.yaml builds the whole DAG (download -> ... -> train for every dataset), and the download
code fetches, checks and unpacks files for real (from a localhost HTTP server and file:// URLs)."""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import re
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest
import yaml

from conftest import REPO, snakemake
from scmvp.download import download, unpack
from scmvp.errors import InputError

PAPER = REPO / "config" / "paper.yaml"
PAPER_DATASETS = {"snare_cellline", "snare_p0_cortex", "scicar_a549", "pairedseq_cellmix", "share_skin", "pbmc10k"}


def dry_run_jobs(configfile: Path, *targets):
    """(rule, ds wildcard or None) of every job of a dry run."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", *targets, "--configfile", str(configfile),
                           "--nolock"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", proc.stdout):
        head = re.match(r"(?:local)?rule (\w+):", block)
        if head:
            ds = re.search(r"wildcards:.*\bds=([^,\s]+)", block)
            jobs.append((head.group(1), ds.group(1) if ds else None))
    return jobs


def test_paper_config_lists_the_papers_datasets_with_public_urls():
    config = yaml.safe_load(PAPER.read_text())
    assert PAPER_DATASETS <= set(config["datasets"])
    for name, ds in config["datasets"].items():
        assert ds["url"], name
        for file_name, entry in ds["url"].items():
            assert entry["url"].startswith("https://"), entry
            assert entry["url"].rsplit("/", 1)[1].endswith(file_name.rsplit("_", 1)[-1]), (file_name, entry)
            if "md5" in entry:
                assert re.fullmatch(r"[0-9a-f]{32}", entry["md5"]), entry
        if "ftp.ncbi.nlm.nih.gov/geo/series" in str(ds["url"]):
            for entry in ds["url"].values():
                gse = re.search(r"/(GSE\d+)/suppl/", entry["url"])
                if gse:
                    assert f"/{gse.group(1)[:-3]}nnn/{gse.group(1)}/" in entry["url"]


def test_paper_config_dry_run_builds_download_to_training_for_every_dataset():
    jobs = dry_run_jobs(PAPER)
    rules = {rule for rule, _ in jobs}
    for ds in PAPER_DATASETS:
        per_ds = {rule for rule, wc in jobs if wc == ds}
        assert f"unpack_{ds}" in rules, ds
        assert {"download", "ingest", "preprocess", "train"} <= per_ds, (ds, sorted(per_ds))


# ---- the download code on real transfers ----------------------------------------------------------------

@pytest.fixture(scope="module")
def http_root(tmp_path_factory):
    """A localhost HTTP server over a folder; yields (folder, base URL)."""
    root = tmp_path_factory.mktemp("www")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def make_tarball(path: Path, members: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_download_over_http_checks_md5(http_root, tmp_path):
    root, base = http_root
    data = b"barcode\tlabel\n" + b"AAAC\tB\n" * 5000
    (root / "labels.tsv").write_bytes(data)
    dest = tmp_path / "out" / "labels.tsv"
    assert download(f"{base}/labels.tsv", dest, md5=md5(data)) == md5(data)
    assert dest.read_bytes() == data


def test_md5_mismatch_is_a_clear_error_and_leaves_no_file(http_root, tmp_path):
    root, base = http_root
    (root / "matrix.mtx.gz").write_bytes(b"not what was published")
    dest = tmp_path / "matrix.mtx.gz"
    with pytest.raises(InputError, match=r"matrix\.mtx\.gz: MD5 mismatch: expected 0{32}, got [0-9a-f]{32}"):
        download(f"{base}/matrix.mtx.gz", dest, md5="0" * 32)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary part of it


def test_missing_url_raises_for_a_retry(http_root, tmp_path):
    _, base = http_root
    with pytest.raises(OSError, match="download of .*/absent.h5 failed: HTTP Error 404"):
        download(f"{base}/absent.h5", tmp_path / "absent.h5")
    assert list(tmp_path.iterdir()) == []


def test_file_url_and_unpack_of_a_tarball(tmp_path):
    tarball = tmp_path / "GSE0_RAW.tar.gz"
    make_tarball(tarball, {"Cell_Mix_RNA/matrix.mtx": b"%%MatrixMarket\n", "Cell_Mix_DNA/genes.tsv": b"chr1:1-2\n"})
    fetched = tmp_path / "downloads" / tarball.name
    download(tarball.as_uri(), fetched, md5=md5(tarball.read_bytes()))
    unpack({tarball.name: fetched}, tmp_path / "geo", path_is_file=False)
    assert (tmp_path / "geo" / "Cell_Mix_RNA" / "matrix.mtx").read_bytes() == b"%%MatrixMarket\n"
    assert (tmp_path / "geo" / "Cell_Mix_DNA" / "genes.tsv").exists()


def test_unpack_refuses_a_tarball_escaping_its_folder(tmp_path):
    tarball = tmp_path / "evil.tar.gz"
    make_tarball(tarball, {"../outside.txt": b"x"})
    with pytest.raises(Exception, match="outside|path"):
        unpack({"evil.tar.gz": tarball}, tmp_path / "geo", path_is_file=False)
    assert not (tmp_path / "outside.txt").exists()


def fetched_config(base, files, tmp_path, labels=True):
    return {
        "datasets": {"fetched": {
            "technology": "pairedseq",
            "path": str(tmp_path / "data" / "fetched" / "geo"),
            **({"labels": str(tmp_path / "data" / "fetched" / "labels.tsv")} if labels else {}),
            "url": {name: {"url": f"{base}/{name}", **({"md5": digest} if digest else {})}
                    for name, digest in files.items()},
        }},
    }


def test_download_rules_fetch_and_unpack_a_dataset(http_root, tmp_path):
    root, base = http_root
    make_tarball(root / "GSE1_Cell_Mix.tar.gz", {"Cell_Mix_RNA/barcodes.tsv": b"c1\nc2\n"})
    (root / "labels.tsv").write_bytes(b"barcode\tlabel\nc1\tA\nc2\tB\n")
    config = fetched_config(base, {"GSE1_Cell_Mix.tar.gz": md5((root / "GSE1_Cell_Mix.tar.gz").read_bytes()),
                                   "labels.tsv": None}, tmp_path)
    ds = config["datasets"]["fetched"]
    snakemake(tmp_path, config, targets=[ds["path"], ds["labels"]])
    assert (Path(ds["path"]) / "Cell_Mix_RNA" / "barcodes.tsv").read_bytes() == b"c1\nc2\n"
    assert Path(ds["labels"]).read_bytes().startswith(b"barcode\tlabel\n")
    assert not list((tmp_path / "results" / "fetched" / "downloads").glob("*"))  # temp() downloads removed


def test_download_rule_stops_on_md5_mismatch_with_the_file_named(http_root, tmp_path):
    root, base = http_root
    (root / "GSE2_Cell_Mix.tar.gz").write_bytes(b"truncated")
    config = fetched_config(base, {"GSE2_Cell_Mix.tar.gz": "f" * 32}, tmp_path, labels=False)
    ds = config["datasets"]["fetched"]
    proc = snakemake(tmp_path, config, targets=[ds["path"]], extra=["--retries", "0"], check=False)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "GSE2_Cell_Mix.tar.gz: MD5 mismatch: expected ffffffff" in output
    assert "Traceback" not in output
    assert not Path(ds["path"]).exists()
    assert not list((tmp_path / "results" / "fetched" / "downloads").glob("*"))
