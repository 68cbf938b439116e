"""`make lab` works: JupyterLab starts headless on this repository, serves every notebook (and
its jupytext twin), refuses requests without the token, runs featint in a kernel, and shows a
chapter as the book does: headless Chromium opens it and finds its MyST (citations,
admonitions) rendered by jupyterlab-myst, not left raw.

The server runs on 127.0.0.1 with its config, runtime and workspace folders in a temporary
directory, so the developer's own Jupyter settings neither leak in nor get written. Whatever
happens, the server and every process it started (kernels run in their own sessions) are
stopped when the module's tests end.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

import featint

pytestmark = pytest.mark.slow  # starts JupyterLab and a kernel

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
START_TIMEOUT_S = 120
KERNEL_TIMEOUT_S = 120
RENDER_TIMEOUT_S = 180
# The user settings of the test's JupyterLab. Every cell is in the page (no windowing), so
# every Markdown cell is rendered without scrolling; no autosave, since the browser test opens
# the repository's own chapter.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc), so kernels can be ended by their id."""
    parent_of = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name (field 2) may contain spaces; fields after its ')' are fixed.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parent_of[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        kids = [p for p, parent in parent_of.items() if parent in frontier]
        found += kids
        frontier = kids
    return found


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


class Lab:
    """A running JupyterLab: ``get``/``post``/``delete`` on its REST API, with or without
    the token."""

    def __init__(self, port: int, token: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        self.token = token

    def request(self, method: str, path: str, body=None, token: bool = True):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"token {self.token}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as err:
            raw, status = err.read(), err.code
        kind = "json" if raw[:1] in (b"{", b"[") else "text"
        return status, json.loads(raw) if kind == "json" else raw.decode(errors="replace")

    def get(self, path: str, **kw):
        return self.request("GET", path, **kw)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jupyterlab")
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    for plugin, values in LAB_SETTINGS.items():
        settings = tmp / "config" / "lab" / "user-settings" / f"{plugin}.jupyterlab-settings"
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(json.dumps(values))
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [
        str(Path(sys.executable).with_name("jupyter")), "lab", "--no-browser",
        "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={REPO}", "--ServerApp.port_retries=0", "--allow-root",
    ]  # fmt: skip
    log = open(tmp / "server.log", "w")  # noqa: SIM115 (closed in finally)
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    server = Lab(port, token)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited ({proc.returncode}):\n{_tail(tmp)}")
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer in {START_TIMEOUT_S} s:\n{_tail(tmp)}")
            with contextlib.suppress(OSError):
                if server.get("/api/status")[0] == 200:
                    break
            time.sleep(0.5)
        yield server
    finally:
        started = _children(proc.pid)  # kernels live in their own sessions: note them now
        with contextlib.suppress(OSError):
            server.request("POST", "/api/shutdown")  # shuts its kernels down too
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
        _kill(started)
        log.close()


def _tail(tmp: Path) -> str:
    return "\n".join((tmp / "server.log").read_text().splitlines()[-30:])


def test_server_answers_with_the_token_only(lab):
    status, body = lab.get("/api/status")
    assert status == 200 and "started" in body
    assert lab.get("/api/status", token=False)[0] == 403
    assert lab.get("/api/contents/notebooks", token=False)[0] == 403
    status, page = lab.get("/lab")
    assert status == 200 and "<title>JupyterLab</title>" in page


def test_every_notebook_opens(lab):
    assert NOTEBOOKS, "no notebooks/*.ipynb to open"
    for path in NOTEBOOKS:
        rel = path.relative_to(REPO).as_posix()
        status, model = lab.get(f"/api/contents/{rel}?content=1")
        assert status == 200, f"{rel}: HTTP {status}: {model}"
        assert model["type"] == "notebook" and model["format"] == "json"
        stored = json.loads(path.read_text())
        cells = model["content"]["cells"]
        assert [c["cell_type"] for c in cells] == [c["cell_type"] for c in stored["cells"]]
        assert model["content"]["metadata"]["kernelspec"]["name"] == "python3", rel
        # The stored outputs come along: the reader sees the full run without running it.
        outputs = sum(len(c.get("outputs", [])) for c in cells if c["cell_type"] == "code")
        assert outputs > 0, f"{rel} has no stored outputs (see CONTRIBUTING.md)"


def test_jupytext_twin_opens_as_the_same_notebook(lab):
    """JupyterLab opens `NN_name.py` as a notebook (jupytext) with the same cells."""
    for path in NOTEBOOKS:
        twin = path.with_suffix(".py").relative_to(REPO).as_posix()
        status, model = lab.get(f"/api/contents/{twin}?type=notebook&content=1")
        assert status == 200, f"{twin}: HTTP {status}: {model}"
        stored = json.loads(path.read_text())["cells"]
        sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                   for c in model["content"]["cells"]]  # fmt: skip
        assert sources == ["".join(c["source"]) for c in stored], f"{twin} differs from .ipynb"


def _message(msg_type: str, content: dict, session: str) -> dict:
    return {
        "header": {
            "msg_id": uuid.uuid4().hex, "msg_type": msg_type, "session": session,
            "username": "test", "version": "5.3",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        },
        "parent_header": {}, "metadata": {}, "content": content, "channel": "shell",
    }  # fmt: skip


def test_kernel_runs_featint(lab):
    import websocket  # websocket-client, a dependency of jupyter_server

    status, kernel = lab.request("POST", "/api/kernels", {"name": "python3"})
    assert status == 201, kernel
    try:
        ws = websocket.create_connection(
            f"{lab.ws_url}/api/kernels/{kernel['id']}/channels?token={lab.token}",
            timeout=KERNEL_TIMEOUT_S,
        )
        try:
            session = uuid.uuid4().hex
            request = _message(
                "execute_request",
                {"code": "import featint; print(featint.__version__)", "silent": False,
                 "store_history": False, "user_expressions": {}, "allow_stdin": False,
                 "stop_on_error": True},
                session,
            )  # fmt: skip
            ws.send(json.dumps(request))
            stdout, reply, idle = [], None, False
            deadline = time.monotonic() + KERNEL_TIMEOUT_S
            while not (reply and idle):
                assert time.monotonic() < deadline, "the kernel did not finish in time"
                msg = json.loads(ws.recv())
                if msg["parent_header"].get("msg_id") != request["header"]["msg_id"]:
                    continue
                kind = msg["header"]["msg_type"]
                if kind == "stream" and msg["content"]["name"] == "stdout":
                    stdout.append(msg["content"]["text"])
                elif kind == "error":
                    pytest.fail("kernel error: " + "\n".join(msg["content"]["traceback"]))
                elif kind == "execute_reply":
                    reply = msg["content"]
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    idle = True
        finally:
            ws.close()
        assert reply["status"] == "ok"
        assert "".join(stdout).strip() == featint.__version__
    finally:
        assert lab.request("DELETE", f"/api/kernels/{kernel['id']}")[0] == 204
    assert kernel["id"] not in [k["id"] for k in lab.get("/api/kernels")[1]]


# --- MyST in the browser -----------------------------------------------------------------

MYST_CHAPTER = "notebooks/03_afm.ipynb"
CITE = re.compile(r"\{cite(?::\w+)?\}`([^`]+)`")
ADMONITION = re.compile(r"^:::\{admonition\} *(.*?)\s*$", flags=re.M)
RAW_MYST = re.compile(r"\{cite(?::\w+)?\}|:::\{|```\{")

# What the page shows of each Markdown cell: its rendered text (empty until rendered),
# whether jupyterlab-myst rendered it (its widget has the class `myst`), the text of every
# inline element outside code (jupyterlab-myst 2 has no bibliography: it shows {cite}`key` as
# a <span> holding the key, marked "Citation Not Found"; JupyterLab's own renderer leaves
# "{cite}" and the key in <code>), and the titles of the admonitions it rendered.
READ_MARKDOWN_CELLS = """
[...document.querySelectorAll(".jp-Notebook .jp-MarkdownCell")].map(cell => {
  const out = cell.querySelector(
    ".jp-Cell-inputArea > :not(.jp-InputPrompt):not(.jp-Editor)");
  if (!out) return {text: "", myst: false, inline: [], admonitions: []};
  return {
    text: out.textContent,
    myst: out.classList.contains("myst"),
    inline: [...out.querySelectorAll("span, a, cite")].filter(el => !el.closest("code, pre"))
      .map(el => el.textContent.trim()),
    admonitions: [...out.querySelectorAll(".myst-admonition-header-text")]
      .map(el => el.textContent.trim()),
  };
})
"""


def _markdown_sources(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]


def _myst_problems(sources: list[str], shown: list[dict]) -> list[str]:
    """What the page gets wrong about the chapter's MyST; empty when it shows it all."""
    if not any(cell["myst"] for cell in shown):
        problems = ["no Markdown cell was rendered by jupyterlab-myst: is it installed and "
                    "enabled (`jupyter labextension list`)?"]  # fmt: skip
    else:
        problems = [f"Markdown cell {i}: not rendered by jupyterlab-myst"
                    for i, cell in enumerate(shown) if not cell["myst"]]  # fmt: skip
    for i, (source, cell) in enumerate(zip(sources, shown, strict=True)):
        where = f"Markdown cell {i} ({(source.strip().splitlines() or [''])[0][:50]!r})"
        if RAW_MYST.search(cell["text"]):
            problems.append(f"{where} shows raw MyST: {RAW_MYST.search(cell['text'])[0]!r}")
        for keys in CITE.findall(source):
            for key in keys.split(","):
                if key.strip() not in cell["inline"]:
                    problems.append(f"{where}: the citation {key.strip()!r} is not rendered")
        if ADMONITION.findall(source) != cell["admonitions"]:
            problems.append(f"{where}: admonitions {cell['admonitions']}, source has "
                            f"{ADMONITION.findall(source)}")  # fmt: skip
    return problems


@pytest.mark.slow
def test_chapter_myst_is_rendered_in_the_browser(lab, browser):
    """A chapter opened in JupyterLab shows its citations and admonitions rendered (by
    jupyterlab-myst), and no Markdown cell shows raw MyST such as "{cite}`"."""
    sources = _markdown_sources(REPO / MYST_CHAPTER)
    assert any(CITE.search(s) for s in sources), f"{MYST_CHAPTER} cites nothing: pick another"
    assert any(ADMONITION.search(s) for s in sources), f"{MYST_CHAPTER} has no admonition"
    browser.events.clear()
    browser.call("Page.navigate", url=f"{lab.url}/lab/tree/{MYST_CHAPTER}?token={lab.token}")
    browser.wait_for("Page.loadEventFired")

    def read() -> list[dict]:
        result = browser.call("Runtime.evaluate", expression=READ_MARKDOWN_CELLS,
                              returnByValue=True)  # fmt: skip
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"]["value"]

    # Wait until every Markdown cell shows rendered text, then give jupyterlab-myst's later
    # passes (citations, directives) a few seconds to settle before judging.
    deadline = time.monotonic() + RENDER_TIMEOUT_S
    while len(shown := read()) != len(sources) or not all(c["text"].strip() for c in shown):
        rendered = sum(bool(c["text"].strip()) for c in shown)
        assert time.monotonic() < deadline, (
            f"{MYST_CHAPTER}: {rendered} of {len(sources)} Markdown cells rendered after "
            f"{RENDER_TIMEOUT_S} s"
        )
        time.sleep(0.5)
    settle = time.monotonic() + 20
    while (problems := _myst_problems(sources, shown)) and time.monotonic() < settle:
        time.sleep(0.5)
        shown = read()
    assert not problems, f"{MYST_CHAPTER} in JupyterLab:\n" + "\n".join(problems)
