"""Demo stage: the double's face put into a plate. A short synthetic plate of another virtual performer (with
its ground truth: the virtual actor's head rendered on them) is swapped by `doppel swap`'s library path (MediaPipe
tracking, the 3D head solve, the double's textured head, the comp) and measured against the ground truth."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from doppel.pipeline.demo_reenact import reenact
from doppel.report import Section


def stage_swap(ctx) -> Section:
    """Render a plate of performer seed+1, swap the rig stage's double into it, report QC and ground truth."""
    from core.storage import write_manifest
    from doppel.face_swap.double import load_face_double
    from doppel.face_swap.pipeline import swap_plate
    from doppel.face_swap.side_folder import side_folder
    from doppel.face_swap.swap import SwapConfig
    from doppel.synthetic_plate import PlateConfig, render_plate
    from doppel.synthetic_provenance import write_synthetic_plate_manifests

    d = ctx.out / "swap"
    d.mkdir(parents=True, exist_ok=True)
    size = (384, 216) if ctx.quick else (480, 270)
    cfg = PlateConfig(performer_seed=ctx.seed + 1, double_seed=ctx.seed, frames=12 if ctx.quick else 72,
                      width=size[0], height=size[1], camera="handheld", renderer="raster", texture_size=512)
    shot = render_plate(d / "shot", cfg, actor_a=ctx.state.get("actor"))
    # proven synthetic as `doppel capture plate`'s are, so `doppel swap demo_out/swap/shot/plate/plate.mp4` takes it
    write_synthetic_plate_manifests(shot.out / "plate", seed=cfg.performer_seed, settings={
        k: v for k, v in dataclasses.asdict(cfg).items() if k != "performer_seed"}, key=ctx.key)
    out = d / "swapped.mp4"
    with tempfile.TemporaryDirectory() as work:
        double = load_face_double(ctx.out / "rig", Path(work), albedo_size=512)
        result = swap_plate(shot.out / "plate" / "plate.mp4", double, out, SwapConfig(),
                            params={**ctx.provenance, "plate_actor": None,
                                    "plate_performer_check": "the demo's synthetic plate (performer seed "
                                                             f"{cfg.performer_seed})"})
    side = side_folder(out)
    errors = _landmark_error(double, side / "tracks.npz", shot.out / "ground_truth")
    write_manifest(d, "face_replace", params={"performer_seed": cfg.performer_seed, "frames": cfg.frames,
                                              **ctx.provenance},
                   outputs={"swapped": "swapped.mp4", "report": f"{side.name}/swap_report.html"},
                   extra={"consent": "not required: synthetic virtual actors, no real person's likeness"})
    face_rows = _face_performance(ctx, side, shot.out / "ground_truth", d / "face_take")
    strip = reenact(ctx, d / "face_take", shot.out / "plate" / "plate.mp4", d / "reenacted.png")
    strips = sorted((side / "strips").glob("*.png"))
    n = len(result.frames)
    return Section(
        "Face replacement",
        text=(f"A {cfg.frames}-frame plate of another virtual performer (seed {cfg.performer_seed}, a handheld "
              "camera, the head turning) with the double's face put on them: MediaPipe's face mesh tracks the "
              "performer, the double's head pose and expression are solved in 3D with its identity fixed, its "
              "textured head is drawn and composited (Poisson blend, colour matched in LAB, the plate's skin "
              "shading). The plate's ground truth is the virtual actor's own head (whose capture the double was "
              "fitted to) rendered on the performer: the placement below includes the fit's error."),
        images=[(f"swap/{side.name}/strips/{p.name}", f"frame {int(p.stem)}: the plate (left), swapped (right)")
                for p in strips[:2]] + [("swap/face_take/preview.png", "the performer's face performance, read "
                                         "from the plate, on the double's rig (`doppel retarget SWAP_DIR`)")]
               + ([("swap/reenacted.png", "the plate (top) and the neural double acting the same performance "
                   "(`doppel render shot --rig --anim`, a camera on its face; the body at the rig's bind pose)"),
                   ("swap/reenacted_passes.png", "its first frame's render passes for compositing (`--aovs`): "
                   "colour, depth, normals, UVs, body-part mattes, a Cryptomatte of the body parts")]
                  if strip else []),
        table={"frames swapped": f"{n - len(result.passed_through)} of {n}",
               "frames flagged": len(result.flagged),
               "speed": f"{n / max(result.seconds, 1e-9):.2f} frames/s ({size[0]}x{size[1]})", **errors,
               **face_rows},
        files=["swap/swapped.mp4", f"swap/{side.name}/swap_report.html", f"swap/{side.name}/tracks.npz",
               "swap/face_take/preview.mp4", "swap/face_take/animation.npz"],
    )


