import json
import subprocess
import sys

import numpy as np

from tests.cli_runner import run_cli


def test_version(capsys):
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.startswith("doppel ")


def test_help_lists_commands(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for cmd in ("doctor", "demo", "init"):
        assert cmd in out


def test_command_lists_never_break_a_sentence_mid_line(capsys):
    """Typer's rich help kept a docstring's single line breaks: the command list read "... in" / "front of a
    moving camera". Each paragraph of a command's help is now one line that the help wraps to the terminal."""
    import re

    from doppel.cli import app

    def helps(t):
        for info in t.registered_commands:
            yield info.name or info.callback.__name__, info.help or ""
        for group in t.registered_groups:
            yield from helps(group.typer_instance)

    found = dict(helps(app))
    assert len(found) > 25 and all(found.values())
    assert not [name for name, h in found.items() if re.search(r"[^\n]\n[^\n]", h)]
    code, out, _ = run_cli(capsys, "capture", "--help")
    words = " ".join(out.replace("│", " ").split())
    assert code == 0 and "head turns, talking, hands over the face) in front of" in words


def test_doctor_reports_components(capsys, monkeypatch):
    monkeypatch.delenv("DOPPEL_MODELS_DIR", raising=False)
    code, out, _ = run_cli(capsys, "doctor")
    assert code == 0
    for name in ("numpy", "torch", "mediapipe", "open3d", "usd-core", "ezc3d", "anny", "smplx", "pycolmap", "SMPL-X",
                 "ffmpeg", "c2pa", "ray"):
        assert name in out


def test_doctor_reports_the_cpus_and_the_workspace_storage(tmp_path, monkeypatch):
    from assets.workspace import Workspace
    from doppel.environment import check_environment

    Workspace.init(tmp_path / "ws")
    monkeypatch.setenv("DOPPEL_WORKSPACE", str(tmp_path / "ws"))
    rows = {c.name: c for c in check_environment()}
    assert "usable" in rows["cpus"].detail and "container" in rows["cpus"].detail
    assert rows["workspace"].detail.startswith(f"{tmp_path / 'ws'}: index on ") and "journal WAL" in \
        rows["workspace"].detail


def test_doctor_reports_the_openmp_policy():
    from doppel.environment import check_environment

    row = next(c for c in check_environment() if c.name == "openmp")
    assert row.ok and "PASSIVE" in row.detail, row   # tests import core before torch (tests/conftest.py)


def test_doctor_fails_naming_the_fix(capsys, monkeypatch):
    import doppel.environment as env

    real = env.check_environment
    monkeypatch.setattr(env, "check_environment",
                        lambda: [*real(), env.Check("libfoo", False, True, "not found", "apt-get install libfoo")])
    import doppel.commands.doctor as doc
    monkeypatch.setattr(doc, "check_environment", env.check_environment)
    code, out, _ = run_cli(capsys, "doctor")
    assert code == 1
    assert "apt-get install libfoo" in out


def test_doctor_finds_model_files(capsys, monkeypatch, tmp_path):
    (tmp_path / "smplx").mkdir()
    (tmp_path / "smplx" / "SMPLX_NEUTRAL.npz").write_bytes(b"")
    monkeypatch.setenv("DOPPEL_MODELS_DIR", str(tmp_path))
    code, out, _ = run_cli(capsys, "doctor")
    assert code == 0 and "SMPLX_NEUTRAL.npz" in out
    from doppel.environment import check_environment

    row = next(c for c in check_environment() if c.name == "SMPL-X files")
    assert "no SMPL-X__FLAME_vertex_ids.npy" in row.detail and "no smplx_uv.obj" in row.detail
    (tmp_path / "flame").mkdir()
    (tmp_path / "flame" / "FLAME_NEUTRAL.pkl").write_bytes(b"")
    row = next(c for c in check_environment() if c.name == "FLAME files")
    assert row.ok and "no mediapipe_landmark_embedding.npz" in row.detail        # fits and swaps need it
    (tmp_path / "flame" / "mediapipe_landmark_embedding.npz").write_bytes(b"")
    row = next(c for c in check_environment() if c.name == "FLAME files")
    assert row.ok and "MediaPipe embedding found" in row.detail and "no FLAME_texture.npz" in row.detail
    (tmp_path / "flame" / "FLAME_texture.npz").write_bytes(b"")
    row = next(c for c in check_environment() if c.name == "FLAME files")
    assert "UV layout: FLAME_texture.npz" in row.detail


def test_errors_are_one_red_line_and_debug_shows_traceback(tmp_path):
    bad = tmp_path / "a-file"
    bad.write_text("x")
    cmd = [sys.executable, "-m", "doppel", "init", str(bad)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 1
    assert "error:" in r.stderr and "not a folder" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "doppel", "--debug", "init", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_init_and_demo_quick(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "init", str(tmp_path / "ws"))
    assert code == 0 and (tmp_path / "ws" / "doppel.sqlite").is_file()
    code, out, err = run_cli(capsys, "demo", "--quick", "--out", str(tmp_path / "demo"))
    assert code == 0, err
    report = (tmp_path / "demo" / "report.html").read_text()
    assert "Virtual actor" in report and "albedo.png" in report
    assert "<model-viewer" in report and "camera-orbit" in report            # the double in 3D (doppel.review)
    assert (tmp_path / "demo" / "static" / "model-viewer-umd.min.js").is_file()
    assert (tmp_path / "demo" / "export" / "double.view.glb.js").is_file()
    stats = json.loads((tmp_path / "demo" / "actor" / "statistics.json").read_text())
    assert stats["triangles"] > 20000
    manifest = json.loads((tmp_path / "demo" / "actor" / "manifest.json").read_text())
    assert "consent" in manifest and manifest["outputs"]["mesh"]["path"] == "actor.ply"
    # the neural double trained on the capture: a model folder, its held-out view (4 panels side by side)
    from neural_render.neural_double import load_model

    model, meta, _ = load_model(tmp_path / "demo" / "neural")
    assert meta["training"]["step"] == 15 and model.num_vertices > 10000
    from PIL import Image

    with Image.open(tmp_path / "demo" / "neural" / "holdout.png") as im:
        assert im.width == 4 * im.height
    assert "Neural double" in report and "neural/holdout.png" in report
    # the double's face put into a synthetic plate of another performer, measured against its ground truth
    assert "Face replacement" in report and "swap/swapped_swap/strips/" in report
    assert (tmp_path / "demo" / "swap" / "swapped.mp4").is_file()
    assert "head turned under 30 degrees" in report and "no frame" not in report
    # the performer's face performance on the double's rig, and the neural double acting it
    assert (tmp_path / "demo" / "swap" / "face_take" / "animation.npz").is_file()
    assert "head rotation vs the performer" in report and "swap/reenacted.png" in report
    with Image.open(tmp_path / "demo" / "swap" / "reenacted.png") as im:
        assert im.size == (2 * 256, 2 * 256)                                  # quick: 2 frames, plate over double
    assert "swap/reenacted_passes.png" in report     # colour, depth, normals, UVs, part mattes, Cryptomatte
    with Image.open(tmp_path / "demo" / "swap" / "reenacted_passes.png") as im:
        assert im.size == (6 * 256, 256)
        parts = np.asarray(im.convert("RGB"))[:, 4 * 256:5 * 256].astype(int)
        crypto = np.asarray(im.convert("RGB"))[:, 5 * 256:].astype(int)
    assert (parts[..., 0] - parts[..., 1] > 100).mean() > 0.1          # the face camera sees mostly head (red)
    lit = crypto.sum(-1) > 60                                          # the Cryptomatte: each part its own colour
    assert lit.mean() > 0.1 and len(np.unique(crypto[lit] // 32, axis=0)) >= 2
    assert _broken_links(tmp_path / "demo") == []         # capture/ingest/report.html was linked, never written
    _demo_folders_are_the_virtual_actors(tmp_path / "demo", capsys)


def _broken_links(root) -> list[tuple[str, str]]:
    """(page, link) of every relative href / src / data-src of the HTML pages under root whose file is missing."""
    import re
    from urllib.parse import unquote

    bad = []
    for page in root.rglob("*.html"):
        for link in re.findall(r'(?:href|src|data-src|data-src-js)=["\']([^"\'#?]+)', page.read_text()):
            if not re.match(r"^[a-z]+:|//", link) and not (page.parent / unquote(link)).exists():
                bad.append((str(page.relative_to(root)), link))
    return bad


def _demo_folders_are_the_virtual_actors(demo, capsys):
    """Every stage folder of the demo records the virtual actor as a stage command does, so a demo folder given
    to a command later is the virtual actor's (it was an unknown person's: a retarget onto demo_out/rig recorded
    actor 'unknown'), and the demo's plate is proven synthetic as `doppel capture plate`'s are."""
    from doppel.likeness import inspect_input

    for stage in ("actor", "capture/ingest", "fit", "neural", "rig", "retarget", "export", "swap",
                  "swap/swapped_swap"):
        params = json.loads((demo / stage / "manifest.json").read_text())["params"]
        assert params["actor_id"] == "virtual" and params["production"] == "demo", stage
    code, out, err = run_cli(capsys, "retarget", demo / "retarget" / "clip_mixamo_apose_cm.bvh", "--rig",
                             demo / "rig", "--out", demo.parent / "anim", "--preview-size", "64")
    assert code == 0, err
    params = json.loads((demo.parent / "anim" / "manifest.json").read_text())["params"]
    assert params["actor_id"] == "virtual" and params["consent_id"].startswith("not required"), params
    plate = inspect_input(demo / "swap" / "shot" / "plate" / "plate.mp4", required=True, ws=None, key=None)
    assert plate.proven_virtual, plate.why_unproven
    # a shot rendered of the demo's neural double is the virtual actor's as well (its manifest recorded the actor
    # under keys no reader knew: a render given as a plate was an unknown person's)
    code, out, err = run_cli(capsys, "render", "shot", demo / "neural", "--cameras",
                             demo / "capture" / "session" / "calibration.json", "--camera", "face00", "--size", "64",
                             "--rig", demo / "rig", "--anim", demo / "retarget", "--frames", "0:2",
                             "--out", demo.parent / "shot")
    assert code == 0, err
    movie = inspect_input(demo.parent / "shot" / "face00.mp4", required=True, ws=None, key=None)
    assert movie.claimed == "virtual" and movie.proven_virtual, movie.why_unproven


def test_lines_printed_to_a_pipe_are_never_wrapped(tmp_path, capsys, monkeypatch):
    """Off a terminal (a log, a pipe) a command's closing line keeps a long path whole on one line (Rich wrapped
    at 80 columns), and `doppel --help` still fits a terminal's width."""
    monkeypatch.delenv("COLUMNS", raising=False)
    deep = tmp_path / ("a_long_folder_name_" * 4) / "studio_workspace"
    code, out, _ = run_cli(capsys, "init", deep)
    assert code == 0
    assert any(line.startswith("workspace ready: ") and str(deep) in line for line in out.splitlines()), out
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 120, out
