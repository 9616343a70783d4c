"""``python ...`` commands of the tests, started as fresh interpreters without paying for the
imports each time.

A fresh interpreter spends 3-5 CPU-seconds importing torch, timm, albumentations and kit before a
recipe or a ``python -m kit.*`` command does anything, and the tests run such commands a few
hundred times. :func:`run` is ``subprocess.run(cmd, capture_output=True, text=True)`` for
``[sys.executable, SCRIPT | -m MODULE | -c CODE, *args]``: it forks the command from a server
process that imported those libraries once and ran nothing
else. Each command gets its own process, argv, working folder, environment, ``sys.path`` (as
``python`` would set it), ``__main__`` and standard streams, and starts without any test's
registrations, monkeypatches or state, as a fresh interpreter would; it ends as one does (threads
joined, atexit handlers run). What only a new interpreter can do goes to ``subprocess.run``
unchanged: ``KIT_TEST_FORK=0`` in the environment (to compare, or rule this out), another
program, interpreter flags, input on stdin, or an environment that differs
from the server's in a variable the preloaded libraries read when imported (HF_*, PYTHONHASHSEED,
a PYTHONPATH folder that shadows one of them, ...).

Tests that are about a fresh interpreter itself (start-up time, which modules ``--help``
imports, signals) keep calling ``subprocess`` directly.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import os
import runpy
import select
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import traceback
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: Imported once by the server: what almost every command imports (about 4 CPU-s together).
PRELOAD = [
    "numpy",
    "pandas",
    "torch",
    "torchvision",
    "timm",
    "albumentations",
    "cv2",
    "sklearn.metrics",
    "matplotlib.pyplot",
    "kit",
    "kit.train",
    "kit.inference",
]
#: Top-level packages a PYTHONPATH folder must not hold for a command to run in a fork.
_PRELOADED_TOPS = {"numpy", "pandas", "torch", "torchvision", "timm", "albumentations", "cv2"}
_PRELOADED_TOPS |= {"sklearn", "matplotlib", "kit", "PIL", "scipy", "huggingface_hub", "tests"}
#: Variables a child may set differently: read when used, never when the libraries are imported.
_READ_WHEN_USED = {"OMP_NUM_THREADS", "PATH", "KIT_DEBUG", "COLUMNS", "LINES", "PWD", "OLDPWD"}
_READ_WHEN_USED |= {"PYTEST_CURRENT_TEST"}  # pytest sets it anew for each test
# a shell sets these for the commands it starts (python_on_path): `_` (the command's path) and
# SHLVL, and a non-interactive bash drops PS1 and PS2; no library reads them
_READ_WHEN_USED |= {"_", "SHLVL", "PS1", "PS2"}
# kit sets these in the test process when a test fits or runs the doctor in-process; cuBLAS and
# tensorboard read them when first used, and neither is used by the server's imports
_READ_WHEN_USED |= {"CUBLAS_WORKSPACE_CONFIG", "TF_CPP_MIN_LOG_LEVEL"}
# torch.hub reads TORCH_HOME when it looks for weights (torch.hub.get_dir), never at import
_READ_WHEN_USED |= {"TORCH_HOME"}

_server: dict[str, Any] = {}
#: One command at a time talks to the server (a doc block may start several from threads).
_talk = threading.Lock()


def _fresh_sys_path(env: dict[str, str]) -> list[str]:
    """A fresh interpreter's ``sys.path`` after its first entry, PYTHONPATH left out."""
    probe = "import json, sys; print(json.dumps(sys.path[1:]))"
    clean = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", probe], env=clean, capture_output=True, text=True)
    return json.loads(out.stdout)


