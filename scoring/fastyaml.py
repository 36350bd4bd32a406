"""A fast reader for the plain subset of YAML that ``yaml.safe_dump`` writes for trial.yaml.

Why: PyYAML's constructor is pure Python even with libyaml (~0.1 ms per small
file), which alone was a fifth of the time to score 10,000 trials. This reader
handles block mappings of plain keys and simple scalars exactly as PyYAML's
safe loader types them (YAML 1.1 rules), and returns None for anything else
(lists, quotes other than simple single quotes, flow collections, anchors,
comments, multi-line strings, YAML 1.1 words such as ``yes``/``off`` typed as
booleans): the caller then falls back to ``yaml.load``. A test checks that every
document it accepts reads the same as with ``yaml.safe_load``.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

_LINE = re.compile(r'( *)([A-Za-z_][A-Za-z0-9_./-]*):(?: (.*))?\Z')
_INT = re.compile(r'-?(?:0|[1-9][0-9]*)\Z')
_FLOAT = re.compile(r'-?[0-9]+\.[0-9]*(?:[eE][-+][0-9]+)?\Z')
_WORD = re.compile(r'[A-Za-z_/][A-Za-z0-9_./-]*\Z')
_QUOTED = re.compile(r"'([^'\n]*)'\Z")
# Plain words PyYAML's safe loader types as bool or null (YAML 1.1), any case.
_SPECIAL_WORDS = {'yes', 'no', 'true', 'false', 'on', 'off', 'null'}
_FORBIDDEN = ('#', '"', '&', '*', '!', '|', '>', '\t', '%', '@', '`')
_SCALARS = {
    'null': None,
    '~': None,
    'true': True,
    'false': False,
    '.inf': float('inf'),
    '-.inf': float('-inf'),
    '.nan': float('nan'),
}
_FAIL = object()


def _scalar(text: str) -> Any:
    if text in _SCALARS:
        return _SCALARS[text]
    if text == '{}':
        return {}
    if text == '[]':
        return []
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    if _WORD.match(text) and text.lower() not in _SPECIAL_WORDS:
        return text
    quoted = _QUOTED.match(text)
    if quoted:
        return quoted.group(1)
    return _FAIL


def load(text: str) -> Optional[Dict[str, Any]]:
    """The mapping in ``text``, or None when the text is outside the handled subset."""
    if any(ch in text for ch in _FORBIDDEN) or text.startswith(('---', '...')):
        return None
    root: Dict[str, Any] = {}
    # (indent of the keys in this mapping, the mapping)
    stack: List[Tuple[int, Dict[str, Any]]] = [(0, root)]
    pending: Optional[Tuple[int, Dict[str, Any], str]] = None  # 'key:' awaiting a value
    for line in text.split('\n'):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            return None
        indent = len(match.group(1))
        key, value = match.group(2), match.group(3)
        if key.lower() in _SPECIAL_WORDS:
            return None
        if pending is not None:
            p_indent, p_map, p_key = pending
            pending = None
            if indent > p_indent:
                child: Dict[str, Any] = {}
                p_map[p_key] = child
                stack.append((indent, child))
        while stack and indent < stack[-1][0]:
            stack.pop()
        if not stack or indent != stack[-1][0]:
            return None
        mapping = stack[-1][1]
        if key in mapping:
            return None
        if value is None or value == '':
            mapping[key] = None  # stays None unless a deeper mapping follows
            pending = (indent, mapping, key)
            continue
        scalar = _scalar(value)
        if scalar is _FAIL:
            return None
        mapping[key] = scalar
    return root or None  # an empty document is None to PyYAML: let it say so
