"""The public names a teammate reaches for are importable from `kit` itself."""

import importlib
import subprocess
import sys

import pytest

import kit


@pytest.mark.parametrize("name", kit.__all__)
def test_every_export_resolves_to_its_module(name):
    value = getattr(kit, name)
    module, _, attribute = kit._EXPORTS[name].partition(":")
    assert value is getattr(importlib.import_module(module), attribute or name)


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no_such_thing"):
        kit.no_such_thing  # noqa: B018


def test_import_kit_does_not_load_torch():
    code = "import sys, kit; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
