"""``python -m kit COMMAND``: commands about kit itself (the tools on run folders and data are
``python -m kit.<tool>``: kit.predict, kit.runs, kit.ensemble, kit.score, kit.cache, ...).

- ``doctor``: versions, GPU, disk, caches and optional packages (:mod:`kit.doctor`).
"""

from __future__ import annotations

import sys

from kit.doctor import main as doctor

_COMMANDS = {"doctor": "versions, GPU, free disk, Hugging Face cache, optional packages"}
_USAGE = "usage: python -m kit COMMAND [--help]\ncommands:\n" + "".join(
    f"  {name:<8} {what}\n" for name, what in _COMMANDS.items()
)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(_USAGE, end="")
        return 0
    if args[0] not in _COMMANDS:
        known = ", ".join(_COMMANDS)
        print(_USAGE + f"error: unknown command {args[0]!r} (commands: {known})", file=sys.stderr)
        return 2
    return doctor(args[1:])


if __name__ == "__main__":
    raise SystemExit(main())
