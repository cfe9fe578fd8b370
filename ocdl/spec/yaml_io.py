"""Reading and writing model specs as YAML, with line numbers for every field.

Errors say ``file:line: field.path: what; how to fix``. Numbers written like ``1e-7`` (which
YAML 1.1 reads as text) are read as numbers.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import SpecError
from .model import ModelSpec

_FLOAT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)$")


def _to_python(node: yaml.Node, path: str, lines: dict[str, int], loader: yaml.SafeLoader,
               file: str) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for knode, vnode in node.value:
            # keys are field names: take the text as written (YAML 1.1 would read 'on' as True)
            key = knode.value if isinstance(knode, yaml.ScalarNode) else None
            if key is None:
                raise SpecError("a mapping key must be a plain name", path=path, file=file,
                                line=knode.start_mark.line + 1)
            sub = f"{path}.{key}" if path else str(key)
            if key in out:
                raise SpecError(f"duplicate key '{key}'", path=sub, file=file,
                                line=knode.start_mark.line + 1)
            lines[sub] = knode.start_mark.line + 1
            out[key] = _to_python(vnode, sub, lines, loader, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(v, f"{path}[{i}]", lines, loader, file)
                for i, v in enumerate(node.value)]
    value = loader.construct_object(node, deep=True)
    if isinstance(value, str) and node.style is None and _FLOAT_RE.match(value):
        return float(value)
    return value


def parse_yaml(text: str, file: str = "<string>") -> tuple[Any, dict[str, int]]:
    """Parse YAML text into plain data and a map field path → line number."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError("the file is empty; a model spec starts with 'ocdl: 1'", file=file)
        lines: dict[str, int] = {}
        return _to_python(node, "", lines, loader, file), lines
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        msg = " ".join(x for x in (e.context, e.problem) if x)
        raise SpecError(f"YAML syntax error: {msg}; check indentation, colons and quotes",
                        file=file, line=line) from None
    except yaml.YAMLError as e:
        raise SpecError(f"YAML error: {e}", file=file) from None
    finally:
        loader.dispose()


def load_spec(path: str | Path) -> ModelSpec:
    """Read and validate a YAML model spec file."""
    from .validate import spec_from_dict
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"model file not found: {p}; check the path (models live in models/)") \
            from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"cannot read model file {p}: {e}") from None
    data, lines = parse_yaml(text, str(path))
    return spec_from_dict(data, lines=lines, file=str(path))


def loads_spec(text: str, file: str = "<string>") -> ModelSpec:
    """Validate a YAML model spec given as text."""
    from .validate import spec_from_dict
    data, lines = parse_yaml(text, file)
    return spec_from_dict(data, lines=lines, file=file)


class _Dumper(yaml.SafeDumper):
    pass


def _list_flow(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(isinstance(v, (int, float, str)) for v in data) and len(data) <= 8
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _list_flow)


def dump_yaml(d: dict[str, Any]) -> str:
    """YAML text of a spec dict: block style, short number lists inline, key order kept."""
    return yaml.dump(d, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)
