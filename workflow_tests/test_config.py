"""Config checks at parse time: a config that breaks the schema, or names a missing input, stops `snakemake -n`
with a message naming the offending key or dataset."""
from __future__ import annotations

import pytest

from conftest import snakemake


def dry_run(tmp_path, config, targets=()):
    proc = snakemake(tmp_path, config, targets=targets, extra=("-n",), check=False, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def real_path(shared_data):
    return str(shared_data / "scicar_a549")


@pytest.mark.parametrize("config, expected", [
    ({"datasets": {"mine": {"technology": "nanopore", "path": "REAL"}}},
     ["'nanopore' is not one of", "instance['datasets']['mine']['technology']"]),
    ({"datasets": {"mine": {"technology": "mtx"}}}, ["'path' is a required property", "instance['datasets']['mine']"]),
    ({"datasets": {"mine": {"technology": "mtx", "path": "REAL"}}, "model": {"n_epochs": "ten"}},
     ["'ten' is not of type 'integer'", "instance['model']['n_epochs']"]),
    ({"datasets": {"mine": {"technology": "mtx", "path": "REAL", "labels": 3}}},
     ["3 is not of type 'string'", "instance['datasets']['mine']['labels']"]),
], ids=["unknown_technology", "missing_path", "n_epochs_not_integer", "labels_not_a_path"])
def test_schema_violation_names_the_key(tmp_path, real_path, config, expected):
    for ds in config["datasets"].values():
        if ds.get("path") == "REAL":
            ds["path"] = real_path
    code, output = dry_run(tmp_path, config)
    assert code != 0
    for text in expected:
        assert text in output, output[-3000:]


def test_missing_input_path_names_the_dataset(tmp_path):
    missing = tmp_path / "no_such_folder"
    code, output = dry_run(tmp_path, {"datasets": {"mine": {"technology": "mtx", "path": str(missing)}}})
    assert code != 0
    assert f"datasets.mine.path: {missing} does not exist" in output, output[-3000:]


def test_missing_labels_file_names_the_dataset(tmp_path, real_path):
    missing = tmp_path / "labels.tsv"
    code, output = dry_run(tmp_path, {"datasets": {"mine": {"technology": "mtx", "path": real_path,
                                                            "labels": str(missing)}}})
    assert code != 0
    assert f"datasets.mine.labels: {missing} does not exist" in output, output[-3000:]


def test_valid_config_plans_ingest(tmp_path, real_path, shared_data):
    target = tmp_path / "results" / "mine" / "ingested.h5mu"
    code, output = dry_run(tmp_path, {"datasets": {"mine": {"technology": "mtx", "path": real_path,
                                                            "labels": str(shared_data / "scicar_a549" / "labels.tsv"),
                                                            "label_column": "label"}}}, targets=[str(target)])
    assert code == 0, output[-3000:]
    assert "rule ingest:" in output and str(target) in output
