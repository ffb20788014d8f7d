"""One-line messages for a config that breaks config/schemas/config.schema.yaml.

Snakemake's ``validate()`` reports a schema violation with the whole failing sub-schema (hundreds of lines
for a misspelled dataset key). :func:`config_problems` validates the same config with ``jsonschema``
(Draft 2020-12, as the schema declares) and returns one short line per problem, naming the key by its
dotted path (``datasets.<name>.<key>``) and, for an unknown key, the keys allowed there and a suggestion: a
close spelling (``did you mean 'labels'?``) or the place the schema defines that key
(``'genome' belongs in datasets.<name>``); a key the schema retired (RETIRED_KEYS) gets one line saying what
replaced it. The Snakefile calls :func:`check_config` before ``validate()``,
which still fills in the defaults of a valid config.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

import jsonschema
import yaml

MAX_PROBLEMS = 3
# The keys of a single-input dataset that a sample sheet (`samples`) replaces.
SINGLE_INPUT_KEYS = ("technology", "path", "labels", "label_column", "url")
MAX_CHARS = 300
# Keys the schema no longer has, by their generic dotted place: what replaced them (one line for their users).
RETIRED_KEYS = {
    "benchmark.scvi_epochs": "scVI and MultiVI now train with their own scvi-tools defaults; set "
                             "benchmark.scvi.max_epochs, benchmark.multivi.max_epochs and "
                             "validation.scvi_max_epochs instead (null = the library's default)",
}


def load_schema(path) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle)


def config_problems(config: Mapping, schema: Mapping, max_problems: int = MAX_PROBLEMS) -> list[str]:
    """Problems of `config` against `schema`, one line each (empty when it is valid), at most `max_problems`
    (then a last line saying how many more there are)."""
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator = validator_class(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: ([str(p) for p in e.absolute_path], e.message))
    lines = []
    for error in errors:
        for line in _describe(error, schema):
            if line not in lines:
                lines.append(line)
    if len(lines) > max_problems:
        lines = lines[:max_problems] + [f"config: ... and {len(lines) - max_problems} more problem(s)"]
    return lines


def check_config(config: Mapping, schema_path) -> None:
    """Raise ConfigError with one line per problem when `config` breaks the schema at `schema_path`."""
    problems = config_problems(config, load_schema(schema_path))
    if problems:
        raise ConfigError("\n".join(problems))


class ConfigError(ValueError):
    """The config breaks the schema; the message is one short line per problem."""


# ------------------------------------------------------------------------------------------------ messages
def _dotted(path) -> str:
    return ".".join(str(part) for part in path)


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 3] + "..."


def _describe(error, schema) -> list[str]:
    where = _dotted(error.absolute_path)
    prefix = f"config: {where}: " if where else "config: "
    if error.validator == "additionalProperties" and error.validator_value is False:
        # not shortened: the allowed keys and the suggestion are the point of the message
        return [_unknown_key(key, error, schema) for key in _unknown_keys(error)]
    if "propertyNames" in error.relative_schema_path:
        return [_shorten(f"{prefix}invalid key {error.instance!r}: {error.message}")]
    if error.validator == "not" and isinstance(error.instance, Mapping) and "samples" in error.instance:
        both = [k for k in SINGLE_INPUT_KEYS if k in error.instance]
        return [f"{prefix}give either `samples` (a sample sheet) or `technology`/`path`, not both: `samples` "
                f"replaces {', '.join(SINGLE_INPUT_KEYS)} (found {', '.join(both)}; put labels and covariates "
                f"in the sample sheet)"]
    if error.validator == "required" and error.message == "'technology' is a required property":
        return [f"{prefix}'technology' is a required property (or `samples`: a sample sheet of several libraries)"]
    if error.validator == "minProperties":
        n = error.validator_value
        return [f"{prefix}needs at least {n} entr{'y' if n == 1 else 'ies'}"]
    if error.validator == "enum":
        allowed = ", ".join(str(v) for v in error.validator_value)
        return [_shorten(f"{prefix}{error.instance!r} is not one of [{allowed}]")]
    if error.validator in ("oneOf", "anyOf"):
        options = "; ".join(_summary(sub) for sub in error.validator_value)
        return [_shorten(f"{prefix}{error.instance!r} is none of: {options}")]
    return [_shorten(prefix + error.message)]


def _unknown_keys(error) -> list[str]:
    allowed = set(error.schema.get("properties", {}))
    patterns = list(error.schema.get("patternProperties", {}))
    return sorted(str(key) for key in error.instance
                  if key not in allowed and not any(re.search(p, str(key)) for p in patterns))


def _unknown_key(key: str, error, schema) -> str:
    path = [str(p) for p in error.absolute_path]
    allowed = list(error.schema.get("properties", {}))
    here = _generic(path, schema)
    retired = RETIRED_KEYS.get(f"{here}.{key}" if path else key)
    if retired:
        return f"config: {_dotted(path) + ': ' if path else ''}{key!r} was removed: {retired}"
    where = f"config: {_dotted(path)}: unknown key" if path else "config: unknown top-level key"
    message = f"{where} {key!r} (allowed: {', '.join(allowed)})"
    homes = [place for place in key_locations(schema).get(key, []) if place != here]
    hints = []
    if homes:
        hints.append(f"{key!r} belongs in {_join(homes)}")
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        hints.append(f"did you mean {close[0]!r}?")
    return "; ".join([message, *hints])


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _summary(sub: Mapping) -> str:
    """A few words on what a (small) sub-schema accepts: its type, bounds and allowed values."""
    parts = []
    if "enum" in sub:
        parts.append("one of [" + ", ".join(str(v) for v in sub["enum"]) + "]")
    elif "type" in sub:
        types = sub["type"] if isinstance(sub["type"], list) else [sub["type"]]
        parts.append(" or ".join(types))
    bounds = [f"{word} {sub[keyword]}" for keyword, word in
              (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"))
              if keyword in sub]
    parts.append(" and ".join(bounds))
    return " ".join(p for p in parts if p) or "a sub-schema"


# ------------------------------------------------------------------------------------------ key locations
def key_locations(schema: Mapping) -> dict[str, list[str]]:
    """Property name -> the dotted places the schema defines it, e.g. 'genome' -> ['datasets.<name>']
    (a free-form key, such as a dataset's name, is written <name>)."""
    found: dict[str, list[str]] = {}

    def walk(node, path, seen):
        if not isinstance(node, Mapping):
            return
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            if ref in seen:
                return
            walk(_resolve(schema, ref), path, seen | {ref})
        for name, sub in node.get("properties", {}).items():
            place = _dotted(path)
            if place not in found.setdefault(name, []):
                found[name].append(place)
            walk(sub, [*path, name], seen)
        extra = node.get("additionalProperties")
        if isinstance(extra, Mapping):
            walk(extra, [*path, "<name>"], seen)

    walk(schema, [], frozenset())
    return {name: [p or "the top level" for p in places] for name, places in found.items()}


def _resolve(schema: Mapping, ref: str):
    node = schema
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _generic(path: list[str], schema: Mapping) -> str:
    """`path` with the free-form keys (dataset names...) written <name>, as key_locations writes them."""
    node, out = schema, []
    for part in path:
        if isinstance(node, Mapping) and "$ref" in node:
            node = _resolve(schema, node["$ref"])
        props = node.get("properties", {}) if isinstance(node, Mapping) else {}
        if part in props:
            node, name = props[part], part
        else:
            node = node.get("additionalProperties", {}) if isinstance(node, Mapping) else {}
            name = "<name>"
        out.append(name)
    return _dotted(out) or "the top level"
