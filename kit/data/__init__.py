"""Data: reading the competition layout, opt-in label fixes, image checks.

The synthetic fixture is :mod:`kit.data.fixture` (``kit.make_fixture``); it is not imported
here so that ``python -m kit.data.fixture`` runs that module only once.
"""

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
    "read_eval",
    "read_train",
    "verify_images",
]
