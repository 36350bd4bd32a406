"""Shape and type trees (``spec.ShapeTuple`` / ``spec.ParameterType`` leaves).

Framework-free: a JAX workload passes its nested flax ``params`` dict, a
PyTorch workload the flat ``{name: parameter}`` dict of ``named_parameters()``.
Leaves only need a ``.shape``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping

from harness import spec


def map_tree(
    fn: Callable[[str, Any], Any], tree: Mapping[str, Any], sep: str = '/', prefix: str = ''
) -> Dict[str, Any]:
    """A copy of a nested dict with each leaf replaced by ``fn(path, leaf)``.

    ``path`` joins the keys from the root with ``sep`` (``'blocks_0/attn/q/kernel'``).
    """
    out: Dict[str, Any] = {}
    for key, value in tree.items():
        path = f'{prefix}{sep}{key}' if prefix else str(key)
        if isinstance(value, Mapping):
            out[key] = map_tree(fn, value, sep, path)
        else:
            out[key] = fn(path, value)
    return out


def shape_tree(tree: Mapping[str, Any]) -> Dict[str, Any]:
    """Same structure as ``tree``, leaves ``spec.ShapeTuple(leaf.shape)``."""
    return map_tree(lambda _, leaf: spec.ShapeTuple(leaf.shape), tree)


def type_tree(
    tree: Mapping[str, Any], type_of_path: Callable[[str], spec.ParameterType], sep: str = '/'
) -> Dict[str, Any]:
    """Same structure as ``tree``, leaves ``type_of_path(path)``."""
    return map_tree(lambda path, _: type_of_path(path), tree, sep)


def count_params(tree: Mapping[str, Any]) -> int:
    """Number of scalars in a tree of arrays."""
    total = 0
    for value in tree.values():
        if isinstance(value, Mapping):
            total += count_params(value)
        else:
            size = 1
            for dim in value.shape:
                size *= int(dim)
            total += size
    return total
