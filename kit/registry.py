"""One registry helper for every "name -> builder" table of kit (timm's pattern).

>>> SHAPES = Registry("shape")
>>> @SHAPES.register("square")
... def square(side: float) -> float:
...     return side * side
>>> SHAPES.get("square")(3.0)
9.0
>>> SHAPES.names()
['square']
>>> SHAPES.get("sqare")
Traceback (most recent call last):
...
kit.registry.UnknownName: unknown shape 'sqare' (did you mean 'square'?); valid: ['square']

Every registry is listed in :data:`REGISTRIES` under its ``kind``: config checks and ``--help``
find a field's valid names from its metadata without importing the module that fills it.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import dataclasses
import difflib
import functools
import inspect
import os
import re
import sys
import sysconfig
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, NoReturn, TypeVar, overload

from kit._builtin_entries import BUILTIN_ENTRIES
from kit.errors import KitError, UserCodeError

__all__ = [
    "REGISTRIES",
    "Registry",
    "UnknownName",
    "blame_user",
    "blaming",
    "deferred",
    "definition",
    "did_you_mean",
    "get_registry",
    "help_lines",
    "register_head",
    "register_loss",
    "registerer",
    "user_origin",
]

T = TypeVar("T")
_NAME = re.compile(r"[A-Za-z_][\w.-]*")


class UnknownName(KitError, ValueError):
    """A name that no entry of a registry has; the message lists the valid ones."""


def did_you_mean(name: str, valid: Iterable[str], n: int = 1, cutoff: float = 0.6) -> str:
    """`` (did you mean 'x'?)`` for the closest valid names, or ``""`` when none is close
    (``cutoff`` is difflib's similarity threshold)."""
    close = difflib.get_close_matches(str(name), list(valid), n=n, cutoff=cutoff)
    return f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""


class Registry(Generic[T]):
    """Entries by name, filled with the :meth:`register` decorator (or call).

    ``kind`` names the entries (``loss``, ``ensemble_method``) in messages and in
    :data:`REGISTRIES`; ``describe`` turns an entry into its ``--help`` line; ``check(value,
    field, cfg)`` replaces :meth:`check`'s "is it a registered name" for composite values.
    """

    def __init__(
        self,
        kind: str,
        describe: Callable[[str, T], str] | None = None,
        check: Callable[[Any, str | None, Any], None] | None = None,
    ) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._describe = describe
        self._check = check
        self._guarded: dict[str, tuple[T, T]] = {}  # name -> (entry, as use() returns it)
        REGISTRIES[kind] = self

    @overload
    def register(self, name: str, *, overwrite: bool = ...) -> Callable[[T], T]: ...
    @overload
    def register(self, name: str, entry: T, *, overwrite: bool = ...) -> T: ...

    def register(self, name: str, entry: Any = None, *, overwrite: bool = False) -> Any:
        """Add ``entry`` as ``name``; without ``entry``, a decorator that adds what it wraps.
        Another entry under a taken name raises ValueError unless ``overwrite``."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"{self.label} name must be an identifier, got {name!r}")

        def add(value: T) -> T:
            old = self._entries.get(name)
            # an equal entry again (a module imported twice, a frozen spec rebuilt) is no change;
            # the same definition run again (a notebook cell, a recipe file imported under
            # another name) replaces the old one
            same = old is value or old == value or _same_definition(old, value)
            if old is not None and not same and not overwrite:
                raise ValueError(
                    f"{self.label} {name!r} is already registered ({old!r}); "
                    "pass overwrite=True to replace it"
                )
            self._entries[name] = value
            return value

        return add if entry is None else add(entry)

    def unregister(self, name: str) -> T:
        """Remove ``name`` and return its entry (tests and examples clean up with it)."""
        return self._entries.pop(name)

    def get(self, name: str) -> T:
        """The entry of ``name``; :class:`UnknownName` with the close and valid names if none."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownName(self.unknown_message(name)) from None

    def use(self, name: str) -> T:
        """The entry of ``name`` as kit calls it: an entry of the user's code
        (:func:`user_origin`) comes back guarded, each call of it (or of a spec's callable
        fields) inside :meth:`calling` with its arguments as the input a failure names; kit's
        own entries come back as they are."""
        entry = self.get(name)
        cached = self._guarded.get(name)
        if cached is None or cached[0] is not entry:
            cached = (entry, _guard(self.kind, name, entry))
            self._guarded[name] = cached
        return cached[1]

    @contextlib.contextmanager
    def calling(
        self, name: str, on: str = "", passing: tuple[type[BaseException], ...] = ()
    ) -> Iterator[None]:
        """Run the entry ``name`` inside: when it is the user's code (:func:`user_origin`), a
        failure but kit's own errors, Ctrl-C and the types in ``passing`` (the caller handles
        them) becomes a :class:`~kit.errors.UserCodeError` naming the piece, where it was
        defined and ``on`` (its input); the user's traceback is its ``__cause__`` (``--debug``).
        kit's own entries fail as they are: a bug keeps its traceback."""
        token = _CALLING.set((self.kind, name))
        try:
            yield
        except (KitError, *passing):
            raise
        except Exception as err:
            if origin := user_origin(self._entries.get(name)):
                _blame(err, f"{self.label} {name!r}", origin, on)
            raise
        finally:
            _CALLING.reset(token)

    def unknown_message(self, name: Any, what: str | None = None) -> str:
        """``unknown <kind> 'x' (did you mean 'y'?); valid: [...]``; ``what`` replaces the
        leading ``unknown <kind>`` (a config field, say)."""
        head = what or f"unknown {self.label}"
        return f"{head} {name!r}{did_you_mean(str(name), self.names())}; valid: {self.names()}"

    @property
    def label(self) -> str:  # for messages: "ensemble method"
        return self.kind.replace("_", " ")

    def check(self, value: Any, field: str | None = None, cfg: Any = None) -> None:
        """Raise ValueError unless ``value`` (of config field ``field``, named in the message)
        is a registered name; a registry made with ``check`` decides itself (reading ``cfg``)."""
        if self._check is not None:
            self._check(value, field, cfg)
        elif value not in self:
            what = None if field is None else f"config field {field!r} is"
            raise UnknownName(self.unknown_message(value, what))

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._entries.items())

    def describe(self) -> list[str]:
        """One line per entry (its name, and what ``describe`` says of it)."""
        if self._describe is None:
            return self.names()
        return [self._describe(name, entry) for name, entry in self.items()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


#: ``(kind, name)`` of the :meth:`Registry.calling` block running now: a guarded entry called
#: inside its own block leaves the naming to it (it knows the input and what its caller handles).
_CALLING: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "kit_registry_calling", default=None
)


