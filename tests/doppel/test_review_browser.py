"""The review site and a demo-style report in a real browser: Debian's Chromium driven by Playwright (pip), headless,
WebGL through SwiftShader. Nothing is downloaded: no `playwright install`, no CDN (the viewer is vendored).

Without Chromium these tests FAIL with the command that installs it (`make setup` does, as root)."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from core.meshio import write_png
from doppel.report import Section, write_report
from doppel.review import build_site, make_server
from tests.doppel.review_data import EVIL_NAME, make_workspace, travel_glb

CHROMIUM = Path(os.environ.get("DOPPEL_CHROMIUM", "/usr/lib/chromium/chromium"))
INSTALL = "run `make setup` as root (scripts/ensure_chromium.sh), or: sudo apt-get install -y chromium"
LAUNCH_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]
VIEWPORT = {"width": 1100, "height": 800}
LOAD_TIMEOUT_MS = 120_000    # a loaded 2-core CI machine renders the first WebGL frame in SwiftShader slowly
MIN_CANVAS_STD = 8.0       # grey-level std of the viewer on a white background: a blank canvas is 0
CHANGED_LEVELS = 12        # a pixel "changed" between two screenshots when its grey level moved this much
MIN_CHANGED = 0.002        # fraction of the viewer's pixels that change while the clip plays (the double moves)
MAX_CHANGED_PAUSED = 1e-4  # ... and after pause (nothing moves)
PLAY_WAIT_S = 6.0          # how long the play check watches for that movement before it fails
# The viewer drawn smaller than on a desktop: SwiftShader renders on the CPU, and the tests share it.
SMALL_VIEWER = "figure.viewer model-viewer{width:480px !important;height:300px !important}"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM} (the browser tests need it): {INSTALL}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base URL, root folder): a review site of a workspace (root/site) and a demo-style report (root/report)."""
    root = tmp_path_factory.mktemp("served")
    glb, _, _ = travel_glb(root / "cartwheel.glb")
    ws = make_workspace(root / "studio", glb)
    build_site(ws.root, root / "site")
    rep = root / "report"
    (rep / "export").mkdir(parents=True)
    (rep / "export" / "double.glb").write_bytes(glb.read_bytes())
    write_png(rep / "albedo.png", np.random.default_rng(0).random((16, 16, 3)))
    write_report(rep / "report.html", "Doppel demo <test>", [
        Section("Virtual actor", text="A synthetic actor.", images=[("albedo.png", "albedo")]),
        Section("Export", text="The double in 3D.", files=["export/double.glb"], models=["export/double.glb"])])
    (root / "index.html").write_text("<!doctype html><title>tests</title>")
    srv = make_server(root, 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", root
    srv.shutdown()
    srv.server_close()


class Visit:
    """A page with its console errors, page errors and failed requests recorded."""

    def __init__(self, browser, url: str, no_webgl: bool = False):
        self.page = browser.new_page(viewport=VIEWPORT)
        self.page.set_default_timeout(LOAD_TIMEOUT_MS)
        if no_webgl:   # an empty model-viewer script: the page's links and errors without WebGL work on the CPU
            self.page.route("**/static/model-viewer-umd.min.js",
                            lambda route: route.fulfill(body="", content_type="text/javascript"))
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url}"))
        self.page.on("response", lambda r: self.errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400
                     else None)
        self.page.add_init_script("document.addEventListener('DOMContentLoaded', () => {"
                                  "const s = document.createElement('style');"
                                  f"s.textContent = {SMALL_VIEWER!r}; document.head.appendChild(s); }});")
        self.page.goto(url)

    def wait_viewer(self) -> None:
        self.page.wait_for_selector("figure.viewer[data-loaded='1']", timeout=LOAD_TIMEOUT_MS)
        self.page.evaluate("document.querySelectorAll('model-viewer').forEach(m => m.style.background = '#fff')")
        self.page.wait_for_timeout(500)

    def viewer_shot(self, path: Path | None = None) -> np.ndarray:
        from PIL import Image

        png = self.page.locator("model-viewer").first.screenshot(path=str(path) if path else None)
        return np.asarray(Image.open(io.BytesIO(png)).convert("L"), np.float32)

    def moves_from(self, a: np.ndarray, path: Path) -> float:
        """Largest fraction of changed pixels against `a` over up to PLAY_WAIT_S seconds of playing: one fixed
        interval can land on a slow part of the clip, or on a loaded machine where SwiftShader draws few frames."""
        best = 0.0
        for _ in range(int(PLAY_WAIT_S / 0.4)):
            self.page.wait_for_timeout(400)
            best = max(best, changed(a, self.viewer_shot(path)))
            if best > 4 * MIN_CHANGED:
                break
        return best

    def close(self) -> None:
        self.page.close()


