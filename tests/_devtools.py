"""Headless Chromium driven over the DevTools protocol through a pipe (`--remote-debugging-pipe`):
real mouse clicks and key presses, values read back from the page, screenshots. Standard library
only: the browser reads commands (JSON, each ended by a NUL byte) on its file descriptor 3 and
writes replies and events on descriptor 4.

    with Browser(chromium_binary, flags, profile_dir) as browser:
        browser.open(page.as_uri())
        browser.evaluate("document.title")
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import subprocess
import threading
from pathlib import Path
from typing import ClassVar

TIMEOUT = 120  # seconds: a bound for a browser that hangs, never a wait for something to happen


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with one page, for the length of a `with` block."""

    def __init__(self, binary: str, flags: list[str], profile: Path):
        commands_r, self._commands = os.pipe()  # we write, the browser reads on fd 3
        self._replies, replies_w = os.pipe()  # the browser writes on fd 4, we read
        # copies above 9, which the shell puts at 3 and 4 in the browser (no clash with either);
        # a shell rather than a preexec_fn, which is unsafe in a process with threads (torch's)
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (commands_r, replies_w)]
        place = f"3<&{high[0]} 4>&{high[1]} {high[0]}<&- {high[1]}>&-"
        self.log = profile / "chromium.log"
        profile.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                ["bash", "-c", f'exec "$0" "$@" {place}', binary, *flags,
                 f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=high,
            )  # fmt: skip
        for fd in (commands_r, replies_w, *high):
            os.close(fd)
        self._messages: queue.Queue = queue.Queue()
        self._events: list[dict] = []
        self._next_id = 0
        self._session: str | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._replies, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for message in messages:
                self._messages.put(json.loads(message))
        self._messages.put(None)  # the browser closed its end

    def _next_message(self) -> dict:
        try:
            message = self._messages.get(timeout=TIMEOUT)
        except queue.Empty:
            raise BrowserError(f"no answer from the browser in {TIMEOUT} s") from None
        if message is None:
            raise BrowserError(f"the browser exited; its log:\n{self.log.read_text()[-3000:]}")
        return message

    def call(self, method: str, params: dict | None = None, page: bool = True) -> dict:
        """Send one command (to the page's session unless `page` is false); its result."""
        self._next_id += 1
        command = {"id": self._next_id, "method": method, "params": params or {}}
        if page and self._session:
            command["sessionId"] = self._session
        os.write(self._commands, json.dumps(command).encode() + b"\0")
        while True:
            message = self._next_message()
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._events.append(message)

    def wait_for_event(self, method: str) -> dict:
        """The first event `method` of the page not yet waited for (events arrive in order)."""
        while True:
            for event in self._events:
                if event.get("method") == method and event.get("sessionId") == self._session:
                    self._events.remove(event)
                    return event.get("params", {})
            self._events.append(self._next_message())

    def open(self, url: str, width: int = 1280, height: int = 1600) -> None:
        """Open `url` in a fresh page of `width` x `height` CSS pixels; returns once it loaded."""
        target = self.call("Target.createTarget", {"url": "about:blank"}, page=False)
        attached = self.call(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}, page=False
        )
        self._session = attached["sessionId"]
        self.call("Page.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        self.call("Page.navigate", {"url": url})
        self.wait_for_event("Page.loadEventFired")

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(details.get("exception", {}).get("description") or details)
        return result["result"].get("value")

    def click(self, x: float, y: float) -> None:
        """A left click at viewport position (x, y), the pointer moving there first."""
        self.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
        for kind in ("mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
            )

    KEY_CODES: ClassVar = {
        "Tab": 9, "ArrowLeft": 37, "ArrowUp": 38, "ArrowRight": 39, "ArrowDown": 40,
    }  # fmt: skip

    def press(self, key: str) -> None:
        """One press of `key` (a name of KEY_CODES) on the focused element."""
        code = self.KEY_CODES[key]
        for kind in ("rawKeyDown", "keyUp"):
            self.call(
                "Input.dispatchKeyEvent",
                {"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code},
            )

    def screenshot(self, png: Path) -> None:
        """The whole page, not only the viewport, as a PNG."""
        shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        png.write_bytes(base64.b64decode(shot["data"]))

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.call("Browser.close", page=False)
        except BrowserError:
            pass  # already gone
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        os.close(self._replies)
