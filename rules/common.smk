# Paths, input functions and wildcard constraints shared by every rule file.
import os
import re

from snakemake.exceptions import WorkflowError

from scmvp.errors import InputError
from scmvp.qc_fragments import find_arc_file
from scmvp.sample_sheet import read_sample_sheet, sheet_has_labels, sheet_records

RESULTS = config["results"]
DATASETS = list(config["datasets"])

# Files the `simulate` rule writes, relative to results/{ds}/simulated/.
SIMULATED = {
    "matrix": "outs/filtered_feature_bc_matrix.h5",
    "fragments": "outs/atac_fragments.tsv.gz",
    "fragments_index": "outs/atac_fragments.tsv.gz.tbi",
    "barcode_metrics": "outs/per_barcode_metrics.csv",
    "labels": "labels.tsv",
    "genes": "references/genes.gtf",
    "bulk_rna": "references/bulk_rna.tsv",
    "bulk_atac": "references/bulk_atac.bed",
    "H3K4me3": "references/H3K4me3.bed",
    "H3K27ac": "references/H3K27ac.bed",
    "links": "truth/links.tsv",
    "de_genes": "truth/de_genes.tsv",
    "pseudotime": "truth/pseudotime.tsv",
}
SIMULATED_MARKS = ["H3K4me3", "H3K27ac"]
# Labels of the simulator's continuous trajectory, root first.
SIMULATED_TRAJECTORY = {"root_label": "T_early", "labels": ["T_early", "T_late"]}


def dataset_pattern(names):
    """A wildcard constraint matching exactly `names`."""
    return "|".join(map(re.escape, names)) if names else "NO_DATASET"


# Datasets joined from a sample sheet (`samples:`, rule ingest_samples in rules/samples.smk) and those read
# from one input (rule ingest); each ingest rule is constrained to its own datasets.
SAMPLE_SHEET_DATASETS = [ds for ds in DATASETS if "samples" in config["datasets"][ds]]
SINGLE_INPUT_DATASETS = [ds for ds in DATASETS if ds not in SAMPLE_SHEET_DATASETS]


wildcard_constraints:
    ds=dataset_pattern(DATASETS),
    seed=r"\d+",


def dataset(ds):
    return config["datasets"][ds]


def is_sample_sheet(ds):
    return "samples" in dataset(ds)


def is_simulated(ds):
    return dataset(ds).get("technology") == "simulated"


def out(ds, *parts):
    """Path of an output of dataset `ds` under the results folder."""
    return os.path.join(RESULTS, ds, *parts)


def benchmark_seed_out(ds, seed, *parts):
    """Path of an output of the benchmark's run with seed `seed` (benchmark.seeds) of dataset `ds`:
    results/{ds}/benchmark/seeds/{seed}/..., the embeddings of every method and, for a seed other than
    model.seed, the extra scMVP model trained with it."""
    return out(ds, "benchmark", "seeds", str(seed), *parts)


def seed_log(ds, seed, name):
    """Log file of a rule run for one benchmark seed."""
    return out(ds, "logs", "benchmark", "seeds", str(seed), name)


def seed_benchmark(ds, seed, name):
    """Snakemake benchmark file (time, memory) of a rule run for one benchmark seed."""
    return out(ds, "benchmarks", "benchmark", "seeds", str(seed), name)


def model_mem_mb(wildcards, input, attempt):
    """Memory (MB) of train, train_seed and impute: the counts of preprocessed.h5mu in memory + the network, dense
    only per minibatch (impute: one chunk of imputed values at a time); more on every retry. Measured at 50,000 cells
    x 100k peaks with a 4.8 GB preprocessed.h5mu: train 4,469 MB, impute 4,762 MB (bench/RESULTS.md, stop 17)."""
    return max(4000, int(1.2 * input.size_mb) + 2000) * attempt


def is_model_seed(seed):
    """Whether benchmark seed `seed` is model.seed: its scMVP embedding is the main model's latent."""
    return int(seed) == int(config["model"]["seed"])


