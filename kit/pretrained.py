"""Where pretrained weights come from: the Hugging Face cache, the hub, or a local file.

``resolve_weights(cfg)`` finds the file timm's ``create_model(name, pretrained=True)`` would
load, the way timm users expect: ``--pretrained-file`` when given; else the Hugging Face cache
(``HF_HUB_CACHE``, ``HF_HOME``) when it holds the weights; else a download from the hub. It
returns a :class:`Weights` record (source, hub id or file, sha256) that the run folder keeps.

Offline (``HF_HUB_OFFLINE=1``, or the hub unreachable) and not cached, it fails at once with
:class:`WeightsUnavailable`, naming the model, the cache folder and both remedies. Why not let
huggingface_hub find out: its download retries an unreachable hub with back-off (measured: 23 s
to give up here); one metadata request with a short timeout and no retry tells the same in
seconds. The timm name of a weight variant is ``<model>.<tag>`` (``--pretrained-tag``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kit._config_checks import (
    pretrained_cfg,
    registered_model,
    torchvision_name,
    torchvision_weights,
    weights_name,
)
from kit.config import Config
from kit.errors import KitError

__all__ = [
    "PROBE_TIMEOUT_S",
    "Weights",
    "WeightsUnavailable",
    "hub_cache_dir",
    "pretrained_cfg",
    "resolve_weights",
    "torch_hub_checkpoints",
    "weights_name",
]

#: Seconds the one hub request that decides "online or not" may take (it is not retried).
PROBE_TIMEOUT_S = 3.0
#: What timm's hub loader tries, in its order, when the pretrained cfg names no file.
_HUB_FILES = ("model.safetensors", "pytorch_model.bin")


class WeightsUnavailable(KitError, ValueError):
    """Pretrained weights that are neither cached, nor downloadable, nor given as a file."""


@dataclass(frozen=True)
class Weights:
    """Which weights a model started from: ``source`` is ``cache`` (already in the Hugging
    Face cache, or torch's hub cache for a torchvision model), ``hub`` (downloaded now) or
    ``file`` (``--pretrained-file``)."""

    source: str
    name: str  # timm name with its tag (resnet10t.c3_in1k), torchvision/resnet18.IMAGENET1K_V1
    hub_id: str | None  # Hugging Face repo, or the URL of torchvision's weights
    file: str
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (for env.json)."""
        return asdict(self)


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache folder in use (``HF_HUB_CACHE``, else ``HF_HOME``/hub)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unavailable(name: str, hub_id: str, why: str) -> WeightsUnavailable:
    cache = hub_cache_dir()
    folder = cache / f"models--{hub_id.replace('/', '--')}"
    return WeightsUnavailable(
        f"pretrained weights {name!r} ({hub_id}) are not in the Hugging Face cache {cache} "
        f"and cannot be downloaded ({why}). Either fill the cache on a machine with internet: "
        f"python -c \"import timm; timm.create_model('{name}', pretrained=True)\" and copy "
        f"{folder.name} into {cache} (or point HF_HUB_CACHE at a copy); "
        f"or pass --pretrained-file PATH (a timm state_dict of {name!r})"
    )


def _cached(hub_id: str, revision: str | None, files: tuple[str, ...]) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    for filename in files:
        found = try_to_load_from_cache(
            hub_id, filename, cache_dir=hub_cache_dir(), revision=revision
        )
        if isinstance(found, str):
            return Path(found)
    return None


def _download(name: str, hub_id: str, revision: str | None, files: tuple[str, ...]) -> Path:
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    endpoint = os.environ.get("HF_ENDPOINT") or None  # as set now, not at first import
    for filename in files:
        url = hf_hub_url(hub_id, filename, revision=revision, endpoint=endpoint)
        try:
            get_hf_file_metadata(url, timeout=PROBE_TIMEOUT_S)
        except HfHubHTTPError as err:
            status = getattr(getattr(err, "response", None), "status_code", None)
            if status == 404:
                continue  # this repo holds the other file name
            raise _unavailable(name, hub_id, f"the hub answered: {err}") from err
        except Exception as err:  # connection refused, no DNS, timeout: the hub is unreachable
            raise _unavailable(name, hub_id, f"hub unreachable: {type(err).__name__}") from err
        cache = hub_cache_dir()
        got = hf_hub_download(
            hub_id, filename, revision=revision, cache_dir=cache, endpoint=endpoint
        )
        return Path(got)
    raise _unavailable(name, hub_id, f"the hub repository has none of {list(files)}")


def torch_hub_checkpoints() -> Path:
    """Where torch's hub keeps downloaded weights (``$TORCH_HOME/hub/checkpoints``)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def _torchvision_weights(cfg: Config) -> Weights:
    """torchvision's weights of ``cfg.model`` in torch's hub cache, else downloaded into it
    (torchvision's own ``load_state_dict_from_url`` file name)."""
    import torch.hub

    found = torchvision_weights(cfg.model, cfg.pretrained_tag)
    name = f"{cfg.model}.{found.name}"
    path = torch_hub_checkpoints() / Path(urlparse(found.url).path).name
    source = "cache"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # torch writes a temporary file and renames it: no half-written weights
            torch.hub.download_url_to_file(found.url, str(path), progress=False)
        except Exception as err:  # no network, refused, timeout: say what would fix it
            tv = torchvision_name(cfg.model)
            raise WeightsUnavailable(
                f"pretrained weights {name!r} ({found.url}) are not in torch's hub cache "
                f"{path.parent} and cannot be downloaded ({type(err).__name__}: {err}). Either "
                f'fill the cache on a machine with internet: python -c "import torchvision; '
                f"torchvision.models.get_model('{tv}', weights='{found.name}')\" and copy "
                f"{path.name} into {path.parent} (or point TORCH_HOME at a copy); or pass "
                f"--pretrained-file PATH (a state_dict of torchvision.models.get_model('{tv}'))"
            ) from err
        source = "hub"
    return Weights(source, name, found.url, str(path), _sha256(path))


def resolve_weights(cfg: Config) -> Weights | None:
    """The weights ``cfg`` starts from (None: random init): ``cfg.pretrained_file``, else the
    cached hub file, else a download. Raises :class:`WeightsUnavailable` (a ValueError) at
    once when offline and not cached, FileNotFoundError for a missing ``pretrained_file``."""
    if cfg.pretrained_file is not None:
        path = Path(cfg.pretrained_file).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"pretrained_file {path} does not exist (model {cfg.model!r})")
        name = weights_name(cfg.model, getattr(cfg, "pretrained_tag", None))
        return Weights("file", name, None, str(path.resolve()), _sha256(path))
    if not cfg.pretrained or registered_model(cfg.model) is not None:
        return None  # a registered factory loads its own weights
    if torchvision_name(cfg.model) is not None:
        return _torchvision_weights(cfg)
    found = pretrained_cfg(cfg.model, getattr(cfg, "pretrained_tag", None))
    name = weights_name(cfg.model, getattr(cfg, "pretrained_tag", None))
    if "." not in name and getattr(found, "tag", None):
        name = f"{name}.{found.tag}"
    if not found.hf_hub_id:
        raise WeightsUnavailable(
            f"timm keeps the weights of {name!r} outside the Hugging Face hub; pass "
            f"--pretrained-file PATH (a timm state_dict of {name!r})"
        )
    hub_id, _, revision = found.hf_hub_id.partition("@")  # timm's "repo@revision"
    own = getattr(found, "hf_hub_filename", None)
    files = (own,) if own else _HUB_FILES
    path = _cached(hub_id, revision or None, files)
    source = "cache"
    if path is None:
        if _offline():
            raise _unavailable(name, hub_id, "HF_HUB_OFFLINE=1")
        path, source = _download(name, hub_id, revision or None, files), "hub"
    return Weights(source, name, found.hf_hub_id, str(path), _sha256(path))
