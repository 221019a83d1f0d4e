"""Real ``steer`` processes for signal tests without paying interpreter + torch start-up per case.

A test that sends SIGINT / SIGTERM to a running command needs a real process, but a fresh
``python -c "import cli; cli.main()"`` spends most of its life importing torch and
transformers before the command reaches the point the test interrupts (about 5 of the
8 s one such case took).  :class:`CliForker` starts one helper interpreter that imports
those modules once and then forks a child per command: the child leaves the helper's loop
and runs ``cli.main()`` at the top level of the script, exactly as ``python -c`` would, so its
exit status (``sys.exit`` code, an uncaught exception's 1, death by a signal) is the one a
fresh process would have.  The helper reports the child's pid and, once reaped, its exit
status; :class:`ForkedCommand` offers the part of :class:`subprocess.Popen` the tests use.

Only for POSIX systems with ``fork`` (every platform the signal tests run on).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

#: modules every forked command would otherwise import itself (the slow part of a fresh start)
PRELOAD = (
    "cli", "torch", "transformers", "pydantic", "steer.model", "steer.eval.runs", "steer.eval.runner",
    "steer.eval.variants", "calibration.runs", "steer.organism.splits", "steer.organism.images",
    "steer.adapters.llava", "transformers.models.llava.modeling_llava", "transformers.models.llava.processing_llava",
    "transformers.models.llama.modeling_llama", "transformers.models.clip.modeling_clip",
    "transformers.image_processing_utils",
)

# The helper: import PRELOAD, then per request line fork; the parent reports the child's pid and
# exit status, the child returns from serve() and runs the command like a fresh `python -c`.
_HELPER = r"""
import importlib, json, os, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
def serve():
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            return request
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), flush=True)
    os._exit(0)  # nothing to clean up: skip the interpreter's slow torch teardown
request = serve()
devnull = os.open(os.devnull, os.O_RDONLY)
os.dup2(devnull, 0)
for fd, name in ((1, "stdout"), (2, "stderr")):
    os.dup2(os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
os.chdir(request["cwd"])
sys.argv = ["steer", *request["args"]]
import cli
cli.main()
"""


class ForkedCommand:
    """One command run by :class:`CliForker`: ``pid``, ``poll()``, ``send_signal()``, ``kill()``,
    ``communicate(timeout)`` -> (stdout, stderr) and ``returncode`` as for ``subprocess.Popen``."""

    def __init__(self, forker: "CliForker", pid: int, stdout: Path, stderr: Path):
        self._forker, self.pid, self._stdout, self._stderr = forker, pid, stdout, stderr
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            message = self._forker.read_message(timeout=0)
            if message is not None:
                self.returncode = message["returncode"]
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        if self.returncode is None:
            message = self._forker.read_message(timeout=timeout)
            if message is None:
                raise subprocess.TimeoutExpired(["steer", "(forked)"], timeout)
            self.returncode = message["returncode"]
        return self._stdout.read_text(), self._stderr.read_text()


class CliForker:
    """The helper interpreter; ``start(args, cwd)`` runs ``steer ARGS`` in ``cwd`` as a forked child.

    Commands run one at a time (the helper waits for each child).  ``logs`` is a folder for the
    children's stdout / stderr files, kept out of the folders the tests inspect.
    """

    def __init__(self, env: dict[str, str], logs: Path):
        self.logs = logs
        self._count = 0
        self._pending = b""
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _HELPER, *PRELOAD], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True,
        )
        if self.read_message(timeout=300) != {"ready": True}:
            raise RuntimeError("the forking helper did not start")

    def read_message(self, timeout: float | None) -> dict | None:
        """The helper's next line as JSON, or None if none arrives within ``timeout`` seconds.

        Reads the pipe unbuffered (``os.read``) so that a line already read is never hidden
        from ``select`` in a file object's buffer."""
        deadline = None if timeout is None else time.monotonic() + timeout
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._pending:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(f"the forking helper exited (rc {self._proc.wait()})")
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return json.loads(line)

    def start(self, args: list, cwd: Path) -> ForkedCommand:
        self._count += 1
        out, err = self.logs / f"{self._count}.out", self.logs / f"{self._count}.err"
        request = {"args": [str(a) for a in args], "cwd": str(cwd), "stdout": str(out), "stderr": str(err)}
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        return ForkedCommand(self, self.read_message(timeout=60)["pid"], out, err)

    def close(self) -> None:
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
