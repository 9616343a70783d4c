"""A recipe changes exactly what its docstring says: its "Changes:" line names the fields in
which its config differs from the baseline's (the run name aside), so the ledger's
``python -m kit.runs --vs <baseline run>`` on its run shows exactly those fields.

Every recipe with a "Changes:" line is checked; the two below must have one.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import ClassVar

import pytest

import kit.runs
from kit.config import Config
from kit.recipe import parse_args
from kit.runfolder import TRANSFORM_FIELD, transform_record

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
MUST_DECLARE = ("multihead_age58", "strong_aug")
#: What a "Changes:" line calls a recipe's own training pipeline (not a Config field).
TRANSFORM = TRANSFORM_FIELD
# one line, continued on indented lines when the fields do not fit in 100 characters
_CHANGES = re.compile(r"^Changes:[ \t]*(.+(?:\n[ \t]+\S.*)*)", re.M)


def declared_changes(docstring: str) -> set[str] | None:
    """The field names of the docstring's "Changes:" line (None when it has none)."""
    match = _CHANGES.search(docstring)
    return None if match is None else {f.strip() for f in match[1].split(",") if f.strip()}


def changed_fields(base: Config, cfg: Config) -> set[str]:
    """Fields whose values differ, by plain dataclass comparison (``name`` left out)."""
    return {
        f.name
        for f in dataclasses.fields(Config)
        if f.name != "name" and getattr(base, f.name) != getattr(cfg, f.name)
    }


def _docstring(path: Path) -> str:
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""


def _declaring() -> list[Path]:
    paths = sorted(RECIPES.glob("*.py"))
    return [p for p in paths if p.stem != "baseline" and declared_changes(_docstring(p))]


def _load(path: Path) -> ModuleType:
    """Import a recipe file as ``python recipes/<x>.py`` would see it (recipes/ on sys.path),
    as a module in ``sys.modules``: timm's ``register_model`` looks its module up there. The
    same file with the same text is imported once (a second import would register its pieces
    again)."""
    name, text = f"recipe_{path.stem}", path.read_text(encoding="utf-8")
    known = sys.modules.get(name)
    same_file = known is not None and getattr(known, "__file__", None) == str(path)
    if same_file and getattr(known, "_contract_text", None) == text:
        return known
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    module._contract_text = text  # type: ignore[attr-defined]
    return module


@pytest.fixture
def recipes_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(RECIPES))
    monkeypatch.delitem(sys.modules, "baseline", raising=False)


def test_the_docstring_parser_on_hand_written_examples():
    doc = "Title.\n\nMore words: not this.\nChanges: head, sampler ,age_thresholds\n\nusage"
    assert declared_changes(doc) == {"head", "sampler", "age_thresholds"}
    assert declared_changes("Title.\n\nno such line here") is None
    assert declared_changes("Title.\n  Changes: indented is not the line") is None
    long = "Title.\n\nChanges: head, sampler,\n  age_thresholds, lr\nnot this, nor this\n"
    assert declared_changes(long) == {"head", "sampler", "age_thresholds", "lr"}


def test_changed_fields_finds_every_difference_but_the_name():
    base = Config()
    assert changed_fields(base, base.replace(name="x", preset="strong", lr=0.01)) == {
        "preset",
        "lr",
    }
    assert changed_fields(base, base.replace(name="other")) == set()


_SNEAKY = '''"""Declares one change and makes two.

Changes: preset
"""

from baseline import config as baseline_config


def config():
    return baseline_config().replace(name="sneaky", preset="strong", lr=0.01)
'''


def test_a_recipe_changing_an_undeclared_field_is_caught(tmp_path: Path, recipes_on_path: None):
    path = tmp_path / "sneaky.py"
    path.write_text(_SNEAKY, encoding="utf-8")
    with pytest.raises(AssertionError, match=r"changes \['lr', 'preset'\] from the baseline"):
        _check_contract(path)
    # declaring both fields makes the same recipe keep the contract
    path.write_text(_SNEAKY.replace("Changes: preset", "Changes: preset, lr"), encoding="utf-8")
    _check_contract(path)


@pytest.mark.parametrize("stem", MUST_DECLARE)
def test_these_recipes_declare_their_changes(stem: str):
    assert declared_changes(_docstring(RECIPES / f"{stem}.py")), (
        f"recipes/{stem}.py: its docstring needs a line 'Changes: field, field'"
    )