def _started() -> subprocess.Popen[str] | None:
    """The server, started (with :data:`PRELOAD` imported) by this process's first command;
    None where the platform cannot fork."""
    if "proc" not in _server:
        if not hasattr(os, "fork"):
            _server["proc"] = None
            return None
        env = dict(os.environ)
        _server["env"], _server["base"] = env, _fresh_sys_path(env)
        _server["proc"] = subprocess.Popen(
            [sys.executable, "-m", "tests._proc"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        atexit.register(_stop, _server["proc"])
    proc = _server["proc"]
    return proc if proc is None or proc.poll() is None else None


def _path_entries(value: str | None) -> list[str] | None:
    """PYTHONPATH's folders, or None where one holds a package the server already imported."""
    entries = [os.path.abspath(p) for p in (value or "").split(os.pathsep) if p]
    served = _server["env"].get("PYTHONPATH") or ""
    if {os.path.abspath(p) for p in served.split(os.pathsep) if p} - set(entries):
        return None  # a folder the server imported from, gone: packages may resolve elsewhere
    for entry in entries:
        if entry == str(ROOT):
            continue
        names = {Path(n).stem for n in os.listdir(entry)} if os.path.isdir(entry) else set()
        if names & _PRELOADED_TOPS:
            return None
    return entries


def _stop(server: subprocess.Popen[str]) -> None:
    """End the server and wait for it, so its CPU time counts in this process's children."""
    server.stdin.close()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _forkable(cmd: list[str], env: dict[str, str]) -> list[str] | None:
    """The child's PYTHONPATH folders if ``cmd`` can run in a fork, else None."""
    if os.environ.get("KIT_TEST_FORK", "1") == "0":
        return None  # every command a new interpreter: to compare, or to rule this module out
    if len(cmd) < 2 or cmd[0] != sys.executable or _started() is None:
        return None
    if cmd[1].startswith("-") and cmd[1] not in ("-m", "-c"):
        return None  # interpreter flags (-W, -X, -u, ...) shape the interpreter itself
    if cmd[1] in ("-m", "-c") and len(cmd) < 3:
        return None
    base = _server["env"]
    differs = {k for k in set(base) | set(env) if base.get(k) != env.get(k)} - {"PYTHONPATH"}
    if differs - _READ_WHEN_USED:
        return None
    return _path_entries(env.get("PYTHONPATH"))


def _exit_code(err: SystemExit) -> int:
    """What the interpreter exits with for ``raise SystemExit(err.code)``."""
    if err.code is None:
        return 0
    if isinstance(err.code, int):
        return err.code
    print(err.code, file=sys.stderr)
    return 1


def _child(cmd: list[str], cwd: str, env: dict[str, str], paths: list[str], out: str, err: str):
    """The command, in the forked child: set up as ``python`` would, run, exit like it."""
    for fd, name in ((1, out), (2, err)):
        handle = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(handle, fd)
        os.close(handle)
    sys.stdout = sys.__stdout__ = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = sys.__stderr__ = open(  # noqa: SIM115
        2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1
    )
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    if "OMP_NUM_THREADS" in env:
        import torch

        torch.set_num_threads(max(1, int(env["OMP_NUM_THREADS"])))
    base = paths
    flag, rest = cmd[1], cmd[2:]
    code = 0
    try:
        if flag == "-c":
            sys.argv = ["-c", *rest[1:]]
            sys.path[:] = ["", *base]
            main = types.ModuleType("__main__")
            main.__dict__["__builtins__"] = __builtins__
            sys.modules["__main__"] = main
            exec(compile(rest[0], "<string>", "exec"), main.__dict__)
        elif flag == "-m":
            sys.argv = [rest[0], *rest[1:]]
            sys.path[:] = [os.getcwd(), *base]
            sys.modules.pop(rest[0], None)  # as if imported first here, like `python -m` does
            runpy.run_module(rest[0], run_name="__main__", alter_sys=True)
        else:
            sys.argv = cmd[1:]
            sys.path[:] = [os.path.dirname(os.path.realpath(flag)), *base]
            runpy.run_path(flag, run_name="__main__")
    except SystemExit as stop:
        code = _exit_code(stop)
    except BaseException as error:  # printed, then exit 1, as python does
        tb = error.__traceback__
        while tb.tb_next and tb.tb_frame.f_code.co_filename in (__file__, "<frozen runpy>"):
            tb = tb.tb_next  # the command's own frames only, as python shows them
        traceback.print_exception(type(error), error, tb)
        code = 1
    try:
        threading._shutdown()  # type: ignore[attr-defined]  # non-daemon threads, as at exit
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed stream has nothing to flush
                stream.flush()
        os._exit(code)


def _draw_once() -> None:
    """The pictures every finished run draws, drawn once here into memory: matplotlib's fonts
    and math-text parser are then ready in each fork, which would otherwise spend a quarter of
    a second on its first curves (their log-scale labels are math text)."""
    import io

    from kit.plot import confusion_figure, curves_figure

    rows = [{"epoch": 1, "train_loss": 1.0, "val_macro_f1": 0.5, "lr": 1e-3}]
    for fig in (curves_figure({"run": rows}, title="t"), confusion_figure([[1, 0], [0, 1]])):
        fig.savefig(io.BytesIO(), format="png", dpi=100)  # as kit.plot.save_png draws them


def _serve() -> None:
    """The server's loop: one JSON request a line on stdin, a child forked for each; its pid and
    then its exit code (negative: the signal that ended it) answered on stdout."""
    for name in PRELOAD:
        __import__(name)
    _draw_once()
    # as after a test worker's collection (tests/conftest.py): the imports live as long as each
    # fork, whose full collections then skip them
    gc.freeze()
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            os.close(0)
            os.open(os.devnull, os.O_RDONLY)  # fd 0, like a subprocess with no input
            _child(**request)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)
    # the tests wait for this exit (_stop): an interpreter holding torch takes over a second to
    # tear its modules down, and the server has nothing left to flush or close
    os._exit(0)


def run(
    cmd: list[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    check: bool = False,
    **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(cmd, capture_output=True, text=True, ...)``, forked from the warm
    server where a fresh interpreter would behave the same (see the module's docstring)."""
    env = dict(os.environ if env is None else env)
    cmd = list(map(str, cmd))
    kwargs = {"capture_output": True, "text": True, **kwargs}
    as_run = kwargs == {"capture_output": True, "text": True}  # what a fork gives, nothing else
    paths = _forkable(cmd, env) if as_run else None
    if paths is None:
        return subprocess.run(cmd, cwd=cwd, env=env, timeout=timeout, check=check, **kwargs)
    server = _server["proc"]
    with _talk, tempfile.TemporaryDirectory(prefix="kit-proc-") as tmp:
        out, err = os.path.join(tmp, "out"), os.path.join(tmp, "err")
        request = {
            "cmd": cmd,
            "cwd": os.path.abspath(cwd or os.getcwd()),
            "env": env,
            "paths": [*paths, *_server["base"]],
            "out": out,
            "err": err,
        }
        server.stdin.write(json.dumps(request) + "\n")
        server.stdin.flush()
        answer = server.stdout.readline()
        if not answer:  # the server could not start (its error is on stderr): no fork today
            raise RuntimeError(f"tests/_proc.py's server ended with {server.wait()}")
        pid = json.loads(answer)["pid"]
        ready, _, _ = select.select([server.stdout], [], [], timeout)
        timed_out = not ready
        if timed_out:
            os.kill(pid, signal.SIGKILL)
        code = json.loads(server.stdout.readline())["code"]
        stdout, stderr = (Path(p).read_text(errors="replace") for p in (out, err))
    if timed_out:
        raise subprocess.TimeoutExpired(cmd, timeout or 0, output=stdout, stderr=stderr)
    done = subprocess.CompletedProcess(cmd, code, stdout, stderr)
    if check:
        done.check_returncode()
    return done


#: What a shell finds as ``python`` inside :func:`python_on_path`: it hands its command to the
#: test process, which runs it with :func:`run`, and replays the output and the exit code.
_SHIM = """#!{python} -S
import json, os, signal, socket, sys
with socket.socket(socket.AF_UNIX) as s:
    s.connect({address!r})
    asked = {{"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}}
    s.sendall(json.dumps(asked).encode())
    s.shutdown(socket.SHUT_WR)
    answer = json.loads(b"".join(iter(lambda: s.recv(1 << 16), b"")))
sys.stdout.write(answer["stdout"])
sys.stdout.flush()
sys.stderr.write(answer["stderr"])
sys.stderr.flush()
if answer["code"] < 0:
    signal.signal(-answer["code"], signal.SIG_DFL)
    os.kill(os.getpid(), -answer["code"])
sys.exit(answer["code"])
"""


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        asked = json.loads(self.rfile.read())
        done = run([sys.executable, *asked["argv"]], cwd=asked["cwd"], env=asked["env"])
        answer = {"stdout": done.stdout, "stderr": done.stderr, "code": done.returncode}
        self.wfile.write(json.dumps(answer).encode())


@contextlib.contextmanager
def python_on_path(folder: Path) -> Iterator[str]:
    """A folder to put first on a shell's PATH, whose ``python`` and ``python3`` run as
    :func:`run` does; yields it. For documented shell blocks, which start ``python`` often."""
    folder.mkdir(parents=True, exist_ok=True)
    sockets = tempfile.mkdtemp(prefix="kit-py-")  # short: a socket's path has ~100 bytes
    address = os.path.join(sockets, "s")
    with socketserver.ThreadingUnixStreamServer(address, _Handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        for name in ("python", "python3"):
            shim = folder / name
            shim.write_text(_SHIM.format(python=sys.executable, address=address))
            shim.chmod(0o755)
        try:
            yield str(folder)
        finally:
            server.shutdown()
            thread.join()
            os.unlink(address)
            os.rmdir(sockets)


if __name__ == "__main__":
    _serve()
