"""Loading YAML configuration files into models, with errors that name file:line and the fix.

Only YAML's safe subset is read (no `!!python` tags); files are size-capped before parsing. Booleans are
YAML 1.2's `true`/`false` only: `on`, `off`, `yes` and `no` stay strings (a runbook's `on:` key is a key).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans."""


Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 100_000  # values after aliases are expanded: a "billion laughs" file stops here, not in the validator


class ConfigFileError(ValueError):
    """A configuration file that cannot be used; each line of the message is `file:line: problem`."""


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int:
    """The line (1-based) of the deepest node on `loc` that exists in the document."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def _expanded_size(root: yaml.Node | None, limit: int) -> int:
    """How many values the document holds once aliases are expanded, counting no further than `limit`."""
    count, stack = 0, [root] if root is not None else []
    while stack and count <= limit:
        node = stack.pop()
        count += 1
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend(v for pair in node.value for v in pair)
    return count


def load_yaml_model(path: Path, model: type[M]) -> M:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read ({exc.strerror}); check the path") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigFileError(f"{path}: {len(raw)} bytes is larger than {MAX_FILE_BYTES}; split or trim the file")
    try:
        text = raw.decode("utf-8")
        root = yaml.compose(text, Loader=Loader)
        data = yaml.load(text, Loader=Loader)
    except UnicodeDecodeError as exc:
        raise ConfigFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise ConfigFileError(f"{path}:{line}: invalid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"{path}: invalid YAML: {exc}") from exc
    if _expanded_size(root, MAX_NODES) > MAX_NODES:
        raise ConfigFileError(f"{path}: more than {MAX_NODES} values once its aliases are expanded; "
                              "write the file out without nested anchors")
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            where = ".".join(str(p) for p in loc) or "(document)"
            message = err["msg"].removeprefix("Value error, ")
            lines.append(f"{path}:{_line_of(root, loc)}: {where}: {message}")
        raise ConfigFileError("\n".join(lines)) from exc
