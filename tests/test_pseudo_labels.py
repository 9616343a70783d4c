"""Pseudo-labels: stage 2 trains with stage 1's confident eval predictions added to its
training rows, never to its validation rows, and records where they came from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import kit
from kit.config import Config
from kit.data import read_eval
from kit.data.dataset import load_rgb
from kit.data.pseudo import GROUP_AGES
from kit.labels import TASKS, decode
from kit.models import head_target
from kit.runfolder import read_pseudo_labels
from kit.splits import load_splits
from kit.train import fit
from kit.train import setup as train_data
from tests._triggers import assert_documented, logged

P = [f"p{k}" for k in range(18)]


@pytest.fixture(scope="module")
def stage1(tiny_base: Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stage1") / "runs"
    return fit(tiny_base.replace(output_dir=str(out), name="stage1")).run_dir


def _threshold(run: Path) -> tuple[float, int]:
    """A threshold that lets about half of the eval pictures through, and how many pass
    (counted here from test_probs.csv, independently of kit)."""
    top = pd.read_csv(run / "test_probs.csv")[P].to_numpy().max(1)
    t = float(np.median(top))
    return t, int((top > t).sum())


def test_pseudo_rows_are_training_rows_only(stage1: Path, tiny_base: Config):
    t, passed = _threshold(stage1)
    plain = load_splits(tiny_base)
    splits = load_splits(tiny_base.replace(pseudo_labels=str(stage1), pseudo_threshold=t))
    eval_ids = set(read_eval(tiny_base.data_dir)["image_id"])
    assert 0 < passed < len(eval_ids)
    assert splits.val.equals(plain.val) and splits.train.equals(plain.train)
    assert not eval_ids & set(splits.val["image_id"])
    rows = splits.pseudo.rows
    assert len(rows) == passed and set(rows["image_id"]) <= eval_ids
    assert len(splits.training) == len(plain.train) + passed
    # labelled with the predicted class, its mask / gender / age consistent with it
    test = pd.read_csv(stage1 / "test_probs.csv", dtype={"image_id": str}).set_index("image_id")
    want = test.loc[rows["image_id"], P].to_numpy().argmax(1)
    assert rows["label"].tolist() == want.tolist()
    m, g, a = decode(want)
    assert rows["mask"].tolist() == m.tolist() and rows["gender"].tolist() == g.tolist()
    assert rows["age"].tolist() == [GROUP_AGES[x] for x in a]
    # a K-fold's folds are made before the pseudo rows exist: same validation rows
    fold = tiny_base.replace(fold=1, n_folds=3)
    with_pseudo = load_splits(fold.replace(pseudo_labels=str(stage1), pseudo_threshold=t))
    assert with_pseudo.val.equals(load_splits(fold).val)


def test_pseudo_rows_keep_their_group_under_other_training_age_thresholds(stage1, tiny_base):
    cfg = tiny_base.replace(pseudo_labels=str(stage1), pseudo_threshold=0.0)
    rows = load_splits(cfg).pseudo.rows
    labels = kit.ImageDataset(rows, None, age_thresholds=(30, 58)).targets
    assert labels.tolist() == rows["label"].tolist()


@pytest.mark.slow
def test_stage2_trains_on_them_records_them_and_never_validates_on_them(
    stage1: Path, tiny_cfg: Config, monkeypatch: pytest.MonkeyPatch
):
    t, passed = _threshold(stage1)
    seen: list[int] = []
    real = train_data.train_dataset

    def spy(cfg, df, *args, **kwargs):
        seen.append(len(df))
        return real(cfg, df, *args, **kwargs)

    monkeypatch.setattr(train_data, "train_dataset", spy)
    run = fit(tiny_cfg.replace(name="stage2", pseudo_labels=str(stage1), pseudo_threshold=t))
    splits = load_splits(tiny_cfg)
    assert seen == [len(splits.train) + passed]
    stage1_val = pd.read_csv(stage1 / "val_probs.csv", dtype={"image_id": str})
    stage2_val = pd.read_csv(run.run_dir / "val_probs.csv", dtype={"image_id": str})
    assert stage2_val["image_id"].tolist() == stage1_val["image_id"].tolist()
    record = json.loads((run.run_dir / "summary.json").read_text())["pseudo"]
    assert record["n_pictures"] == passed and record["threshold"] == t
    assert record["n_eval"] == len(read_eval(tiny_cfg.data_dir))
    assert record["sources"] == [
        {"file": str((stage1 / "test_probs.csv").resolve()), "run": str(stage1.resolve())}
    ]
    listed = read_pseudo_labels(run.run_dir)
    assert len(listed) == passed and not set(listed["image_id"]) & set(stage2_val["image_id"])
    assert json.loads((run.run_dir / "config.json").read_text())["pseudo_labels"] == str(stage1)


@pytest.mark.slow
def test_a_k_fold_with_pseudo_labels_keeps_them_out_of_the_out_of_fold_rows(stage1, tiny_cfg):
    probs = tiny_cfg.output_dir + "/mean_probs.csv"
    test = pd.read_csv(stage1 / "test_probs.csv", dtype={"image_id": str})
    kit.write_test_probs(probs, test["image_id"], test[P].to_numpy())  # a loose file
    cfg = tiny_cfg.replace(pseudo_labels=[str(stage1), probs], pseudo_threshold=0.0)
    parent = fit(cfg.replace(name="kp", folds="all", n_folds=2)).run_dir
    oof = pd.read_csv(parent / "val_probs.csv", dtype={"image_id": str})
    assert not set(oof["image_id"]) & set(test["image_id"])
    record = json.loads((parent / "summary.json").read_text())["pseudo"]
    assert record["n_pictures"] == len(test) and record["sources"][1]["run"] is None


def test_bad_sources_are_refused_before_a_run_folder_is_written(tmp_path, tiny_cfg, stage1):
    out = Path(tiny_cfg.output_dir)
    with pytest.raises(FileNotFoundError, match="pseudo_labels: .*nope not found") as err:
        fit(tiny_cfg.replace(pseudo_labels=str(tmp_path / "nope")))
    assert_documented("pseudo-not-found", str(err.value))
    with pytest.raises(FileNotFoundError, match="has no test_probs.csv") as err:
        fit(tiny_cfg.replace(pseudo_labels=str(tmp_path)))
    assert_documented("pseudo-no-test-probs", str(err.value))
    task = tmp_path / "mask_run"
    task.mkdir()
    ids = pd.read_csv(stage1 / "test_probs.csv", dtype={"image_id": str})["image_id"]
    kit.runfolder.write_task_probs(
        task / "test_probs.csv", ids.to_frame(), np.full((len(ids), 3), 1 / 3), "mask"
    )
    with pytest.raises(ValueError, match="holds mask probabilities only") as err:
        fit(tiny_cfg.replace(pseudo_labels=str(task)))
    assert_documented("pseudo-per-task", str(err.value))
    assert not out.exists()
    with pytest.raises(ValueError, match="'pseudo_threshold' is 1.0; expected a probability"):
        tiny_cfg.replace(pseudo_threshold=1.0).validate()


def test_predictions_of_another_eval_set_are_refused(tmp_path, tiny_base, stage1):
    other = tmp_path / "other.csv"
    kit.write_test_probs(other, ["x.jpg", "y.jpg"], np.full((2, 18), 1 / 18))
    with pytest.raises(ValueError, match=r"2 rows, \d+ eval pictures missing and 2 not in") as err:
        load_splits(tiny_base.replace(pseudo_labels=str(other)))
    assert_documented("pseudo-other-eval", str(err.value))


def _uniform_eval_probs(tmp_path: Path, data_dir: str) -> Path:
    ids = read_eval(Path(data_dir))["image_id"].tolist()
    return kit.write_test_probs(tmp_path / "stage1.csv", ids, np.full((len(ids), 18), 1 / 18))


def test_pseudo_labels_of_data_without_an_eval_set_are_refused_naming_it(tmp_path, tiny_base):
    source = _uniform_eval_probs(tmp_path, tiny_base.data_dir)
    data = Path(shutil.copytree(tiny_base.data_dir, tmp_path / "data"))
    (data / "eval" / "info.csv").unlink()
    with pytest.raises(ValueError, match="the data needs its eval set") as err:
        load_splits(tiny_base.replace(data_dir=str(data), pseudo_labels=str(source)))
    assert_documented("pseudo-no-eval", str(err.value))


def test_a_threshold_no_eval_picture_passes_trains_on_train_csv_alone_and_warns(
    tmp_path, tiny_base
):
    source = _uniform_eval_probs(tmp_path, tiny_base.data_dir)
    cfg = tiny_base.replace(pseudo_labels=str(source), pseudo_threshold=0.5)
    splits = []  # logged() swallows errors: the splits must come back
    seen = logged(lambda: splits.append(load_splits(cfg)))
    assert len(splits) == 1
    plain = load_splits(tiny_base)
    assert splits[0].train["path"].tolist() == plain.train["path"].tolist()
    assert "this run trains on train.csv alone" in seen
    assert_documented("pseudo-none-passed", seen)


def _stage1_probs(stage1: Path, ids: pd.Series) -> np.ndarray:
    """Stage 1's test probabilities of ``ids``, read here from its CSV, rows renormalised."""
    test = pd.read_csv(stage1 / "test_probs.csv", dtype={"image_id": str}).set_index("image_id")
    probs = test.loc[ids, P].to_numpy()
    return probs / probs.sum(1, keepdims=True)


