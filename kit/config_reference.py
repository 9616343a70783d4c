"""The configuration reference (docs/configuration.md), generated from the ``Config`` dataclass:
flags from the real parser, sections from the ``# comment`` lines of the class body. A test fails
when the committed page differs from :func:`markdown`.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, get_type_hints

from kit import cli
from kit._config_checks import type_name
from kit.config import OTHER, Config, build_parser, sections

__all__ = ["COMMAND", "field_rows", "main", "markdown"]

#: The command that regenerates the page (named in the page and in the staleness test).
COMMAND = "python -m kit.config_reference > docs/configuration.md"

_INTRO = """\
# Configuration reference

<!-- Generated from kit/_config_fields.py by `{command}`; do not edit by hand. -->

Every setting of a training run is a field of `kit.Config` (declared in kit/_config_fields.py),
and every field is a command-line flag of every recipe. This page is generated from the
dataclass, so it lists exactly the fields the code has.

## Where a value comes from

From lowest to highest precedence:

1. the field's default (the table below);
2. the recipe's `config()` (e.g. recipes/baseline.py);
3. `--config FILE`: a YAML (`.yaml`, `.yml`) or JSON (`.json`) file; only the keys it names
   override, the others keep the recipe's values;
4. command-line flags.

`--resume RUN_DIR` starts from that run's saved `config.json` instead of the recipe (flags
still override it). `--save-config FILE` writes the resolved config and exits, so
`python recipes/baseline.py --lr 0.001 --save-config my.yaml` starts a config file of your own.
`--estimate` and `--find-lr` measure the run instead of training it (each stage's time; a
learning-rate range test; [speed.md](speed.md#what-a-run-will-cost---estimate)).
`--help` prints every flag with its default.

## Writing values

| kind | on the command line | in YAML |
| --- | --- | --- |
| number, text | `--lr 0.001`, `--model resnet18` | `lr: 0.001` |
| pair | `--image-size 128 96` (two values: height, width) | `image_size: [128, 96]` |
| switch | `--amp` / `--no-amp` | `amp: false` |
| mapping | `--head-losses age=focal,mask=cross_entropy` | `head_losses: {{age: focal}}` |
| list | `--fixes builtin,my_fixes.csv` | `fixes: [builtin, my_fixes.csv]` |
| nothing | `--fold none` | `fold: null` |

Unknown keys and ill-typed values stop with the field named and the expected type.

## Example

A file sets two fields; a flag overrides one of them:

```bash runnable
cat > my.yaml <<'EOF'
epochs: 5
lr: 0.01
EOF
python recipes/baseline.py --config my.yaml --lr 0.001 --save-config resolved.yaml
grep -E '^(epochs|lr):' resolved.yaml
```

prints `lr: 0.001` (the flag won) and `epochs: 5` (from the file). In Python:
`Config.load("my.yaml")` reads a file over the defaults, `cfg.replace(lr=0.001)` changes
fields with the same checks as a flag, and `parse_args(recipe_config, argv)` does the whole
chain.

## Fields
"""

_TABLE_HEAD = "| field | flag | type | default | meaning |\n| --- | --- | --- | --- | --- |"


def _flags(config_cls: type) -> dict[str, str]:
    """field -> how it is written on the command line, from the parser the recipes use."""
    out: dict[str, str] = {}  # (and the options that are no field: never looked up)
    # argparse has no public list of its options; _actions is stable since Python 3.2.
    for action in build_parser(config_cls())._actions:
        if action.nargs == 0:  # --amp / --no-amp
            out[action.dest] = " / ".join(f"`{s}`" for s in action.option_strings)
            continue
        meta = action.metavar
        values = " ".join(meta) if isinstance(meta, tuple) else str(meta)
        out[action.dest] = f"`{action.option_strings[0]} {values}`"
    return out


def _cell(text: str) -> str:
    """Table-safe text: a ``|`` would end the cell, a newline the row."""
    return text.replace("|", "\\|").replace("\n", " ")


def _prose(text: str) -> str:
    """Help text as literal markdown: ``*`` is no emphasis, ``<name>`` no HTML tag."""
    for char, escaped in (("*", "\\*"), ("<", "&lt;"), (">", "&gt;")):
        text = text.replace(char, escaped)
    return _cell(text)


def field_rows(config_cls: type = Config) -> list[dict[str, str]]:
    """One row per dataclass field: field, flag, type, default, help, section."""
    hints = get_type_hints(config_cls)
    defaults = config_cls()
    flags, by_field = _flags(config_cls), sections(config_cls)
    return [
        {
            "field": f.name,
            "flag": flags.get(f.name, ""),
            "type": type_name(hints[f.name]),
            "default": repr(getattr(defaults, f.name)),
            "help": f.metadata.get("help", ""),
            "section": by_field.get(f.name, OTHER),
        }
        for f in dataclasses.fields(config_cls)
    ]


def _row(r: dict[str, Any]) -> str:
    code = [f"`{r[key]}`" for key in ("type", "default")]
    cells = [f"`{r['field']}`", *map(_cell, [r["flag"], *code]), _prose(r["help"])]
    return "| " + " | ".join(cells) + " |"


def markdown(config_cls: type = Config) -> str:
    """The whole configuration page: the intro, then one table per section of fields."""
    by_section: dict[str, list[dict[str, str]]] = {}
    for r in field_rows(config_cls):
        by_section.setdefault(r["section"], []).append(r)
    parts = [_INTRO.format(command=COMMAND)]
    for section, rows in by_section.items():
        parts.append(f"### {section}\n\n{_TABLE_HEAD}\n" + "\n".join(map(_row, rows)) + "\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    """Print the page (redirect it into docs/configuration.md)."""
    cli.ArgumentParser(prog="python -m kit.config_reference", description=COMMAND).parse_args(argv)
    sys.stdout.write(markdown())


if __name__ == "__main__":
    main()
