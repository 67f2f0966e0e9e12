"""A fork server for ``test_reliability_kill.py`` (run as a script, not collected).

It imports tuilora's command line and the training stack once, then runs each requested
``tuilora train`` in a forked child: the same code as the ``tuilora`` command
(``tuilora.cli.main``) in a process of its own that the test kills with SIGKILL, without
paying the imports (seconds on a loaded 2-core machine) for each of the twenty kills.

Requests on stdin, one JSON line each: ``{"args": [...], "log": PATH, "kill": null | PLAN}``.
Replies on stdout: ``{"pid": N}`` once the child runs, then ``{"pid": N, "code": C}`` when it
ended (``C`` negative: killed by signal ``-C``).

A ``PLAN`` makes the child SIGKILL itself inside a save, where a kill from outside would
rarely land (the tiny model's saves take milliseconds): at the ``nth`` call of ``op``
(``fsync``, ``replace``, ``rename``, ``rmtree``) whose path contains ``where``, ``before`` or
``after`` the real call; the path goes to ``PLAN["note"]`` first, so the test can say where
the kill landed.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

import torch.utils.tensorboard
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextModel

import tuilora.cli
import tuilora.engine.loop
import tuilora.engine.train

#: Imported once here for every child (diffusers' model classes take seconds).
PRELOADED = (torch.utils.tensorboard, AutoencoderKL, UNet2DConditionModel, CLIPTextModel)
PRELOADED_TUILORA = (tuilora.engine.loop, tuilora.engine.train)


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


PATH_OF: dict[str, Callable[..., str]] = {
    "fsync": lambda fd: _fd_path(fd),
    "replace": lambda src, dst: f"{src} -> {dst}",
    "rename": lambda self, target: f"{self} -> {target}",
    "rmtree": lambda path, *args, **kwargs: str(path),
}


def install_kill(plan: dict[str, Any]) -> None:
    op, where, nth, when = plan["op"], plan["where"], int(plan["nth"]), plan["when"]
    seen = [0]

    def die(path: str) -> None:
        with open(plan["note"], "w", encoding="utf-8") as note:
            note.write(f"{when} {op} {path}\n")
        os.kill(os.getpid(), signal.SIGKILL)

    def wrap(real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            path = PATH_OF[op](*args, **kwargs)
            fire = False
            if where in path:
                seen[0] += 1
                fire = seen[0] == nth
            if fire and when == "before":
                die(path)
            result = real(*args, **kwargs)
            if fire:
                die(path)
            return result

        return wrapper

    if op == "fsync":
        os.fsync = wrap(os.fsync)
    elif op == "replace":
        os.replace = wrap(os.replace)
    elif op == "rename":
        pathlib.Path.rename = wrap(pathlib.Path.rename)  # type: ignore[method-assign]
    elif op == "rmtree":
        shutil.rmtree = wrap(shutil.rmtree)  # type: ignore[assignment]
    else:
        raise ValueError(op)


def child(request: dict[str, Any]) -> int:
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    if request.get("kill"):
        install_kill(request["kill"])
    try:
        tuilora.cli.main(request["args"])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def serve() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = child(request)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"pid": pid, "code": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    serve()
