"""The Jupyter Book builds offline without a warning, and every chapter reads well in a browser.

One build per session (into a temporary folder, so a developer's ``_build`` is left alone),
then headless Chromium opens each chapter through a local HTTP server and reports, over the
DevTools protocol, what a reader would see: the title, whether each figure decoded, whether
every formula was typeset by MathJax, and every request the page made (all must stay on this
machine: MathJax ships with the book, not from a CDN). Links between pages are checked
against the files of the build.

The browser is the ``browser`` fixture (tests/conftest.py, tests/browser.py): Debian's
``chromium`` package; without it these browser checks are skipped, except under CI (``CI``
set), where they fail.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
import yaml

pytestmark = pytest.mark.slow  # builds the book and opens every page in Chromium

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "book" / "_config.yml"
TOC = REPO / "book" / "_toc.yml"
BUILD_TIMEOUT_S = 600
PAGE_TIMEOUT_S = 60


def toc_files() -> list[str]:
    """Every document of the book in reading order, as toc paths (no suffix)."""
    toc = yaml.safe_load(TOC.read_text())
    files = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))

    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    walk(toc.get("chapters", []))
    return files


def source_of(doc: str) -> Path:
    for suffix in (".md", ".ipynb"):
        if (REPO / (doc + suffix)).exists():
            return REPO / (doc + suffix)
    raise FileNotFoundError(f"book/_toc.yml names {doc!r}, but neither .md nor .ipynb exists")


def source_title(path: Path) -> str:
    """The first level-1 heading of a Markdown page or of a notebook's Markdown cells."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    else:
        text = path.read_text()
    match = re.search(r"^# +(.+?)\s*$", text, flags=re.M)
    assert match, f"{path.relative_to(REPO)} has no '# Title' heading"
    return match.group(1)


def plain(text: str) -> str:
    """Markdown heading text as a browser shows it: no emphasis or code marks, one space."""
    return " ".join(re.sub(r"[*_`]", "", text).split())


CHAPTERS = toc_files()


# --- the build ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Path:
    """Build the book exactly as `make book` does, into a temporary folder; return its html/."""
    out = tmp_path_factory.mktemp("book")
    cmd = [
        str(Path(sys.executable).with_name("jupyter-book")),
        "build", ".",
        "--config", str(CONFIG.relative_to(REPO)),
        "--toc", str(TOC.relative_to(REPO)),
        "-W", "-n", "--keep-going",
        "--path-output", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    log = proc.stdout + proc.stderr
    warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
    report = "\n".join(warnings or log.splitlines()[-40:])
    assert proc.returncode == 0 and not warnings, f"jupyter-book build failed:\n{report}"
    return out / "_build" / "html"


def test_book_builds_offline_without_warnings(built_book):
    for doc in CHAPTERS:
        assert (built_book / f"{doc}.html").is_file(), f"{doc}.html was not built"
    assert (built_book / "index.html").is_file()


def test_every_notebook_is_a_chapter():
    """A notebook that is not in book/_toc.yml would silently be left out of the book."""
    in_toc = set(CHAPTERS)
    missing = [
        f"notebooks/{nb.stem}"
        for nb in sorted((REPO / "notebooks").glob("*.ipynb"))
        if f"notebooks/{nb.stem}" not in in_toc
    ]
    assert not missing, f"add these to book/_toc.yml: {missing}"


def test_math_and_scripts_are_served_from_the_book(built_book):
    """No page loads a script or stylesheet from another host; MathJax is in _static/."""
    assert (built_book / "_static" / "mathjax" / "tex-chtml.js").is_file()
    remote = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)=\"(?:https?:)?//[^\"]*\"")
    for doc in CHAPTERS:
        html = (built_book / f"{doc}.html").read_text()
        assert not remote.findall(html), f"{doc} loads remote assets: {remote.findall(html)}"
        if 'class="math' in html:  # Sphinx adds MathJax to the pages that have math
            assert "_static/mathjax/tex-chtml.js" in html, f"{doc}: MathJax not loaded locally"