class _Guarded:
    """A user's entry from :meth:`Registry.use`: a call runs inside :meth:`~Registry.calling`
    with its arguments named; anything else (attributes, equality, pickling) is the entry's."""

    def __init__(self, kind: str, name: str, entry: Any) -> None:
        self.kind, self.name, self.__wrapped__ = kind, name, entry

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _CALLING.get() == (self.kind, self.name):
            return self.__wrapped__(*args, **kwargs)
        with REGISTRIES[self.kind].calling(self.name, on=_describe_input(args, kwargs)):
            return self.__wrapped__(*args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):  # not set yet (unpickling): no recursion through __wrapped__
            raise AttributeError(attr)
        return getattr(self.__wrapped__, attr)

    def __eq__(self, other: object) -> bool:
        other = other.__wrapped__ if isinstance(other, _Guarded) else other
        return bool(self.__wrapped__ == other)

    def __hash__(self) -> int:
        return hash(self.__wrapped__)

    def __repr__(self) -> str:
        return repr(self.__wrapped__)


def _guard(kind: str, name: str, entry: Any) -> Any:
    """A callable of the user's code guarded; a spec dataclass copied with its user-code fields
    guarded (so ``isinstance`` and its other fields hold); anything else as it is."""
    if dataclasses.is_dataclass(entry) and not isinstance(entry, type):
        users = {
            f.name: _Guarded(kind, name, value)
            for f in dataclasses.fields(entry)
            if callable(value := getattr(entry, f.name)) and user_origin(value)
        }
        if not users:
            return entry
        guarded = copy.copy(entry)
        for field, value in users.items():
            object.__setattr__(guarded, field, value)  # a frozen spec too
        return guarded
    return _Guarded(kind, name, entry) if callable(entry) and user_origin(entry) else entry


