"""A headless Chromium driven over the DevTools protocol (CDP), for tests of the admin dashboard.

Chromium (Debian's `chromium`, installed by scripts/install-deps.sh) runs with a throw-away profile
and `--remote-debugging-port=0`; the test talks to it over a websocket (python3-websockets) on
loopback. Everything is bounded: the start, every command and every wait take a timeout,
`Browser.close()` kills the whole process group whatever state it is in, and the browser gets
SIGKILL if the test process dies first.
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

import websockets

START_TIMEOUT = 30.0
COMMAND_TIMEOUT = 15.0


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the test process dies, even if it is killed (a
    ctest timeout) before its fixture can stop the browser. Chromium's own children exit when
    it does."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def chromium_binary() -> Optional[str]:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Page:
    """One tab, attached with a flat session. Records console errors, uncaught exceptions, log
    entries and failed or >= 400 network requests as they arrive."""

    def __init__(self, browser: "Browser", session_id: str, target_id: str):
        self.browser = browser
        self.session_id = session_id
        self.target_id = target_id
        self.console: list[dict] = []     # Runtime.consoleAPICalled params
        self.exceptions: list[dict] = []  # Runtime.exceptionThrown params
        self.log: list[dict] = []         # Log.entryAdded entries
        self.failed_requests: list[str] = []
        self.requests: list[str] = []     # every URL requested

    async def send(self, method: str, params: Optional[dict] = None,
                   timeout: float = COMMAND_TIMEOUT) -> dict:
        return await self.browser.send(method, params, session_id=self.session_id, timeout=timeout)

    def on_event(self, method: str, params: dict) -> None:
        if method == "Runtime.consoleAPICalled":
            self.console.append(params)
        elif method == "Runtime.exceptionThrown":
            self.exceptions.append(params)
        elif method == "Log.entryAdded":
            self.log.append(params["entry"])
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Network.loadingFailed":
            self.failed_requests.append(f"{params.get('errorText')} "
                                        f"(blocked: {params.get('blockedReason')})")
        elif method == "Network.responseReceived":
            status = params["response"]["status"]
            if status >= 400:
                self.failed_requests.append(f"{status} {params['response']['url']}")

    def problems(self) -> list[str]:
        """Console errors and warnings, exceptions, error log entries, failed requests."""
        out = []
        for c in self.console:
            if c["type"] in ("error", "warning", "assert"):
                args = " ".join(str(a.get("value", a.get("description", ""))) for a in c["args"])
                out.append(f"console.{c['type']}: {args}")
        for e in self.exceptions:
            d = e["exceptionDetails"]
            out.append(f"exception: {d.get('text')} {d.get('exception', {}).get('description', '')}")
        for entry in self.log:
            if entry["level"] in ("error", "warning"):
                out.append(f"log {entry['level']} ({entry['source']}): {entry['text']} {entry.get('url', '')}")
        out += [f"request failed: {r}" for r in self.failed_requests]
        return out

    async def enable(self) -> None:
        for domain in ("Runtime", "Log", "Network", "Page"):
            await self.send(f"{domain}.enable")

    async def set_viewport(self, width: int, height: int, scale: float = 1,
                           mobile: bool = False) -> None:
        await self.send("Emulation.setDeviceMetricsOverride",
                        {"width": width, "height": height, "deviceScaleFactor": scale,
                         "mobile": mobile})

    async def navigate(self, url: str, timeout: float = COMMAND_TIMEOUT) -> None:
        loaded = self.browser.expect_event("Page.loadEventFired", self.session_id)
        r = await self.send("Page.navigate", {"url": url})
        if r.get("errorText"):
            raise AssertionError(f"navigation to {url} failed: {r['errorText']}")
        await asyncio.wait_for(loaded, timeout)

    async def evaluate(self, expression: str) -> Any:
        r = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                 "awaitPromise": True})
        if "exceptionDetails" in r:
            raise AssertionError(f"{expression!r} threw: {r['exceptionDetails']}")
        return r["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 15.0,
                       what: Optional[str] = None) -> Any:
        """Polls `expression` until it is truthy; returns its value. Raises after `timeout`."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = await self.evaluate(expression)
            if last:
                return last
            await asyncio.sleep(0.1)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what or expression} "
                           f"(last value {last!r}); page problems: {self.problems()}")

    async def screenshot(self, path: Path, full_page: bool = False) -> bytes:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
        r = await self.send("Page.captureScreenshot", params, timeout=30)
        data = base64.b64decode(r["data"])
        path.write_bytes(data)
        return data