def test_internal_links_resolve(built_book):
    """Every link from a chapter to a page or file of the site points at a file that exists,
    and a #fragment on another page names an element of that page."""
    href = re.compile(r"""<(?:a|link|img|script)\b[^>]*?\b(?:href|src)="([^"]*)\"""")
    broken = []
    for doc in CHAPTERS:
        page = built_book / f"{doc}.html"
        for link in href.findall(page.read_text()):
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or not parts.path:  # external, or same page
                continue
            target = (page.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{doc}: {link}")
            elif parts.fragment and target.suffix == ".html":
                ids = re.findall(r'\bid="([^"]+)"', target.read_text())
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{doc}: {link} (no such anchor)")
    assert not broken, "broken links:\n" + "\n".join(broken)


# --- the browser -------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass


@pytest.fixture(scope="session")
def site(built_book):
    """The built book served on 127.0.0.1 (an ephemeral port) for the session."""
    handler = functools.partial(_QuietHandler, directory=str(built_book))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


# Runs in the page once it has loaded: waits for MathJax to finish, forces every image to load
# and decode (so lazy loading cannot hide a broken one), and reports what a reader would see.
INSPECT_PAGE = """
(async () => {
  if (document.readyState !== "complete")
    await new Promise(resolve => window.addEventListener("load", resolve, {once: true}));
  if (window.MathJax && MathJax.startup && MathJax.startup.promise)
    await MathJax.startup.promise;
  const article = document.querySelector("article") || document.body;
  const images = await Promise.all([...article.querySelectorAll("img")].map(async img => {
    img.loading = "eager";
    let decoded = true;
    try { await img.decode(); } catch (err) { decoded = false; }
    return {src: img.getAttribute("src"), ok: decoded && img.naturalWidth > 0};
  }));
  const math = [...article.querySelectorAll(".math")];
  return {
    title: document.title,
    h1: [...article.querySelectorAll("h1")].map(h => h.textContent.replace(/#\\s*$/, "").trim()),
    images: images,
    math: math.length,
    untypeset: math.filter(el => !el.querySelector("mjx-container")).map(el => el.textContent),
    // TeX errors: MathJax shows a parse error as <merror>, an unknown macro in red text.
    mathErrors: [...article.querySelectorAll(
      "mjx-merror, mjx-assistive-mml mtext[mathcolor='red']")].map(el =>
        el.getAttribute("data-mjx-error") || el.textContent),
  };
})()
"""


@pytest.mark.parametrize("doc", CHAPTERS)
def test_chapter_reads_well_in_a_browser(doc, browser, site):
    url = urljoin(site, f"{doc}.html")
    browser.events.clear()
    browser.call("Page.navigate", url=url)
    browser.wait_for("Page.loadEventFired")
    result = browser.call(
        "Runtime.evaluate", expression=INSPECT_PAGE, awaitPromise=True, returnByValue=True,
        timeout=PAGE_TIMEOUT_S * 1000,
    )  # fmt: skip
    assert "exceptionDetails" not in result, result["exceptionDetails"]
    page = result["result"]["value"]
    assert page["h1"], f"{doc}: no <h1> title"
    title = plain(source_title(source_of(doc)))
    assert page["h1"][0] == title, f"{doc}: the page's title {page['h1'][0]!r} is not {title!r}"
    assert page["title"].startswith(title), f"{doc}: <title> is {page['title']!r}"

    broken = [img["src"] for img in page["images"] if not img["ok"]]
    assert not broken, f"{doc}: images that did not load: {broken}"
    if doc.startswith("notebooks/"):
        assert page["images"], (
            f"{doc}: a chapter needs at least one figure; are its full-run outputs stored in "
            "the .ipynb? (CONTRIBUTING.md, 'Refresh the stored outputs')"
        )

    assert not page["untypeset"], f"{doc}: formulas MathJax did not typeset: {page['untypeset']}"
    assert not page["mathErrors"], f"{doc}: TeX errors: {page['mathErrors']}"
    if source_of(doc).read_text().count("$") >= 2:
        assert page["math"] > 0, f"{doc}: the source has $...$ math but the page has none"

    requested = [
        e["params"]["request"]["url"]
        for e in browser.events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    assert any(u.startswith(url) for u in requested), f"{doc}: the page was not requested"
    remote = [u for u in requested if not u.startswith((site, "data:", "blob:"))]
    assert not remote, f"{doc}: requests that leave this machine: {remote}"


# Runs in chapter 09's page: reads the explorer's table and chart, chooses another user (and
# then another model) the way a reader does, and reads them again.
EXPLORE = """
(async () => {
  if (document.readyState !== "complete")
    await new Promise(resolve => window.addEventListener("load", resolve, {once: true}));
  const root = document.querySelector(".featint-explorer");
  if (!root) return {found: false};
  const read = () => ({table: root.querySelector("tbody").textContent,
                       rows: root.querySelectorAll("tbody tr").length,
                       bars: root.querySelectorAll("svg rect").length,
                       chart: root.querySelector("svg").innerHTML,
                       note: root.querySelector(".note").textContent});
  const user = root.querySelector("select.user"), model = root.querySelector("select.model");
  const before = read();
  user.selectedIndex = 1;
  user.dispatchEvent(new Event("change"));
  const otherUser = read();
  model.selectedIndex = (model.selectedIndex + 1) % model.options.length;
  model.dispatchEvent(new Event("change"));
  const otherModel = read();
  return {found: true, users: user.options.length, models: model.options.length,
          before: before, otherUser: otherUser, otherModel: otherModel};
})()
"""


def test_the_explorer_needs_no_kernel(browser, site, built_book):
    """Chapter 09's explorer works in the static book: choosing another user (or model)
    redraws the table of top movies and the chart of the first one's parts."""
    doc = "notebooks/09_explain"
    page = built_book / f"{doc}.html"
    assert page.stat().st_size < 2 * 2**20, f"{doc}.html is {page.stat().st_size} bytes"
    browser.events.clear()
    browser.call("Page.navigate", url=urljoin(site, f"{doc}.html"))
    browser.wait_for("Page.loadEventFired")
    result = browser.call("Runtime.evaluate", expression=EXPLORE, awaitPromise=True,
                          returnByValue=True, timeout=PAGE_TIMEOUT_S * 1000)
    assert "exceptionDetails" not in result, result["exceptionDetails"]
    seen = result["result"]["value"]
    assert seen["found"], "no explorer on the page"
    assert seen["users"] >= 2 and seen["models"] >= 2
    before, other_user, other_model = seen["before"], seen["otherUser"], seen["otherModel"]
    assert before["rows"] == 10 and before["bars"] > 0, before
    assert other_user["table"] != before["table"], "the table did not change with the user"
    assert other_user["chart"] != before["chart"], "the chart did not change with the user"
    assert other_user["note"] != before["note"]
    assert other_model["chart"] != other_user["chart"], "the chart ignores the model"
