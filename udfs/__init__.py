"""Python scalar functions callable from any feature SQL, registered under their own names.

Every module here is scanned; each module-level object made with ``@udf`` is registered as a
temporary system function named after the variable. Keep them pure (same input, same output)
and off the shipped features' hot path: a Python UDF runs in a separate Python worker.
"""

from __future__ import annotations

import importlib
import pkgutil

from pyflink.table import TableEnvironment
from pyflink.table.udf import UserDefinedFunctionWrapper


def discover() -> dict[str, UserDefinedFunctionWrapper]:
    """Every UDF in this package by name; a name defined twice is an error."""
    found: dict[str, UserDefinedFunctionWrapper] = {}
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for name, value in vars(module).items():
            if isinstance(value, UserDefinedFunctionWrapper):
                if name in found:
                    raise ValueError(f"udfs: function '{name}' is defined in more than one module")
                found[name] = value
    return found


def register_all(t_env: TableEnvironment) -> list[str]:
    names = []
    for name, function in discover().items():
        t_env.create_temporary_system_function(name, function)
        names.append(name)
    return names