def _check_contract(path: Path, baseline: Path = RECIPES / "baseline.py") -> None:
    declared = declared_changes(_docstring(path))
    assert declared is not None, f"{path.name}: no 'Changes:' line"
    unknown = declared - {f.name for f in dataclasses.fields(Config)} - {TRANSFORM}
    assert not unknown, f"{path.name}: 'Changes:' names no Config field {sorted(unknown)}"

    recipe = _load(path)
    base, cfg = _load(baseline).config(), recipe.config()
    # a recipe passing its own pipeline (kit.main(config(), train_transform())) defines it in
    # a function train_transform(), beside config()
    own = getattr(recipe, TRANSFORM, None)
    changed = changed_fields(base, cfg) | ({TRANSFORM} if callable(own) else set())
    assert changed == declared, (
        f"{path.name} changes {sorted(changed)} from the baseline "
        f"but its docstring says 'Changes: {', '.join(sorted(declared))}'"
    )
    # The ledger compares run folders' config.json and train_transform.json: it must see the
    # same fields.
    summary = transform_record(own())["summary"] if callable(own) else None
    ledger_cfg = {**cfg.to_dict(), TRANSFORM: summary}
    assert set(kit.runs.diff({**base.to_dict(), TRANSFORM: None}, ledger_cfg)) == declared
    # Its runs are told apart from the baseline's in the ledger by name: the file's stem.
    assert cfg.name == path.stem
    # A valid config, and the command line with no flags keeps it as it is.
    cfg.validate()
    assert parse_args(cfg, []) == cfg


@pytest.mark.parametrize("path", _declaring(), ids=lambda p: p.stem)
def test_recipe_differs_from_baseline_in_exactly_the_declared_fields(
    path: Path, recipes_on_path: None
):
    _check_contract(path)


def test_the_complete_recipe_of_docs_recipes_md_keeps_the_contract(
    tmp_path: Path, recipes_on_path: None
):
    text = (ROOT / "docs" / "recipes.md").read_text(encoding="utf-8")
    found = re.search(
        r"complete recipe, `recipes/(\w+)\.py`:\n\n```python\n(.*?)^```", text, re.S | re.M
    )
    assert found, "docs/recipes.md lost its complete example recipe"
    path = tmp_path / f"{found[1]}.py"
    path.write_text(found[2], encoding="utf-8")
    _check_contract(path)


_REGISTERS_A_TIMM_MODEL = '''"""A timm model of its own, registered with timm's decorator.

Changes: model
"""

import timm
from baseline import config as baseline_config
from timm.models import register_model


@register_model
def contract_tiny_net(pretrained: bool = False, **kwargs):
    return timm.create_model("resnet10t", pretrained=pretrained, **kwargs)


def config():
    return baseline_config().replace(name="{stem}", model="contract_tiny_net")
'''


def test_a_recipe_that_registers_a_timm_model_keeps_the_contract(
    tmp_path: Path, recipes_on_path: None
):
    # timm's register_model reads sys.modules[fn.__module__]: loaded outside sys.modules, the
    # recipe failed here while it ran fine as a script
    path = tmp_path / "own_net.py"
    path.write_text(_REGISTERS_A_TIMM_MODEL.format(stem="own_net"), encoding="utf-8")
    _check_contract(path)
    _check_contract(path)  # the same file again: imported once, registered once


def test_the_custom_pipeline_recipe_of_docs_recipes_md_keeps_the_contract(
    tmp_path: Path, recipes_on_path: None
):
    text = (ROOT / "docs" / "recipes.md").read_text(encoding="utf-8")
    pattern = r"A complete recipe,\n`recipes/(\w+)\.py`:\n\n```python\n(.*?)^```"
    found = re.search(pattern, text, re.S | re.M)
    assert found, "docs/recipes.md lost its custom pipeline recipe"
    path = tmp_path / f"{found[1]}.py"
    path.write_text(found[2], encoding="utf-8")
    assert declared_changes(_docstring(path)) == {TRANSFORM}
    _check_contract(path)
    # undeclared, the same pipeline breaks the contract
    path.write_text(found[2].replace("Changes: train_transform", "Changes: lr"), encoding="utf-8")
    with pytest.raises(AssertionError, match=r"changes \['train_transform'\] from the baseline"):
        _check_contract(path)


@pytest.mark.parametrize(
    ("argv", "threshold"),
    [
        (["--smoke"], 0.0),  # two smoke epochs are never 95% sure: every picture passes
        (["--smoke", "--pseudo-threshold", "0.5"], 0.5),  # the user's threshold is kept
        (["--smoke", "--pseudo-threshold=0.8", "--pseudo-labels", "x"], 0.8),
        (["--pseudo-threshold", "0.7"], 0.7),
    ],
)
def test_pseudo_label_smoke_keeps_the_users_threshold(
    recipes_on_path, monkeypatch, capsys, argv, threshold
):
    recipe = _load(RECIPES / "pseudo_label.py")
    seen: list[Config] = []

    class Done:
        run_dir = Path("stage1")
        best_score = 0.5
        summary: ClassVar[dict] = {"pseudo": {"n_pictures": 1, "n_eval": 1}}

    def fit(cfg: Config) -> Done:
        seen.append(cfg)
        return Done()

    monkeypatch.setattr(recipe.kit, "fit", fit)
    recipe.main(argv)
    assert seen and all(cfg.pseudo_threshold == threshold for cfg in seen)
    said = "smoke: pseudo_threshold 0.95 -> 0.0" in capsys.readouterr().out
    assert said == (threshold == 0.0)
