"""Code a user registers (a face detector, loss, head, preset, TTA view) that raises or returns
the wrong thing is reported as that piece's failure: a ``kit.UserCodeError`` naming the piece,
where it was defined and its input, with the user's traceback as its cause (``--debug``); a
command ends it in one ``error:`` line. kit's own entries are never blamed on the user."""

from __future__ import annotations

import contextlib
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
from kit.heads import HEADS, register_head
from kit.losses import LOSSES, build_loss, register_loss
from kit.models import create_model
from kit.registry import REGISTRIES, Registry, user_origin
from kit.runfolder.read import read_status
from kit.transforms import PRESETS, build_transforms
from kit.tta import TTA, tta_views


class OutOfMemory(RuntimeError):
    """What CUDA raises when a model does not fit."""


def _oom(*args: Any, **kwargs: Any) -> Any:
    raise OutOfMemory("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fixture(tmp_path_factory.mktemp("user-code") / "data", n_people=1, seed=0)


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


def _start_fails(data: Path, tmp: Path) -> Any:
    """A registered detector whose weights are missing: it fails when it opens."""

    def open_(cfg: Any, root: Path) -> Any:
        raise FileNotFoundError(2, "No such file or directory", "/models/retinaface.pth")

    from kit.faces.detectors import FaceDetector

    with registered(FACE_DETECTORS, "mine", FaceDetector(open_)):
        cfg = Config(face_detector="mine", crop_mode="face", cache_dir=str(tmp / "cache"))
        return face_boxes(cfg, data, progress=False)


@pytest.mark.parametrize("case", list(CASES))
def test_a_failing_registered_piece_is_named_with_its_input(data, tmp_path, case):
    call, message = CASES[case]
    with pytest.raises(kit.UserCodeError, match=message) as info:
        call(data, tmp_path)
    assert f"your code, in {__name__}" in str(info.value)
    assert info.value.__cause__ is not None  # the user's own traceback, for --debug
    assert not list((tmp_path / "cache").glob("faces-*")), "no boxes stored for a failure"


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


@pytest.mark.parametrize("piece", ["loss", "head"])
def test_a_users_model_or_loss_failing_in_training_is_named_and_recorded(tiny_cfg, piece):
    from kit.train import fit

    if piece == "loss":
        register_loss("mine")(lambda **kwargs: _FailingLoss())
        registry, cfg = LOSSES, tiny_cfg.replace(loss="mine")
        named = "loss 'mine'"
    else:
        register_head("mine", kind="joint")(_FailingHead)
        registry, cfg = HEADS, tiny_cfg.replace(head="mine")
        named = "model 'test_resnet' (head 'mine')"
    with registered(registry, "mine"), pytest.raises(kit.UserCodeError) as info:
        fit(cfg.replace(epochs=1, max_steps_per_epoch=1))
    message = str(info.value)
    assert f"{named} (your code, in {__name__}) failed on a training batch of shape (" in message
    assert "CUDA out of memory" in message
    (run,) = Path(cfg.output_dir).iterdir()
    status = read_status(run)
    assert status["status"] == "failed" and named in status["error"]
