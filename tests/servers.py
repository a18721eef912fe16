"""The servers the tests start: waiting for the session's Spark Connect server (tests/conftest.py),
stopping a standalone master and worker."""

import os
import signal
import subprocess

import pytest


def wait_for_connect(url: str, server, log, seconds: float = 150) -> None:
    """Until the Connect server at ``url`` takes connections (pytest.fail if it exits or never does)."""
    import socket
    import time

    host, port = url[len("sc://"):].split(":")
    deadline = time.monotonic() + seconds
    while True:
        if server.poll() is not None:
            pytest.fail(f"the Connect server exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"no Spark Connect server at {url} after {seconds} s")
            time.sleep(0.5)


def stop_groups(procs) -> None:
    """Stop each process's group (its own session: a daemon and the JVMs it started): SIGTERM, then
    SIGKILL to a group that has not exited within 20 s."""
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
