"""Fetch or build a workload's data: ``timetrial prepare`` and the automatic step of ``run``."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable, Optional

from harness import paths, registry
from harness.errors import DataNotPreparedError


def prepare(workload: str, data_dir: Optional[str] = None, variant: Optional[str] = None,
            source: Optional[str] = None, size: Optional[str] = None,
            log: Callable[[str], None] = print) -> Path:
    """Run the workload's ``prepare``; ``size`` is passed on to those that take it
    (a size may need data of its own, e.g. ctr's ``base`` trains on synthetic data)."""
    info = registry.validate_workload_choice(workload, size, variant)
    root = paths.resolve_data_dir(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    fn = registry.load_object(info.prepare)
    params = inspect.signature(fn).parameters
    kwargs = {}
    if size is not None and 'size' in params:
        kwargs['size'] = size
    elif size is not None and 'sizes' in params:
        kwargs['sizes'] = [size]
    fn(str(root), variant=variant, source=source, log=log, **kwargs)
    return root


def ensure_prepared(workload_obj, name: str, variant: Optional[str], data_dir: Optional[str],
                    log: Callable[[str], None] = print) -> None:
    """Prepare the default data of a workload if it is missing (``timetrial run`` does this)."""
    root = str(paths.resolve_data_dir(data_dir))
    try:
        workload_obj.check_data(root)
        return
    except DataNotPreparedError:
        pass
    size = getattr(workload_obj, 'size', None)
    log(f'Data for {name}{"/" + variant if variant else ""} ({size}) is not prepared in {root}: '
        'preparing it now (once; later runs reuse it).')
    prepare(name, root, variant=variant, size=size, log=log)
    workload_obj.check_data(root)
