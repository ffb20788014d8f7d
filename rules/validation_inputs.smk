# Input functions and targets of the validation stage (rules/validation.smk includes this file).


def validation_reference(name):
    """Input function: the dataset's reference `name`; an error naming the config key when it is absent."""

    def path(wildcards):
        value = reference(wildcards.ds, name)
        if value is None:
            raise WorkflowError(f"dataset {wildcards.ds} has no references.{name}: cannot build this validation")
        return value

    return path


def de_genes_input(wildcards):
    value = reference(wildcards.ds, "de_genes")
    return {"de_genes": value} if value else {}


def scvi_accelerator(ds):
    return {"auto": "auto", "cpu": "cpu", "cuda": "gpu"}[config["model"].get("device", "auto")]


def validation_targets(ds):
    """The validation outputs of `ds`: only those whose references and labels are there."""
    targets = []
    if has_labels(ds) and reference(ds, "bulk_rna"):
        targets += [out(ds, "validation", f) for f in ("bulk_rna.tsv", "bulk_rna_pseudobulk.tsv", "bulk_rna.png")]
    if reference(ds, "bulk_atac"):
        targets += [out(ds, "validation", f) for f in ("bulk_atac.tsv", "bulk_atac.png")]
    if has_labels(ds):
        targets += [out(ds, "validation", f) for f in ("deg.tsv", "deg.png")]
    if has_labels(ds) and trajectory(ds) and reference(ds, "pseudotime"):
        targets += [out(ds, "validation", f) for f in ("trajectory.tsv", "trajectory.png")]
    return targets
