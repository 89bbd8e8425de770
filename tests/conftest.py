"""Collection rules shared by every test module."""

from __future__ import annotations


def pytest_collection_modifyitems(config, items):
    """Tests marked ``icarus`` need Icarus Verilog, which pip cannot install: they run only
    when the ``-m`` expression names them (``pytest -m icarus``). The default expression in
    pyproject.toml leaves them out too, but a ``-m`` given on the command line replaces it
    (``pytest -m "not slow"`` would otherwise collect them and fail where Icarus is absent)."""
    if "icarus" in (config.getoption("markexpr") or ""):
        return
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker("icarus") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