class Browser:
    """Headless Chromium with a temporary profile. Use as `async with Browser() as b:`."""

    def __init__(self, binary: str, log_dir: Path):
        self.binary = binary
        self.log_dir = Path(log_dir)
        self.proc: Optional[subprocess.Popen] = None
        self.profile = Path(tempfile.mkdtemp(prefix="sluice-chromium-"))
        self.ws = None
        self.next_id = 0
        self.pending: dict[int, asyncio.Future] = {}
        self.waiters: list[tuple[str, Optional[str], asyncio.Future]] = []
        self.pages: dict[str, Page] = {}
        self.reader: Optional[asyncio.Task] = None
        self.stderr_path = self.log_dir / "chromium.stderr"

    async def __aenter__(self) -> "Browser":
        try:
            await self.start()
        except BaseException:
            self.close()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        args = [self.binary, "--headless=new", "--no-sandbox", "--disable-gpu",
                "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking", "--disable-sync",
                "--disable-component-update", "--disable-default-apps", "--disable-breakpad",
                "--disable-dev-shm-usage", "--metrics-recording-only", "--mute-audio",
                "--password-store=basic", "--use-mock-keychain", "about:blank"]
        self.stderr = open(self.stderr_path, "wb")
        # A session of its own, so close() can kill the renderer and GPU processes too.
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.stderr,
                                     stderr=self.stderr, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}:\n"
                                   f"{self.stderr_path.read_text(errors='replace')[-3000:]}")
            if port_file.exists():
                lines = port_file.read_text().split("\n")
                if len(lines) >= 2 and lines[1]:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"chromium did not open its DevTools port in {START_TIMEOUT}s:"
                                   f"\n{self.stderr_path.read_text(errors='replace')[-3000:]}")
            await asyncio.sleep(0.05)
        url = f"ws://127.0.0.1:{int(lines[0])}{lines[1]}"
        self.ws = await asyncio.wait_for(
            websockets.connect(url, max_size=64 * 1024 * 1024, ping_interval=None), 10)
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                if "id" in msg:
                    fut = self.pending.pop(msg["id"], None)
                    if fut and not fut.done():
                        if "error" in msg:
                            fut.set_exception(RuntimeError(f"CDP error: {msg['error']}"))
                        else:
                            fut.set_result(msg.get("result", {}))
                    continue
                method, params, session = msg.get("method"), msg.get("params", {}), msg.get("sessionId")
                page = self.pages.get(session) if session else None
                if page:
                    page.on_event(method, params)
                for waiter in list(self.waiters):
                    name, want_session, fut = waiter
                    if name == method and (want_session is None or want_session == session):
                        self.waiters.remove(waiter)
                        if not fut.done():
                            fut.set_result(params)
        except websockets.ConnectionClosed:
            pass
        finally:
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("DevTools connection closed"))

    def expect_event(self, method: str, session_id: Optional[str] = None) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.waiters.append((method, session_id, fut))
        return fut

    async def send(self, method: str, params: Optional[dict] = None, *,
                   session_id: Optional[str] = None, timeout: float = COMMAND_TIMEOUT) -> dict:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session_id:
            msg["sessionId"] = session_id
        fut = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = fut
        await self.ws.send(json.dumps(msg))
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self.pending.pop(msg["id"], None)

    async def new_page(self) -> Page:
        target = (await self.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
        session = (await self.send("Target.attachToTarget",
                                   {"targetId": target, "flatten": True}))["sessionId"]
        page = Page(self, session, target)
        self.pages[session] = page
        await page.enable()
        return page

    async def aclose(self) -> None:
        try:
            if self.ws is not None:
                await asyncio.wait_for(self.ws.close(), 3)
        except Exception:
            pass
        if self.reader is not None:
            self.reader.cancel()
        self.close()

    def close(self) -> None:
        """Kills chromium and its children, and removes the profile. Safe to call twice."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if getattr(self, "stderr", None):
            self.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR; raises if `data` is not a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise AssertionError("not a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def run(coro, timeout: float) -> Any:
    """Runs `coro` to completion, bounded by `timeout` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))
