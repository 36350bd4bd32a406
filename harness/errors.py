"""Every error the harness raises or records, and the helpers that word them.

Two kinds, kept apart on purpose:

- ``UserInputError`` (and ``DataNotPreparedError``): bad input found before
  anything runs — an unknown name, a broken submission, data not prepared. The
  message says what was wrong, where, and how to fix it; the command line
  prints it and exits with status 2.
- ``SubmissionError``: an exception raised by submission code while a trial
  runs. It is recorded with the trial (status ``failed``, the first line in
  result.json, the traceback in error.txt) and never crashes a suite.

``TrainingCompleteError`` is not here: it is the submission's way to end its
training, part of AlgoPerf's API, so it lives in ``harness.spec``.
"""

from __future__ import annotations

import difflib
import traceback
from typing import Any, Callable, Iterable

from harness.spec import TrainingCompleteError


class UserInputError(Exception):
    """Bad input from a user: the message says what, where and how to fix it.

    The command line turns it into a message and exit status 2.
    """


class DataNotPreparedError(UserInputError):
    """A workload's data is missing; the message names the command that makes it."""


class SubmissionError(Exception):
    """An exception raised by submission code, with the phase it was raised in.

    ``str(error)`` is one line (``phase: Type: message``), what result.json's
    ``error`` holds; ``traceback_text`` is the whole traceback, for error.txt.
    """

    def __init__(self, phase: str, original: BaseException):
        first_line = (str(original).strip().splitlines() or [''])[0]
        super().__init__(f'{phase}: {type(original).__name__}: {first_line}')
        self.phase = phase
        self.original = original
        self.traceback_text = ''.join(
            traceback.format_exception(type(original), original, original.__traceback__))


def call_submission(phase: str, fn: Callable[..., Any], *args, **kwargs) -> Any:
    """Run submission code; wrap anything it raises but TrainingCompleteError.

    KeyboardInterrupt and SystemExit pass through: they stop the harness, not
    the submission.
    """
    try:
        return fn(*args, **kwargs)
    except TrainingCompleteError:
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 — submission code: record, never crash
        raise SubmissionError(phase, e) from e


def check_batch_divides(size: int, parts: int, *, what: str = 'global batch size',
                        parts_name: str = 'devices', fix: str = '') -> None:
    """UserInputError unless ``size`` rows split evenly into ``parts`` equal shares."""
    if size % parts:
        fix = fix or (f'choose a multiple of {parts} (a submission sets it in get_batch_size).')
        raise UserInputError(
            f'The {what} ({size}) has to be divisible by the number of {parts_name} '
            f'({parts}): {fix}')


def unknown_name_error(kind: str, name: str, known: Iterable[str], hint: str = '') -> UserInputError:
    """'Unknown workload 'lmm'. Did you mean: lm? Known workloads: ctr, lm.'"""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    parts = [f'Unknown {kind} {name!r}.']
    if close:
        parts.append(f'Did you mean: {", ".join(close)}?')
    parts.append(f'Known {kind}s: {", ".join(known) if known else "(none)"}.')
    if hint:
        parts.append(hint)
    return UserInputError(' '.join(parts))
