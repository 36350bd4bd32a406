"""Lets a submission written for MLCommons AlgoPerf import ``algoperf`` unmodified.

``install()`` appends a finder to the *end* of ``sys.meta_path``: a real
``algoperf`` installed in the environment is found first by the ordinary path
finder and wins; only when there is none do ``algoperf``, ``algoperf.spec``,
``algoperf.jax_sharding_utils`` and ``algoperf.pytorch_utils`` resolve to
TimeTrial's versions (``harness.spec`` and the modules in this package).
Framework-specific modules import their framework only when imported.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types

ALIASES = {
    'algoperf': None,  # a fresh, empty package module named 'algoperf'
    'algoperf.spec': 'harness.spec',
    'algoperf.jax_sharding_utils': 'harness.submission.algoperf_compat.jax_sharding_utils',
    'algoperf.pytorch_utils': 'harness.submission.algoperf_compat.pytorch_utils',
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        if self.target is None:
            module = types.ModuleType(spec.name, 'TimeTrial stand-in for MLCommons algoperf.')
            module.__path__ = []
            return module
        return importlib.import_module(self.target)

    def exec_module(self, module):
        # The module is the already-executed target; nothing to run.
        return None


class _AlgoperfFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in ALIASES:
            return None
        is_package = fullname == 'algoperf'
        return importlib.util.spec_from_loader(fullname, _AliasLoader(ALIASES[fullname]),
                                               is_package=is_package)


_FINDER = _AlgoperfFinder()


def install() -> None:
    if _FINDER not in sys.meta_path:
        sys.meta_path.append(_FINDER)


def real_algoperf_installed() -> bool:
    """True if an actual MLCommons algoperf distribution would be imported."""
    for finder in sys.meta_path:
        if finder is _FINDER:
            continue
        find = getattr(finder, 'find_spec', None)
        if find and find('algoperf', None) is not None:
            return True
    return False
