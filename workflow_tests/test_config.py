"""Config checks at parse time: a config that breaks the schema, or names a missing input, stops `snakemake -n`
with a message naming the offending key or dataset: one short line per problem, never the schema."""
from __future__ import annotations

import copy

import pytest
import yaml

from conftest import REPO, TINY_CONFIG, snakemake
from scmvp.config_check import config_problems, key_locations, load_schema

SCHEMA_PATH = REPO / "config" / "schemas" / "config.schema.yaml"
# The output of a failed dry run: Snakemake's profile note + the message; validate()'s schema dump was
# 137 lines for one misspelled dataset key and 870 for a misplaced top-level key.
MAX_OUTPUT_LINES = 5


def dry_run(tmp_path, config, targets=()):
    proc = snakemake(tmp_path, config, targets=targets, extra=("-n",), check=False, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def real_path(shared_data):
    return str(shared_data / "scicar_a549")


def assert_short(output):
    """The message alone: a few lines, no schema dump."""
    assert len(output.splitlines()) <= MAX_OUTPUT_LINES, output[-3000:]
    for dump in ("$schema", "definitions", "Failed validating", "On instance"):
        assert dump not in output, output[-3000:]


@pytest.mark.parametrize("config, expected", [
    ({"datasets": {"mine": {"technology": "nanopore", "path": "REAL"}}},
     "config: datasets.mine.technology: 'nanopore' is not one of [simulated, 10x_multiome, snare, share, scicar, "
     "pairedseq, mtx, h5mu]"),
    ({"datasets": {"mine": {"technology": "mtx"}}}, "config: datasets.mine: 'path' is a required property"),
    ({"datasets": {"mine": {"technology": "mtx", "path": "REAL"}}, "model": {"n_epochs": "ten"}},
     "config: model.n_epochs: 'ten' is not of type 'integer'"),
    ({"datasets": {"mine": {"technology": "mtx", "path": "REAL", "labels": 3}}},
     "config: datasets.mine.labels: 3 is not of type 'string'"),
], ids=["unknown_technology", "missing_path", "n_epochs_not_integer", "labels_not_a_path"])
def test_schema_violation_names_the_key(tmp_path, real_path, config, expected):
    for ds in config["datasets"].values():
        if ds.get("path") == "REAL":
            ds["path"] = real_path
    code, output = dry_run(tmp_path, config)
    assert code != 0
    assert expected in output.splitlines(), output[-3000:]
    assert_short(output)


def test_misspelled_dataset_key_gives_one_line_with_suggestion(tmp_path):
    code, output = dry_run(tmp_path, {"datasets": {"pbmc": {"technology": "simulated", "lables": "labels.tsv"}}})
    assert code != 0
    lines = [line for line in output.splitlines() if line.startswith("config:")]
    assert lines == ["config: datasets.pbmc: unknown key 'lables' (allowed: technology, path, labels, label_column, "
                     "genome, url, simulate, references, bulk_label_map, trajectory, samples); did you mean 'labels'?"], output
    assert_short(output)


def test_misplaced_top_level_key_says_where_it_belongs(tmp_path):
    code, output = dry_run(tmp_path, {"datasets": {"pbmc": {"technology": "simulated"}}, "genome": "hg38"})
    assert code != 0
    lines = [line for line in output.splitlines() if line.startswith("config:")]
    assert lines == ["config: unknown top-level key 'genome' (allowed: datasets, results, qc, model, benchmark, "
                     "validation, cre); 'genome' belongs in datasets.<name>"], output
    assert_short(output)


def test_misspelled_model_key_suggests_the_right_one(tmp_path):
    code, output = dry_run(tmp_path, {"datasets": {"pbmc": {"technology": "simulated"}}, "model": {"n_epoch": 5}})
    assert code != 0
    lines = [line for line in output.splitlines() if line.startswith("config:")]
    assert len(lines) == 1, output
    assert lines[0].startswith("config: model: unknown key 'n_epoch' (allowed: n_latent, n_components, "), output
    assert lines[0].endswith("did you mean 'n_epochs'?"), output
    assert_short(output)


def test_the_model_api_checks_its_config_as_the_workflow_does():
    """`SCMVP(..., config)` and the benchmarks' `--set` go through `model_config`: a wrong type or a misspelled
    key stops there with the workflow's one-line message, not later inside training (a text "null" for a weight
    once reached the trainer that way)."""
    from scmvp.config_check import ConfigError
    from scmvp.model import model_config

    with pytest.raises(ConfigError, match=r"^config: model: unknown key 'n_epoch' .*did you mean 'n_epochs'\?$"):
        model_config({"n_epoch": 5})
    with pytest.raises(ConfigError, match=r"^config: model.warmup_atac_weight: 'null' is not of type 'number', 'null'$"):
        model_config({"warmup_atac_weight": "null"})
    with pytest.raises(ConfigError, match=r"^config: model.n_latent: 1 is less than the minimum of 2$"):
        model_config({"n_latent": 1})
    assert model_config({"n_latent": 8, "warmup_atac_weight": None})["n_latent"] == 8
    resolved = model_config()
    assert model_config(resolved) == resolved          # a saved model's resolved config passes the check


# ------------------------------------------------------------------------------ the check itself, no Snakemake
@pytest.fixture(scope="module")
def schema():
    return load_schema(SCHEMA_PATH)


@pytest.mark.parametrize("config, expected", [
    ({"datasets": {"pbmc": {"technology": "simulated", "lables": "x"}}},
     ["config: datasets.pbmc: unknown key 'lables' (allowed: technology, path, labels, label_column, genome, url, "
      "simulate, references, bulk_label_map, trajectory, samples); did you mean 'labels'?"]),
    ({"datasets": {"pbmc": {"technology": "simulated"}}, "genome": "hg38"},
     ["config: unknown top-level key 'genome' (allowed: datasets, results, qc, model, benchmark, validation, cre); "
      "'genome' belongs in datasets.<name>"]),
    ({"datasets": {"pbmc": {"technology": "simulated"}}, "benchmark": {"n_epochs": 3}},
     ["config: benchmark: unknown key 'n_epochs' (allowed: methods, scvi, multivi, mofa_factors, mofa_iterations, "
      "n_neighbors, leiden_resolution, seeds, seed); 'n_epochs' belongs in model"]),
    # the retired shared epoch key: one line saying what replaced it
    ({"datasets": {"pbmc": {"technology": "simulated"}}, "benchmark": {"scvi_epochs": 100}},
     ["config: benchmark: 'scvi_epochs' was removed: scVI and MultiVI now train with their own scvi-tools "
      "defaults; set benchmark.scvi.max_epochs, benchmark.multivi.max_epochs and validation.scvi_max_epochs "
      "instead (null = the library's default)"]),
    ({"datasets": {"pbmc": {"technology": "simulated"}}, "benchmark": {"multivi": {"max_epoch": 5}}},
     ["config: benchmark.multivi: unknown key 'max_epoch' (allowed: max_epochs, early_stopping, "
      "min_cell_fraction); did you mean 'max_epochs'?"]),
    ({"datasets": {"pbmc": {"technology": "simulated", "simulate": {"n_cell": 300}}}},
     ["config: datasets.pbmc.simulate: unknown key 'n_cell' (allowed: n_cells, n_genes, n_peaks, n_types, "
      "n_chromosomes, seed, scenario, rna_umis, atac_fragments); did you mean 'n_cells'?"]),
    ({"datasets": {"mine": {"technology": "mtx"}}}, ["config: datasets.mine: 'path' is a required property"]),
    ({"datasets": {"mine": {"technology": "nanopore", "path": "x"}}},
     ["config: datasets.mine.technology: 'nanopore' is not one of [simulated, 10x_multiome, snare, share, scicar, "
      "pairedseq, mtx, h5mu]"]),
    ({"datasets": {"pbmc": {"technology": "simulated"}}, "model": {"n_components": "many"}},
     ["config: model.n_components: 'many' is none of: integer >= 1; one of [auto]"]),
    ({"datasets": {"pbmc": {"technology": "simulated"}}, "model": {"warmup_epochs": 1.5, "cycle_start_epoch": 0.5}},
     ["config: model.warmup_epochs: 1.5 is none of: integer >= 0; number > 0 and < 1"]),
    ({"datasets": {"pbmc": {"technology": "simulated"}}, "model": {"atac_weight_candidates": [0.05, -1]}},
     ["config: model.atac_weight_candidates.1: -1 is less than the minimum of 0"]),
    ({"datasets": {"pbmc": {"technology": "simulated"}}, "model": {"atac_weight_candidates": 0.3}},
     ["config: model.atac_weight_candidates: 0.3 is not of type 'array'"]),
    ({"datasets": {"my data": {"technology": "simulated"}}},
     ["config: datasets: invalid key 'my data': 'my data' does not match '^[A-Za-z0-9_.-]+$'"]),
    ({"datasets": {}}, ["config: datasets: needs at least 1 entry"]),
    ({}, ["config: 'datasets' is a required property"]),
], ids=["dataset_typo", "misplaced_genome", "key_of_another_section", "retired_scvi_epochs", "multivi_typo",
        "simulate_typo", "missing_path",
        "unknown_technology", "one_of", "schedule_fraction", "negative_weight_candidate", "weight_candidates_list",
        "dataset_name", "no_dataset", "no_datasets_key"])
def test_config_problems_one_line_each(schema, config, expected):
    assert config_problems(config, schema) == expected


def test_config_problems_caps_the_number_of_lines(schema):
    config = {"datasets": {"pbmc": {"technology": "simulated"}}, "a": 1, "b": 2, "c": 3, "d": 4, "e": 5}
    problems = config_problems(config, schema, max_problems=3)
    assert len(problems) == 4 and problems[-1] == "config: ... and 2 more problem(s)"


def test_valid_configs_have_no_problems(schema):
    assert config_problems(TINY_CONFIG, schema) == []
    shipped = [REPO / "config" / name for name in ("config.yaml", "paper.yaml", "three_libraries.yaml")]
    shipped += sorted((REPO / "bench").glob("*.yaml"))
    for path in shipped:
        assert config_problems(yaml.safe_load(path.read_text()), schema) == [], path.name


def test_scvi_and_multivi_keys_validate_and_default_to_the_library(tmp_path):
    """benchmark.scvi / benchmark.multivi / validation.scvi_max_epochs: valid, and Snakemake's validate fills
    the library defaults (null epochs, early stopping as scvi-tools, MultiVI's 1% filter) into nested keys."""
    from snakemake.utils import validate

    config = {"datasets": {"pbmc": {"technology": "simulated"}}, "benchmark": {"multivi": {"max_epochs": 7}}}
    schema = load_schema(SCHEMA_PATH)
    assert config_problems(config, schema) == []
    validate(config, str(SCHEMA_PATH))
    assert config["benchmark"]["scvi"] == {"max_epochs": None, "early_stopping": False}
    assert config["benchmark"]["multivi"] == {"max_epochs": 7, "early_stopping": True, "min_cell_fraction": 0.01}
    assert config["validation"]["scvi_max_epochs"] is None
    bad = {"datasets": {"pbmc": {"technology": "simulated"}}, "benchmark": {"scvi": {"max_epochs": 0}}}
    assert config_problems(bad, schema) == ["config: benchmark.scvi.max_epochs: 0 is less than the minimum of 1"]


def test_key_locations(schema):
    places = key_locations(schema)
    assert places["genome"] == ["datasets.<name>"]
    assert places["n_epochs"] == ["model"]
    assert places["md5"] == ["datasets.<name>.url.<name>"]
    assert places["datasets"] == ["the top level"]


def keys_without_description(schema) -> list[str]:
    """Every entry of every `properties` mapping (also under definitions, if, items...) lacking a description."""
    missing = []

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "properties" and isinstance(value, dict):
                    for name, sub in value.items():
                        description = sub.get("description") if isinstance(sub, dict) else None
                        if not (isinstance(description, str) and description.strip()):
                            missing.append(f"{path}.{name}".lstrip("."))
                        walk(sub, f"{path}.{name}")
                else:
                    walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, path)

    walk(schema, "")
    return missing


def test_every_schema_key_has_a_description(schema):
    assert keys_without_description(schema) == []
    # the walk does find a key without one, also a nested one under definitions
    broken = copy.deepcopy(schema)
    del broken["definitions"]["dataset"]["properties"]["simulate"]["properties"]["n_cells"]["description"]
    assert keys_without_description(broken) == ["/definitions/dataset.simulate.n_cells"]
