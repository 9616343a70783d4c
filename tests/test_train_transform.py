"""A custom training transform (``fit(cfg, train_transform=...)``) is a recorded setting: its
run folder keeps albumentations' serialization of it, the ledger names it as the change (never
the seed), and ``--resume`` re-creates it."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import albumentations as A
import numpy as np
import pandas as pd
import pytest

import kit.runs
from kit.runfolder import (
    TRAIN_TRANSFORM,
    NotReCreatable,
    recreate_train_transform,
    resumed_train_transform,
    transform_record,
    write_train_transform,
)
from kit.train import fit
from tests import _proc
from tests._training import at_training_step


def clahe_grid(clip: float = 2.0) -> A.Compose:
    return A.Compose([A.CLAHE(clip_limit=clip, p=1.0), A.GridDropout(ratio=0.3, p=0.5)])


def _lambda_pipeline() -> A.Compose:
    with warnings.catch_warnings():  # albumentations warns that a lambda cannot be pickled
        warnings.simplefilter("ignore", UserWarning)
        return A.Compose([A.CLAHE(p=1.0), A.Lambda(image=lambda img, **_: 255 - img)])


def test_a_pipeline_is_summarised_and_a_changed_parameter_is_a_change():
    record = transform_record(clahe_grid())
    assert record["serializable"] and record["summary"].startswith("custom: CLAHE, GridDropout (")
    assert A.to_dict(A.from_dict(record["albumentations"])) == A.to_dict(clahe_grid())
    other = transform_record(clahe_grid(clip=3.0))
    assert other["summary"] != record["summary"] and other["fingerprint"] != record["fingerprint"]
    nested = A.Compose([A.OneOf([A.Blur(), A.MotionBlur()]), A.HorizontalFlip()])
    assert transform_record(nested)["summary"].startswith("custom: OneOf[Blur, MotionBlur], Hori")


def test_a_lambda_is_recorded_by_repr_and_source_and_said_so(tmp_path: Path):
    record = transform_record(_lambda_pipeline())
    assert not record["serializable"] and record["albumentations"] is None
    assert record["summary"].startswith("custom, not serializable (repr + source ")
    assert record["summary"].endswith("): CLAHE, Lambda") and "Lambda(" in record["repr"]
    # the same code gives the same fingerprint; other code another one
    assert transform_record(_lambda_pipeline())["fingerprint"] == record["fingerprint"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        other = A.Compose([A.CLAHE(p=1.0), A.Lambda(image=lambda img, **_: img // 2)])
    assert transform_record(other)["fingerprint"] != record["fingerprint"]
    write_train_transform(tmp_path, _lambda_pipeline())
    with pytest.raises(NotReCreatable, match="not serializable.*train_transform="):
        recreate_train_transform(tmp_path)
    # given again (the recipe passes it on --resume), it is the one recorded: accepted
    given = _lambda_pipeline()
    assert resumed_train_transform(tmp_path, given) is given


def test_a_resume_re_creates_the_recorded_transform_and_refuses_another(tmp_path: Path):
    assert resumed_train_transform(tmp_path, None) is None  # no record: the preset's
    with pytest.raises(ValueError, match="changed train_transform: its preset's -> custom"):
        resumed_train_transform(tmp_path, clahe_grid())
    write_train_transform(tmp_path, clahe_grid())
    assert A.to_dict(resumed_train_transform(tmp_path, None)) == A.to_dict(clahe_grid())
    with pytest.raises(ValueError, match=r"changed train_transform: custom: CLAHE.* -> custom"):
        resumed_train_transform(tmp_path, clahe_grid(clip=3.0))


def test_the_ledger_names_the_custom_transform_as_the_change(tiny_cfg, tmp_path: Path):
    base = fit(tiny_cfg.replace(name="base", epochs=1))
    again = fit(tiny_cfg.replace(name="again", epochs=1))
    custom = fit(tiny_cfg.replace(name="custom", epochs=1), train_transform=clahe_grid())
    record = json.loads((custom.run_dir / TRAIN_TRANSFORM).read_text())
    assert record["serializable"] and not (base.run_dir / TRAIN_TRANSFORM).exists()

    shown = kit.runs.table(kit.runs.load(tiny_cfg.output_dir), vs=base.run_dir.name)
    rows = shown.set_index("name")
    assert rows.loc[again.run_dir.name, "flag"] == "same config"
    assert rows.loc[again.run_dir.name, "changes"] == ""
    changes = rows.loc[custom.run_dir.name, "changes"]
    assert changes == f"train_transform: preset base -> {record['summary']}"
    assert rows.loc[custom.run_dir.name, "flag"] == ""  # one change, and not the seed
    assert set(kit.runs.diff(base.run_dir, custom.run_dir)) == {"train_transform"}


@pytest.mark.slow  # three trainings, one interrupted: about 20 s on 2 cores
def test_resume_without_the_transform_trains_on_with_the_recorded_one(tiny_cfg, tmp_path):
    straight = fit(tiny_cfg.replace(name="straight"), train_transform=clahe_grid())
    cfg = tiny_cfg.replace(name="stopped", output_dir=str(tmp_path / "stopped"))

    def interrupt():
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp:
        at_training_step(mp, cfg.max_steps_per_epoch + 2, interrupt)
        with pytest.raises(SystemExit):
            fit(cfg, train_transform=clahe_grid())
    (run_dir,) = Path(cfg.output_dir).iterdir()
    fit(cfg.replace(resume=str(run_dir)))  # as `--resume RUN` from a notebook: no transform
    metrics = [pd.read_csv(p / "metrics.csv") for p in (run_dir, straight.run_dir)]
    cols = ["train_loss", "val_loss", "val_macro_f1"]
    pd.testing.assert_frame_equal(metrics[0][cols], metrics[1][cols])


@pytest.mark.slow  # two trainings and two fresh interpreters: about 25 s on 2 cores
def test_a_custom_transform_run_is_predicted_and_ensembled_in_a_fresh_process(tiny_cfg, tmp_path):
    import sys

    cfg = tiny_cfg.replace(model="resnet10t", epochs=1)  # a model any fresh process knows
    base = fit(cfg.replace(name="base"))
    custom = fit(cfg.replace(name="custom"), train_transform=clahe_grid())
    sub, ens = tmp_path / "sub.csv", tmp_path / "ens.csv"
    for argv in (
        ["kit.predict", str(custom.run_dir), "--output", str(sub)],
        ["kit.ensemble", str(base.run_dir), str(custom.run_dir), "-o", str(ens)],
    ):
        done = _proc.run([sys.executable, "-m", *argv], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    # the fresh process predicts with the run's own weights: its test_probs again
    own = pd.read_csv(custom.run_dir / "test_probs.csv").set_index("image_id").sort_index()
    again = pd.read_csv(tmp_path / "sub_probs.csv").set_index("image_id").sort_index()
    np.testing.assert_allclose(again.loc[own.index].to_numpy(), own.to_numpy(), atol=1e-5)
    assert len(pd.read_csv(ens)) == len(own)