def _head_form(head: str, p18: np.ndarray) -> dict[str, np.ndarray] | np.ndarray:
    """18-way probabilities as head ``head`` trains on them: marginals over the (3, 2, 3) cube."""
    cube = p18.reshape(3, 2, 3)
    heads = {"mask": cube.sum((1, 2)), "gender": cube.sum((0, 2)), "age": cube.sum((0, 1))}
    return p18 if head == "single" else heads if head == "multi" else heads[head]


@pytest.mark.parametrize("head", ["single", "multi", "age"])
def test_soft_pseudo_rows_train_on_the_stage1_probabilities_never_validate(
    stage1: Path, tiny_base: Config, head: str
):
    t, passed = _threshold(stage1)
    cfg = tiny_base.replace(
        head=head, pseudo_labels=str(stage1), pseudo_threshold=t, pseudo_targets="soft"
    )
    splits = load_splits(cfg)
    assert splits.val.equals(load_splits(tiny_base).val)  # the same validation rows
    assert not set(splits.pseudo.rows["image_id"]) & set(splits.val["image_id"])
    rows = splits.training
    pictures = train_data.RunPictures(load_rgb, None, None)
    ds = train_data.train_dataset(cfg, rows, head_target(head), pictures)
    pseudo = np.flatnonzero(rows["person_id"].str.startswith("pseudo:").to_numpy())
    assert len(pseudo) == passed > 0
    want = _stage1_probs(stage1, rows["image_id"].iloc[pseudo])
    for i, p18 in zip(pseudo[:4], want[:4], strict=False):
        np.testing.assert_allclose(_flat(ds[int(i)][1]), _flat(_head_form(head, p18)), atol=1e-6)
    labelled = int(np.flatnonzero(~rows["person_id"].str.startswith("pseudo:").to_numpy())[0])
    onehot = np.eye(18)[int(rows["label"].iloc[labelled])]
    np.testing.assert_allclose(_flat(ds[labelled][1]), _flat(_head_form(head, onehot)))
    # hard pseudo-labels keep class-id targets
    hard = cfg.replace(pseudo_targets="hard")
    ds = train_data.train_dataset(hard, load_splits(hard).training, head_target(head), pictures)
    assert ds.soft is None and isinstance(ds[int(pseudo[0])][1], int | dict)


