"""What ``--help`` of a recipe says: its docstring's first paragraph first (what it does, needs
and costs), then the options grouped by the Config's sections, each registry's entries listed
(presets with the augmentations they hold, losses with their arguments, one line each)."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest

from kit._config_fields import Fields
from kit.config import OTHER, Config, build_parser, sections
from kit.recipe import first_paragraph
from tests import _proc
from tests._commands import recipe_paths


def _help(path: Path) -> tuple[str | None, str]:
    """The recipe's docstring and what ``python recipes/x.py --help`` prints, in a process of
    its own (what the recipe registers stays there)."""
    done = _proc.run([sys.executable, str(path), "--help"], env={**os.environ, "COLUMNS": "80"})
    assert done.returncode == 0, done.stderr
    return ast.get_docstring(ast.parse(path.read_text())), done.stdout


@pytest.mark.parametrize("path", recipe_paths(), ids=lambda p: p.name)
def test_a_recipes_help_opens_with_its_docstrings_first_paragraph(path):
    doc, out = _help(path)
    usage, _, rest = out.partition("\n\n")
    assert usage.startswith(f"usage: {path.name} ") and len(usage.splitlines()) == 1
    paragraph = first_paragraph(doc)
    assert paragraph and " ".join(rest.split()).startswith(paragraph)


def test_the_leaderboard_recipe_says_what_it_needs_and_costs():
    (path,) = [p for p in recipe_paths() if p.name == "leaderboard.py"]
    opening = " ".join(_help(path)[1].split("options:")[0].split())
    assert "EfficientNet-B4" in opening  # what it does
    assert "Needs a CUDA GPU" in opening and "weights" in opening  # what it needs
    assert "costs five full trainings" in opening and "--smoke" in opening  # what it costs


def test_first_paragraph():
    assert first_paragraph("One\nline.\n\nMore.") == "One line."
    assert first_paragraph(None) is None and first_paragraph("  ") is None


def test_options_are_grouped_by_the_configs_sections():
    parser = build_parser(Config())
    groups = {g.title: [a.dest for a in g._group_actions] for g in parser._action_groups}
    by_field = sections(Fields)
    # every section of the Config, in its order, then nothing else but argparse's own
    wanted = list(dict.fromkeys(by_field.values()))
    assert [t for t in groups if t not in ("positional arguments", "options")] == wanted
    assert OTHER not in wanted  # every field sits under a heading
    for field, section in by_field.items():
        assert field in groups[section], (field, section)
    assert groups["data"][:2] == ["data_dir", "fixes"]
    assert "lr" in groups["optimisation"] and "loss" in groups["loss"]
    # argparse's own, the config file's, and --estimate / --find-lr (measure instead of train)
    assert groups["options"] == ["help", "config", "save_config", "estimate", "find_lr", "debug"]


def test_presets_and_losses_are_listed_one_line_each(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # argparse wraps at the terminal's width: no wrapping
    with pytest.raises(SystemExit):
        build_parser(Config()).parse_args(["--help"])
    lines = capsys.readouterr().out.splitlines()
    entries = [line.strip() for line in lines if line.strip().startswith("- ")]
    assert "- base: no augmentation" in entries
    strong = next(e for e in entries if e.startswith("- strong: "))
    assert "HorizontalFlip" in strong and "CoarseDropout" in strong  # what the preset holds
    losses = {e.split("(")[0][2:]: e for e in entries if "(" in e.split(":")[0]}
    assert {"cross_entropy", "focal", "f1", "label_smoothing"} <= set(losses)
    assert losses["cross_entropy"].startswith("- cross_entropy(class_weights, label_smoothing)")
    # the loss label_smoothing against cross_entropy's argument label_smoothing
    text = " ".join(" ".join(lines).split())
    assert (
        "label_smoothing(class_weights, smoothing): cross_entropy with its label_smoothing "
        "argument on: --loss label_smoothing is --loss cross_entropy --loss-kwargs "
        "label_smoothing=0.1"
    ) in text
