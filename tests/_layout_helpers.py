"""Builders of small competition layouts on disk, and the frame read_train should return.

The expected frame is computed here from the metadata with the competition's published
rules (domain.md), independently of kit's code.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pandas as pd
from PIL import Image

DATA = Path(__file__).parent / "data"
# The competition's seven pictures and their mask class (0 wear, 1 incorrect, 2 not wear).
STEM_MASK = {
    "mask1": 0,
    "mask2": 0,
    "mask3": 0,
    "mask4": 0,
    "mask5": 0,
    "incorrect_mask": 1,
    "normal": 2,
}
COLUMNS = [
    "image_id",
    "path",
    "person_id",
    "folder",
    "stem",
    "gender",
    "race",
    "age",
    "mask",
    "age_group",
    "label",
]


def real_meta() -> pd.DataFrame:
    """The real 2,700-row train.csv (ids as text)."""
    return pd.read_csv(DATA / "real_train_meta.csv", dtype=str, keep_default_na=False)


@cache
def tiny_image(ext: str) -> bytes:
    """An 8x8 picture encoded as the format its extension names."""
    buf = io.BytesIO()
    fmt = "PNG" if ext.lower() == "png" else "JPEG"
    Image.new("RGB", (8, 8), (120, 90, 60)).save(buf, format=fmt)
    return buf.getvalue()


ExtFor = Callable[[int, str], str]


def write_train(
    root: Path,
    meta: pd.DataFrame,
    ext_for: ExtFor = lambda i, stem: "jpg",
    content: Callable[[str], bytes] = tiny_image,
) -> Path:
    """Write train/train.csv = ``meta`` and the seven pictures of every row's folder.

    ``ext_for(row_number, stem)`` picks each file's extension; ``content(ext)`` its bytes.
    """
    images = root / "train" / "images"
    images.mkdir(parents=True, exist_ok=True)
    meta.to_csv(root / "train" / "train.csv", index=False)
    for i, folder in enumerate(meta["path"]):
        person = images / folder
        person.mkdir(exist_ok=True)
        for stem in STEM_MASK:
            ext = ext_for(i, stem)
            (person / f"{stem}.{ext}").write_bytes(content(ext))
    return root


def write_eval(root: Path, image_ids: list[str], content: bytes | None = None) -> Path:
    """Write eval/info.csv listing ``image_ids`` and one file per id."""
    images = root / "eval" / "images"
    images.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"ImageID": image_ids, "ans": 0}).to_csv(root / "eval" / "info.csv", index=False)
    for name in image_ids:
        (images / name).write_bytes(tiny_image("jpg") if content is None else content)
    return root


def age_group(age: int) -> int:
    return int(age >= 30) + int(age >= 60)


def expected_frame(root: Path, meta: pd.DataFrame, ext_for: ExtFor) -> pd.DataFrame:
    """What read_train must return for a layout written by :func:`write_train`."""
    images = (root / "train" / "images").resolve()
    rows = []
    for i, rec in enumerate(meta.itertuples(index=False)):
        gender = {"male": 0, "female": 1}[rec.gender]
        age = int(rec.age)
        for stem, mask in STEM_MASK.items():
            rows.append(
                {
                    "image_id": f"{rec.path}/{stem}",
                    "path": str(images / rec.path / f"{stem}.{ext_for(i, stem)}"),
                    "person_id": rec.id,
                    "folder": rec.path,
                    "stem": stem,
                    "gender": gender,
                    "race": rec.race,
                    "age": age,
                    "mask": mask,
                    "age_group": age_group(age),
                    "label": mask * 6 + gender * 3 + age_group(age),
                }
            )
    order = list(STEM_MASK)
    rows.sort(key=lambda r: (r["folder"], order.index(r["stem"])))
    return pd.DataFrame(rows, columns=COLUMNS)


def assert_frames_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Same columns in the same order, same values row by row (dtype kind checked loosely)."""
    assert list(got.columns) == COLUMNS
    assert len(got) == len(want)
    for col in COLUMNS:
        assert got[col].tolist() == want[col].tolist(), col
    for col in ("gender", "age", "mask", "age_group", "label"):
        assert got[col].dtype.kind == "i", col
