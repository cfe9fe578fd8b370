"""Reading and writing model specs as YAML, with line numbers for every field.

Errors say ``file:line: field.path: what; how to fix``. Numbers written like ``1e-7`` (which
YAML 1.1 reads as text) are read as numbers. Mapping keys are taken as written (YAML 1.1 would
read a key ``on`` as ``true``).

The reader builds plain data (dicts, lists, scalars) from the YAML *events* (libyaml's parser
when PyYAML has it, else PyYAML's own), without recursion, and refuses before doing the work
what it cannot bound (:mod:`ocdl.limits`): a file over ``MAX_SPEC_BYTES``, control
characters, nesting deeper than ``MAX_DEPTH``, more than ``MAX_NODES`` values with aliases
expanded (so "billion laughs" alias bombs stop early), an alias inside the collection it names
(``&a [*a]``), numbers of more than ``MAX_NUMBER_CHARS`` characters and integers beyond
``MAX_INT``. An alias shares the value of its anchor (as PyYAML's constructor does).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import SpecError, cut, short
from .. import limits
from .model import ModelSpec

_FLOAT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)$")
# what YAML allows in a stream (PyYAML's Reader.NON_PRINTABLE): tab, newlines, printable text
_NON_PRINTABLE = re.compile("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD"
                            "\U00010000-\U0010ffff]")
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the same events, ~15x faster in C
_NO_KEY = object()


class _Frame:
    """An open mapping or list while the events are read."""

    __slots__ = ("value", "path", "anchor", "size", "key", "sub")

    def __init__(self, value: Any, path: str, anchor: str | None):
        self.value = value
        self.path = path
        self.anchor = anchor
        self.size = 1  # values in this collection, itself and aliases expanded included
        self.key: Any = _NO_KEY  # a mapping's key waiting for its value
        self.sub = ""  # the field path of that value


class _Reader:
    """Plain data and field path → line from a stream of YAML events (see the module doc)."""

    def __init__(self, file: str):
        self.file = file
        self.lines: dict[str, int] = {}
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, int, str | None]] = {}  # value, size, scalar text
        self.open: set[str] = set()  # anchors of collections not closed yet
        self.total = 0
        self.root: Any = _NO_KEY
        self.documents = 0
        self.resolver = yaml.resolver.Resolver()
        self.constructor = yaml.constructor.SafeConstructor()

    def error(self, message: str, line: int | None, path: str = "") -> SpecError:
        return SpecError(message, path=path, file=self.file, line=line)

    def feed(self, ev: yaml.Event) -> None:
        if isinstance(ev, (yaml.StreamStartEvent, yaml.StreamEndEvent, yaml.DocumentEndEvent)):
            return
        line = ev.start_mark.line + 1 if ev.start_mark is not None else None
        if isinstance(ev, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise self.error("a second YAML document ('---'); a spec file holds one "
                                 "document: remove the '---' line or split the file", line)
            return
        top = self.stack[-1] if self.stack else None
        if isinstance(ev, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            frame = self.stack.pop()
            if frame.anchor is not None:
                self.open.discard(frame.anchor)
                self.anchors[frame.anchor] = (frame.value, frame.size, None)
            self._attach(frame.value, frame.size)
            return
        if top is not None and isinstance(top.value, dict) and top.key is _NO_KEY:
            self._key(ev, top, line)
            return
        path = self._path(top)
        self.lines.setdefault(path, line)
        if isinstance(ev, yaml.AliasEvent):
            value, size = self._alias(ev.anchor, line, path)
            self._count(size, line, path)
            self._attach(value, size)
        elif isinstance(ev, yaml.ScalarEvent):
            value = self._scalar(ev, line, path)
            self._count(1, line, path)
            self._anchor(ev.anchor, (value, 1, ev.value), line)
            self._attach(value, 1)
        elif isinstance(ev, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            if ev.tag not in (None, "!", _SEQ, _MAP):
                raise self.error(f"the tag {cut(ev.tag, 60)} is not supported on a list or "
                                 "mapping; remove it", line, path)
            if len(self.stack) >= limits.MAX_DEPTH:
                raise self.error(f"the spec is nested more than {limits.MAX_DEPTH} levels deep "
                                 "(lists and mappings, aliases included); flatten it", line, path)
            self._count(1, line, path)
            self._anchor(ev.anchor, None, line)
            if ev.anchor is not None:
                self.open.add(ev.anchor)
            value: Any = [] if isinstance(ev, yaml.SequenceStartEvent) else {}
            self.stack.append(_Frame(value, path, ev.anchor))

    def _path(self, top: _Frame | None) -> str:
        if top is None:
            return ""
        if isinstance(top.value, list):
            return f"{top.path}[{len(top.value)}]"
        return top.sub

    def _key(self, ev: yaml.Event, top: _Frame, line: int | None) -> None:
        # keys are field names: take the text as written (YAML 1.1 would read 'on' as True)
        if isinstance(ev, yaml.ScalarEvent):
            key = ev.value
            self._anchor(ev.anchor, (key, 1, key), line)
        elif isinstance(ev, yaml.AliasEvent) and self.anchors.get(ev.anchor, (0, 0, None))[2] \
                is not None:
            key = self.anchors[ev.anchor][2]
        else:
            raise self.error("a mapping key must be a plain name", line, top.path)
        sub = f"{top.path}.{key}" if top.path else str(key)
        if key in top.value:
            raise self.error(f"duplicate key '{cut(key, 60)}'", line, sub)
        self._count(1, line, sub)
        top.size += 1
        self.lines[sub] = line
        top.key, top.sub = key, sub

    def _alias(self, name: str, line: int | None, path: str) -> tuple[Any, int]:
        if name in self.open:
            raise self.error(f"the alias *{cut(name, 40)} refers to a list or mapping that "
                             "contains it (a recursive alias); write the value out", line, path)
        if name not in self.anchors:
            raise self.error(f"the alias *{cut(name, 40)} names no anchor defined before it; "
                             f"define it first with &{cut(name, 40)}", line, path)
        value, size, _ = self.anchors[name]
        return value, size

    def _anchor(self, name: str | None, entry: tuple[Any, int, str | None] | None,
                line: int | None) -> None:
        if name is None:
            return
        if name in self.anchors or name in self.open:
            raise self.error(f"the anchor &{cut(name, 40)} is defined twice; give each anchor "
                             "its own name", line)
        if entry is not None:
            self.anchors[name] = entry

    def _count(self, n: int, line: int | None, path: str) -> None:
        self.total += n
        if self.total > limits.MAX_NODES:
            raise self.error(f"the spec holds more than {limits.MAX_NODES:,} values (aliases "
                             "expanded); a model spec needs far fewer: check the aliases (*name)",
                             line, path)

    def _scalar(self, ev: yaml.ScalarEvent, line: int | None, path: str) -> Any:
        tag = ev.tag
        if tag is None or tag == "!":
            tag = self.resolver.resolve(yaml.ScalarNode, ev.value, ev.implicit)
        if tag in (_INT, _FLOAT) and len(ev.value) > limits.MAX_NUMBER_CHARS:
            raise self.error(f"a number of {len(ev.value):,} characters; numbers in a spec have "
                             f"at most {limits.MAX_NUMBER_CHARS}", line, path)
        node = yaml.ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark, ev.style)
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.MarkedYAMLError:
            raise
        except Exception as e:  # PyYAML's constructors fail in many ways on odd scalars
            raise self.error(f"cannot read the value {short(ev.value)} as {tag.rsplit(':', 1)[-1]}"
                             f": {cut(str(e), 80)}", line, path) from None
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > limits.MAX_INT:
            raise self.error(f"the integer {short(value)} is out of range; integers in a spec lie "
                             f"within ±{limits.MAX_INT:,}", line, path)
        if isinstance(value, str) and not ev.style and _FLOAT_RE.match(value):
            return float(value)
        return value

    def _attach(self, value: Any, size: int) -> None:
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        top.size += size
        if isinstance(top.value, list):
            top.value.append(value)
        else:
            top.value[top.key] = value
            top.key = _NO_KEY


def _check_text(text: str, file: str) -> None:
    """Refuse a text too long for a spec, or one with control characters (YAML forbids them)."""
    n = len(text.encode("utf-8", "surrogatepass"))
    if n > limits.MAX_SPEC_BYTES:
        raise SpecError(f"the file has {n:,} bytes; a model spec has at most "
                        f"{limits.MAX_SPEC_BYTES:,} (spec limits: see the README)", file=file,
                        line=1)
    bad = _NON_PRINTABLE.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        col = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        raise SpecError(f"the control character U+{ord(bad.group()):04X} (column {col}) is not "
                        "allowed in YAML; delete it (a spec is plain UTF-8 text)", file=file,
                        line=line)


def parse_yaml(text: str, file: str = "<string>") -> tuple[Any, dict[str, int]]:
    """Parse YAML text into plain data and a map field path → line number (see the module
    docstring for what is refused)."""
    _check_text(text, file)
    reader = _Reader(file)
    loader = None
    try:
        loader = _LOADER(text)
        while loader.check_event():
            reader.feed(loader.get_event())
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        msg = cut(" ".join(x for x in (e.context, e.problem) if x), 200)
        raise SpecError(f"YAML syntax error: {msg}; check indentation, colons and quotes",
                        file=file, line=line) from None
    except yaml.YAMLError as e:
        raise SpecError(f"YAML error: {cut(str(e), 200)}", file=file) from None
    except RecursionError:  # pragma: no cover - the reader does not recurse
        raise SpecError(f"the spec is nested too deeply (at most {limits.MAX_DEPTH} levels)",
                        file=file) from None
    finally:
        if loader is not None:
            loader.dispose()
    if reader.root is _NO_KEY:
        raise SpecError("the file is empty; a model spec starts with 'ocdl: 1'", file=file,
                        line=1)
    return reader.root, reader.lines


def read_utf8(path: Path) -> str:
    """The text of the YAML file ``path``, refused as a :class:`SpecError` that names the file
    (and the line) when it is over :data:`~ocdl.limits.MAX_SPEC_BYTES` or not UTF-8; a
    missing or unreadable file raises the ``OSError``."""
    size = path.stat().st_size
    if size > limits.MAX_SPEC_BYTES:
        raise SpecError(f"the file has {size:,} bytes; a YAML file ocdl reads has at most "
                        f"{limits.MAX_SPEC_BYTES:,} (spec limits: see the README)",
                        file=str(path), line=1)
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise SpecError(f"not UTF-8 text (byte 0x{raw[e.start]:02x}); the file is damaged, or "
                        "was not saved as UTF-8", file=str(path), line=line) from None


def load_spec(path: str | Path) -> ModelSpec:
    """Read and validate a YAML model spec file."""
    from .validate import spec_from_dict
    p = Path(path)
    try:
        text = read_utf8(p)
    except FileNotFoundError:
        raise SpecError(f"model file not found: {p}; check the path, or give a shipped model's name (ocdl models lists them)") \
            from None
    except OSError as e:
        raise SpecError(f"cannot read model file {p}: {e.strerror or e}") from None
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
