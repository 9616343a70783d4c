"""kit from a Jupyter notebook, on a real kernel (nbclient): the example notebook trains, its
run folder keeps the notebook's code cells as an importable ``notebook.py``, a fresh process
predicts the run, and a kernel interrupt leaves a run that resumes from the next cell."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from kit.runfolder import NOTEBOOK, RECIPE, TRAIN_TRANSFORM, notebook_module
from tests import _proc

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "notebooks" / "example.ipynb"


def _kernel(tmp: Path) -> KernelManager:
    """A kernel of this interpreter (this venv), whatever kernels the machine has installed."""
    spec = tmp / "kernels" / "kit-tests"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "kit tests", "language": "python"})
    )
    specs = KernelSpecManager(kernel_dirs=[str(spec.parent)])
    return KernelManager(kernel_spec_manager=specs, kernel_name="kit-tests")


def _client(nb: nbformat.NotebookNode, work: Path, tmp: Path) -> NotebookClient:
    return NotebookClient(
        nb, km=_kernel(tmp), timeout=600, resources={"metadata": {"path": str(work)}}
    )


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def test_the_notebook_module_defines_at_import_and_runs_the_rest_as_a_script(tmp_path: Path):
    cells = [
        "import math\nimport kit",
        "get_ipython().run_line_magic('matplotlib', 'inline')",
        'SIZE = 3\n\n@kit.register_loss("nb_test_loss")\ndef nb_loss(logits, target):\n'
        "    return logits.sum() * SIZE\n\nprint('defined')",
        "kit.PRESETS.register('nb_test_preset', lambda cfg: [])\nran = math.sqrt(4)",
        "def broken(:",
    ]
    text = notebook_module(cells)
    path = tmp_path / "notebook.py"
    path.write_text(text)
    assert "    # In[2]\n    get_ipython().run_line_magic" in text
    assert '@kit.register_loss("nb_test_loss")\ndef nb_loss' in text
    assert "# In[5]: not Python, kept as a comment\n# def broken(:" in text
    # imported: the definitions and registrations run, the rest does not
    spec = importlib.util.spec_from_file_location("nb_module_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import kit
    from kit.losses import LOSSES  # kit.register_loss registers once kit's losses are loaded

    try:
        assert LOSSES.get("nb_test_loss") is module.nb_loss
        assert "nb_test_preset" in kit.PRESETS.names()
        assert module.SIZE == 3 and not hasattr(module, "ran")
    finally:
        LOSSES.unregister("nb_test_loss")
        kit.PRESETS.unregister("nb_test_preset")


def _run_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if (p / "config.json").is_file())


@pytest.mark.slow  # a kernel start and a smoke training: about 30 s on 2 cores
def test_the_example_notebook_trains_records_its_cells_and_predicts_in_a_fresh_process(
    tmp_path: Path,
):
    work = tmp_path / "work"
    work.mkdir()
    nb = nbformat.read(EXAMPLE, as_version=4)
    _client(nb, work, tmp_path).execute()

    (run_dir,) = _run_dirs(work / "runs" / "notebook")
    assert json.loads((run_dir / "status.json").read_text())["status"] == "complete"
    assert not (run_dir / RECIPE).exists()  # not a copy of the kernel's launcher script
    saved = (run_dir / NOTEBOOK).read_text()
    # the cells that register sit at the top, the training under __main__
    for cell in nb.cells:
        if cell.cell_type == "code" and "register_" in cell.source:
            assert cell.source in saved
    top, _, main = saved.partition('if __name__ == "__main__":')
    assert "kit.fit(cfg, train_transform=pipeline)" in main and "kit.fit" not in top
    assert json.loads((run_dir / TRAIN_TRANSFORM).read_text())["summary"].startswith(
        "custom: CLAHE, GridDropout, HorizontalFlip ("
    )
    # the ledger cell showed the run with its transform
    shown = "".join(
        str(out.get("data", {}).get("text/plain", "")) for out in nb.cells[-1].get("outputs", [])
    )
    assert "custom: CLAHE" in shown and "poly1" in shown

    # a fresh process: kit.predict imports the run's recorded notebook.py (which registers the
    # notebook's head without training again), nothing else
    for argv in (
        ["kit.predict", str(run_dir), "--output", "sub.csv"],
        # and kit.ensemble takes it like any run (it reads the run folder's probabilities)
        ["kit.ensemble", str(run_dir), str(run_dir), "-o", "ens.csv"],
    ):
        out = _proc.run(
            [sys.executable, "-m", *argv],
            cwd=work,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert (work / "sub.csv").is_file()
    assert len(pd.read_csv(work / "ens.csv")) == len(pd.read_csv(work / "sub.csv"))


_INTERRUPTED = """
import kit

data = kit.make_fixture("data", n_people=12, image_size=(16, 12), seed=0, n_eval_people=1)
cfg = kit.Config(
    data_dir=str(data), model="resnet10t", image_size=(32, 24), epochs=500, batch_size=8,
    max_steps_per_epoch=1, warmup_epochs=0.0, workers=0, device="cpu", output_dir="runs",
)
"""


def _interrupt_when(km: KernelManager, ready: Callable[[], bool]) -> threading.Thread:
    def watch() -> None:
        deadline = time.monotonic() + 300
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.2)
        km.interrupt_kernel()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _saved_epoch(runs: Path) -> int:
    dirs = _run_dirs(runs) if runs.is_dir() else []
    if not dirs:
        return 0
    try:
        return json.loads((dirs[0] / "status.json").read_text()).get("epoch", 0)
    except (OSError, ValueError):  # being rewritten
        return 0


@pytest.mark.slow  # a kernel start and two interrupted trainings: about 30 s on 2 cores
def test_a_kernel_interrupt_leaves_a_run_the_next_cell_resumes(tmp_path: Path):
    work = tmp_path / "work"
    work.mkdir()
    runs = work / "runs"
    cells = [
        _INTERRUPTED,
        "run = kit.fit(cfg)",
        "from pathlib import Path\n(run_dir,) = Path('runs').iterdir()\nprint('alive')",
        "kit.fit(cfg.replace(resume=str(run_dir)))",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = _client(nb, work, tmp_path)
    with client.setup_kernel():
        client.execute_cell(nb.cells[0], 0)
        _interrupt_when(client.km, lambda: _saved_epoch(runs) >= 2)
        with pytest.raises(Exception, match="KeyboardInterrupt"):
            client.execute_cell(nb.cells[1], 1)
        (run_dir,) = _run_dirs(runs)
        status = json.loads((run_dir / "status.json").read_text())
        assert status["status"] == "interrupted" and (run_dir / "last.pt").is_file()
        first = status["epoch"]
        client.execute_cell(nb.cells[2], 2)  # the kernel lives on
        assert "alive" in "".join(o.get("text", "") for o in nb.cells[2].outputs)
        _interrupt_when(client.km, lambda: _saved_epoch(runs) > first + 1)
        with pytest.raises(Exception, match="KeyboardInterrupt"):
            client.execute_cell(nb.cells[3], 3)
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "interrupted" and status["epoch"] > first, status  # trained on
    assert _run_dirs(runs) == [run_dir]  # resumed in the same folder