def _flat(target) -> np.ndarray:
    if isinstance(target, dict):
        return np.concatenate(
            [np.asarray(target[h], dtype=float) for h in ("mask", "gender", "age")]
        )
    return np.asarray(target, dtype=float)


def test_soft_targets_are_mixed_as_they_are(monkeypatch):
    import torch

    from kit.mixing import Mixer

    rng = np.random.default_rng(0)
    soft = torch.tensor(rng.dirichlet(np.ones(18), 6), dtype=torch.float32)
    mixer = Mixer("vhalves", lam=(0.5, 0.5), prob=1.0)
    partner = np.array([5, 4, 3, 2, 1, 0])
    mixer.pairs = lambda classes: partner
    _, mixed = mixer(torch.zeros(6, 3, 32, 24), soft)
    torch.testing.assert_close(mixed, 0.5 * soft + 0.5 * soft[partner])  # lam 12/24
    heads = Mixer("vhalves", lam=(0.5, 0.5), prob=1.0, head="multi")
    heads.pairs = lambda classes: partner
    marg = {
        h: torch.tensor(np.stack([_head_form("multi", p)[h] for p in soft.numpy()])) for h in TASKS
    }
    _, mixed = heads(torch.zeros(6, 3, 32, 24), marg)
    for h, t in marg.items():
        torch.testing.assert_close(mixed[h], 0.5 * t + 0.5 * t[partner])
    # timm's Mixup one-hots class ids: soft targets never go through it
    cut = Mixer("cutmix", prob=1.0)
    monkeypatch.setattr(cut, "timm", lambda *a: pytest.fail("timm mixed soft targets"))
    _, mixed = cut(torch.zeros(6, 3, 32, 24), soft)
    torch.testing.assert_close(mixed.sum(1), torch.ones(6))


@pytest.mark.slow
def test_stage2_with_soft_targets_records_them(stage1: Path, tiny_cfg: Config):
    t, passed = _threshold(stage1)
    cfg = tiny_cfg.replace(
        name="soft",
        pseudo_labels=str(stage1),
        pseudo_threshold=t,
        pseudo_targets="soft",
        head="multi",
        mix="cutmix",
        mix_pairs="same_class",
    )
    run = fit(cfg)
    record = json.loads((run.run_dir / "summary.json").read_text())["pseudo"]
    assert record["targets"] == "soft" and record["n_pictures"] == passed
    listed = read_pseudo_labels(run.run_dir)
    np.testing.assert_allclose(
        listed[P].to_numpy(), _stage1_probs(stage1, listed["image_id"]), rtol=1e-5, atol=1e-6
    )
    stage2_val = pd.read_csv(run.run_dir / "val_probs.csv", dtype={"image_id": str})
    assert not set(listed["image_id"]) & set(stage2_val["image_id"])
