"""kit.registry: the one registry helper behind every "name -> builder" table of kit."""

from __future__ import annotations

import doctest
from collections.abc import Iterator

import pytest

import kit.registry
from kit.registry import REGISTRIES, Registry, UnknownName, did_you_mean, get_registry


@pytest.fixture
def shapes() -> Iterator[Registry[object]]:
    """A registry of kind ``test_shape`` that is gone from REGISTRIES after the test."""
    registry: Registry[object] = Registry("test_shape")
    try:
        yield registry
    finally:
        REGISTRIES.pop("test_shape", None)


def _square(side: float) -> float:
    return side * side


def test_register_by_decorator_and_by_call(shapes):
    @shapes.register("square")
    def square(side: float) -> float:
        return side * side

    assert shapes.register("circle", abs) is abs  # a call returns the entry
    assert square(3.0) == 9.0  # the decorator hands the function back unchanged
    assert shapes.get("square") is square and shapes["circle"] is abs
    assert shapes.names() == ["circle", "square"] == list(shapes)
    assert "square" in shapes and "triangle" not in shapes and {"a": 1} not in shapes
    assert len(shapes) == 2 and shapes.items() == [("circle", abs), ("square", square)]


def test_duplicates_are_refused_unless_overwrite_or_equal(shapes):
    shapes.register("square", _square)
    shapes.register("square", _square)  # the same entry again (a re-import) changes nothing
    with pytest.raises(ValueError, match=r"test shape 'square' is already registered"):
        shapes.register("square", abs)
    assert shapes.get("square") is _square
    shapes.register("square", abs, overwrite=True)
    assert shapes.get("square") is abs
    assert shapes.unregister("square") is abs and "square" not in shapes


def test_the_same_definition_made_again_replaces_the_entry(shapes):
    # a notebook cell run twice defines a new function of the same module and name
    namespace: dict[str, object] = {"__name__": "__main__"}
    cell = "def square(side):\n    return side * side\n"
    exec(cell, namespace)
    first = shapes.register("square", namespace["square"])
    exec(cell, namespace)
    assert namespace["square"] is not first
    assert shapes.register("square", namespace["square"]) is shapes.get("square") is not first
    # another definition under the taken name is still refused
    with pytest.raises(ValueError, match="already registered"):
        shapes.register("square", _square)


@pytest.mark.parametrize("name", ["two words", "", "1st", 3])
def test_names_must_be_identifiers(shapes, name):
    with pytest.raises(ValueError, match="must be an identifier"):
        shapes.register(name)


def test_unknown_names_suggest_the_closest_and_list_the_valid(shapes):
    shapes.register("square", _square)
    shapes.register("circle", abs)
    with pytest.raises(UnknownName) as err:
        shapes.get("sqare")
    assert str(err.value) == (
        "unknown test shape 'sqare' (did you mean 'square'?); valid: ['circle', 'square']"
    )
    assert isinstance(err.value, ValueError)  # callers catching ValueError keep working
    with pytest.raises(UnknownName, match=r"unknown test shape 'hexagon'; valid:"):
        shapes.get("hexagon")  # nothing close: no suggestion
    with pytest.raises(UnknownName, match=r"unknown test shape \['square'\]"):
        shapes.get(["square"])  # an unhashable value is just unknown


def test_did_you_mean_orders_and_limits_suggestions():
    assert did_you_mean("focall", ["focal", "f1"]) == " (did you mean 'focal'?)"
    assert did_you_mean("batch", ["batch_size", "match"], n=2, cutoff=0.5) == (
        " (did you mean 'match' or 'batch_size'?)"
    )
    assert did_you_mean("zzz", ["focal"]) == ""


def test_every_registry_is_indexed_by_kind(shapes):
    assert REGISTRIES["test_shape"] is shapes is get_registry("test_shape")
    with pytest.raises(UnknownName, match=r"no registry of 'test_shap' \(did you mean 'test_sh"):
        get_registry("test_shap")


def test_check_names_the_config_field_or_defers_to_the_registry_hook(shapes):
    shapes.register("square", _square)
    shapes.check("square")
    with pytest.raises(UnknownName, match=r"^config field 'shape' is 'sqare' \(did you mean"):
        shapes.check("sqare", "shape")
    seen = []
    composite: Registry[object] = Registry(
        "test_composite", check=lambda value, field, cfg: seen.append((value, field, cfg))
    )
    try:
        composite.check("a+b", "mix", "cfg")
    finally:
        REGISTRIES.pop("test_composite")
    assert seen == [("a+b", "mix", "cfg")]  # the hook decides, the registry adds nothing


def test_describe_gives_one_line_per_entry(shapes):
    shapes.register("square", _square)
    assert shapes.describe() == ["square"]
    described: Registry[object] = Registry("test_described", describe=lambda n, e: f"{n}!")
    try:
        described.register("b", 1)
        described.register("a", 2)
        assert described.describe() == ["a!", "b!"]
    finally:
        REGISTRIES.pop("test_described")


def test_kit_registries_are_registry_objects():
    import kit.data.image_cache
    import kit.ensemble
    import kit.losses
    import kit.models
    import kit.transforms
    import kit.tta  # noqa: F401  (the ensembler no longer imports torch's TTA views at import)

    for kind in ("head", "output_kind", "loss", "preset", "tta", "ensemble_method", "executor"):
        assert isinstance(REGISTRIES[kind], Registry), kind
        assert REGISTRIES[kind].kind == kind


def test_the_module_example_runs():
    before = dict(REGISTRIES)
    result = doctest.testmod(kit.registry, raise_on_error=False, verbose=False)
    REGISTRIES.clear()
    REGISTRIES.update(before)  # the example's registry is only an example
    assert result.attempted >= 4 and result.failed == 0


def test_a_deferred_registration_waits_for_its_registries_decorator(shapes):
    made = []

    def register_shape(name: str, *, sides: int):  # the module's own decorator
        def decorate(build):
            made.append((name, sides))
            return shapes.register(name, build)

        return decorate

    later = kit.registry.deferred("test_shape")
    assert later("square", sides=4)(_square) is _square
    assert "square" not in shapes and made == []  # nothing imported, nothing registered yet
    try:
        kit.registry.registerer("test_shape")(register_shape)  # the module is imported
        assert shapes.get("square") is _square and made == [("square", 4)]
        later("square2", sides=4)(_square)  # once it is, at once
        assert "square2" in shapes and len(made) == 2
    finally:
        kit.registry._REGISTERERS.pop("test_shape", None)


def test_kits_register_head_and_loss_go_through_kits_own_decorators():
    import kit
    from kit.losses import LOSSES
    from kit.models import HEADS

    def _head(in_features: int):
        return None

    def _loss():
        return None

    kit.register_head("test_deferred_head", kind="joint")(_head)
    kit.register_loss("test_deferred_loss")(_loss)
    try:  # kit.models and kit.losses are loaded: registered at once, as their own decorators do
        assert HEADS.get("test_deferred_head").kind == "joint"
        assert LOSSES.get("test_deferred_loss") is _loss
    finally:
        HEADS.unregister("test_deferred_head")
        LOSSES.unregister("test_deferred_loss")
