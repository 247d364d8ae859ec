"""Review-site benchmark (issue 19): page weight, time to first render of the 3D viewer in headless Chromium
(SwiftShader WebGL, i.e. on the CPU), the vendored viewer's size, the site's build time; screenshots.

    PYTHONPATH=. python benchmarks/review.py [--source WORKSPACE] [--glb FILE ...] [--screenshots docs/review]
                                             [--out /tmp/doppel_bench_review]

Without --source it makes a workspace and runs `doppel demo --quick --workspace` into it (the virtual actor's
stage folders registered with lineage; about 1 minute on a quiet 2-core machine, 2.5 minutes under load), then
`doppel review`. --glb adds a site of each given .glb (e.g. the cartwheel clip exported onto a double) and measures
its viewer too. Whole run: about 2-3 minutes quiet. Needs Debian's chromium (make setup installs it).
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from _contention import load_average  # imports Doppel's core first (benchmarks/README.md)

CHROMIUM = "/usr/lib/chromium/chromium"
ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]
VIEWPORT = {"width": 1100, "height": 760}
TIMEOUT_MS = 240_000
PROBE = """window.__mv = {};
document.addEventListener('DOMContentLoaded', () => {
  window.__mv.dcl = performance.now();
  document.querySelectorAll('model-viewer').forEach(m => {
    m.addEventListener('load', () => { window.__mv.load = window.__mv.load || performance.now(); });
    m.addEventListener('model-visibility', e => {
      if (e.detail.visible && !window.__mv.visible) window.__mv.visible = performance.now(); });
  });
});"""
WEIGHT = """() => { const n = performance.getEntriesByType('navigation')[0];
  const r = performance.getEntriesByType('resource').filter(e => !e.name.startsWith('blob:'));
  return {bytes: n.decodedBodySize + r.reduce((s, e) => s + e.decodedBodySize, 0), requests: 1 + r.length}; }"""


def run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "doppel", *cmd], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def measure(browser, url: str, shot: Path | None, viewer: bool) -> dict:
    """Load ``url``; with a viewer wait for its first visible render. Returns times (ms since navigation start)."""
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(TIMEOUT_MS)
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.add_init_script(PROBE)
    t0 = time.perf_counter()
    page.goto(url)
    pixels = None
    if viewer:   # model-viewer draws only while on screen: bring the (first) viewer into view at once
        page.locator("figure.viewer").first.scroll_into_view_if_needed()
        page.wait_for_function("window.__mv.visible !== undefined", timeout=TIMEOUT_MS)
        # the first frame the compositor hands back with the double drawn (SwiftShader may still be compiling)
        page.evaluate("document.querySelectorAll('model-viewer').forEach(m => m.style.background = '#fff')")
        while pixels is None or pixels < TIMEOUT_MS / 1e3:
            blank = _grey_std(page.locator("model-viewer").first.screenshot()) < 8.0
            pixels = time.perf_counter() - t0
            if not blank:
                break
    wall = time.perf_counter() - t0
    probe = page.evaluate("window.__mv")
    weight = page.evaluate(WEIGHT)
    if shot is not None:
        if viewer:
            page.wait_for_timeout(1500)
            page.locator("figure.viewer").first.scroll_into_view_if_needed()
            page.locator("figure.viewer").first.screenshot(path=str(shot))
        else:
            page.screenshot(path=str(shot), clip={"x": 0, "y": 0, "width": VIEWPORT["width"], "height": 900},
                            full_page=True)
    page.close()
    return {**probe, **weight, "wall_s": wall, "pixels_s": pixels, "errors": errors}


def _grey_std(png: bytes) -> float:
    import io

    import numpy as np
    from PIL import Image

    return float(np.asarray(Image.open(io.BytesIO(png)).convert("L"), np.float32).std())


def serve(root: Path):
    from doppel.review import make_server

    srv = make_server(root, 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", type=Path, help="a workspace (default: a new one with `doppel demo --quick`)")
    ap.add_argument("--glb", type=Path, nargs="*", default=[], help="extra .glb files to view (e.g. a cartwheel)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/doppel_bench_review"))
    ap.add_argument("--screenshots", type=Path, help="folder for PNG screenshots (e.g. docs/review)")
    a = ap.parse_args()
    from doppel.review import build_site
    from doppel.review.site import STATIC_FILES

    shutil.rmtree(a.out, ignore_errors=True)
    a.out.mkdir(parents=True)
    print(f"load average before: {load_average()}")
    ws = a.source
    if ws is None:
        ws = a.out / "studio"
        run(["init", str(ws)])
        took = run(["demo", "--quick", "--workspace", str(ws), "--out", str(ws / "demo")])
        print(f"doppel demo --quick --workspace: {took:.1f} s")
    js = Path(__file__).resolve().parents[1] / "doppel" / "review" / "static" / STATIC_FILES[0]
    raw = js.read_bytes()
    print(f"vendored viewer {js.name}: {len(raw) / 1e6:.3f} MB, gzip -9 {len(gzip.compress(raw, 9)) / 1e6:.3f} MB")
    t0 = time.perf_counter()
    site = build_site(ws, a.out / "site")
    print(f"doppel review (build_site): {time.perf_counter() - t0:.2f} s, {len(site.pages)} pages, {site.viewers} "
          f"viewers, site {sum(p.stat().st_size for p in site.root.rglob('*') if p.is_file()) / 1e6:.1f} MB on disk")
    extra = []
    for i, glb in enumerate(a.glb):
        d = a.out / f"glb{i}"
        d.mkdir()
        shutil.copyfile(glb, d / glb.name)
        t0 = time.perf_counter()
        extra.append((glb.stem, build_site(d, a.out / f"glb{i}_site")))
        print(f"site of {glb.name}: {time.perf_counter() - t0:.2f} s (framing {glb.stat().st_size / 1e6:.1f} MB)")
    _browse(a, ws, site, extra)
    print(f"load average after: {load_average()}")


def _browse(a, ws: Path, site, extra) -> None:
    from playwright.sync_api import sync_playwright

    (a.out / "index.html").write_text("<!doctype html><title>benchmark</title><a href='site/index.html'>site</a>")
    srv, base = serve(a.out)
    shots = a.screenshots
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    export_page = next(p.name for p in site.pages if "export" in p.read_text(encoding="utf-8").split("<h1>")[1][:30])
    retarget_page = next(p.name for p in site.pages if "animation:" in p.read_text(encoding="utf-8")
                         .split("<h1>")[1][:30])
    if a.source is not None and not (a.out / "studio").exists():
        (a.out / "studio").symlink_to(a.source.resolve())       # the server serves a.out only
    report = "studio/demo/report.html" if (a.out / "studio" / "demo" / "report.html").is_file() else None
    targets = [("demo report (3D viewer)", report, "report_viewer.png", True),
               ("site index", "site/index.html", "site_index.png", False),
               ("site actor page", "site/actor-virtual.html", "site_actor.png", False),
               ("site export page (3D viewer)", f"site/{export_page}", "site_export_viewer.png", True),
               ("site retarget page", f"site/{retarget_page}", "site_retarget.png", False)]
    targets += [(f"site of {stem}.glb (3D viewer)", f"{Path(e.root).name}/stage-000.html", f"{stem}_viewer.png", True)
                for stem, e in extra]
    with sync_playwright() as p:
        t0 = time.perf_counter()
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        print(f"chromium launch: {time.perf_counter() - t0:.2f} s")
        print("| page | weight MB | requests | DOMContentLoaded s | viewer 'load' s | 'model-visibility' s "
              "| first frame with the double, s | console errors |")
        print("|---|---|---|---|---|---|---|---|")
        for name, rel, shot, viewer in targets:
            if rel is None:
                continue
            m = measure(browser, f"{base}/{rel}", shots / shot if shots else None, viewer)
            dcl, load, vis = (f"{m[k] / 1e3:.2f}" if k in m else "-" for k in ("dcl", "load", "visible"))
            px = f"{m['pixels_s']:.2f}" if m["pixels_s"] else "-"
            print(f"| {name} | {m['bytes'] / 1e6:.2f} | {m['requests']} | {dcl} | {load} | {vis} | {px} | "
                  f"{len(m['errors'])} |")
        browser.close()
    srv.shutdown()


if __name__ == "__main__":
    main()