def scmvp_seed_latent(wildcards):
    """scMVP's latent for one benchmark seed (input of embed_scmvp): imputed.h5mu (obsm X_scmvp) of the main
    model when the seed is model.seed, else the latent of the extra model trained with that seed (train_seed)."""
    if is_model_seed(wildcards.seed):
        return out(wildcards.ds, "imputed.h5mu")
    return benchmark_seed_out(wildcards.ds, wildcards.seed, "scmvp", "latent.tsv")


def scmvp_seed_cost(wildcards):
    """Snakemake benchmark files of the model rules behind one seed's scMVP latent (its seconds and memory):
    train + impute for model.seed, train_seed (training + latent) for any other seed."""
    if is_model_seed(wildcards.seed):
        return [out(wildcards.ds, "benchmarks", name) for name in ("train.tsv", "impute.tsv")]
    return [seed_benchmark(wildcards.ds, wildcards.seed, "train_scmvp.tsv")]


def simulated_file(ds, key):
    return out(ds, "simulated", SIMULATED[key])


def raw_input(ds):
    """The dataset's input in its native layout (a file or a folder)."""
    if is_simulated(ds):
        return simulated_file(ds, "matrix")
    return dataset(ds)["path"]


def ingest_technology(ds):
    # The simulator writes the Cell Ranger ARC layout, so the real 10x reader is exercised.
    return "10x_multiome" if is_simulated(ds) else dataset(ds)["technology"]


def labels_file(ds):
    """The labels tsv of `ds`, or None."""
    if is_simulated(ds):
        return simulated_file(ds, "labels")
    return dataset(ds).get("labels")


def has_labels(ds):
    """Whether the cells of `ds` carry labels after ingest: from a labels file, from the cell annotation named by
    `label_column`, or (technology h5mu) from the file's own obs["label"]."""
    if is_sample_sheet(ds):
        return sheet_has_labels(sample_sheet(ds))
    if labels_file(ds) is not None or dataset(ds).get("label_column"):
        return True
    if dataset(ds)["technology"] == "h5mu" and os.path.isfile(dataset(ds)["path"]):
        import h5py

        with h5py.File(dataset(ds)["path"], "r") as h5:
            return any(key in h5 for key in ("obs/label", "mod/rna/obs/label", "mod/atac/obs/label"))
    return False


def reference(ds, name):
    """Path of reference `name` (genes, bulk_rna, bulk_atac, de_genes, links, pseudotime) or None."""
    if is_simulated(ds):
        return simulated_file(ds, name)
    return dataset(ds).get("references", {}).get(name)


def arc_qc_files(path):
    """The fragment-QC files of one Cell Ranger ARC dataset (`path`: its outs/ folder, the folder above, or the
    matrix in it; scmvp.qc_fragments.find_arc_file): atac_fragments.tsv.gz (+ its tabix index) and
    per_barcode_metrics.csv, each when present (a fragments file without its .tbi is not used)."""
    files = {}
    fragments = find_arc_file(path, "atac_fragments.tsv.gz")
    if fragments and os.path.isfile(f"{fragments}.tbi"):
        files.update(fragments=fragments, fragments_index=f"{fragments}.tbi")
    metrics = find_arc_file(path, "per_barcode_metrics.csv")
    if metrics:
        files["barcode_metrics"] = metrics
    return files


# input names of one sample's fragment-QC files in rule preprocess; prefixes that no sample name can blur (`tbi_`)
SAMPLE_QC_INPUT = {"fragments": "fragments_{}", "fragments_index": "tbi_{}", "barcode_metrics": "barcode_metrics_{}"}


def sample_arc_files(ds):
    """Sample sheet `ds`: sample -> its fragment-QC files (arc_qc_files), for its 10x_multiome samples that
    have any; {} for other datasets."""
    if not is_sample_sheet(ds):
        return {}
    files = {row["sample"]: arc_qc_files(row["path"]) for row in sample_sheet(ds).to_dict("records")
             if row["technology"] == "10x_multiome"}
    return {sample: found for sample, found in files.items() if found}


