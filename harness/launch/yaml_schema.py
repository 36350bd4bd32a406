"""Validating YAML files against a small schema, every problem with its file and line.

``Context`` collects problems; ``plain`` turns a composed YAML node into plain
Python values while recording the line of every key and item; ``mapping``
checks a mapping against ``{key: (kind, default, constraints)}`` (unknown keys
get close matches and the list of valid ones). Used by suite files.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from harness.errors import UserInputError

REQUIRED = object()
BAD = object()
KIND_WORDS = {'int': 'an integer', 'float': 'a number', 'bool': 'true or false',
               'str': 'a string', 'list': 'a list', 'mapping': 'a mapping'}


class Context:
    """Collects problems, each with the line of the key it concerns."""

    def __init__(self, file: Path, label: str = 'Suite'):
        self.file = file
        self.label = label
        self.lines: Dict[tuple, int] = {}
        self.problems: List[Tuple[int, str]] = []

    def line(self, path: tuple) -> int:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def error(self, path: tuple, message: str) -> None:
        where = ''.join(f'[{p}]' if isinstance(p, int) else f'.{p}' for p in path).lstrip('.')
        self.problems.append((self.line(path), f'{where}: {message}' if where else message))

    def raise_if_any(self) -> None:
        if not self.problems:
            return
        lines = [f'{self.file}:{line}: {msg}' for line, msg in sorted(self.problems,
                                                                        key=lambda p: p[0])]
        n = len(lines)
        raise UserInputError(f'{self.label} {self.file} has {n} problem{"s" if n > 1 else ""}:\n  '
                             + '\n  '.join(lines))


def plain(node, path: tuple, ctx: Context, constructor) -> Any:
    """The node as plain Python values; records the line of every key and item."""
    ctx.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: Dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = (constructor.construct_object(key_node)
                   if isinstance(key_node, yaml.ScalarNode) else None)
            if not isinstance(key, str):
                ctx.lines[path + ('?',)] = key_node.start_mark.line + 1
                ctx.error(path + ('?',), 'keys must be plain names')
                continue
            ctx.lines[path + (key,)] = key_node.start_mark.line + 1
            if key in out:
                ctx.error(path + (key,), f'duplicate key {key!r} (the later one would silently win)')
            out[key] = plain(value_node, path + (key,), ctx, constructor)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [plain(item, path + (i,), ctx, constructor) for i, item in enumerate(node.value)]
    return constructor.construct_object(node)


def describe(value: Any) -> str:
    kind = ('true/false' if isinstance(value, bool) else 'an integer' if isinstance(value, int)
            else 'a number' if isinstance(value, float) else 'a string' if isinstance(value, str)
            else 'a list' if isinstance(value, list) else 'a mapping' if isinstance(value, dict)
            else 'null' if value is None else type(value).__name__)
    return f'{value!r} ({kind})'


def typed(ctx: Context, path: tuple, value: Any, kind: str, default: Any,
           minimum=None, positive=False, choices=None) -> Any:
    if value is None:
        if default is REQUIRED:
            ctx.error(path, f'needs a value ({KIND_WORDS[kind]})')
            return BAD
        return default
    ok = {'int': isinstance(value, int) and not isinstance(value, bool),
          'float': isinstance(value, (int, float)) and not isinstance(value, bool),
          'bool': isinstance(value, bool), 'str': isinstance(value, str),
          'list': isinstance(value, list), 'mapping': isinstance(value, dict)}[kind]
    if not ok:
        ctx.error(path, f'expected {KIND_WORDS[kind]}, got {describe(value)}')
        return BAD
    if minimum is not None and value < minimum:
        ctx.error(path, f'must be at least {minimum}, got {value}')
        return BAD
    if positive and value <= 0:
        ctx.error(path, f'must be greater than 0, got {value}')
        return BAD
    if choices is not None and value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f' Did you mean {close[0]!r}?' if close else ''
        ctx.error(path, f'must be one of {", ".join(choices)}, got {value!r}.{hint}')
        return BAD
    return float(value) if kind == 'float' else value


def mapping(ctx: Context, path: tuple, raw: Dict[str, Any], keys: Dict[str, tuple],
             what: str) -> Dict[str, Any]:
    """Check a mapping against its schema: unknown keys (with close matches), types, defaults."""
    for key in raw:
        if key not in keys:
            close = (difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
                     or [k for k in keys if key in k][:3])
            hint = f' Did you mean: {", ".join(close)}?' if close else ''
            ctx.error(path + (key,), f'unknown {what} key {key!r}.{hint} '
                                     f'Valid keys: {", ".join(keys)}.')
    out = {}
    for key, (kind, default, constraints) in keys.items():
        if key not in raw and default is REQUIRED:
            ctx.error(path, f'missing required key {key!r} ({KIND_WORDS[kind]})')
            out[key] = BAD
            continue
        out[key] = typed(ctx, path + (key,), raw.get(key), kind, default, **constraints)
    return out


def strings(ctx: Context, path: tuple, values: Optional[list], choices=None,
             allow_null=False) -> Optional[List[Optional[str]]]:
    if values is None or values is BAD:
        return None
    out = []
    for i, v in enumerate(values):
        if v is None and allow_null:
            out.append(None)
        elif (r := typed(ctx, path + (i,), v, 'str', REQUIRED, choices=choices)) is not BAD:
            out.append(r)
    return out
