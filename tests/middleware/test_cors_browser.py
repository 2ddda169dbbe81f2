"""cors in a real browser: headless Chromium on one origin fetching from others.

The page (one uvicorn server) runs fetches against three API servers on other
ports (other origins), writes what each fetch gave into the DOM, and
Chromium's ``--dump-dom`` hands the DOM back.  This proves that the headers
work for a browser's CORS checks, not just for our reading of the Fetch
standard.  Skipped only when ``chromium`` is not installed.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from asgikit.middleware.cors import cors
from asgikit.responses import HTMLResponse, PlainTextResponse
from asgikit.types import Receive, Scope, Send
from tests.servers.live import serve

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

PAGE_SCRIPT = """
const out = {};
async function attempt(name, url, init) {
  try {
    const r = await fetch(url, init);
    out[name] = r.status + ":" + (await r.text()) + ":" + (r.headers.get("x-total") || "-");
  } catch (e) {
    out[name] = "blocked";
  }
}
async function run() {
  document.cookie = "sid=abc; path=/";
  await attempt("plain", API + "/data", {});
  await attempt("credentials", API + "/data", {credentials: "include"});
  await attempt("preflight", API + "/data", {method: "PUT", headers: {"X-Token": "1"}});
  await attempt("bad_header", API + "/data", {method: "PUT", headers: {"X-Other": "1"}});
  await attempt("bad_method", API + "/data", {method: "DELETE"});
  await attempt("star", STAR + "/data", {});
  await attempt("star_credentials", STAR + "/data", {credentials: "include"});
  await attempt("regex_echo_credentials", REGEX_ECHO + "/data", {credentials: "include"});
  await attempt("other_origin", OTHER + "/data", {});
  const lines = Object.keys(out).sort().map((k) => k + "=" + out[k]);
  document.getElementById("out").textContent = "DONE|" + lines.join("|") + "|END";
}
run();
"""


async def api(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        return
    cookie = next((v for k, v in scope["headers"] if k == b"cookie"), b"none")
    text = f"{scope['method']} cookie={cookie.decode()}"
    await PlainTextResponse(text, headers={"x-total": "3"})(scope, receive, send)


@contextlib.contextmanager
def servers() -> Iterator[str]:
    html: list[str] = []

    async def page(scope: Scope, receive: Receive, send: Send) -> None:
        await HTMLResponse(html[0])(scope, receive, send)

    with contextlib.ExitStack() as stack:
        page_origin = stack.enter_context(serve(page, lifespan="off"))
        apis = {
            "API": cors(
                api,
                allow_origins=[page_origin],
                allow_credentials=True,
                allow_methods=["GET", "PUT"],
                allow_headers=["X-Token"],
                expose_headers=["X-Total"],
            ),
            "STAR": cors(api, allow_origins=["*"]),
            "REGEX_ECHO": cors(
                api, allow_origin_regex=r"http://127\.0\.0\.1:\d+", allow_credentials=True
            ),
            "OTHER": cors(api, allow_origins=["https://somewhere.example"]),
        }
        urls = {
            name: stack.enter_context(serve(app, lifespan="off")) for name, app in apis.items()
        }
        constants = "".join(f"const {name} = {url!r};\n" for name, url in urls.items())
        html.append(
            '<!doctype html><html><body><pre id="out">PENDING</pre>'
            f"<script>{constants}{PAGE_SCRIPT}</script></body></html>"
        )
        yield page_origin


def run_chromium(url: str) -> str:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            timeout=90,
            text=True,
        )
    return result.stdout


def test_real_browser_honours_cors_answers() -> None:
    with servers() as page_origin:
        dom = run_chromium(page_origin + "/")
    assert "DONE|" in dom, dom
    results = dict(
        item.split("=", 1) for item in dom.split("DONE|", 1)[1].split("|END")[0].split("|")
    )
    # Allowed origin: readable, the exposed header visible, no cookie sent.
    assert results["plain"] == "200:GET cookie=none:3"
    # Credentials: the cookie reaches the API and the answer is readable.
    assert results["credentials"] == "200:GET cookie=sid=abc:3"
    # A non-simple request passes its preflight; the PUT itself then runs.
    assert results["preflight"] == "200:PUT cookie=none:3"
    # A header or method the preflight refuses: the browser never sends the request.
    assert results["bad_header"] == "blocked"
    assert results["bad_method"] == "blocked"
    # "*" works without credentials (no exposed header configured there) ...
    assert results["star"] == "200:GET cookie=none:-"
    # ... and a browser refuses "*" for a credentialed request (Fetch §3.2.5),
    assert results["star_credentials"] == "blocked"
    # which is why allow_credentials echoes a matched origin instead.
    assert results["regex_echo_credentials"] == "200:GET cookie=sid=abc:-"
    assert results["other_origin"] == "blocked"
