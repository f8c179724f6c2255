"""Headless Chromium driven as a reader drives it: open a page, wait for what it shows, click what is on screen.

``--dump-dom`` shows a page as its scripts left it after a virtual-time budget, which is enough to read a page
but not to open what the page folds away (an Allure step, an attachment). This client speaks the DevTools
protocol over ``--remote-debugging-pipe`` (fd 3 in, fd 4 out, one JSON message per NUL-terminated line), so it
needs nothing beyond the standard library. Every wait is for a state of the page, with a deadline; a click goes
to the topmost element at the element's place on screen, so an element hidden or covered cannot be "clicked".
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.records.pdf import CHROMIUM_FLAGS, find_chromium

__all__ = ["Browser", "BrowserError", "browser"]

_WAIT_S = 90.0
"""How long a page may take to show a state: a 6 MB single-file report parses slowly on a busy 2-core machine."""
_ROUND_MS = 2000
"""One in-page wait's length; the page may be replaced meanwhile (navigation), so waits are repeated rounds."""

_WAITER = """
(() => new Promise((resolve) => {
  const probe = () => { try { const v = (%s)(); return v instanceof Node ? true : v; } catch (e) { return null; } };
  const done = (value) => { observer.disconnect(); clearTimeout(timer); resolve(value); };
  const observer = new MutationObserver(() => { const v = probe(); if (v) done(v); });
  const timer = setTimeout(() => done(null), %d);
  observer.observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
  const first = probe();
  if (first) done(first);
}))()
"""
"""Resolves with the probe's first truthy value, checked on every change of the document, or null after a round."""


class BrowserError(AssertionError):
    """The page did not reach a state in time, or Chromium did not answer: says which and what was awaited."""


class Browser:
    """One headless Chromium with one page, spoken to over the DevTools pipe."""

    def __init__(self, process: subprocess.Popen[bytes], to_browser: int, from_browser: int) -> None:
        self._process, self._out, self._in = process, to_browser, from_browser
        self._buffer, self._next_id, self._session = b"", 0, ""
        pages = [t for t in self._call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
        target = pages[0]["targetId"] if pages else self._call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self._call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def _call(self, method: str, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self._session:
            message["sessionId"] = self._session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            for line in self._lines(deadline, method):
                answer = json.loads(line)
                if answer.get("id") == self._next_id:
                    if "error" in answer:
                        raise BrowserError(f"Chromium refused {method}: {answer['error'].get('message')}")
                    result: dict[str, Any] = answer["result"]
                    return result

    def _lines(self, deadline: float, method: str) -> Iterator[bytes]:
        """The messages Chromium wrote, waiting at most until ``deadline`` for the next one."""
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise BrowserError(f"Chromium did not answer {method} in time")
            chunk = os.read(self._in, 1 << 16)
            if not chunk:
                raise BrowserError(f"Chromium exited while answering {method} (code {self._process.poll()})")
            self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\0")
        yield from lines

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        answer = self._call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in answer:
            raise BrowserError(f"the page threw: {answer['exceptionDetails'].get('text')} in {expression[:200]}")
        return answer["result"].get("value")

    def open(self, url: str) -> None:
        """Navigate to ``url`` (a hash change of the open page is a navigation the page's router follows)."""
        self._call("Page.navigate", url=url)

    def wait(self, probe: str, what: str, timeout: float = _WAIT_S) -> Any:
        """Wait until the JavaScript function ``probe`` returns a truthy value; returns it.

        Raises:
            BrowserError: not within ``timeout`` seconds; the message names ``what`` was awaited.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(_WAITER % (probe, _ROUND_MS))
            except BrowserError as exc:  # the document was replaced mid-round: wait on the new one
                if "context" not in str(exc).lower():
                    raise
                value = None
            if value:
                return value
        raise BrowserError(f"after {timeout:g} s the page still does not show {what}")

    def click(self, element: str, what: str, timeout: float = _WAIT_S) -> None:
        """Click the middle of ``element`` (a JS expression) once it is shown and nothing covers it.

        The click goes to the topmost element at that point, as a reader's would: an element hidden, of no size
        or covered by another cannot be clicked. It is dispatched in the page: mouse input sent over the DevTools
        protocol to a headless page was, in some runs, never delivered (no ``mousemove`` in 90 s while the page
        drew frames), which would make the test fail for Chromium's reasons, not the report's.
        """
        probe = f"""() => {{
            const el = {element};
            if (!el) return null;
            el.scrollIntoView({{block: "center"}});
            const r = el.getBoundingClientRect();
            if (r.width === 0 || r.height === 0) return null;
            const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
            if (!top || !(el === top || el.contains(top))) return null;
            top.click();
            return true;
        }}"""
        self.wait(probe, f"{what}, visible and not covered", timeout)

    def text(self) -> str:
        """The text the page shows (``innerText``: what a reader sees, folded parts excluded)."""
        return str(self.evaluate("document.body.innerText"))

    def close(self) -> None:
        try:
            self._session = ""
            self._call("Browser.close", timeout=10)
        except BrowserError:
            pass  # it went away before answering: what close wanted
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=30)
        finally:
            os.close(self._out)
            os.close(self._in)


@contextmanager
def browser(url: str, profile: Path, *, width: int = 1400, height: int = 1000) -> Iterator[Browser]:
    """A headless Chromium with a throwaway ``profile`` and a page of ``width`` x ``height``; closed afterwards."""
    commands, into_browser = os.pipe()  # Chromium reads fd 3
    out_of_browser, answers = os.pipe()  # and writes fd 4

    def pipes_at_3_and_4() -> None:  # via fds above 4 first: a pipe may itself be fd 3 or 4
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (commands, answers)]
        for fd, high_fd in zip((3, 4), high, strict=True):
            os.dup2(high_fd, fd)  # inheritable, unlike the pipe itself

    argv = [str(find_chromium()), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
            f"--window-size={width},{height}", url]  # fmt: skip
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               preexec_fn=pipes_at_3_and_4, close_fds=False, start_new_session=True)  # fmt: skip
    os.close(commands)
    os.close(answers)
    try:
        session = Browser(process, into_browser, out_of_browser)
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        os.close(into_browser)
        os.close(out_of_browser)
        raise
    try:
        yield session
    finally:
        session.close()
