"""The conda environments in envs/: pinned, on the agreed channels, and holding every package each rule's
script imports (the script itself and, transitively, the scmvp modules it uses)."""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENVS = REPO / "envs"
SCRIPTS = REPO / "scripts"
PACKAGE = "scmvp"
REQUIRED_ENVS = ["core", "model", "scvi", "mofa", "cre"]
CHANNELS = ["conda-forge", "bioconda", "nodefaults"]

# Import name -> conda package names that provide it (first = the one to add).
CONDA_NAME = {
    "sklearn": ["scikit-learn"],
    "torch": ["pytorch"],
    "yaml": ["pyyaml"],
    "scvi": ["scvi-tools"],
    "igraph": ["python-igraph"],
    "skmisc": ["scikit-misc"],
    "umap": ["umap-learn"],
    "PIL": ["pillow"],
    "matplotlib": ["matplotlib-base", "matplotlib"],
    "pyro": ["pyro-ppl"],
    "lightning": ["lightning"],
    "pytorch_lightning": ["pytorch-lightning", "lightning"],
    "mpl_toolkits": ["matplotlib-base", "matplotlib"],
}
# Importable in every env without being listed: Snakemake puts its own package on the script's path.
PROVIDED = {"snakemake"}


def load_env(name):
    return yaml.safe_load((ENVS / f"{name}.yaml").read_text())


def conda_packages(env) -> dict[str, str]:
    """name -> pinned version of the conda dependencies (pip entries under the same names)."""
    packages = {}
    for dep in env["dependencies"]:
        entries = dep["pip"] if isinstance(dep, dict) else [dep]
        for entry in entries:
            name, _, version = re.split(r"(==|=)", entry, maxsplit=1)
            packages[name.strip().lower()] = version.strip()
    return packages


@pytest.mark.parametrize("name", REQUIRED_ENVS)
def test_env_file_is_pinned_on_the_agreed_channels(name):
    env = load_env(name)
    assert env["channels"] == CHANNELS
    assert set(env) <= {"name", "channels", "dependencies"}
    for dep in env["dependencies"]:
        entries = dep["pip"] if isinstance(dep, dict) else [dep]
        if isinstance(dep, dict):
            assert set(dep) == {"pip"}, dep
            assert all("==" in e for e in entries), f"{name}.yaml: pip entries pin with ==: {entries}"
        for entry in entries:
            assert re.fullmatch(r"[A-Za-z0-9_.\-]+(=|==)[0-9][A-Za-z0-9_.*+\-]*", entry), \
                f"envs/{name}.yaml: '{entry}' is not pinned to one version"
    assert "python" in conda_packages(env)


def test_envs_agree_with_requirements_txt_and_each_other():
    """A package has one version in every env, and the tested venv's version where it has one."""
    requirements = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            requirements[name.strip().lower().replace("_", "-")] = version.strip()
    pypi_name = {"pytorch": "torch", "python-igraph": "igraph", "matplotlib-base": "matplotlib"}
    seen = {}
    for name in REQUIRED_ENVS:
        for package, version in conda_packages(load_env(name)).items():
            assert seen.setdefault(package, version) == version, f"{package}: {version} in {name}.yaml, {seen[package]} elsewhere"
            pinned = requirements.get(pypi_name.get(package, package))
            if pinned is not None:
                assert version == pinned, f"envs/{name}.yaml: {package}={version}, requirements.txt has {pinned}"


def test_cre_env_has_the_bedtools_binary_and_model_env_has_torch():
    assert {"bedtools", "pybedtools"} <= set(conda_packages(load_env("cre")))
    assert "pytorch" in conda_packages(load_env("model"))


# ---- rule -> env -> imports ---------------------------------------------------------------------------

RULE_HEADER = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:", re.M)
TOP_LEVEL = re.compile(r"^\S", re.M)


def directive(block, name):
    """The literal string value of a rule directive (inline or on the next line), or None."""
    match = re.search(rf"^\s+{name}:\s*(?:\n\s*)?(.*)$", block, re.M)
    if not match:
        return None
    value = match.group(1).strip().rstrip(",")
    literal = re.fullmatch(r"""['"]([^'"]+)['"]""", value)
    return literal.group(1) if literal else f"<expression {value}>"


def params_literals(block) -> frozenset:
    """The string literals of a rule's `params:` section."""
    match = re.search(r"^(\s+)params:\s*\n((?:\1\s+.*\n|\s*\n)*)", block + "\n", re.M)
    return frozenset(re.findall(r"""["']([^"'\n]+)["']""", match.group(2))) if match else frozenset()


