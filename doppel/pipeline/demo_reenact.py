"""Demo: the plate performer's face performance, read by the swap and put on the double's rig, drawn by the neural
double (`doppel render shot --rig --anim` on the library path): the double acting what the performer acted, from a
camera framed on its face. A strip shows the plate's frames above the double's."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

REENACT_FRAMES = 8           # frames of the take shown (evenly spaced)
REENACT_PX = 256             # the face camera's image size
REENACT_PASSES = ("depth", "normal", "uv", "parts", "crypto")   # passes shown (the frames are a sample: no motion)


def passes_preview(strip: Path) -> Path:
    """Where `reenact` puts the first frame's render passes (`render shot --aovs`) beside its strip."""
    return strip.with_name(strip.stem + "_passes.png")


def reenact(ctx, face_take: Path, plate: Path, out: Path) -> Path | None:
    """Render ``face_take`` (a face-take animation folder on ctx.out/'rig') with the demo's neural double
    (ctx.out/'neural') and write ``out`` (PNG): the plate's frames over the renders, and beside it the first render's
    passes (`passes_preview`). None when the demo has no neural double."""
    from capture.plate_io import iter_plate_frames, probe_plate
    from doppel.shot_stage import render_shot
    from rigging import Rig
    from rigging.animation import Animation

    model = ctx.out / "neural"
    if not (model / "model.safetensors").is_file():
        return None
    rig = Rig.load(ctx.out / "rig")
    anim = Animation.load(face_take)
    frames = np.unique(np.linspace(0, anim.num_frames - 1, 2 if ctx.quick else REENACT_FRAMES).round().astype(int))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        Animation(anim.joint_names, anim.local_rotations[frames], anim.root_translation[frames], anim.fps,
                  anim.parents, anim.blendshape_names, anim.blendshape_weights[frames]).save(tmp / "anim")
        _face_camera(rig, tmp / "calibration.json")
        shot = tmp / "shot"
        shot.mkdir()
        render_shot(model, tmp / "calibration.json", shot, ["face"], ctx.out / "rig", tmp / "anim", None, "neural",
                    REENACT_PX, "cpu", {}, jitter=1, aovs=REENACT_PASSES)
        renders = [_png(shot / "face" / f"{i:04d}.png") for i in range(len(frames))]
        shutil.copyfile(shot / "face.passes.png", passes_preview(out))
    wanted = set(frames.tolist())
    plates = [rgb for i, rgb in iter_plate_frames(probe_plate(plate)) if i in wanted]
    _write_strip(out, [_square(p, REENACT_PX) for p in plates], renders)
    return out


def _face_camera(rig, path: Path) -> None:
    """A calibration file with one camera, 'face', 0.7 m in front of the rig's head at its bind pose (the face
    take moves the head, not the body), 28 degrees across."""
    from capture.calibration_io import write_doppel_json
    from capture.camera import Camera
    from doppel.face_performance import find_head_joints
    from doppel.face_take_stage import head_region

    region = head_region(rig, find_head_joints(rig)[0])
    centre = rig.vertices[np.unique(rig.faces[region])].mean(0).astype(np.float64)
    cam = Camera.look_at(centre + [0.0, 0.0, 0.7], centre, width=REENACT_PX, height=REENACT_PX, fov_y_deg=28.0,
                         name="face")
    write_doppel_json(path, [cam])


def _png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _square(rgb: np.ndarray, size: int) -> np.ndarray:
    """The centre square of a frame, resized to size x size."""
    import cv2

    h, w = rgb.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    return cv2.resize(rgb[y0:y0 + s, x0:x0 + s], (size, size), interpolation=cv2.INTER_AREA)


def _write_strip(path: Path, top: list[np.ndarray], bottom: list[np.ndarray]) -> None:
    from core.meshio import write_png

    write_png(path, np.concatenate([np.concatenate(top, 1), np.concatenate(bottom, 1)], 0).astype(np.uint8))
