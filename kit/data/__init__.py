"""Data: reading the competition layout, opt-in label fixes, a synthetic fixture dataset."""

from typing import Any

from kit.data._common import DataError
from kit.data.fixes import BUILTIN_FIXES, Fix, FixReport, apply_fixes, load_fixes
from kit.data.layout import read_eval, read_train, verify_images

__all__ = [
    "BUILTIN_FIXES",
    "DataError",
    "Fix",
    "FixReport",
    "apply_fixes",
    "load_fixes",
    "make_fixture",
    "read_eval",
    "read_train",
    "verify_images",
]


def __getattr__(name: str) -> Any:
    # Imported on first use so that `python -m kit.data.fixture` runs the module only once.
    if name == "make_fixture":
        from kit.data.fixture import make_fixture

        return make_fixture
    raise AttributeError(f"module 'kit.data' has no attribute {name!r}")