def rules_with_scripts():
    """(rule, smk file, conda env path, script path, params literals) for every rule of rules/*.smk."""
    found = []
    for smk in sorted((REPO / "rules").glob("*.smk")):
        text = smk.read_text()
        headers = list(RULE_HEADER.finditer(text))
        for i, header in enumerate(headers):
            end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
            body = text[header.end():end]
            top = TOP_LEVEL.search(body, 1)  # the rule ends at the next unindented line
            body = body[: top.start()] if top else body
            found.append((header.group(1), smk, directive(body, "conda"), directive(body, "script"),
                          params_literals(body)))
    return found


def module_file(module: str) -> Path | None:
    parts = module.split(".")
    base = SCRIPTS.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


class ModuleImports:
    """Imports of one Python file: module-level ones, and those inside each top-level function/class.

    Each import and name use carries its guards: the string constants of the `if` tests it sits under
    (`if method == "scvi": import scvi` is guarded by {"scvi"}); see `active`.
    """

    def __init__(self, path: Path, module: str):
        self.path = path
        self.module = module
        self.package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        tree = ast.parse(path.read_text(), filename=str(path))
        self.top_level: list[tuple[str, tuple]] = []
        self.local: dict[str, list[tuple[str, tuple]]] = {}  # function/class -> guarded imports inside it
        self.names_used: dict[str, list[tuple[str, tuple]]] = {}  # function/class -> guarded names
        self.imported_names: dict[str, str] = {}  # module-level local name -> "module" or "module.attr"
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                imports, names = [], []
                self._visit(node, (), imports, names, bind=False)
                self.local[node.name], self.names_used[node.name] = imports, names
            else:
                self._visit(node, (), self.top_level, [], bind=True)

    def _visit(self, node, guards, imports, names, bind):
        if isinstance(node, ast.If):
            guard = frozenset(c.value for c in ast.walk(node.test)
                              if isinstance(c, ast.Constant) and isinstance(c.value, str))
            self._visit(node.test, guards, imports, names, bind)
            for child in node.body:
                self._visit(child, guards + ((guard,) if guard else ()), imports, names, bind)
            for child in node.orelse:
                self._visit(child, guards, imports, names, bind)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                imports.append((alias.name, guards))
                if bind:
                    self.imported_names[alias.asname or alias.name.split(".")[0]] = alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = self.package.split(".")
                base = base[: len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module
            for alias in node.names:
                target = f"{origin}.{alias.name}" if alias.name != "*" else origin
                imports.append((target, guards))
                if bind:
                    self.imported_names[alias.asname or alias.name] = target
        elif isinstance(node, ast.Name):
            names.append((node.id, guards))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            names.append((f"{node.value.id}.{node.attr}", guards))
        for child in ast.iter_child_nodes(node):
            self._visit(child, guards, imports, names, bind)


def active(guards, literals) -> bool:
    """Code under `if` tests with string constants counts only for rules whose params name one of them."""
    return all(guard & literals for guard in guards)


def third_party_imports(script: Path, literals=frozenset()) -> set[str]:
    """Top-level names of the non-stdlib, non-local packages a rule script needs.

    Followed: the script's every import; module-level imports of each scmvp module reached; imports
    inside a function or class of a reached module when that function/class is used by name from code
    already reached (so a baseline's lazy `import scvi` counts only for the rules that call it). Code under
    an `if` comparing with string constants counts only when the rule's params contain one of them
    (`literals`), so one dispatching script can serve rules with different envs.
    """
    cache: dict[str, ModuleImports] = {}
    needed: set[str] = set()
    visited_modules: set[str] = set()
    visited_defs: set[tuple[str, str]] = set()
    stack: list[tuple[str, str | None]] = []  # (module, function or None for the module level)

    def handle(guarded):
        for name, guards in guarded:
            if not active(guards, literals):
                continue
            root = name.split(".")[0]
            if root == PACKAGE or module_file(name) is not None:
                mod = name
                while mod and module_file(mod) is None:
                    mod = mod.rpartition(".")[0]
                attr = name[len(mod) + 1:] if len(name) > len(mod) else None
                # Importing a.b.c executes every package __init__ on the way.
                parts = mod.split(".")
                for i in range(1, len(parts) + 1):
                    stack.append((".".join(parts[:i]), None))
                if attr:
                    stack.append((mod, attr.split(".")[0]))
            elif root not in sys.stdlib_module_names and root != "__future__":
                needed.add(root)

    def follow_names(info, guarded_names):
        for used, guards in guarded_names:
            if not active(guards, literals):
                continue
            head, _, rest = used.partition(".")
            if used in info.local:
                stack.append((info.module, used))
            elif head in info.imported_names:
                handle([(info.imported_names[head] + (f".{rest}" if rest else ""), ())])

    script_imports = ModuleImports(script, script.stem)
    handle(script_imports.top_level + [i for imports in script_imports.local.values() for i in imports])
    for guarded_names in script_imports.names_used.values():  # every function of the script may run
        follow_names(script_imports, guarded_names)
    while stack:
        mod, attr = stack.pop()
        if (attr is None and mod in visited_modules) or (mod, attr or "") in visited_defs:
            continue
        info = cache.get(mod) or cache.setdefault(mod, ModuleImports(module_file(mod), mod))
        if attr is None:
            visited_modules.add(mod)
            handle(info.top_level)
            continue
        visited_defs.add((mod, attr))
        stack.append((mod, None))
        if attr in info.local:
            handle(info.local[attr])
            follow_names(info, [(u, g) for u, g in info.names_used[attr] if u != attr])
        elif attr in info.imported_names:  # re-exported, e.g. from `__init__.py`
            handle([(info.imported_names[attr], ())])
    return needed


def conda_names(import_name):
    return CONDA_NAME.get(import_name, [import_name.lower().replace("_", "-")])


def test_parser_follows_scmvp_modules_transitively(tmp_path, monkeypatch):
    """The import walker on a known package layout (so the real check below cannot pass vacuously)."""
    pkg = tmp_path / "scmvp"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .deep import helper\n")
    (pkg / "sub" / "deep.py").write_text(
        "import numpy as np\nfrom sklearn.cluster import KMeans\n"
        "def helper():\n    import mudata\n    return _inner()\n"
        "def _inner():\n    import h5py\n"
        "def unused():\n    import torch\n")
    (pkg / "baselines.py").write_text("def run_scvi():\n    import scvi\n")  # lazy: only for callers
    script = tmp_path / "rule_script.py"
    script.write_text("import os\nimport yaml\nfrom scmvp.sub import helper\nfrom scmvp import baselines\n"
                      "from snakemake.script import snakemake\n")
    monkeypatch.setattr(sys.modules[__name__], "SCRIPTS", tmp_path)
    assert third_party_imports(script) - PROVIDED == {"numpy", "sklearn", "mudata", "h5py", "yaml"}
    dispatch = tmp_path / "dispatch.py"
    dispatch.write_text("from scmvp import baselines\ndef main(method):\n"
                        "    if method in ('scvi', 'multivi'):\n        return baselines.run_scvi()\n"
                        "    if method == 'mofa':\n        import mofapy2\n    else:\n        import pandas\n")
    assert third_party_imports(dispatch, frozenset({"scvi"})) == {"scvi", "pandas"}
    assert third_party_imports(dispatch, frozenset({"mofa"})) == {"mofapy2", "pandas"}


def test_every_rule_script_finds_its_imports_in_its_conda_env():
    rules = rules_with_scripts()
    env_cache = {}
    problems = []
    checked = 0
    for rule, smk, conda, script, literals in rules:
        where = f"{smk.relative_to(REPO)}: rule {rule}"
        if conda is None:
            problems.append(f"{where}: no conda: directive")
            continue
        if conda.startswith("<expression"):
            problems.append(f"{where}: conda: {conda} (use a literal '../envs/X.yaml')")
            continue
        env_path = (smk.parent / conda).resolve()
        if not env_path.exists():
            problems.append(f"{where}: conda env {conda} does not exist")
            continue
        if script is None:
            continue  # shell:/run: rules: nothing to import-check
        if script.startswith("<expression"):
            problems.append(f"{where}: script: {script} (use a literal path)")
            continue
        script_path = (smk.parent / script).resolve()
        if not script_path.exists():
            problems.append(f"{where}: script {script} does not exist")
            continue
        if env_path not in env_cache:
            env_cache[env_path] = set(conda_packages(yaml.safe_load(env_path.read_text())))
        packages = env_cache[env_path]
        for name in sorted(third_party_imports(script_path, literals) - PROVIDED):
            if not any(c in packages for c in conda_names(name)):
                problems.append(f"{where}: {script_path.name} imports {name}; add {conda_names(name)[0]} to {conda}")
        checked += 1
    assert not problems, "\n".join(problems)
    if any(rule[3] for rule in rules):
        assert checked > 0
