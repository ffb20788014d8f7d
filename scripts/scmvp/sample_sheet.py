"""The sample sheet of a dataset made of several libraries: read, checked, validated (light: pandas only).

Read at parse time by rules/common.smk (so it imports no AnnData stack); the join itself is
:mod:`scmvp.samples`. Columns, conventions and checks: see :func:`read_sample_sheet` and
``config/schemas/samples.schema.yaml``.
"""
from __future__ import annotations

import os
import re

import numpy as np
import pandas as pd
import yaml

from .errors import InputError

SEPARATOR = "#"

REQUIRED_COLUMNS = ("sample", "technology", "path")
OPTIONAL_COLUMNS = ("labels", "label_column")
# obs columns the join sets itself (a covariate may not take these names)
RESERVED_OBS = ("barcode", "label")
SCHEMA = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "config", "schemas",
                                      "samples.schema.yaml"))


def split_cell_names(names) -> pd.DataFrame:
    """Inverse of :func:`scmvp.samples.cell_names`: columns sample, barcode (split at the first ``#``)."""
    parts = pd.Index(names).astype(str).str.split(SEPARATOR, n=1, expand=True)
    return pd.DataFrame({"sample": parts.get_level_values(0), "barcode": parts.get_level_values(1)})


# ------------------------------------------------------------------------------------------- the sheet
def read_sample_sheet(path, schema=SCHEMA) -> pd.DataFrame:
    """The sample sheet at ``path`` as a table (one row per sample, sheet order), paths made absolute.

    Raises InputError naming ``path`` (and the row) for: a missing file, missing required columns, an empty
    sheet, a duplicated sample name, a sample name holding the barcode separator ``#``, an unknown
    technology, a sample path or labels file that does not exist, and anything else the schema rejects.
    Covariate columns whose values all parse as numbers become numbers.
    """
    if not os.path.isfile(path):
        raise InputError(path, "sample sheet does not exist")
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, comment=None, skip_blank_lines=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot read the sample sheet as a tab-separated table ({err})") from None
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(path, f"sample sheet lacks column(s) {', '.join(missing)} (header: "
                               f"{', '.join(table.columns)}; needs sample, technology, path, optionally labels, "
                               f"label_column and covariates, tab-separated)")
    table = table.apply(lambda col: col.str.strip())
    table = table.replace("", np.nan)
    if table.empty:
        raise InputError(path, "sample sheet has no sample (a header line only)")
    for column in REQUIRED_COLUMNS:
        empty = table[column].isna().to_numpy()
        if empty.any():
            raise InputError(path, f"row {_row(np.flatnonzero(empty)[0])}: empty {column!r}")
    names = table["sample"]
    dup = names[names.duplicated()]
    if len(dup):
        rows = [_row(i) for i in np.flatnonzero((names == dup.iloc[0]).to_numpy())]
        raise InputError(path, f"duplicate sample name {dup.iloc[0]!r} (rows {', '.join(map(str, rows))}): each "
                               f"sample needs its own name")
    for i, name in enumerate(names):
        if SEPARATOR in name:
            raise InputError(path, f"row {_row(i)}: sample name {name!r} contains {SEPARATOR!r}, the separator of "
                                   f"the cell names {{sample}}{SEPARATOR}{{barcode}}")
    technologies = sample_technologies(schema)
    for i, (name, technology) in enumerate(zip(names, table["technology"])):
        if technology not in technologies:
            raise InputError(path, f"row {_row(i)} (sample {name!r}): unknown technology {technology!r} "
                                   f"(known: {', '.join(technologies)})")
    folder = os.path.dirname(os.path.abspath(path))
    for column in ("path", "labels"):
        if column not in table.columns:
            continue
        for i, (name, value) in enumerate(zip(names, table[column])):
            if isinstance(value, str):
                resolved = value if os.path.isabs(value) else os.path.normpath(os.path.join(folder, value))
                if not os.path.exists(resolved):
                    raise InputError(path, f"row {_row(i)} (sample {name!r}): {column} {value} does not exist"
                                           + ("" if value == resolved else f" (read as {resolved})"))
                table.loc[table.index[i], column] = resolved
    reserved = [c for c in covariate_columns(table) if c in RESERVED_OBS]
    if reserved:
        raise InputError(path, f"column {reserved[0]!r} cannot be a covariate: the joined cells' obs[{reserved[0]!r}] "
                               f"is set by the pipeline ({', '.join(RESERVED_OBS)}); rename it")
    for column in covariate_columns(table):
        numbers = pd.to_numeric(table[column], errors="coerce")
        if numbers.notna().sum() == table[column].notna().sum():
            table[column] = numbers
    _validate_schema(table, path, schema)
    return table.reset_index(drop=True)


def _row(i) -> int:
    """Line number of table row ``i`` in the file (the header is line 1)."""
    return int(i) + 2


def _validate_schema(table: pd.DataFrame, path, schema):
    """snakemake.utils.validate on the table; its schema error becomes one line naming the file and row."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    try:
        validate(table, os.path.abspath(schema), set_default=False)
    except WorkflowError as err:
        text = str(err)
        row = re.search(r"row (\d+) of data frame", text)
        message = re.search(r"ValidationError: (.*)", text)
        column = re.search(r"On instance\[['\"]([^'\"]+)['\"]\]", text)
        where = f"row {_row(int(row.group(1)))}" if row else "a row"
        name = table["sample"].iloc[int(row.group(1))] if row else None
        raise InputError(path, f"{where}{f' (sample {name!r})' if name else ''}: "
                               f"{column.group(1) + ': ' if column else ''}"
                               f"{message.group(1) if message else text.splitlines()[0]} "
                               f"(schema config/schemas/samples.schema.yaml)") from None


def covariate_columns(table: pd.DataFrame) -> list[str]:
    """The sheet's covariates: every column but sample, technology, path, labels and label_column."""
    return [c for c in table.columns if c not in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)]


def sheet_records(table: pd.DataFrame) -> list[dict]:
    """The sheet as JSON-friendly records (NaN -> None): a rule's params, so that editing the sheet reruns it."""
    records = []
    for row in table.to_dict("records"):
        records.append({k: (None if _missing(v) else (v.item() if isinstance(v, np.generic) else v))
                        for k, v in row.items()})
    return records


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def sheet_has_labels(table: pd.DataFrame) -> bool:
    """Whether every sample names a labels file or a label column (the joined cells are then all labelled)."""
    has = pd.Series(False, index=table.index)
    for column in OPTIONAL_COLUMNS:
        if column in table.columns:
            has |= table[column].notna()
    return bool(has.all())


def sample_technologies(schema=SCHEMA) -> list[str]:
    """The technologies a sample may have (the schema's enum: every ingest reader's but `simulated`)."""
    with open(schema) as fh:
        return list(yaml.safe_load(fh)["properties"]["technology"]["enum"])