def sample_qc_inputs(ds):
    """Sample sheet `ds`: sample -> {"fragments": input name, "barcode_metrics": input name} of rule preprocess
    (its params; the rule script finds each sample's files under these names)."""
    return {sample: {kind: SAMPLE_QC_INPUT[kind].format(sample) for kind in files if kind != "fragments_index"}
            for sample, files in sample_arc_files(ds).items()}


def fragment_qc_inputs(ds):
    """Inputs of the fragment QC (preprocess): fragments (+ its tabix index), per-barcode metrics and
    the genes reference (TSSs), each when the dataset has it; for a sample sheet, each 10x_multiome sample's
    files, named per sample (SAMPLE_QC_INPUT: fragments_{sample}, tbi_{sample}, barcode_metrics_{sample})."""
    if is_simulated(ds):
        inputs = {key: simulated_file(ds, key) for key in ("fragments", "fragments_index", "barcode_metrics")}
    elif is_sample_sheet(ds):
        inputs = {SAMPLE_QC_INPUT[kind].format(sample): path
                  for sample, files in sample_arc_files(ds).items() for kind, path in files.items()}
    elif dataset(ds).get("technology") == "10x_multiome":
        inputs = arc_qc_files(dataset(ds)["path"])
    else:
        inputs = {}
    has_fragments = "fragments" in inputs or any("fragments" in files for files in sample_arc_files(ds).values())
    if has_fragments and reference(ds, "genes"):
        inputs["genes"] = reference(ds, "genes")
    return inputs


def histone_marks(ds):
    """Mark name -> BED path."""
    if is_simulated(ds):
        return {mark: simulated_file(ds, mark) for mark in SIMULATED_MARKS}
    return dict(dataset(ds).get("references", {}).get("histone", {}))


def trajectory(ds):
    if is_simulated(ds):
        return SIMULATED_TRAJECTORY
    return dataset(ds).get("trajectory")


def check_inputs_exist():
    """Fail at parse time, with the dataset named, when a configured input is missing."""
    for ds in DATASETS:
        cfg = dataset(ds)
        if is_simulated(ds) or cfg.get("url"):
            continue  # produced by a rule
        paths = {"samples": cfg["samples"]} if is_sample_sheet(ds) else {"path": cfg["path"], "labels": cfg.get("labels")}
        paths.update({f"references.{k}": v for k, v in cfg.get("references", {}).items() if k != "histone"})
        paths.update({f"references.histone.{k}": v for k, v in cfg.get("references", {}).get("histone", {}).items()})
        for key, path in paths.items():
            if path is not None and not os.path.exists(path):
                raise WorkflowError(f"config: datasets.{ds}.{key}: {path} does not exist")


check_inputs_exist()


# Sample sheets, read and checked once at parse time (scmvp.samples.read_sample_sheet: its own schema,
# config/schemas/samples.schema.yaml, and one line naming the sheet per problem); paths made absolute.
SAMPLE_SHEETS = {}
for _ds in SAMPLE_SHEET_DATASETS:
    try:
        SAMPLE_SHEETS[_ds] = read_sample_sheet(dataset(_ds)["samples"])
    except InputError as _err:
        raise WorkflowError(f"config: datasets.{_ds}.samples: {_err}")


def sample_sheet(ds):
    return SAMPLE_SHEETS[ds]


def is_multi_library(ds):
    """A sample sheet of more than one library: the integration metrics apply."""
    return is_sample_sheet(ds) and len(sample_sheet(ds)) > 1

# Each stage adds its per-dataset targets here when it joins `rule all`.
STAGE_TARGETS = []


def all_targets():
    targets = []
    for ds in DATASETS:
        for stage in STAGE_TARGETS:
            targets.extend(stage(ds))
    return targets