def changed(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels whose grey level differs by CHANGED_LEVELS or more."""
    return float((np.abs(a - b) >= CHANGED_LEVELS).mean())


def _urls(page) -> list[str]:
    return page.evaluate("""() => Array.from(document.querySelectorAll('[href],[src],[data-src],[data-src-js]'))
        .flatMap(e => [e.getAttribute('href'), e.getAttribute('src'), e.getAttribute('data-src'),
                       e.getAttribute('data-src-js')].filter(Boolean).map(u => new URL(u, document.baseURI).href))""")


def test_review_site_pages_links_and_media_resolve(browser, served):
    """Every page: no console error, and every link, image, video, model and script it names answers 200 from the
    server. The 3D viewer is stubbed out here (SwiftShader is slow on a shared CPU); the tests below load it."""
    base, root = served
    pages = sorted(p.name for p in (root / "site").glob("*.html"))
    assert "index.html" in pages and "actor-jane-doe.html" in pages and len(pages) == 8
    checked: set[str] = set()
    viewer_pages = 0
    for name in pages:
        v = Visit(browser, f"{base}/site/{name}", no_webgl=True)
        try:
            urls = _urls(v.page)
            viewer_pages += v.page.locator("figure.viewer").count() > 0
            for url in urls:
                if url.startswith("data:") or url in checked:
                    continue
                assert urlparse(url).netloc == urlparse(base).netloc, f"{name} points outside the site: {url}"
                r = v.page.request.get(url)
                assert r.status == 200 and len(r.body()) > 0, f"{name}: {url} -> {r.status}"
                checked.add(url)
            assert v.errors == [], (name, v.errors)
        finally:
            v.close()
    assert viewer_pages == 2                   # the export's page and its rig's page
    assert any(u.endswith(".mp4") for u in checked) and any(u.endswith(".view.glb") for u in checked)
    assert any(u.endswith(".view.glb.js") for u in checked) and len(checked) > 15


def test_actor_name_with_markup_is_text(browser, served):
    base, _ = served
    v = Visit(browser, f"{base}/site/actor-jane-doe.html")
    try:
        assert v.page.locator("h1").inner_text() == f"Actor: {EVIL_NAME}"
        assert v.page.evaluate("window.__xss === undefined")
        assert v.page.locator("h1 script, h1 b, td img").count() == 0
        assert v.errors == []
    finally:
        v.close()


@pytest.mark.parametrize("where", ["report/report.html", "site/stage-003.html"])
def test_viewer_renders_plays_pauses_and_scrubs(browser, served, where, tmp_path):
    base, _ = served
    v = Visit(browser, f"{base}/{where}")
    try:
        v.wait_viewer()
        a = v.viewer_shot(tmp_path / "viewer_a.png")
        assert a.std() > MIN_CANVAS_STD, f"blank 3D canvas (std {a.std():.2f})"
        t0 = v.page.evaluate("document.querySelector('model-viewer').currentTime")
        moved = v.moves_from(a, tmp_path / "viewer_b.png")
        assert moved > MIN_CHANGED, f"the animation does not move ({moved:.5f} of the pixels in {PLAY_WAIT_S} s)"
        assert v.page.evaluate("document.querySelector('model-viewer').currentTime") != t0
        v.page.click("figure.viewer button.play")                  # pause
        assert v.page.locator("figure.viewer button.play").inner_text() == "Play"
        v.page.wait_for_timeout(200)
        c = v.viewer_shot()
        v.page.wait_for_timeout(400)
        d = v.viewer_shot()
        assert changed(c, d) < MAX_CHANGED_PAUSED, "still moving after pause"
        mv = "document.querySelector('model-viewer')"
        t = v.page.evaluate(f"({mv}.currentTime + {mv}.duration / 2) % {mv}.duration")
        v.page.evaluate(f"""() => {{ const s = document.querySelector('figure.viewer input.scrub');
                                    s.value = '{t:.3f}'; s.dispatchEvent(new Event('input')); }}""")
        v.page.wait_for_timeout(300)
        assert abs(v.page.evaluate(f"{mv}.currentTime") - t) < 0.02
        e = v.viewer_shot()
        assert changed(d, e) > MIN_CHANGED, "scrubbing does not change the pose"
        v.page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        assert (tmp_path / "page.png").stat().st_size > 10_000
        assert v.errors == []
    finally:
        v.close()


def test_site_opens_from_disk(browser, served, tmp_path):
    """From file:// (no fetch): the rig's page shows the viewer of the export made from it, read from a script."""
    _, root = served
    v = Visit(browser, (root / "site" / "stage-001.html").as_uri())
    try:
        v.wait_viewer()
        shot = v.viewer_shot(tmp_path / "from_disk.png")
        assert shot.std() > MIN_CANVAS_STD
        assert v.page.evaluate("document.querySelector('model-viewer').src").startswith("blob:")
        assert v.errors == []
    finally:
        v.close()


AXE = Path(__file__).resolve().parents[2] / ".venv" / "node-tools" / "node_modules" / "axe-core" / "axe.min.js"


def _other_reports(root: Path) -> list[str]:
    """A face replacement's QC report and a batch run's report, written into ``root``/other; their paths under
    ``root``."""
    import cv2

    from capture.plate_io import probe_plate
    from doppel.batch.dag import Task
    from doppel.batch.execute import BatchResult, TaskState
    from doppel.batch.report import write_html_report
    from doppel.batch.stages import STAGES
    from doppel.face_swap.report import write_report as write_swap_report
    from doppel.face_swap.swap import SwapConfig
    from tests.doppel.test_swap_report import _result

    d = root / "other"
    d.mkdir(exist_ok=True)
    for i in range(6):
        cv2.imwrite(str(d / f"p.{10 + i:04d}.png"), np.zeros((64, 64, 3), np.uint8))
    write_swap_report(d / "swap_report.html", _result(d), probe_plate(d), SwapConfig(), d, d, d / "out")
    task = Task("retarget:anims/walk", 0, "walk <b>", "retarget", {}, str(d / "anims" / "walk"), (), None, None, 3,
                STAGES["retarget"])
    states = {task.id: TaskState(task, "failed", "the clip <i>is</i> unreadable", 1.5, "render-07")}
    write_html_report(BatchResult("run-1", states, 2.0, 1.0, "local Ray, 2 CPUs"), d / "plan.yaml",
                      d / "batch_report.html")
    return ["other/swap_report.html", "other/batch_report.html"]


def test_every_kind_of_page_passes_axe(browser, served):
    """axe-core (Deque's accessibility engine, its default WCAG 2 A/AA and best-practice rules) finds nothing on
    any kind of HTML page Doppel writes: the review site's pages (index, actor, lineage, stage pages with a 3D
    viewer), a demo-style report, a face replacement's QC report, a batch report. Before stop 73 it found images
    without alternative text, pages without a language or a main landmark, grey text under 4.5:1 contrast, charts
    without a name and links inside the tables' summaries."""
    if not AXE.is_file():
        pytest.fail(f"axe-core is not installed at {AXE}: run `make setup` (scripts/ensure_node_tools.sh)")
    base, root = served
    pages = [f"site/{p.name}" for p in sorted((root / "site").glob("*.html"))] + ["report/report.html"]
    pages += _other_reports(root)
    found = []
    for rel in pages:
        v = Visit(browser, f"{base}/{rel}", no_webgl=True)
        try:
            v.page.add_script_tag(content=AXE.read_text())
            res = v.page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
            found += [f"{rel}: {x['id']} [{x['impact']}] x{len(x['nodes'])}: {x['nodes'][0]['html'][:120]}"
                      for x in res["violations"]]
        finally:
            v.close()
    assert len(pages) == 11 and not found, "\n".join(found)
