"""Fetching the published input files: download with an MD5 check, then unpack into a dataset's `path`."""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import urllib.error
import urllib.request

from .errors import InputError
from .rule import atomic_path

log = logging.getLogger(__name__)
CHUNK = 1 << 20
TARBALL_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2")


def md5sum(path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest, md5: str | None = None, timeout: float = 60.0) -> str:
    """Stream `url` (http(s), ftp or file) to `dest`; return its MD5.

    The file appears at `dest` only complete and, when `md5` is given, matching it; a mismatch raises
    InputError naming the URL and both checksums, and leaves nothing behind.
    """
    log.info("downloading %s -> %s", url, dest)
    with atomic_path(dest) as tmp:
        digest = hashlib.md5()
        size = 0
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    digest.update(block)
                    size += len(block)
        except (urllib.error.URLError, OSError, ValueError) as err:
            # A network failure is not the user's fault: raise it as is, so Snakemake's retries apply.
            raise OSError(f"download of {url} failed: {err}") from err
        got = digest.hexdigest()
        if md5 and got.lower() != md5.lower():
            raise InputError(url, f"MD5 mismatch: expected {md5.lower()}, got {got} ({size} bytes); "
                                  "the file changed upstream or the transfer was corrupted")
    log.info("%s: %d bytes, md5 %s", dest, size, got)
    return got


def is_tarball(name: str) -> bool:
    return name.endswith(TARBALL_SUFFIXES)


def extract(tarball, dest_dir):
    """Extract `tarball` into `dest_dir`, refusing members that would land outside it."""
    os.makedirs(dest_dir, exist_ok=True)
    try:
        with tarfile.open(tarball) as tar:
            tar.extractall(dest_dir, filter="data")
    except tarfile.TarError as err:
        raise InputError(tarball, f"not a readable tar archive: {err}") from err


def place(src, dest):
    """Hard-link `src` to `dest` (copy across file systems)."""
    os.makedirs(os.path.dirname(os.path.abspath(dest)) or ".", exist_ok=True)
    if os.path.exists(dest):
        os.remove(dest)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def unpack(files: dict, path, path_is_file: bool, labels=None):
    """Lay the downloaded `files` (name -> local file) out as the dataset's `path`.

    The file named like `labels` goes to `labels`; when `path` is a file, the single remaining file
    becomes it; otherwise tarballs are extracted into the folder `path` and other files linked into it.
    """
    labels_name = os.path.basename(labels) if labels else None
    rest = {name: src for name, src in files.items() if name != labels_name}
    if labels_name in files:
        place(files[labels_name], labels)
    if path_is_file:
        if len(rest) != 1:
            raise InputError(path, f"a file path takes exactly one downloaded file, got {sorted(rest)}")
        place(next(iter(rest.values())), path)
        return
    os.makedirs(path, exist_ok=True)
    for name, src in rest.items():
        if is_tarball(name):
            extract(src, path)
        else:
            place(src, os.path.join(path, name))
