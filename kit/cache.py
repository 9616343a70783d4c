"""``python -m kit.cache --list DIR`` / ``--prune DIR [--yes]``: the picture caches in a folder.

One row per cache key: its pictures, size, disk use, creation time and state. Old caches, which
no run can use any more, are ``stale`` (a picture changed, moved or vanished since the build),
``superseded`` (a newer cache of the same pictures, crop and size exists, made by another loader
or package version), ``partial`` (no complete json) or ``leftover`` (only temporary files of a
build no longer running). ``--prune`` lists them and deletes them only with ``--yes``; a key
being built right now (its lock is held) is never touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from kit.cli import ArgumentParser, add_debug_flag, run_cli
from kit.data.image_cache import (
    CacheMeta,
    image_key,
    load_cache,
    lock_free,
    lock_path,
    read_meta,
    temp_files,
)

__all__ = ["CacheEntry", "main", "prune", "survey"]

_KEY_FILE = re.compile(r"^([0-9a-f]{32})(?:_flip\.npy|\.npy|\.json)$")
OLD_STATES = ("stale", "superseded", "partial", "leftover")


@dataclass
class CacheEntry:
    """One cache key in a folder: its files, what its json says, and its state."""

    key: str
    files: list[Path] = field(default_factory=list)
    meta: CacheMeta | None = None
    state: str = "ok"

    @property
    def nbytes(self) -> int:
        total = 0
        for f in self.files:
            with contextlib.suppress(OSError):
                total += f.stat().st_size
        return total

    @property
    def old(self) -> bool:
        return self.state in OLD_STATES


def survey(folder: str | os.PathLike[str]) -> list[CacheEntry]:
    """Every cache key in ``folder`` with its state, oldest first."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root}: no such cache folder; give the folder that holds the <key>.npy files "
            f"(by default <data folder>/cache, or the run's --cache-dir)"
        )
    entries: dict[str, CacheEntry] = {}
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if m := _KEY_FILE.match(entry.name):
            entries.setdefault(m.group(1), CacheEntry(m.group(1))).files.append(root / entry.name)
    for key, files in temp_files(root).items():
        entries.setdefault(key, CacheEntry(key, state="leftover")).files.extend(files)
    for e in entries.values():
        if e.state == "leftover":
            e.state = "leftover" if lock_free(root, e.key) else "building"
            continue
        e.meta = read_meta(root / f"{e.key}.json")
        e.state = _state(root, e)
    _mark_superseded([e for e in entries.values() if e.state == "ok"])
    return sorted(entries.values(), key=lambda e: (e.meta.created if e.meta else "", e.key))


def _state(root: Path, e: CacheEntry) -> str:
    if e.meta is None or load_cache(root, e.key) is None:
        return "partial"
    m = e.meta
    try:
        key = image_key(m.paths, size=m.size, crop=m.crop, extra=m.extra)
    except FileNotFoundError:
        return "stale"
    return "ok" if key == e.key else "stale"


def _written_ns(e: CacheEntry) -> int:
    return max((f.stat().st_mtime_ns for f in e.files if f.exists()), default=0)


def _mark_superseded(entries: list[CacheEntry]) -> None:
    newest: dict[tuple, CacheEntry] = {}
    # ``created`` has whole seconds: two builds in one second are ordered by their files' times
    for e in sorted(entries, key=lambda e: (e.meta.created, _written_ns(e), e.key)):
        spec = (tuple(e.meta.paths), tuple(e.meta.size), repr(e.meta.crop))
        if spec in newest:
            newest[spec].state = "superseded"
        newest[spec] = e


def prune(entries: Sequence[CacheEntry], root: Path) -> list[CacheEntry]:
    """Delete the files of every old entry whose lock is free; return those deleted."""
    done = []
    for e in entries:
        if not e.old:
            continue
        try:
            with FileLock(lock_path(root, e.key), timeout=0):
                for f in e.files:
                    f.unlink(missing_ok=True)
        except Timeout:
            print(f"skipped {e.key}: it is being built right now", file=sys.stderr)
            continue
        lock_path(root, e.key).unlink(missing_ok=True)
        done.append(e)
    return done


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _row(e: CacheEntry) -> str:
    m = e.meta
    what = f"{len(m.paths):>7} x {m.size[0]}x{m.size[1]}" if m else f"{'-':>7}"
    flips = " flips" if m and m.flips else ""
    created = m.created if m else "-"
    return f"{e.key}  {e.state:<10} {what:<18} {_mib(e.nbytes):>14}  {created}{flips}"


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; kit's errors as one ``error:`` line, exit code 2."""
    return run_cli(_main, argv)


def _main(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="python -m kit.cache", description="Show or remove old picture caches in a folder."
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--list", metavar="DIR", help="show every cache in DIR and its state")
    what.add_argument("--prune", metavar="DIR", help="show the old caches in DIR, then delete")
    parser.add_argument("--yes", action="store_true", help="with --prune: really delete")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    root = Path(args.list or args.prune)
    entries = survey(root)
    shown = entries if args.list else [e for e in entries if e.old]
    print(f"{'key':<32}  {'state':<10} {'pictures':<18} {'disk':>14}  created")
    for e in shown:
        print(_row(e))
    total = sum(e.nbytes for e in shown)
    if args.list:
        print(f"{len(entries)} caches, {_mib(total)}; old ones: {', '.join(OLD_STATES)}")
    elif not args.yes:
        print(f"{len(shown)} old caches, {_mib(total)}; nothing deleted: add --yes to delete")
    else:
        sizes = {e.key: e.nbytes for e in shown}
        done = prune(shown, root)
        print(f"deleted {len(done)} old caches, {_mib(sum(sizes[e.key] for e in done))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
