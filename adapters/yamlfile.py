"""Loading YAML configuration files into models, with errors that name file:line and the fix.

Only YAML's safe subset is read (no `!!python` tags); files are size-capped before parsing. Booleans are
YAML 1.2's `true`/`false` only: `on`, `off`, `yes` and `no` stay strings (a runbook's `on:` key is a key).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from schemas.errors import FirebreakError

M = TypeVar("M", bound=BaseModel)


class Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans."""


Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 100_000  # values after aliases are expanded: a "billion laughs" file stops here, not in the validator


class ConfigFileError(FirebreakError, ValueError):
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


def read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """(data, node tree) of a YAML file: size-capped, safe subset, aliases bounded; raises ConfigFileError
    `file:line: problem; fix` for a file that cannot be read or parsed."""
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
        raise ConfigFileError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8"
        ) from exc
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise ConfigFileError(
            f"{path}:{line}: invalid YAML: {exc.problem}; fix the syntax on or just before that line"
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"{path}: invalid YAML: {exc}; fix the syntax") from exc
    if _expanded_size(root, MAX_NODES) > MAX_NODES:
        raise ConfigFileError(
            f"{path}: more than {MAX_NODES} values once its aliases are expanded; "
            "write the file out without nested anchors"
        )
    return data, root


def _without_tags(node: yaml.Node | None, loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """`loc` without the tags pydantic adds for a union chosen by `type` (`channels.c.webhook.url` is the
    document's `channels.c.url`): a part that is no key of its mapping but that mapping's `type` value."""
    kept: list[int | str] = []
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            keys = {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}
            kind = keys.get("type")
            if part not in keys and isinstance(kind, yaml.ScalarNode) and kind.value == part:
                continue
            node = keys.get(part) if isinstance(part, str) else None
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
        kept.append(part)
    return tuple(kept)


def located(path: Path, root: yaml.Node | None, loc: tuple[int | str, ...], message: str) -> str:
    """One pydantic error as `file:line: dotted.location: message`, the line found from the node tree; the tags
    of unions chosen by `type` are left out of the location, which is the document's."""
    loc = _without_tags(root, loc)
    where = ".".join(str(p) for p in loc) or "(document)"
    return f"{path}:{_line_of(root, loc)}: {where}: {message.removeprefix('Value error, ')}"


def load_yaml_model(path: Path, model: type[M]) -> M:
    """The file validated as `model`; raises ConfigFileError with one `file:line: problem` line per problem."""
    data, root = read_yaml(path)
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        lines = [located(path, root, tuple(err["loc"]), err["msg"]) for err in exc.errors(include_url=False)]
        raise ConfigFileError("\n".join(lines)) from exc
