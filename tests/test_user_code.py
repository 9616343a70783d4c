"""Code a user registers (a face detector, loss, head, preset, TTA view) that raises or returns
the wrong thing is reported as that piece's failure: a ``kit.UserCodeError`` naming the piece,
where it was defined and its input, with the user's traceback as its cause (``--debug``); a
command ends it in one ``error:`` line. kit's own entries are never blamed on the user."""

from __future__ import annotations

import contextlib
import copy
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import kit
from kit.cli import run_cli
from kit.config import Config
from kit.data.fixture import make_fixture
from kit.faces import FACE_DETECTORS, face_boxes, register_face_detector
from kit.losses import LOSSES, build_loss, register_loss
from kit.models import HEADS, create_model, register_head
from kit.registry import REGISTRIES, Registry, user_origin
from kit.runfolder.read import read_status
from kit.transforms import PRESETS, build_transforms
from kit.tta import TTA, tta_views
from tests._triggers import assert_documented


class OutOfMemory(RuntimeError):
    """What CUDA raises when a model does not fit."""


def _oom(*args: Any, **kwargs: Any) -> Any:
    raise OutOfMemory("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("user-code") / "data"
    return make_fixture(root, n_people=1, seed=0, n_eval_people=1)


@contextlib.contextmanager
def registered(registry: Registry[Any], name: str, entry: Any = None) -> Iterator[None]:
    """``name`` is registered inside (by ``entry``, or already by the caller), gone after."""
    if entry is not None:
        registry.register(name, entry)
    try:
        yield
    finally:
        registry.unregister(name)


def _detector(fn: Callable[[np.ndarray], Any]) -> Callable[[Path, Path], Any]:
    def run(data: Path, tmp: Path) -> Any:
        register_face_detector("mine")(fn)
        with registered(FACE_DETECTORS, "mine"):
            cfg = Config(face_detector="mine", crop_mode="face", cache_dir=str(tmp / "cache"))
            return face_boxes(cfg, data, progress=False)

    return run


def _head(build: Callable[[int], Any]) -> Callable[[Path, Path], Any]:
    def run(data: Path, tmp: Path) -> Any:
        register_head("mine", kind="joint")(build)
        with registered(HEADS, "mine"):
            return create_model(Config(model="resnet10t", head="mine", pretrained=False))

    return run


def _model(data: Path, tmp: Path) -> Any:
    """A backbone registered with timm's register_model that raises while it is built."""
    import timm.models._registry as timm_registry
    from timm.models import register_model

    @register_model
    def kit_test_failing_net(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        return _oom()

    try:
        return create_model(Config(model="kit_test_failing_net", pretrained=False))
    finally:  # timm has no unregister: forget the entry point by hand
        timm_registry._model_entrypoints.pop("kit_test_failing_net", None)
        for names in timm_registry._module_to_models.values():
            names.discard("kit_test_failing_net")


def _loss(factory: Callable[..., Any]) -> Callable[[Path, Path], Any]:
    def run(data: Path, tmp: Path) -> Any:
        register_loss("mine")(factory)
        with registered(LOSSES, "mine"):
            return build_loss("mine", num_classes=18)

    return run


def _preset(build: Callable[[Any], Any]) -> Callable[[Path, Path], Any]:
    def run(data: Path, tmp: Path) -> Any:
        with registered(PRESETS, "mine", build):
            return build_transforms(Config(preset="mine", image_size=(32, 24)))

    return run


def _tta(view: Callable[[torch.Tensor], Any]) -> Callable[[Path, Path], Any]:
    def run(data: Path, tmp: Path) -> Any:
        with registered(TTA, "mine", view):
            return tta_views("mine")(torch.zeros(2, 3, 8, 6))

    return run


def _sampler(data: Path, tmp: Path) -> Any:
    from kit.data.sampling import SAMPLERS, train_loader

    class Labels:
        targets = (0, 1, 2, 1)

        def __len__(self) -> int:
            return 4

    with registered(SAMPLERS, "mine", _oom):
        return train_loader(Labels(), Config(sampler="mine"), torch.Generator())


def _in(registry: Registry[Any], entry: Any, call: Callable[[], Any]) -> Callable[..., Any]:
    """A case: ``entry`` registered as 'mine' in ``registry`` while kit's ``call`` runs."""

    def run(data: Path, tmp: Path) -> Any:
        with registered(registry, "mine", entry):
            return call()

    return run


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(4, 3, 8, 6), torch.tensor([0, 1, 2, 3])


def _kit_model(data: Path, tmp: Path) -> Any:
    """A backbone registered with kit.register_model that raises while it is built."""
    from kit.models import MODELS, register_model

    register_model("mine")(_oom)
    with registered(MODELS, "mine"):
        return create_model(Config(model="mine", pretrained=False))


def _pseudo_targets(data: Path, tmp: Path) -> Any:
    from kit.data import read_eval
    from kit.data.pseudo import PSEUDO_TARGETS, load_pseudo_labels
    from kit.runfolder.write import write_test_probs

    eval_df = read_eval(data)
    probs = np.full((len(eval_df), 18), 0.01)
    probs[:, 3] = 0.83
    source = write_test_probs(tmp / "test_probs.csv", eval_df["image_id"], probs)
    with registered(PSEUDO_TARGETS, "mine", _oom):
        return load_pseudo_labels(
            eval_df, data, sources=[str(source)], threshold=0.5, targets="mine"
        )


def _tracker(data: Path, tmp: Path) -> Any:
    """A tracker that fails to open is dropped with a warning (training goes on): the warning
    names it as the user's piece; the case raises what was warned."""
    import logging

    from kit.tracking import TRACKERS, TrackerSpec, open_trackers

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("kit").addHandler(handler)
    try:
        with registered(TRACKERS, "mine", TrackerSpec("json", _oom)):
            open_trackers(Config(track="mine"), tmp / "run")
    finally:
        logging.getLogger("kit").removeHandler(handler)
    (warned,) = [r.getMessage() for r in records if "tracker mine failed" in r.getMessage()]
    cause = OutOfMemory("CUDA out of memory")
    raise kit.UserCodeError(warned) from cause


def _every_kind_cases() -> dict[str, tuple[Callable[[Path, Path], Any], str]]:
    from kit.batch import DEVICE_AUGS, create_device_aug
    from kit.data.image_cache import build_cache
    from kit.data.sampling import SAMPLERS  # noqa: F401 (the sampler case imports it too)
    from kit.device import AMP_DTYPES, pick_amp
    from kit.ensemble.methods import METHODS, Method, combine
    from kit.mixing import MIX_PAIRS, MIXES, Mixer, MixSpec
    from kit.models import OUTPUT_KINDS, OutputKind, to_probs
    from kit.optim import (
        OPTIMIZERS,
        REFITS,
        SCHEDULERS,
        RefitSpec,
        SchedulerSpec,
        build_optimizer,
        build_scheduler,
    )
    from kit.transforms import CROP_MODES, CropMode, crop_rect

    picture = np.zeros((4, 4, 3), np.uint8)
    sgd = lambda: torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)  # noqa: E731
    on = r"'mine' \(your code, in .*\) failed on "
    return {
        "mix pairs": (
            _in(MIX_PAIRS, _oom, lambda: Mixer("cutmix", pairs="mine", prob=1.0)(*_batch())),
            "mix pairs " + on + r"a ndarray of shape \(4,\)",
        ),
        "mix": (
            _in(MIXES, MixSpec(_oom), lambda: Mixer("mine", prob=1.0)(*_batch())),
            "mix " + on + r"a Tensor of shape \(4, 3, 8, 6\)",
        ),
        "ensemble method": (
            _in(METHODS, Method("mine", True, _oom, _oom), lambda: combine("mine", [np.eye(18)])),
            "ensemble method " + on + r"a list of 1 ndarray",
        ),
        "optimizer": (
            _in(OPTIMIZERS, _oom, lambda: build_optimizer(nn.Linear(2, 2), "mine", lr=0.1)),
            "optimizer " + on + r"a list of \d+ dict, lr=0.1",
        ),
        "scheduler": (
            _in(
                SCHEDULERS,
                SchedulerSpec(_oom),
                lambda: build_scheduler(sgd(), "mine", lr=0.1, epochs=2, steps_per_epoch=4),
            ),
            "scheduler " + on + r"a SGD, 0.1, 2, 4",
        ),
        # refit is a closed Literal field (a run's config cannot name an entry of one's own):
        # the entry is called as kit.train.loop.refit and kit.estimate call it, through use()
        "refit": (
            _in(REFITS, RefitSpec(_oom), lambda: REFITS.use("mine").config(Config(), 3)),
            "refit " + on + r"the config of run '.*', 3",
        ),
        "crop mode": (
            _in(
                CROP_MODES,
                CropMode(_oom, needs_boxes=False),
                lambda: crop_rect((10, 8, 3), crop_mode="mine", crop=(1.0, 1.0), image_size=(8, 6)),
            ),
            "crop mode " + on + r"10, 8, None, crop=\(1.0, 1.0\)",
        ),
        "executor": (
            lambda data, tmp: _in(
                _executors(),
                _oom,
                lambda: build_cache(
                    _files(tmp, "a.jpg", "b.jpg"),
                    lambda p: picture,
                    size=(4, 4),
                    cache_dir=tmp / "cache",
                    workers=1,
                    executor="mine",
                    progress=False,
                ),
            )(data, tmp),
            "executor " + on + r"max_workers=1",
        ),
        "device aug": (
            _in(DEVICE_AUGS, _oom, lambda: create_device_aug(Config(device_aug="mine"))),
            "device aug " + on + r"the config of run",
        ),
        "output kind": (
            _in(
                OUTPUT_KINDS,
                OutputKind("mine", target=_oom, probs=_oom),
                lambda: to_probs(torch.zeros(2, 18), "mine"),
            ),
            "output kind " + on + r"a Tensor of shape \(2, 18\)",
        ),
        "amp dtype": (
            _in(
                AMP_DTYPES,
                _oom,
                lambda: pick_amp(Config(amp=True, amp_dtype="mine"), torch.device("cpu")),
            ),
            "amp dtype " + on + r"a device",
        ),
        "pseudo targets": (_pseudo_targets, "pseudo targets " + on + r"probabilities \(\d+, 18\)"),
        "tracker": (_tracker, r"tracker mine failed \(open: UserCodeError: tracker " + on),
        "kit model": (_kit_model, r"model " + on),
    }


def _unchecked(cfg: Config, **changes: Any) -> Config:
    """``cfg`` with ``changes`` its checks would refuse (a field whose values are a Literal,
    though kit looks them up in a registry)."""
    cfg = copy.copy(cfg)
    for key, value in changes.items():
        object.__setattr__(cfg, key, value)
    return cfg


def _files(folder: Path, *names: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"picture")
    return [folder / name for name in names]


def _executors() -> Registry[Any]:
    from kit.data.image_cache import EXECUTORS

    return EXECUTORS


#: case -> (what calls the user's piece, the fragment naming the piece, its input, the failure)
CASES: dict[str, tuple[Callable[[Path, Path], Any], str]] = {
    "detector raises": (_detector(_oom), r"face detector 'mine' .* failed on .*\.(jpe?g|png)"),
    "detector returns text": (
        _detector(lambda image: "face"),
        r"face detector 'mine' .* failed on .*ValueError: could not convert.*"
        r"returns \(x0, y0, x1, y1\) in pixels, or None",
    ),
    "detector cannot start": (
        lambda data, tmp: _start_fails(data, tmp),
        r"face detector 'mine' .* failed on start \(data folder",
    ),
    "head raises": (_head(_oom), r"head 'mine' .* failed on in_features=\d+ \(model 'resnet10t'\)"),
    "head returns no module": (_head(lambda n: "a head"), r"returned str; expected a torch nn"),
    "model raises": (_model, r"model 'kit_test_failing_net' .* failed on \{'num_classes': 0\}"),
    "loss raises": (_loss(_oom), r"loss 'mine' .* failed on keyword arguments \['num_classes'\]"),
    "preset raises": (_preset(_oom), r"preset 'mine' .* failed on the config of run"),
    "preset returns one transform": (_preset(lambda cfg: 3), r"returned int; expected a list"),
    "sampler raises": (_sampler, r"sampler 'mine' .* failed on the 4 training labels"),
    "TTA view raises": (_tta(_oom), r"tta 'mine' .* failed on a batch of shape \(2, 3, 8, 6\)"),
    "TTA view changes the shape": (
        _tta(lambda x: [x, x[..., :3]]),
        r"tta 'mine' .* expected a list of batches of the input's shape",
    ),
}


CASES.update(_every_kind_cases())

#: registry kind -> the case that makes its entry fail where kit calls it
KIND_CASES = {
    "face_detector": "detector raises",
    "head": "head raises",
    "model": "kit model",
    "loss": "loss raises",
    "preset": "preset raises",
    "sampler": "sampler raises",
    "tta": "TTA view raises",
    **{
        kind: kind.replace("_", " ")
        for kind in (
            "mix_pairs",
            "mix",
            "ensemble_method",
            "optimizer",
            "scheduler",
            "refit",
            "crop_mode",
            "executor",
            "device_aug",
            "output_kind",
            "amp_dtype",
            "pseudo_targets",
            "tracker",
        )
    },
}


def _kits_registry_kinds() -> list[str]:
    """Every registry kind kit's modules create (found in their namespaces, so a registry
    added later is listed without a word here)."""
    import kit.data.image_cache
    import kit.ensemble
    import kit.faces
    import kit.tracking
    import kit.train  # noqa: F401 (with the above: every module that holds a registry)

    return sorted(
        {
            value.kind
            for name, module in list(sys.modules.items())
            if name == "kit" or name.startswith("kit.")
            for value in vars(module).values()
            if isinstance(value, Registry)
        }
    )


def _start_fails(data: Path, tmp: Path) -> Any:
    """A registered detector whose weights are missing: it fails when it opens."""

    def open_(cfg: Any, root: Path) -> Any:
        raise FileNotFoundError(2, "No such file or directory", "/models/retinaface.pth")

    from kit.faces.detectors import FaceDetector

    with registered(FACE_DETECTORS, "mine", FaceDetector(open_)):
        cfg = Config(face_detector="mine", crop_mode="face", cache_dir=str(tmp / "cache"))
        return face_boxes(cfg, data, progress=False)


@pytest.mark.parametrize("case", [c for c in CASES if c not in KIND_CASES.values()])
def test_a_failing_registered_piece_is_named_with_its_input(data, tmp_path, case):
    _fails_as_the_users_piece(data, tmp_path, case)


@pytest.mark.parametrize("kind", _kits_registry_kinds())
def test_every_registry_kinds_entry_failing_is_named_as_that_piece(data, tmp_path, kind):
    """Each registry kind's entry of the user's that raises, called where kit calls it."""
    assert kind in KIND_CASES, f"no case makes a user's {kind!r} entry fail: add one"
    _fails_as_the_users_piece(data, tmp_path, KIND_CASES[kind])


def _fails_as_the_users_piece(data: Path, tmp_path: Path, case: str) -> None:
    call, message = CASES[case]
    with pytest.raises(kit.UserCodeError, match=message) as info:
        call(data, tmp_path)
    assert f"your code, in {__name__}" in str(info.value)
    assert info.value.__cause__ is not None  # the user's own traceback, for --debug
    assert not list((tmp_path / "cache").glob("faces-*")), "no boxes stored for a failure"
    if case == "detector raises":  # the page's example
        assert_documented("user-code-failed", str(info.value))


def test_a_command_ends_it_in_one_error_line_and_debug_shows_the_users_traceback(
    data, tmp_path, capsys
):
    run = CASES["detector raises"][0]
    assert run_cli(lambda argv: run(data, tmp_path), []) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "Traceback" not in err
    assert "face detector 'mine'" in err and "CUDA out of memory" in err
    with pytest.raises(kit.UserCodeError) as info:
        run_cli(lambda argv: run(data, tmp_path), ["--debug"])
    assert info.value.__cause__.__traceback__.tb_frame is not None
    names = []
    tb = info.value.__cause__.__traceback__
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert "_oom" in names


def test_no_entry_kit_registers_counts_as_the_users_code():
    """user_origin tells the user's code from kit's for every registry kind: a failure of
    kit's own entries stays a bug with its traceback."""
    import kit.ensemble
    import kit.tracking
    import kit.train  # noqa: F401 (with the two above: every registry filled)

    # recipes and test modules other tests imported in this process register pieces of their
    # own (the user's, rightly blamed): only what kit registered is checked
    theirs = [Path(__file__).parents[1] / d for d in ("recipes", "tests")]
    theirs.append(Path(tempfile.gettempdir()))

    def loaded_by_a_test(module: str) -> bool:
        file = getattr(sys.modules.get(module), "__file__", None)
        return file is not None and any(Path(file).resolve().is_relative_to(d) for d in theirs)

    mine = [
        (kind, name)
        for kind, r in REGISTRIES.items()
        for name, e in r.items()
        if (origin := user_origin(e)) and not loaded_by_a_test(origin)
    ]
    assert mine == []
    assert user_origin(_oom) == __name__
    assert user_origin(nn.Linear) is None and user_origin(lambda x: x) == __name__
    assert user_origin(np.mean) is None and user_origin(contextlib.ExitStack) is None


def test_kits_own_entries_fail_as_they_are(monkeypatch):
    monkeypatch.setitem(TTA._entries, "hflip", lambda x: 1 / 0)
    monkeypatch.setattr(
        "kit.registry.user_origin", lambda entry, depth=3: None
    )  # kit's entry: not the user's
    with pytest.raises(ZeroDivisionError):
        tta_views("hflip")(torch.zeros(1, 3, 4, 4))


class _FailingLoss(nn.Module):
    def forward(self, logits: torch.Tensor, target: Any) -> torch.Tensor:
        return _oom()


class _FailingHead(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, 18)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _oom()


class _FailsInEval(_FailingHead):
    """A head that trains, but fails when the model predicts (validation, kit.predict)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) if self.training else _oom()


class _FailingOptimizer(torch.optim.SGD):
    def step(self, closure: Any = None) -> Any:
        return _oom()


def _failing_scheduler(opt: Any, lr: float, epochs: int, spe: int, warmup: Any, kw: Any) -> Any:
    from kit.optim import SCHEDULERS

    built = SCHEDULERS.get("none").build(opt, lr, epochs, spe, warmup, kw)
    built.step_update = lambda num_updates, metric=None: _oom()
    return built


def _in_training(piece: str, cfg: Config) -> tuple[Registry[Any], Config, str]:
    """Registers the user's ``piece`` as 'mine': (its registry, ``cfg`` naming it, how the
    failure names it)."""
    from kit.optim import OPTIMIZERS, SCHEDULERS, SchedulerSpec

    if piece == "loss":
        register_loss("mine")(lambda **kwargs: _FailingLoss())
        return LOSSES, cfg.replace(loss="mine"), "loss 'mine'"
    if piece in ("head", "model in validation"):
        register_head("mine", kind="joint")(_FailingHead if piece == "head" else _FailsInEval)
        return HEADS, cfg.replace(head="mine"), "model 'test_resnet' (head 'mine')"
    if piece == "optimizer step":
        OPTIMIZERS.register("mine", lambda groups, lr, **_: _FailingOptimizer(groups, lr=lr))
        return OPTIMIZERS, cfg.replace(optimizer="mine"), "optimizer 'mine'"
    SCHEDULERS.register("mine", SchedulerSpec(_failing_scheduler))
    return SCHEDULERS, _unchecked(cfg, scheduler="mine"), "scheduler 'mine'"


#: a piece of the user's in training -> the input its failure names
IN_TRAINING = {
    "loss": "a training batch of shape (",
    "head": "a training batch of shape (",
    "model in validation": "a prediction batch of shape (",
    "optimizer step": "update 1:",
    "scheduler step": "update 1:",
}


@pytest.mark.parametrize("piece", list(IN_TRAINING))
def test_a_users_piece_failing_in_training_is_named_and_recorded(tiny_cfg, piece):
    from kit.train import fit

    registry, cfg, named = _in_training(piece, tiny_cfg)
    with registered(registry, "mine"), pytest.raises(kit.UserCodeError) as info:
        fit(cfg.replace(epochs=1, max_steps_per_epoch=1))
    message = str(info.value)
    assert f"{named} (your code, in {__name__}) failed on {IN_TRAINING[piece]}" in message
    assert "CUDA out of memory" in message
    (run,) = Path(cfg.output_dir).iterdir()
    status = read_status(run)
    assert status["status"] == "failed" and named in status["error"]


def test_kit_calls_registry_entries_through_use_or_inside_calling():
    """An entry called straight from ``REGISTRY.get(name)`` escapes the naming unless it runs
    in that registry's ``calling`` block (the line before): kit calls entries through
    ``Registry.use`` otherwise."""
    import re

    called = re.compile(r"\b([A-Z_]{3,})\.get\([^)]*\)(\(|\.[a-z_]+\()")
    loose = []
    for path in sorted((Path(kit.__file__).parent).rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            found = called.search(line)
            if found and path.name != "registry.py" and f"{found[1]}.calling(" not in lines[i - 1]:
                loose.append(f"{path.name}:{i + 1}: {line.strip()}")
    assert loose == []


def test_a_users_model_failing_in_prediction_is_named_with_the_batch(data, tiny_cfg):
    """kit.inference.predict (what `python -m kit.predict` and kit.predict_probs call) names the
    model and head and the batch its failure came on, as validation does."""
    from kit.data import read_eval
    from kit.inference import predict

    register_head("mine", kind="joint")(_FailsInEval)
    cfg = tiny_cfg.replace(head="mine", data_dir=str(data))
    with registered(HEADS, "mine"), pytest.raises(kit.UserCodeError) as info:
        predict(create_model(cfg), read_eval(data), cfg)
    assert (
        f"model 'test_resnet' (head 'mine') (your code, in {__name__}) failed on a prediction "
        "batch of shape (" in str(info.value)
    )
