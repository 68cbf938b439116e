"""Headless Chromium for the browser tests, driven over the Chrome DevTools protocol.

`tests/conftest.py` turns `chromium()` into the session fixture ``browser``: one page of
Chromium with a fresh profile, on which a test calls DevTools commands (``call``), waits for
an event (``wait_for``), and reads every event received so far (``events``; Network and Page
events are on).

Chromium is Debian's ``chromium`` package. Without it the browser tests are skipped, except
under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator

import pytest

TIMEOUT_S = 60


class DevTools:
    """A minimal Chrome DevTools protocol client for one page: commands and their events."""

    def __init__(self, ws_url: str) -> None:
        import websocket  # websocket-client, a dependency of jupyter_server

        # No Origin header: Chromium refuses DevTools connections from foreign origins.
        self.ws = websocket.create_connection(ws_url, timeout=TIMEOUT_S, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def wait_for(self, event: str) -> dict:
        """The next (or an already received) event named ``event``."""
        while True:
            for message in self.events:
                if message.get("method") == event:
                    self.events.remove(message)
                    return message
            self.events.append(json.loads(self.ws.recv()))

    def close(self) -> None:
        self.ws.close()


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    reason = "headless Chromium is not installed (apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def chromium() -> Iterator[DevTools]:
    """Headless Chromium with a fresh profile and a DevTools port; killed at the end."""
    binary = chromium_binary()
    profile = tempfile.mkdtemp(prefix="featint-chromium-")
    port = _free_port()
    cmd = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-extensions", "--mute-audio", "--window-size=1280,900",
        f"--user-data-dir={profile}", f"--remote-debugging-port={port}",
        "--remote-debugging-address=127.0.0.1", "about:blank",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 30
        targets: list[dict] = []
        while not targets:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Chromium did not open its DevTools port (exit {proc.poll()})")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                    targets = [t for t in json.load(r) if t["type"] == "page"]
            time.sleep(0.2)
        devtools = DevTools(targets[0]["webSocketDebuggerUrl"])
        try:
            devtools.call("Network.enable")
            devtools.call("Page.enable")
            yield devtools
        finally:
            devtools.close()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)
