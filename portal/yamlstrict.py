"""Strict YAML loading for governed files: dataset manifests, access policies, task cards.

``yaml.safe_load`` is not strict enough: it accepts duplicate keys (last wins), anchors and
aliases (an alias bomb can exhaust memory), explicit tags, and YAML 1.1 surprises such as
``01234`` becoming 668 or ``no`` becoming False. This loader rejects all of those, caps the size,
and validates the result against a pydantic model in strict mode, reporting every problem with
the file and line it comes from.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from portal.errors import ConfigError

MAX_BYTES = 1_000_000
M = TypeVar("M", bound=BaseModel)

_BOOL_OK = {"true", "false"}
_BOOL_AMBIGUOUS = re.compile(
    r"^(y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF|True|TRUE|False|FALSE)$")
_LEADING_ZERO_INT = re.compile(r"^[-+]?0[0-9_]+$")
_SEXAGESIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?$")
_OTHER_BASES = re.compile(r"^[-+]?0(b[01_]+|x[0-9a-fA-F_]+|o[0-7_]+)$")
_CORE_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null", "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}

Path_ = tuple[str | int, ...]


class _Reader:
    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: dict[Path_, int] = {}
        self.problems: list[str] = []

    def problem(self, line: int | None, message: str) -> None:
        where = f"{self.name}:{line}" if line else self.name
        self.problems.append(f"{where}: {message}")

    def scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        line = node.start_mark.line + 1
        value = node.value
        if not node.style:  # plain scalar ("" from libyaml): guard against YAML 1.1 surprises
            if _BOOL_AMBIGUOUS.match(value):
                self.problem(line, f"ambiguous value {value!r}: write true/false, or quote it")
                return None
            if _LEADING_ZERO_INT.match(value):
                self.problem(line, f"number with a leading zero {value!r}: quote it if it is text "
                                   f"(e.g. a ZIP code)")
                return None
            if _SEXAGESIMAL.match(value) or _OTHER_BASES.match(value):
                self.problem(line, f"ambiguous number {value!r}: quote it")
                return None
            if node.tag == "tag:yaml.org,2002:bool":
                return value == "true"
            if node.tag == "tag:yaml.org,2002:int":
                return int(value.replace("_", ""))
            if node.tag == "tag:yaml.org,2002:float":
                try:
                    return float(value.replace("_", ""))
                except ValueError:
                    self.problem(line, f"ambiguous number {value!r}: quote it")
                    return None
            if node.tag == "tag:yaml.org,2002:null":
                return None
        return value

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key_line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problem(key_line, "mapping keys must be plain text")
                    continue
                key = key_node.value
                if key == "<<":
                    self.problem(key_line, "merge keys (<<) are not allowed")
                    continue
                if key in result:
                    self.problem(key_line, f"duplicate key {key!r}")
                    continue
                result[key] = self.build(value_node, (*path, key))
                self.lines[(*path, key)] = key_line
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.scalar(node, path)

    def line_for(self, loc: tuple[Any, ...]) -> int | None:
        path: Path_ = tuple(loc)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


# libyaml's parser when PyYAML was built with it (the same events, nodes and marks, about ten
# times faster than the pure-Python one); the strict checks are ours either way.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _check_events(text: str, reader: _Reader, loader: type = _LOADER) -> None:
    """Reject anchors, aliases and explicit tags before anything is composed (no expansion)."""
    for event in yaml.parse(text, Loader=loader):
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            reader.problem(line, "aliases (*name) are not allowed")
            continue
        anchor = getattr(event, "anchor", None)
        if anchor:
            reader.problem(line, "anchors (&name) are not allowed")
        tag = getattr(event, "tag", None)
        implicit = getattr(event, "implicit", True)
        explicit_tag = tag is not None and (implicit is False or implicit == (False, False))
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            explicit_tag = tag is not None and not event.implicit
        if explicit_tag and tag not in _CORE_TAGS | {"!"} or explicit_tag:
            reader.problem(line, f"YAML tags ({tag}) are not allowed")


def load_yaml_text(text: str | bytes, name: str, max_bytes: int = MAX_BYTES) -> tuple[Any, _Reader]:
    """Parse governed YAML into plain Python values. Raises ConfigError listing every problem."""
    reader = _Reader(name)
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if len(raw) > max_bytes:
        raise ConfigError(problems=[f"{name}: file is {len(raw):,} bytes; the limit is "
                                    f"{max_bytes:,}"])
    if raw.startswith(b"\xef\xbb\xbf"):
        raise ConfigError(problems=[f"{name}:1: file starts with a byte-order mark; "
                                    f"save it as UTF-8 without BOM"])
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(problems=[f"{name}: not valid UTF-8 (byte {exc.start})"]) from None
    if not decoded.strip():
        raise ConfigError(problems=[f"{name}: file is empty"])
    try:
        try:
            _check_events(decoded, reader)
            if reader.problems:
                raise ConfigError(problems=reader.problems)
            documents = list(yaml.compose_all(decoded, Loader=_LOADER))
        except yaml.YAMLError:
            # Report with the Python parser: its messages and lines are the ones users see.
            reader = _Reader(name)
            _check_events(decoded, reader, yaml.SafeLoader)
            if reader.problems:
                raise ConfigError(problems=reader.problems) from None
            documents = list(yaml.compose_all(decoded, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if "'\\t'" in str(exc) or "tab" in str(exc).lower():
            problem = "tab character used for indentation; use spaces"
        raise ConfigError(problems=[f"{name}:{line}: invalid YAML: {problem}"
                                    if line else f"{name}: invalid YAML: {problem}"]) from None
    if len(documents) != 1 or documents[0] is None:
        raise ConfigError(problems=[f"{name}: expected exactly one YAML document"])
    data = reader.build(documents[0], ())
    if reader.problems:
        raise ConfigError(problems=reader.problems)
    return data, reader


def validate(data: Any, model: type[M], reader: _Reader) -> M:
    """Validate parsed data against a pydantic model, mapping errors to file:line."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = reader.line_for(loc)
            where = ".".join(str(p) for p in loc) or "(top level)"
            message = err["msg"]
            if err["type"] == "extra_forbidden":
                message = "unknown key"
            problems.append(f"{reader.name}:{line}: {where}: {message}" if line
                            else f"{reader.name}: {where}: {message}")
        raise ConfigError(problems=problems) from None


def load_strict(source: Path | str | bytes, model: type[M], name: str | None = None,
                max_bytes: int = MAX_BYTES) -> tuple[M, _Reader]:
    """Load a governed YAML file (a path) or text into ``model``.

    Returns the model and the reader (whose ``line_for(path)`` maps a key path to its line, for
    later semantic checks that want to cite a line). Raises ConfigError with every problem."""
    if isinstance(source, Path):
        display = name or source.name
        try:
            size = source.stat().st_size
        except OSError:
            raise ConfigError(problems=[f"{display}: cannot be read"]) from None
        if size > max_bytes:
            raise ConfigError(problems=[f"{display}: file is {size:,} bytes; the limit is "
                                        f"{max_bytes:,}"])
        raw: str | bytes = source.read_bytes()
    else:
        display = name or "<text>"
        raw = source
    data, reader = load_yaml_text(raw, display, max_bytes)
    return validate(data, model, reader), reader