def _describe_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """A call's arguments as a failure names its input: shapes, a config's run, lengths of
    sequences, short values as they are."""
    parts = [_describe_value(a) for a in args]
    parts += [f"{k}={_describe_value(v)}" for k, v in kwargs.items()]
    return ", ".join(parts) or "no arguments"


def _describe_value(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple | list):  # torch.Size is a tuple
        return f"a {type(value).__name__} of shape {tuple(shape)}"
    if type(value).__name__ == "Config" and hasattr(value, "name"):
        return f"the config of run {value.name!r}"
    plain = str | int | float | bool | os.PathLike | type(None)
    if isinstance(value, list | tuple | dict | set) and value:
        items = value.values() if isinstance(value, dict) else value
        if all(isinstance(v, plain) for v in items) and len(text := repr(value)) <= 80:
            return text
        kinds = sorted({type(v).__name__ for v in items})
        return f"a {type(value).__name__} of {len(value)} {'/'.join(kinds)}"
    if not isinstance(value, plain):
        return f"a {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def blame_user(err: BaseException, piece: str, on: str) -> None:
    """Raise a :class:`~kit.errors.UserCodeError` naming ``piece`` (``"loss 'mine'"``) and
    ``on`` (its input) from ``err`` when the user's code is in its traceback; return otherwise
    (kit's or a library's failure keeps its traceback). For call sites that are not one
    registry entry: a training step, where the model and the loss run."""
    if isinstance(err, KitError):
        return
    origin, tb = None, err.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module and not _kit_or_library(module, tb.tb_frame.f_globals.get("__file__")):
            origin = module
        tb = tb.tb_next
    if origin is not None:
        _blame(err, piece, origin, on)


def _blame(err: BaseException, piece: str, origin: str, on: str) -> NoReturn:
    where = f" on {on}" if on else ""
    raise UserCodeError(
        f"{piece} (your code, in {origin}) failed{where}: {type(err).__name__}: {err}; "
        "fix it there (--debug shows its traceback)"
    ) from err


@contextlib.contextmanager
def blaming(piece: str, on: str) -> Iterator[None]:
    """:func:`blame_user` for what runs inside: an optimizer's step, a model's prediction."""
    try:
        yield
    except Exception as err:
        blame_user(err, piece, on)
        raise


def definition(entry: Any) -> Any:
    """The function or class that defined a registry entry: the first callable field of a
    spec dataclass (a ``HeadSpec``'s ``build``), else the entry; a partial is unwrapped."""
    parts = []
    if dataclasses.is_dataclass(entry) and not isinstance(entry, type):
        parts = [getattr(entry, f.name) for f in dataclasses.fields(entry)]
    for obj in (*parts, entry):
        obj = obj.__wrapped__ if isinstance(obj, _Guarded) else obj
        obj = getattr(obj, "func", obj)
        if callable(obj) and getattr(obj, "__module__", None):
            return obj
    return entry


def _same_definition(old: Any, new: Any) -> bool:
    """Whether ``new`` is ``old``'s definition run again: same qualified name and module or
    source file."""
    a, b = definition(old), definition(new)
    name = getattr(a, "__qualname__", None)
    if name is None or name != getattr(b, "__qualname__", None) or "<lambda>" in name:
        return False
    if a.__module__ == b.__module__:
        return True
    try:
        return inspect.getsourcefile(a) == inspect.getsourcefile(b) is not None
    except TypeError:  # built-in: no source file
        return False


def _module(obj: Any) -> str | None:
    if inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj):
        return getattr(obj, "__module__", None)
    if callable(obj) and not isinstance(obj, functools.partial):
        return type(obj).__module__  # a callable object: its class says whose it is
    return None


