"""test/browser/browserlib.py: headless Chromium for the browser suites, from Debian alone.

The browser is Debian's /usr/bin/chromium, driven through Debian's /usr/bin/chromedriver
(package chromium-driver, built from the same source package as chromium, so the two always
match through Debian's Chromium updates) by Debian's python3-selenium (W3C WebDriver, which
does not depend on the Chrome DevTools protocol version).  Run the suites with /usr/bin/python3.

API (every wait has a deadline; nothing here blocks without one):

  Checks:   Failure, check(cond, msg), Runner(): runner.test(name, fn) prints `ok NAME` or
            `FAILED NAME: why` (a check gets TEST_TIMEOUT_S through the waits it makes);
            runner.summary() prints `N passed, N failed` and returns the exit status;
            run_suite(runner, procs, workdir, body): a suite's main() around body().
  Helpers:  free_port(), wait_http(url, proc, timeout_s), Processes(workdir): .start(name,
            argv, env) -> Popen (log in workdir/NAME.log, pid appended to workdir/pids for the
            shell's leftover killer), .stop(proc, sig), .stop_all(); psql(args..., sql) in the
            test files themselves.
  Browser:  Browser(workdir, label, width=1200, height=760): one Chromium with its own
            profile (tabs of one Browser share storage, locks and BroadcastChannel, as the tabs
            of one browser do).  .open(url, label, init=None) -> Tab (a new window,
            instrumented, and `init` run, before the page's scripts); .quit() (also stops chromedriver).  Use as a context manager.
  Tab:      .frames / .sent: every WebSocket message the page received / sent (parsed JSON),
            .sockets: WebSockets the page opened, .fetches: fetch() URLs, .errors: uncaught
            errors and console.error calls ({at, text}); all read from the page on access.
            .js(script, *args) runs `script` as a function body (return ...),
            .js_async(script, *args) an async function body (its value is awaited),
            .wait(js_condition, timeout_s, *args, what=...) waits for a truthy value,
            .wait_selector(css, timeout_s), .count(css), .click(css), .screenshot(path),
            .close().

The instrumentation (INSTRUMENT below) wraps window.WebSocket, fetch and console.error from
Page.addScriptToEvaluateOnNewDocument, i.e. before any of the page's own code: what a tab
records is what its page saw, so a duplicate or a frame for the wrong user is caught even
where the page's rendering would hide it.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.remote_connection import RemoteConnection
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TEST_TIMEOUT_S = 60
# A WebDriver command that hangs (a wedged browser) fails after this instead of forever.
RemoteConnection.set_timeout(60)

CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox",  # the suites run as root
    "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
    # Each tab is its own window; headless windows count as hidden, and hidden pages get
    # their timers throttled to once a minute (the client's heartbeat and backoff run on them).
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]

INSTRUMENT = r"""
(() => {
  const rec = { frames: [], sent: [], sockets: 0, fetches: [], errors: [] };
  Object.defineProperty(window, '__lnTest', { value: rec });
  const parse = (d) => { try { return JSON.parse(d); } catch (e) { return { type: '(not json)', payload: String(d) }; } };
  const Native = window.WebSocket;
  class Recorded extends Native {
    constructor(...args) {
      super(...args);
      rec.sockets++;
      this.addEventListener('message', (ev) => rec.frames.push(parse(ev.data)));
    }
    send(data) { rec.sent.push(parse(data)); return super.send(data); }
  }
  window.WebSocket = Recorded;
  const nativeFetch = window.fetch;
  window.fetch = function (input, init) {
    rec.fetches.push(String(input && input.url ? input.url : input));
    return nativeFetch.call(this, input, init);
  };
  const nativeError = console.error;
  console.error = function (...args) {
    rec.errors.push({ at: Date.now(), text: args.map(String).join(' ') });
    return nativeError.apply(this, args);
  };
  window.addEventListener('error', (ev) => rec.errors.push({ at: Date.now(), text: String(ev.message) }));
  window.addEventListener('unhandledrejection', (ev) => rec.errors.push({ at: Date.now(), text: 'unhandled rejection: ' + String(ev.reason) }));
})();
"""


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


class Runner:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def test(self, name, fn):
        try:
            fn()
            self.passed += 1
            print(f"ok {name}", flush=True)
            return True
        except Failure as e:
            self.failed += 1
            print(f"FAILED {name}: {e}", flush=True)
        except Exception:  # a WebDriver or subprocess error is a failed check, not a crash
            self.failed += 1
            print(f"FAILED {name}: {traceback.format_exc()}", flush=True)
        return False

    def summary(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0


def run_suite(runner, procs, workdir, body):
    """A suite's main(): body() runs the checks; a Failure out of it (its set-up) counts as a
    failed check; a signal (Ctrl-C, run.sh's trap) stops the suite's processes and exits.
    Returns the exit status (runner.summary())."""
    os.makedirs(workdir, exist_ok=True)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda s, _f: (procs.stop_all(),
                                          print(f"interrupted ({s}); {runner.passed} passed, "
                                                f"{runner.failed + 1} failed", flush=True),
                                          os._exit(1)))
    try:
        body()
    except Failure as e:
        runner.failed += 1
        print(f"FAILED setup: {e}", flush=True)
    finally:
        procs.stop_all()
    return runner.summary()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, proc=None, timeout_s=15):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def clean_env(extra):
    """Only the settings given: no PG* or LIVENOTIFY_* from the caller reach the children."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LIVENOTIFY_"))}
    env.update(extra or {})
    return env


