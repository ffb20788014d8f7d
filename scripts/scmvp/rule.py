"""Helpers shared by the thin rule scripts in scripts/*.py."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import traceback

from .errors import InputError

log = logging.getLogger("scmvp")


def setup_logging(log_file=None):
    """Log to stderr and, when given, to the rule's log file."""
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run(main, smk):
    """Run ``main(smk)`` for a Snakemake ``script:``; bad input ends in one clear error line.

    InputError (a problem the user can fix) is reported as ``ERROR: <file>: <problem>`` without a
    traceback; any other exception keeps its traceback in the log (it is a bug, not bad input).
    """
    log_file = smk.log[0] if len(smk.log) else None
    setup_logging(log_file)
    try:
        main(smk)
    except InputError as err:
        log.error("%s", err)
        print(f"ERROR: {err}", file=sys.stderr)
        _remove_outputs(smk)
        sys.exit(1)
    except Exception:  # noqa: BLE001 - a bug: keep the traceback in the log
        log.error("unexpected failure in rule %s:\n%s", getattr(smk, "rule", "?"), traceback.format_exc())
        _remove_outputs(smk)
        raise


def _remove_outputs(smk):
    for path in smk.output:
        if os.path.isfile(path):
            os.remove(path)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it to ``path`` only when the block succeeds.

    A rule therefore never leaves a half-written output behind.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    base, ext = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{ext}", dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp creates 0600; outputs get the usual mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def nullable_strings_writable():
    """Let anndata write pandas' nullable string arrays. pandas 3 stores every string column as one, and anndata
    (>= 0.11) writes them only when asked, because anndata < 0.11 cannot read them; this pipeline's environments
    pin anndata 0.12. Without it, `scmvp` imported into a pandas-3 environment fails at its first h5mu write."""
    import anndata

    with anndata.settings.override(allow_write_nullable_strings=True):
        yield


def write_h5mu(mdata, path):
    """Write a MuData atomically (temp file, then rename)."""
    with atomic_path(path) as tmp, nullable_strings_writable():
        mdata.write(tmp)


def write_tsv(df, path, **kwargs):
    """Write a DataFrame as TSV atomically."""
    kwargs.setdefault("sep", "\t")
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, **kwargs)
