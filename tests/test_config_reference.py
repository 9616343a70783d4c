"""docs/configuration.md is generated from Config and cannot go stale."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kit.config import Config
from kit.config_reference import COMMAND, field_rows, main, markdown

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "configuration.md"


def test_the_committed_page_is_the_generated_one():
    committed = PAGE.read_text(encoding="utf-8") if PAGE.is_file() else ""
    assert committed == markdown(), (
        f"docs/configuration.md is out of date with kit/_config_fields.py; regenerate it: {COMMAND}"
    )


def test_every_config_field_has_one_row_with_its_flag_and_help():
    text = markdown()
    for f in dataclasses.fields(Config):
        rows = [line for line in text.splitlines() if line.startswith(f"| `{f.name}` |")]
        assert len(rows) == 1, f"field {f.name}: {len(rows)} rows"
        assert f"`--{f.name.replace('_', '-')}" in rows[0]
        words = f.metadata["help"].split()[:2]  # escaping may touch later words (a*b, <x>)
        assert " ".join(words) in rows[0], f"field {f.name}: help text missing"


def test_the_module_prints_the_page(capsys: pytest.CaptureFixture[str]):
    main([])
    assert capsys.readouterr().out == markdown()


@dataclass
class _Toy:
    """A stand-in config whose page is known by hand."""

    # first part
    alpha: int = field(default=3, metadata={"help": "the alpha"})
    pair: tuple[int, int] = field(default=(1, 2), metadata={"help": "a | pipe and 2*x*y"})
    # second part
    switch: bool = field(default=True, metadata={"help": "<on> or off"})
    maybe: str | None = field(default=None, metadata={"help": "text or none"})


def test_rows_of_a_hand_checked_dataclass():
    rows = {r["field"]: r for r in field_rows(_Toy)}
    assert list(rows) == ["alpha", "pair", "switch", "maybe"]
    assert [rows[k]["section"] for k in rows] == ["first part"] * 2 + ["second part"] * 2
    assert rows["alpha"]["flag"] == "`--alpha INT`"
    assert rows["pair"]["flag"] == "`--pair INT INT`"
    assert rows["switch"]["flag"] == "`--switch` / `--no-switch`"
    assert rows["maybe"]["type"] == "str or None"
    assert rows["pair"]["default"] == "(1, 2)" and rows["maybe"]["default"] == "None"


def test_page_of_a_hand_checked_dataclass():
    lines = markdown(_Toy).splitlines()
    assert lines.index("### first part") < lines.index("### second part")
    assert (
        "| `pair` | `--pair INT INT` | `tuple[int, int]` | `(1, 2)` | a \\| pipe and 2\\*x\\*y |"
        in lines
    )
    assert (
        "| `switch` | `--switch` / `--no-switch` | `bool` | `True` | &lt;on&gt; or off |" in lines
    )
    assert "| `maybe` | `--maybe TEXT` | `str or None` | `None` | text or none |" in lines
    assert not [line for line in lines if line != line.rstrip()], "trailing whitespace"