class Processes:
    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []

    def start(self, name, argv, env=None):
        log = open(os.path.join(self.workdir, f"{name}.log"), "ab")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env=clean_env(env))
        log.close()
        with open(os.path.join(self.workdir, "pids"), "a") as f:
            f.write(f"{proc.pid}\n")
        self.procs.append(proc)
        return proc

    @staticmethod
    def stop(proc, sig=signal.SIGTERM, timeout_s=15):
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def stop_all(self):
        for p in self.procs:
            self.stop(p)


class Tab:
    def __init__(self, browser, handle, label):
        self.browser = browser
        self.handle = handle
        self.label = label
        self.rec = {"frames": [], "sent": [], "fetches": [], "errors": []}
        self._sockets = 0

    def _focus(self):
        d = self.browser.driver
        if d.current_window_handle != self.handle:
            d.switch_to.window(self.handle)
        return d

    def _pull(self):
        got = self._focus().execute_script(
            "const r = window.__lnTest; if (!r) return null;"
            "return {frames: r.frames.splice(0), sent: r.sent.splice(0),"
            " fetches: r.fetches.splice(0), errors: r.errors.splice(0), sockets: r.sockets};")
        if got:
            for k in self.rec:
                self.rec[k].extend(got[k])
            self._sockets = got["sockets"]

    @property
    def frames(self):
        self._pull()
        return self.rec["frames"]

    @property
    def sent(self):
        self._pull()
        return self.rec["sent"]

    @property
    def fetches(self):
        self._pull()
        return self.rec["fetches"]

    @property
    def errors(self):
        self._pull()
        return self.rec["errors"]

    @property
    def sockets(self):
        self._pull()
        return self._sockets

    def js(self, script, *args):
        return self._focus().execute_script(script, *args)

    def js_async(self, body, *args):
        """Runs `body` as an async function of `args` (a list named args) and returns its value."""
        script = ("const done = arguments[arguments.length - 1];"
                  "const args = Array.prototype.slice.call(arguments, 0, -1);"
                  f"(async (args) => {{ {body} }})(args).then(done,"
                  " (e) => done({__error: String(e && e.stack || e)}));")
        got = self._focus().execute_async_script(script, *args)
        if isinstance(got, dict) and "__error" in got:
            raise Failure(f"{self.label}: script failed: {got['__error']}")
        return got

    def wait(self, condition, timeout_s, *args, what=None):
        d = self._focus()
        try:
            return WebDriverWait(d, timeout_s, poll_frequency=0.02).until(
                lambda drv: drv.execute_script(condition, *args))
        except TimeoutException:
            raise Failure(f"{self.label}: {what or condition} not true within {timeout_s} s")

    def wait_selector(self, css, timeout_s, what=None):
        return self.wait("return document.querySelector(arguments[0]) !== null", timeout_s, css,
                         what=what or f"{css!r} on the page")

    def count(self, css):
        return self.js("return document.querySelectorAll(arguments[0]).length", css)

    def click(self, css):
        self.js("document.querySelector(arguments[0]).click()", css)

    def screenshot(self, path):
        self._focus().save_screenshot(path)

    def close(self):
        d = self._focus()
        d.close()
        self.browser.tabs.remove(self)
        if self.browser.tabs:
            d.switch_to.window(self.browser.tabs[0].handle)


class Browser:
    def __init__(self, workdir, label, width=1200, height=760):
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in CHROMIUM_ARGS + [f"--window-size={width},{height}"]:
            opts.add_argument(a)
        service = Service(executable_path=CHROMEDRIVER,
                          log_path=os.path.join(workdir, f"chromedriver-{label}.log"))
        self.driver = webdriver.Chrome(service=service, options=opts)
        self.driver.set_page_load_timeout(20)
        self.driver.set_script_timeout(30)
        self.tabs = []
        self._blank = self.driver.current_window_handle

    def open(self, url, label, init=None):
        d = self.driver
        if self._blank is not None:
            handle, self._blank = self._blank, None  # the first window Chromium opened
        else:
            d.switch_to.new_window("window")
            handle = d.current_window_handle
        d.switch_to.window(handle)
        d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": INSTRUMENT})
        if init:
            d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": init})
        tab = Tab(self, handle, label)
        self.tabs.append(tab)
        d.get(url)
        return tab

    def quit(self):
        try:
            self.driver.quit()
        except WebDriverException as e:
            print(f"note: driver quit: {e}", file=sys.stderr)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.quit()


def to_json(v):
    return json.dumps(v, separators=(",", ":"))
