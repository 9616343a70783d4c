"""Troubleshooting triggers of one's own code (docs/troubleshooting.md): a run folder whose
recorded code no longer imports. The other rows about one's own code (model sources,
optimizers, fine-tuning, a run's code that is gone) are claimed by their modules' tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kit.config import Config
from kit.runfolder import ensure_run_code
from tests._triggers import raised


def _run_code_broken(c: Any) -> str:
    run = c.tmp / "run"
    run.mkdir()
    (run / "recipe.py").write_text("import no_such_module_of_mine\n")
    return raised(lambda: ensure_run_code(run, Config(head="gone_head")))


OWN_CODE: dict[str, Callable[[Any], str]] = {
    "run-code-broken": _run_code_broken,
}
