"""The public names a teammate reaches for are importable from `kit` itself."""

import importlib
import subprocess
import sys
import types

import pytest

import kit


@pytest.mark.parametrize("name", sorted(kit._EXPORTS))
def test_every_export_resolves_to_its_module(name):
    value = getattr(kit, name)
    module, _, attribute = kit._EXPORTS[name].partition(":")
    assert value is getattr(importlib.import_module(module), attribute or name)


def test_the_public_surface_is_the_names_a_recipe_needs():
    # the rest is reached by its module; the other names of _EXPORTS resolve for older code
    assert len(kit.__all__) <= 45
    assert len(set(kit.__all__)) == len(kit.__all__)
    assert set(kit.__all__) <= set(kit._EXPORTS)
    assert set(kit.__all__) <= set(dir(kit))


def test_a_module_is_reached_from_kit_without_importing_it():
    code = (
        "import sys, kit; print('kit.plot' in sys.modules); "
        "print(kit.plot.worst_mistakes.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "kit.plot"]


def test_kit_predict_is_the_command_and_kit_predict_probs_the_function():
    # kit is a plain module: a name exported at the top level is never also a kit module, so
    # importing that module (`python -m kit.predict` does) cannot hide the export
    import kit.inference
    import kit.predict

    assert type(kit) is types.ModuleType
    assert kit.predict is sys.modules["kit.predict"] and callable(kit.predict.main)
    assert kit.predict_probs is kit.inference.predict
    assert "predict" not in kit._EXPORTS and "predict_probs" in kit.__all__


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no_such_thing"):
        kit.no_such_thing  # noqa: B018


def test_import_kit_does_not_load_torch():
    code = "import sys, kit; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