def _landmark_error(double, tracks, ground_truth) -> dict[str, str]:
    """Where the swap put the double's face landmarks (its track projected) against where the ground truth drew
    them (annotations.npz landmarks2d, visible points): mean distance in inter-ocular distances over the frames
    swapped, head turned under 30 degrees and beyond (no detector reads the output)."""
    from doppel.face_swap.render_head import project
    from reconstruction.head_tracking import inter_ocular

    t, ann = np.load(tracks), np.load(ground_truth / "annotations.npz")
    ids, errs = double.basis.ids, {"under 30": [], "30 and more": []}
    for f in np.flatnonzero(t["valid"]):
        placed = project(double.basis.points(t["expression"][f]), t["rotation"][f], t["translation"][f], t["K"])
        vis = ann["landmarks_visible"][f, ids]
        if vis.any():
            d = np.linalg.norm(placed[vis] - ann["landmarks2d"][f, ids][vis], axis=-1)
            turned = "under 30" if abs(ann["head_ypr_deg"][f, 0]) < 30 else "30 and more"
            errs[turned].append(float(d.mean() / inter_ocular(ann["landmarks2d"][f])))
    return {f"placed landmarks vs the ground truth's / inter-ocular distance, head turned {k} degrees":
            f"{np.mean(v):.4f} ({len(v)} frames)" if v else "no frame" for k, v in errs.items()}


def _face_performance(ctx, side: Path, ground_truth: Path, out: Path) -> dict[str, str]:
    """The swap's face track as an animation of the rig stage's rig (`doppel.face_performance`, written to
    ``out``), and how it compares with the performance the plate was made from: the head's rotation as the
    camera saw it (mean angle, frames with a face) and jawOpen (correlation over the shot)."""
    from doppel.face_performance import CAMERA_TO_FACING, face_animation, posed_head_rotations
    from doppel.face_take_read import read_face_take
    from doppel.face_take_stage import write_face_take
    from rigging import Rig

    rig = Rig.load(ctx.out / "rig")
    take = read_face_take(side)
    anim, summary = face_animation(take, rig)
    out.mkdir(parents=True, exist_ok=True)
    write_face_take(out, anim, summary, rig, {"actor_id": "virtual"}, take.source, size=192 if ctx.quick else 256)
    ok, ann = take.valid, np.load(ground_truth / "annotations.npz")
    true_R = CAMERA_TO_FACING @ ann["head_R_cam"]
    R = posed_head_rotations(anim, rig)
    cos = (np.einsum("fij,fij->f", R[ok], true_R[ok]) - 1) / 2
    jaw_true = ann["expression_weights"][:, ann["expression_names"].tolist().index("jawOpen")]
    jaw = anim.blendshape_weights[:, list(rig.blendshape_names).index("jawOpen")]
    corr = np.corrcoef(jaw[ok], jaw_true[ok])[0, 1] if jaw[ok].std() > 1e-9 else float("nan")
    return {"face performance on the rig: head rotation vs the performer's (mean)":
            f"{np.degrees(np.arccos(np.clip(cos, -1, 1))).mean():.1f} degrees ({int(ok.sum())} frames)",
            "face performance on the rig: jawOpen vs the performance (correlation)": f"{corr:.2f}"}
