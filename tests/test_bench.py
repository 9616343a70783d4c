"""kit.bench: the benchmark runs end to end and reports every phase (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from kit.bench import PHASES, TARGETS
from kit.bench.__main__ import main
from kit.bench.measure import PeakMemory, sweep_workers, tree_cpu_seconds


@pytest.mark.slow
def test_benchmark_runs_end_to_end_and_writes_every_phase(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the fixture is built under ./data
    out = tmp_path / "bench.json"
    argv = [
        "--people",
        "3",
        "--fixture-size",
        "64",
        "48",
        "--image-size",
        "32",
        "24",
        "--batch-size",
        "4",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--repeats",
        "2",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--data-workers",
        "0",
        "1",
        "--json",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())

    assert list(result["phases"]) == list(PHASES)
    for key, phase in result["phases"].items():
        assert PHASES[key] in printed
        assert phase["images"] == 2 * 4 and phase["seconds"] > 0
        _check_phase(phase, repeats=2, images=8)
    for name, (top, bottom, target) in TARGETS.items():
        ratio = result["ratios"][name]
        expected = result["phases"][top]["images_per_s"] / result["phases"][bottom]["images_per_s"]
        assert ratio["value"] == pytest.approx(expected, rel=1e-2)
        assert ratio["target"] == target
        assert ratio["met"] is (None if target is None else ratio["value"] >= target)
        assert name in printed
    assert result["settings"]["image_size"] == [32, 24]
    assert result["settings"]["workers_resolved"] == 0
    # batches are drawn from the whole data set (3 people x 7 pictures), all of it cached
    assert result["cache_build"]["pictures"] == 21
    assert list(result["data_workers"]) == ["0", "1"]
    for workers, phase in result["data_workers"].items():
        _check_phase(phase, repeats=2, images=8)
        assert phase["label"] in printed and f"{workers} workers" in phase["label"]
        assert phase["images_per_cpu_s"] > 0
    assert result["phases"]["data_cached"]["images_per_cpu_s"] > 0
    assert result["phases"]["train_limit"]["images_per_cpu_s"] is None
    assert {"cores", "cpu", "torch", "device"} <= set(result["machine"])
    assert (tmp_path / "data" / "bench-64x48-3" / "train" / "train.csv").is_file()


def _check_phase(phase: dict, repeats: int, images: int) -> None:
    times = phase["repeats_seconds"]
    assert len(times) == repeats and phase["seconds"] > 0
    assert phase["seconds"] == pytest.approx(float(np.median(times)), abs=2e-6)  # the median
    assert phase["images_per_s"] == pytest.approx(images / phase["seconds"], rel=1e-2)
    lo, hi = phase["images_per_s_range"]
    assert lo == pytest.approx(images / max(times), rel=1e-2)
    assert hi == pytest.approx(images / min(times), rel=1e-2)
    assert phase["peak_mib"] is None or phase["peak_mib"] >= phase["start_mib"] > 0


def test_data_only_measures_the_worker_sweep_alone(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "bench.json"
    argv = [
        "--people",
        "2",
        "--fixture-size",
        "64",
        "48",
        "--image-size",
        "32",
        "24",
        "--batch-size",
        "4",
        "--steps",
        "3",
        "--warmup",
        "1",
        "--repeats",
        "1",
        "--device",
        "cpu",
        "--data-workers",
        "0",
        "1",
        "--data-only",
        "--json",
        str(out),
    ]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert result["phases"] == {} and result["ratios"] == {}
    assert list(result["data_workers"]) == ["0", "1"]
    for phase in result["data_workers"].values():
        _check_phase(phase, repeats=1, images=12)
        assert phase["images_per_cpu_s"] > 0
    assert "per CPU-s" in capsys.readouterr().out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_cpu_seconds_count_the_workers_too():
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\n"
    child = subprocess.Popen(
        [sys.executable, "-c", busy + "print('done', flush=True)\n" + "time.sleep(30)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        before = tree_cpu_seconds()  # the child's start-up may already count: at most 0.4 s
        assert child.stdout.readline().strip() == "done"
        assert tree_cpu_seconds() - before >= 0.3  # this process only waited meanwhile
    finally:
        child.kill()
        child.wait()


def test_sweep_counts_double_up_to_the_cores():
    assert sweep_workers(1) == (0, 1)
    assert sweep_workers(6) == (0, 1, 2, 4, 6)
    assert sweep_workers(16) == (0, 1, 2, 4, 8, 16)


def _grown(mem: PeakMemory) -> int:
    return 0 if mem.peak_bytes is None else mem.peak_bytes - mem.start_bytes


def test_peak_memory_sees_an_allocation_made_during_the_phase():
    size, measured = 64 * 2**20, sys.platform.startswith("linux")
    with PeakMemory(interval=0.01) as mem:
        block = np.ones(size, dtype=np.uint8)  # written, so resident
        # until a sample has seen it: on busy cores the sampling thread may not run within a
        # fixed window (0.2 s once saw no sample under CI's load)
        deadline = time.monotonic() + 30
        while measured and _grown(mem) < 0.9 * size and time.monotonic() < deadline:
            time.sleep(0.05)
        del block
    if not measured:
        assert mem.peak_mib is None  # no /proc: documented as not measured
        return
    assert mem.peak_mib - mem.start_mib >= 0.9 * size / 2**20


@pytest.mark.parametrize("bad", [["--steps", "0"], ["--workers", "some"], ["--batch-size", "x"]])
def test_bad_options_are_refused(bad, capsys):
    with pytest.raises(SystemExit):
        main(bad)
    assert "expected an integer" in capsys.readouterr().err
