"""The GitHub workflow, .ci/run and the README must agree: what is green here runs there."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def _tool(name: str) -> str:
    # Prefer the tool installed beside this interpreter (the dev extra), then PATH.
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    assert found, f"{name} is missing: install the dev extra (pip install -e '.[dev]')"
    return found


def test_workflow_matches_the_github_schema():
    # Stands in for actionlint, which cannot install offline (it downloads a binary).
    out = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_workflow_passes_the_security_audit():
    out = subprocess.run(
        [_tool("zizmor"), "--offline", str(WORKFLOW.parent)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_workflow_runs_the_same_script_as_local_ci():
    wf = yaml.safe_load(WORKFLOW.read_text())
    triggers = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads the key `on` as True
    assert "pull_request" in triggers and triggers["push"]["branches"] == ["main"]
    (job,) = wf["jobs"].values()
    assert job["timeout-minutes"] <= 60
    steps = job["steps"]
    runs = [s["run"] for s in steps if "run" in s]
    assert runs == ["bash .ci/run"]
    setup = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["cache"] == "pip"
    run_step = next(s for s in steps if "run" in s)
    assert "download.pytorch.org/whl/cpu" in run_step["env"]["TORCH_INDEX_URL"]


def test_ci_run_uses_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    install = re.search(r"^pip install (-e \"\.\[dev\]\")$", readme, re.M)
    assert install, 'README must show the one install command: pip install -e ".[dev]"'
    ci_run = (ROOT / ".ci" / "run").read_text()
    assert f"python -m pip install {install.group(1)}" in ci_run
    assert "bash .ci/check" in ci_run
    check = (ROOT / ".ci" / "check").read_text()
    test_block = readme[readme.index("## Test") :].split("```")[1]
    commands = [line.split("#")[0].strip() for line in test_block.splitlines()[1:]]
    assert commands[:2] == ["pytest", "pytest -m slow"], "README shows the fast and the slow set"
    for command in commands:
        assert re.search(rf"^{re.escape(command)}$", check, re.M), f"CI must run {command!r}"
    assert "pre-commit run --all-files" in check
