"""The teaching notebooks as a student meets them: JupyterLab 4 in a real (headless) Chromium.

nbval runs the cells in a kernel; it never renders a widget or a plotly figure, never moves a
slider and never sees the browser console. This test does: for every notebook it opens a copy in
JupyterLab, runs all cells, waits for the kernel to go idle and fails on an error output, a widget
that does not display, a plotly figure that does not draw, or a browser console error; then it moves
every slider, picks another entry in every dropdown / select, presses every button (ipywidgets and
plotly) and fails when the visible output did not change. Screenshots go to `$VSSLKIT_ARTIFACTS/browser`
(or a temporary folder); the path is printed.

The browser is Debian's `chromium` driven by the `playwright` package (no browser download is
possible on the kit's machines: `.ci/run` installs chromium with apt-get). Without them the test
skips, unless `VSSLKIT_REQUIRE_BROWSER=1` (CI) makes that a failure.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
CHROMIUM = os.environ.get("VSSLKIT_CHROMIUM", "/usr/bin/chromium")
# The flags that work on the kit's machines (root, no GPU, small /dev/shm, no network).
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
RUN_TIMEOUT_S = float(os.environ.get("VSSLKIT_BROWSER_TIMEOUT", "1800"))  # per notebook; 04 took 812 s at load 13
CHANGE_TIMEOUT_S = 30.0  # a widget callback (kernel round trip, a redraw) under load
# Console errors that say nothing about the notebooks, each with the reason it is harmless.
BENIGN_CONSOLE = {
    # JupyterLab asks the server for optional extensions' settings / translations that are not installed.
    "Failed to load resource: the server responded with a status of 404": "optional JupyterLab resources absent",
    # JupyterLab 4 checks pypi / its news feed; the machine has no network (and the check is off anyway).
    "net::ERR_": "no network on the test machine",
}
pytestmark = [pytest.mark.browser]


def _require() -> None:
    """Skip (or fail in CI) when the browser or playwright is missing."""
    problems = []
    if not Path(CHROMIUM).is_file():
        problems.append(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("the playwright package is not installed (pip install playwright; no browser download needed)")
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        problems.append("jupyterlab is not installed")
    if problems:
        reason = "browser test needs " + "; ".join(problems)
        if os.environ.get("VSSLKIT_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " (VSSLKIT_REQUIRE_BROWSER=1)")
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    process: subprocess.Popen
    log: Path

    def api(self, method: str, path: str) -> object:
        req = urllib.request.Request(f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
        return json.loads(body) if body else None

    def stop_kernels(self) -> None:
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 (free port, random token, private dirs, own process group), killed at the end."""
    _require()
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    root.mkdir()
    dirs = {name: base / name for name in ("config", "runtime", "workspaces", "settings", "data")}
    for d in dirs.values():
        d.mkdir()
    # Render every cell (no virtual scrolling), so every output is in the page to be checked.
    tracker = dirs["settings"] / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    # No "get Jupyter news?" toast over the screenshots (the machine has no network anyway).
    notification = dirs["settings"] / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    token, port = secrets.token_hex(24), _free_port()
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(dirs["config"]), JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
               JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]), JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
               JUPYTER_DATA_DIR=str(dirs["data"]), VSSLKIT_FAST=os.environ.get("VSSLKIT_FAST", "1"),
               PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = base / "jupyterlab.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True)
    server = Lab(f"http://127.0.0.1:{port}", token, root, process, log)

    def stop() -> None:
        """SIGTERM to the server's process group (it shuts its kernels down), SIGKILL if it lingers."""
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)
        except ProcessLookupError:
            pass

    # pytest killed by `timeout` (SIGTERM) skips fixture finalizers: stop the server from the signal too.
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame) -> None:
        stop()
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    atexit.register(stop)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                server.api("GET", "/api/status")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield server
    finally:
        stop()
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        atexit.unregister(stop)


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    """Where the screenshots go: `$VSSLKIT_ARTIFACTS/browser` (CI keeps it) or a fresh temporary folder."""
    folder = Path(os.environ["VSSLKIT_ARTIFACTS"]) / "browser" if os.environ.get("VSSLKIT_ARTIFACTS") \
        else Path(tempfile.mkdtemp(prefix="vsslkit-browser-"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --- what a run of one notebook looks like in the page ------------------------------------------------

STATE_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = panel.content.model.cells;
  const out = {code: 0, running: 0, unrun: 0, errors: [], plotly: 0, widgets: 0,
               status: panel.sessionContext.session?.kernel?.status ?? 'none'};
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    out.code++;
    if (c.executionState === 'running') out.running++;
    if (c.executionCount === null) out.unrun++;
    for (let j = 0; j < c.outputs.length; j++) {
      const o = c.outputs.get(j).toJSON();
      if (o.output_type === 'error') out.errors.push({cell: i, ename: o.ename, evalue: o.evalue});
      const data = o.data || {};
      if ('application/vnd.plotly.v1+json' in data) out.plotly++;
      if ('application/vnd.jupyter.widget-view+json' in data) out.widgets++;
    }
  }
  return out;
}"""

# Each interactive control in the notebook's outputs, in page order.
CONTROLS_JS = """() => {
  const root = window.jupyterapp.shell.currentWidget.content.node;
  const found = [];
  const kinds = [['slider', '.widget-slider'], ['dropdown', '.widget-dropdown'], ['select', '.widget-select'],
                 ['button', 'button.jupyter-button'], ['plotly-slider', '.js-plotly-plot .slider-container'],
                 ['plotly-button', '.js-plotly-plot .updatemenu-button']];
  for (const [kind, sel] of kinds) {
    root.querySelectorAll(sel).forEach(el => {
      if (el.dataset.vsslkitControl === undefined) {
        window.vsslkitControls = (window.vsslkitControls || 0) + 1;
        el.dataset.vsslkitControl = 'c' + window.vsslkitControls;
      }
      found.push({kind, id: el.dataset.vsslkitControl});
    });
  }
  return found;
}"""

# What the student sees around a control: its output area, without the control itself (a slider's
# own readout always changes) and with images reduced to their source.
VIEW_JS = """(id) => {
  const el = document.querySelector(`[data-vsslkit-control="${id}"]`);
  if (!el) return null;
  const area = el.closest('.jp-OutputArea') || el.closest('.jp-Cell');
  const copy = area.cloneNode(true);
  const self = copy.querySelector(`[data-vsslkit-control="${id}"]`);
  if (self && !self.classList.contains('js-plotly-plot')) {
    // plotly controls sit inside the figure they drive: drop only the control's own group
    const control = self.closest('.slider-container, .updatemenu-container') || self;
    control.remove();
  }
  copy.querySelectorAll('.slider-container, .updatemenu-container').forEach(e => e.remove());
  copy.querySelectorAll('.hoverlayer').forEach(e => e.remove());
  const text = copy.innerText;
  const images = Array.from(copy.querySelectorAll('img, image')).map(i => i.getAttribute('src') || i.getAttribute('href') || '');
  const hidden = Array.from(area.querySelectorAll('.widget-slider, .widget-dropdown'))
                   .map(e => e.offsetParent === null ? 'h' : 'v').join('');
  return {html: copy.innerHTML.replace(/ id="[^"]*"/g, '').replace(/blob:[^"']*/g, 'blob'),
          text, images, hidden, visible: el.offsetParent !== null};
}"""


@dataclass
class BrowserRun:
    notebook: str
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    interactions: list[str] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)


def _console_listener(problems: list[str]):
    def on_console(msg) -> None:
        if msg.type != "error":
            return
        text = msg.text
        if any(pattern in text for pattern in BENIGN_CONSOLE):
            return
        problems.append(f"browser console error: {text[:400]}")

    return on_console


def open_notebook(page, lab: Lab, name: str) -> None:
    """Open `name` from the server root and wait until its kernel is connected and idle."""
    # A fresh workspace per notebook: JupyterLab would otherwise reopen the previous notebook's tab.
    page.goto(f"{lab.url}/lab/workspaces/w{secrets.token_hex(6)}/tree/{name}?token={lab.token}",
              wait_until="domcontentloaded")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.sessionContext", timeout=120_000)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        dialog = page.locator(".jp-Dialog .jp-mod-accept")
        if dialog.count():  # "Select Kernel" for a never-run notebook: accept the proposed kernel
            dialog.first.click()
        status = page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel?.status")
        if status == "idle":
            return
        time.sleep(0.5)
    raise AssertionError(f"{name}: the kernel did not start within 180 s")


def run_all(page, name: str, run: BrowserRun) -> None:
    """Run all cells and wait until nothing runs and the kernel is idle; note errors and unrun cells."""
    start = time.monotonic()
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    deadline, started, quiet = start + RUN_TIMEOUT_S, False, 0
    state = page.evaluate(STATE_JS)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        state = page.evaluate(STATE_JS)
        started = started or state["running"] > 0 or state["unrun"] < state["code"]
        quiet = quiet + 1 if started and state["running"] == 0 and state["status"] == "idle" else 0
        if quiet >= 3 or state["errors"]:
            break
    else:
        run.problems.append(f"{name}: still running after {RUN_TIMEOUT_S:.0f} s ({state['running']} cells running)")
    run.seconds = time.monotonic() - start
    for e in state["errors"]:
        run.problems.append(f"{name}: cell {e['cell']} raised {e['ename']}: {e['evalue'][:300]}")
    if not state["errors"] and state["unrun"]:
        run.problems.append(f"{name}: {state['unrun']} code cells never ran")


def check_rendered(page, name: str, run: BrowserRun) -> None:
    """Every widget displayed, every plotly figure drawn (waits up to 60 s for the front end)."""
    state = page.evaluate(STATE_JS)
    deadline = time.monotonic() + 60
    while True:
        text = page.evaluate("() => window.jupyterapp.shell.currentWidget.content.node.innerText")
        pending = text.count("Loading widget...")
        drawn = page.evaluate("() => Array.from(window.jupyterapp.shell.currentWidget.content.node"
                              ".querySelectorAll('.js-plotly-plot'))"
                              ".map(p => p.querySelector('svg.main-svg') !== null)")
        if (not pending and len(drawn) >= state["plotly"] and all(drawn)) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    if "Error displaying widget" in text:
        run.problems.append(f"{name}: 'Error displaying widget' shown ({text.count('Error displaying widget')}x)")
    if pending:
        run.problems.append(f"{name}: {pending} widget(s) still 'Loading widget...' after the kernel went idle")
    if len(drawn) < state["plotly"]:
        run.problems.append(f"{name}: {state['plotly']} plotly outputs but only {len(drawn)} figures in the page")
    if not all(drawn):
        run.problems.append(f"{name}: {drawn.count(False)} plotly figure(s) without a drawing (no svg)")


def _changed(page, control: str, before: dict, timeout: float = CHANGE_TIMEOUT_S) -> dict | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        after = page.evaluate(VIEW_JS, control)
        if after is not None and (after["html"] != before["html"] or after["images"] != before["images"]):
            time.sleep(0.5)  # let a redraw in progress finish before the next control
            return after
    return None


def _act(page, kind: str, control: str) -> str:
    """Operate one control like a student and say what was done."""
    el = page.locator(f'[data-vsslkit-control="{control}"]')
    el.scroll_into_view_if_needed()
    if kind == "slider":
        # To the far end of its range (Home/End): the extremes are where invalid values used to hide.
        handle = el.locator(".noUi-handle").first
        readout = el.locator(".widget-readout").first
        old = readout.inner_text()
        low, high, now = (float(handle.get_attribute(a)) for a in ("aria-valuemin", "aria-valuemax", "aria-valuenow"))
        handle.focus()
        page.keyboard.press("End" if high - now >= now - low else "Home")
        time.sleep(0.3)
        return f"slider '{el.locator('.widget-label').first.inner_text()}' {old} -> {readout.inner_text()}"
    if kind in ("dropdown", "select"):
        box = el.locator("select").first
        options = box.locator("option").all_inner_texts()
        current = box.evaluate("s => s.selectedIndex")
        if len(options) < 2:
            return f"{kind} with {len(options)} option(s): nothing to choose"
        target = (current + 1) % len(options)
        box.select_option(index=target)
        return f"{kind} -> {options[target]!r}"
    if kind == "button":
        text = el.inner_text()
        el.click()
        return f"button {text!r}"
    if kind == "plotly-slider":
        rail = el.locator(".slider-rail-touch-rect").first
        box = rail.bounding_box()
        rail.click(position={"x": box["width"] * 0.7, "y": box["height"] / 2})
        return "plotly frame slider -> 70 %"
    if kind == "plotly-button":
        el.click()
        return "plotly button"
    raise ValueError(kind)


def interact(page, name: str, run: BrowserRun, shots: Path) -> None:
    """Operate every visible control once; the output around it must change within 30 s."""
    controls = page.evaluate(CONTROLS_JS)
    order = {"slider": 0, "plotly-slider": 1, "plotly-button": 2, "button": 3, "select": 4, "dropdown": 5}
    queue = sorted(controls, key=lambda c: order[c["kind"]])
    hidden: list[dict] = []
    for n, c in enumerate(queue):
        before = page.evaluate(VIEW_JS, c["id"])
        if before is None or not before["visible"]:
            if c not in hidden:  # hidden by the app for the current choice: try again after the others
                hidden.append(c)
                queue.append(c)
            else:
                run.interactions.append(f"{c['kind']} (hidden by the app for every choice tried, skipped)")
            continue
        action = _act(page, c["kind"], c["id"])
        if "nothing to choose" in action:
            run.interactions.append(action)
            continue
        after = _changed(page, c["id"], before)
        if after is None:
            run.problems.append(f"{name}: {action}: the output did not change within {CHANGE_TIMEOUT_S:.0f} s")
        run.interactions.append(action + ("" if after else "  [NO VISIBLE CHANGE]"))
        area = page.locator(f'[data-vsslkit-control="{c["id"]}"]').locator(
            "xpath=ancestor::div[contains(@class, 'jp-OutputArea')][1]")
        if area.count():
            path = shots / f"interaction{n:02d}_{c['kind']}.png"
            area.first.screenshot(path=str(path))
            run.screenshots.append(path)


def screenshot_cells(page, shots: Path, run: BrowserRun) -> None:
    panel = page.evaluate("() => window.jupyterapp.shell.currentWidget.id")
    cells = page.locator(f"[id='{panel}'] .jp-Cell")
    for i in range(cells.count()):
        cell = cells.nth(i)
        if not cell.locator(".jp-OutputArea-output").count():
            continue
        path = shots / f"cell{i:02d}.png"
        cell.scroll_into_view_if_needed()
        cell.screenshot(path=str(path))
        run.screenshots.append(path)


def check_notebook(lab: Lab, browser, source: Path, artifacts: Path, *, interact_with_widgets: bool = True) -> BrowserRun:
    """Copy `source` into the server root (autosave never touches the repository), run and check it."""
    shutil.copy(source, lab.root / source.name)
    shots = artifacts / source.stem
    shots.mkdir(parents=True, exist_ok=True)
    run = BrowserRun(source.name)
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    page = context.new_page()
    page.on("console", _console_listener(run.problems))
    page.on("pageerror", lambda exc: run.problems.append(f"uncaught page error: {str(exc)[:400]}"))
    try:
        open_notebook(page, lab, source.name)
        run_all(page, source.name, run)
        check_rendered(page, source.name, run)
        screenshot_cells(page, shots, run)
        if interact_with_widgets:
            interact(page, source.name, run, shots)
    finally:
        context.close()
        lab.stop_kernels()
    return run


def _report(run: BrowserRun, capsys, artifacts: Path) -> None:
    with capsys.disabled():
        print(f"\n[browser] {run.notebook}: run-all to idle {run.seconds:.0f} s; "
              f"{len(run.interactions)} controls: " + "; ".join(run.interactions))
        print(f"[browser] screenshots: {artifacts / Path(run.notebook).stem}")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_in_browser(notebook: Path, lab, browser, artifacts, capsys) -> None:
    run = check_notebook(lab, browser, notebook, artifacts)
    _report(run, capsys, artifacts)
    assert not run.problems, "\n".join(run.problems)


def _slider_notebook(callback_body: str) -> dict:
    """A one-cell notebook: a slider whose callback writes its value into an HTML widget."""
    import nbformat

    code = ("import ipywidgets as w\n"
            "slider = w.IntSlider(value=1, min=0, max=5, description='n')\n"
            "shown = w.HTML('value 1')\n"
            "def redraw(change):\n"
            f"    {callback_body}\n"
            "slider.observe(redraw, names='value')\n"
            "w.VBox([slider, shown])\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


@pytest.mark.parametrize("callback_body, broken", [
    ("shown.value = f\"value {change['new']}\"", False),
    ("pass  # broken on purpose: the picture never follows the slider", True),
    ("raise RuntimeError('broken on purpose')", True),
], ids=["working", "does-nothing", "raises"])
def test_browser_check_catches_a_broken_callback(callback_body: str, broken: bool, lab, browser, artifacts,
                                                  tmp_path) -> None:
    """The check must fail on a slider whose callback is broken, and pass on the same app working."""
    import nbformat

    name = f"slider_{'broken' if broken else 'working'}_{abs(hash(callback_body)) % 10**6}.ipynb"
    source = tmp_path / name
    nbformat.write(_slider_notebook(callback_body), source)
    run = check_notebook(lab, browser, source, artifacts)
    assert len(run.interactions) == 1, run.interactions
    if broken:
        assert any("did not change" in p for p in run.problems), run.problems
    else:
        assert not run.problems, run.problems