def user_origin(entry: Any, depth: int = 3) -> str | None:
    """The module of the user's code in a registry entry (defined outside kit, or wrapped by
    kit: a partial's function, a closure's cells, a spec's fields); None when all kit's (or a
    library's)."""
    entry = entry.__wrapped__ if isinstance(entry, _Guarded) else entry
    module = _module(entry)
    if module and not _kit_or_library(module, getattr(entry, "__globals__", {}).get("__file__")):
        return module
    if depth == 0:
        return None
    parts: list[Any] = []
    if isinstance(entry, functools.partial):
        parts.append(entry.func)
    if inspect.isfunction(entry):
        parts += [c.cell_contents for c in entry.__closure__ or () if _filled(c)]
    if dataclasses.is_dataclass(entry) and not isinstance(entry, type):
        parts += [getattr(entry, f.name) for f in dataclasses.fields(entry)]
    return next((m for m in (user_origin(p, depth - 1) for p in parts) if m), None)


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 (an empty cell raises)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=256)
def _kit_or_library(module: str, file: str | None = None) -> bool:
    """Whether ``module`` is kit's or installed (stdlib, site-packages), not the user's code.
    ``file`` (the code's ``__file__``) decides for a module not imported (``runpy.run_path``)."""
    if module.split(".")[0] == "kit":
        return True
    file = getattr(sys.modules.get(module), "__file__", None) or file
    if file is None:  # built into the interpreter; "__main__" of a notebook has a file or not
        return module not in ("__main__", "__mp_main__")
    installed = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    path = os.path.realpath(file)
    return any(path.startswith(os.path.realpath(p) + os.sep) for p in installed)


#: kind -> registry, for every registry created (filled as kit's modules are imported).
REGISTRIES: dict[str, Registry[Any]] = {}


def get_registry(kind: str) -> Registry[Any]:
    """The registry of ``kind``; ValueError naming the known kinds if none was created."""
    try:
        return REGISTRIES[kind]
    except KeyError:
        raise UnknownName(
            f"no registry of {kind!r}{did_you_mean(kind, REGISTRIES)}; known: {sorted(REGISTRIES)}"
        ) from None


def help_lines(kind: str) -> list[str]:
    """``--help``'s line per entry of the registry of ``kind``: kit's own from
    :mod:`kit._builtin_entries` (so help imports no torch), then any other registered so far
    (a recipe's own), as its registry describes it."""
    lines = list(BUILTIN_ENTRIES.get(kind, ()))
    registry = REGISTRIES.get(kind)
    if registry is not None:
        builtin = {_NAME.match(line)[0] for line in lines}  # type: ignore[index]
        described = zip(registry.names(), registry.describe(), strict=True)
        lines += [line for name, line in described if name not in builtin]
    return lines


#: kind -> the decorator of the module that fills that registry (:func:`registerer`).
_REGISTERERS: dict[str, Callable[..., Callable[[Any], Any]]] = {}
#: kind -> registrations made before that module was imported.
_WAITING: dict[str, list[Callable[[], object]]] = {}


def registerer(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a module's decorator (``register_head``, ...) as the one that fills the registry
    of ``kind``; registrations :func:`deferred` until then are made through it now."""

    def declare(decorator: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTERERS[kind] = decorator
        _settle(kind)
        return decorator

    return declare


def _settle(kind: str) -> None:
    for register in _WAITING.pop(kind, []):
        register()


def deferred(kind: str) -> Callable[..., Callable[[T], T]]:
    """A light stand-in for the decorator that fills the registry of ``kind``: same arguments,
    but it registers only once that module (which loads torch) is imported, at once if it is.
    So a recipe's ``@kit.register_loss`` costs its ``--help`` no torch import."""

    def register(*args: Any, **kwargs: Any) -> Callable[[T], T]:
        def decorate(obj: T) -> T:
            _WAITING.setdefault(kind, []).append(lambda: _REGISTERERS[kind](*args, **kwargs)(obj))
            if kind in _REGISTERERS:
                _settle(kind)
            return obj

        return decorate

    register.__name__ = register.__qualname__ = f"register_{kind}"
    return register


#: ``kit.register_head`` and ``kit.register_loss``, deferred until kit.models and kit.losses are
#: imported. (``register_model`` is not: a config's model is checked against it at once.)
register_head = deferred("head")
register_loss = deferred("loss")
