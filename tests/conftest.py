"""Shared fixtures of the training-core tests: one tiny synthetic dataset per session."""

from __future__ import annotations

import atexit
import gc
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest


def _worker_exits_at_once() -> None:
    """The end of a pytest-xdist worker, once every exit function registered after this one has
    run (multiprocessing's, the command server's stop, the trackers'): the controller waits for
    each worker's process to exit before it reports, and tearing down the modules of torch,
    timm and kit alone takes over a second. Every result has been sent by then; what Python
    would still do is close the log handlers and flush the streams."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


if os.environ.get("PYTEST_XDIST_WORKER"):
    atexit.register(_worker_exits_at_once)  # before kit's imports register theirs: runs after

# after the registration above, on purpose: see there
from kit.config import Config  # noqa: E402
from kit.data.fixture import make_fixture  # noqa: E402

#: The longest work of each set, longest first: the pytest-xdist workers start on these, so that
#: no worker is left alone with one of them at the end while the other idles. For ``pytest -m
#: slow`` (20-150 s each on 2 cores) an entry is a test file or, where tests share nothing
#: costly, one test (a work unit of its own, which the other worker can take); for plain
#: ``pytest`` (3-30 s of tests each) whole files, which pytest-xdist would otherwise hand out
#: by their number of tests, long files of few tests last. Only the order depends on this
#: list: a stale entry costs balance, never a result.
LONG_FIRST = (
    "tests/test_ablate.py",
    "tests/test_docs.py::test_runnable_blocks_run[docs/getting-started.md]",
    "tests/test_own_code.py",
    "tests/test_tune.py",
    "tests/test_docs.py::test_runnable_blocks_run[docs/ensembling.md]",
    "tests/test_docs.py::test_runnable_blocks_run[docs/experiments.md]",
    "tests/test_docs.py::test_runnable_blocks_run[docs/search.md]",
    "tests/test_distributed.py",
    "tests/test_entry_points.py",
    "tests/test_notebooks.py",
    # plain pytest's (test_tune.py above too)
    "tests/test_recipes.py",
    "tests/test_device_aug.py",
    "tests/test_troubleshooting_fixes.py",
    "tests/test_docs.py",
    "tests/test_robustness.py",
    "tests/test_proc.py",
    "tests/test_ensemble.py",
    "tests/test_cache_training.py",
    "tests/test_tracking.py",
    "tests/test_kfold.py",
    "tests/test_tta.py",
    "tests/test_train.py",
    "tests/test_estimate.py",
    "tests/test_techniques.py",
    "tests/test_properties.py",
    "tests/test_config.py",
    "tests/test_next_commands.py",
    "tests/test_predict.py",
    "tests/test_data_fixture.py",
    "tests/test_run_records.py",
    "tests/test_train_running.py",
)
_RANK = {scope: i for i, scope in enumerate(LONG_FIRST)}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile`` (pyproject's addopts) with the units of :data:`LONG_FIRST` handed
    out first, in its order; the rest as pytest-xdist orders them (most tests first)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class LongFirst(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return nodeid if nodeid in _RANK else super()._split_scope(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            first = min(self.workqueue, key=lambda scope: _RANK.get(scope, len(_RANK)))
            self.workqueue.move_to_end(first, last=False)
            super()._assign_work_unit(node)

    return LongFirst(config, log)


def pytest_collection_finish(session: pytest.Session) -> None:
    """The objects collection made (torch, timm, kit, the test modules: about 630,000) go to
    the garbage collector's permanent generation: they live to the end anyway, and each full
    collection during the tests no longer walks them (a tiny fit: 13 % less CPU)."""
    gc.freeze()


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C is Python's KeyboardInterrupt here, however pytest was started.

    A shell that starts a command in the background (``pytest &`` in a script, ``nohup``, some
    CI runners) hands it an ignored SIGINT, and Python then leaves SIGINT ignored; the tests that
    send a real SIGINT to this process (tests/test_faults.py, tests/test_run_records.py) would
    wait for an interrupt that never comes. Each pytest-xdist worker runs this hook too."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


# One thread: the tests run beside other work on small shared machines, where a second
# thread mostly waits; results do not depend on it. The commands the tests start (recipes,
# python -m kit.*, documented blocks; forked by tests/_proc.py or fresh) get one thread too.
os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    """torch's own thread count, set where tests run: pytest-xdist's controller loads this
    file before it starts the workers, and importing torch there would delay them all."""
    import torch

    torch.set_num_threads(1)


#: The tiny dataset: enough people for a person-level split of every gender x age cell.
TINY_PEOPLE, TINY_SIZE = 36, (48, 36)  # size is (height, width), like the real 512x384


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic competition layout (36 people, 36x48 pictures, an eval set of 4 people)."""
    root = tmp_path_factory.mktemp("tiny") / "data"
    return make_fixture(root, n_people=TINY_PEOPLE, image_size=TINY_SIZE, seed=0, n_eval_people=4)


@pytest.fixture(scope="session")
def tiny_base(tiny_data: Path) -> Config:
    """The one tiny training config of the tests: a seconds-long CPU run on ``tiny_data``.

    It writes into ``runs`` under the current folder; tests give it their own ``output_dir``
    (``tiny_cfg`` does) and override only what they are about.
    """
    return Config(
        data_dir=str(tiny_data),
        name="t",
        model="test_resnet",
        image_size=(32, 24),
        epochs=2,
        batch_size=16,
        eval_batch_size=128,
        max_steps_per_epoch=3,
        warmup_epochs=0.0,
        workers=0,
        device="cpu",  # the same arithmetic on every machine, GPU or not
        quiet=True,
    )


@pytest.fixture
def tiny_cfg(tiny_base: Config, tmp_path: Path) -> Config:
    """:func:`tiny_base` writing into this test's tmp folder."""
    return tiny_base.replace(output_dir=str(tmp_path / "runs"))
