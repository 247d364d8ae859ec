"""The stages a batch plan can name: one registry entry per stage.

A stage entry says how a plan job is checked (a pydantic model: unknown options are errors with their line),
which of its options are input paths (a glob gives one task per match, its match's name fills ``{placeholder}``
in ``out``), which list option gives one task per value (export ``formats`` -> ``{format}``), which frame range
is split into chunks (render), whether it wants a GPU, and how a task runs: the stage's own `doppel` command
function called with keyword arguments in a Ray worker, under the consent the driver checked (the command's
gate is pre-authorised there: `doppel.consent_gate.preauthorized`), so a batch output is byte-for-byte what the
command writes. ``gate`` gives the inputs the command passes to its gate, so that the driver checks the same
likeness before the task starts; the worker verifies that the command asked for that use on those inputs.

Adding a stage is one `register_stage(StageSpec(...))` call here. A command that passes more than one gate (swap:
the double's actor and the plate's performer) names the others in ``extra_gates``; the driver checks each.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


@dataclass(frozen=True)
class InputField:
    """An option of a job that names input files or folders."""

    name: str                  # option name in the plan ("clips")
    placeholder: str           # its name in `out` templates ("clip" -> "{clip}": the match's name without suffix)
    optional: bool = False     # the option may be absent (None)


@dataclass(frozen=True)
class GateSpec:
    """What a stage command passes to `gate_from_cli`: the driver runs the same check before the task."""

    inputs: tuple[str, ...]            # every input path the command hashes and records
    likeness: tuple[str, ...] | None   # inputs read as the actor's likeness (None: all inputs)
    evidence: tuple[str, ...] = ()     # inputs that may be attributed to an actor but need no provenance


@dataclass(frozen=True)
class ExtraGate:
    """A further consent gate a stage's command passes (`doppel swap`: the plate's performer)."""

    actor_option: str                  # the job option naming its actor ("plate_actor")
    command: str                       # the gate's command label, as the command gives it
    spec: GateSpec                     # its inputs and likeness
    output_kind: str | None = None     # the task's outputs registered to its actor as this kind (None: as the task
                                       # registers them: a swap's plate performer; "performance": a take's performer)


@dataclass(frozen=True)
class StageSpec:
    """One stage a plan can run (see the module docstring)."""

    name: str                                      # plan name: "retarget", "capture ingest", ...
    model: type[BaseModel]                         # pydantic model of a job's options (without `stage`)
    use: str                                       # consent use the stage's command asks for
    command: str                                   # "module:function" of the `doppel` command run in the worker
    inputs: tuple[InputField, ...]                 # options naming input paths (globs expand)
    call: Callable[[dict], dict]                   # task values -> the command's keyword arguments
    gate: Callable[[dict], GateSpec]               # task values -> the command's gate inputs
    output: Literal["folder", "file"] = "folder"   # a stage folder (manifest) or one file
    expand: tuple[str, str] | None = None          # (list option, placeholder): one task per value
    chunk: str | None = None                       # "FIRST:LAST" frame-range option split into `chunk_size` chunks
    gpu: bool = False                              # asks for a GPU (num_gpus=1) when the cluster has one
    extra_gates: Callable[[dict], tuple[ExtraGate, ...]] | None = None   # gates the command opens before `gate`
    resolve: Callable[[dict, Path | None], None] | None = None   # fills values only the workspace knows (the
                                                   # driver calls it with the plan's workspace before gating)
    discloses: bool = False                        # writes imagery or a 3D export of the likeness: signed (and
                                                   # imagery marked) under the driver's grant
                                                   # (`assets.disclosure.DisclosureGrant`)
    side_outputs: Callable[[str], tuple[str, ...]] | None = None   # out -> what else the command writes beside
                                                   # it (swap: its side folder); declared with out to the gate
    file_or_name: tuple[str, ...] = ()             # options that name a file, or something else (a retarget's
                                                   # subject: a .vsk or a subject's name): a file under the plan's
                                                   # root is given by its full path, anything else as written


STAGES: dict[str, StageSpec] = {}


def register_stage(spec: StageSpec) -> StageSpec:
    """Add (or replace) a stage in the registry; returns it."""
    STAGES[spec.name] = spec
    return spec


class JobOptions(BaseModel):
    """Options every job has."""

    model_config = ConfigDict(extra="forbid")

    out: str                              # output path template ("anims/{clip}")
    name: str | None = None               # a name for the job in reports (default: STAGE#N)
    actor: str | None = None              # overrides the plan's actor for this job
    production: str | None = None         # overrides the plan's production for this job


def call_command(fn: Callable, **given: Any) -> Any:
    """Call a typer command function with ``given`` keyword arguments, every other parameter at its typer
    default (a typer function's defaults are OptionInfo objects, not values)."""
    kwargs = {}
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs.update({k: v for k, v in given.items() if k not in params})
    for name, p in params.items():
        if p.kind in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL):
            continue
        if name in given:
            kwargs[name] = given[name]
            continue
        default = p.default
        default = getattr(default, "default", default)     # typer.Option(...) / typer.Argument(...)
        if default is inspect.Parameter.empty or default is Ellipsis:
            raise TypeError(f"{fn.__name__}: parameter {name!r} has no default; the batch stage must give it")
        kwargs[name] = default
    return fn(**kwargs)


def _p(v: str | None) -> Path | None:
    return None if v is None else Path(v)


# --- retarget ------------------------------------------------------------------------------------------------
class RetargetJob(JobOptions):
    clips: str                                        # mocap clips (glob): .bvh, .fbx, .glb/.gltf, .usd*, .mvnx, .c3d,
                                                      # takes' fit folders, or face performances: swaps'
                                                      # tracks.npz, ARKit CSVs
    rig: str                                          # rig folder(s) (glob), or a .bvh target skeleton
    units: str = "auto"                               # BVH clip units (auto, m, cm, mm, inch, cmu)
    up: str = "auto"                                  # clip up axis (auto, +y, +z, ...)
    bone_map: str | None = None                       # YAML bone map overriding the automatic mapping
    cleanup: bool = True                              # foot-contact cleanup (IK)
    fingers: bool = True                              # transfer the fingers
    preview_size: int = Field(320, ge=32, le=2048)    # preview panel size, px
    head: str | None = None                           # a face performance's head: camera, take or none
    frames: str | None = None                         # "A:B" (B exclusive): a range of each body clip alone
    take: str | None = None                           # which take of a glTF / FBX file of several, by name
    resample: float | None = Field(None, gt=0)        # plot each body clip at this frame rate (e.g. 24)
    subject: str | None = None                        # C3D marker takes: the performer's Vicon subject file (.vsk)
                                                      # or subject name; FBX / glTF / USD files of several
                                                      # skeletons: the one to read, by name
    fps: float | None = Field(None, gt=0)             # a take's fit folder: its frame rate (default 24)
    performer: str | None = None                      # a take's performer (default: the actor its fit is registered
                                                      # to), whose consent for retarget it needs


def _retarget_call(v: dict) -> dict:
    return {"clip": Path(v["clips"]), "rig": Path(v["rig"]), "out": Path(v["out"]), "units": v["units"],
            "up": v["up"], "bone_map": _p(v["bone_map"]), "no_cleanup": not v["cleanup"],
            "no_fingers": not v["fingers"], "preview_size": v["preview_size"], "head": v["head"],
            "frames": v.get("frames"), "take": v.get("take"), "resample": v.get("resample"),
            "subject": _p(v.get("subject")),
            "fps": v.get("fps"),
            "performer": v.get("performer")}


def _retarget_take_gate(v: dict) -> tuple[ExtraGate, ...]:
    """A capture take as the clip: its performer's consent, as `doppel retarget` asks for it."""
    from doppel.take_clip import is_take_fit

    if not is_take_fit(Path(v["clips"])):
        return ()
    from assets.lineage import PERFORMANCE_KIND

    return (ExtraGate("performer", "retarget (take performer)", GateSpec((v["clips"],), (v["clips"],)),
                      output_kind=PERFORMANCE_KIND),)


def _retarget_gate(v: dict) -> GateSpec:
    bvh_target = Path(v["rig"]).is_file() and Path(v["rig"]).suffix.lower() == ".bvh"
    return GateSpec((v["clips"], v["rig"]), () if bvh_target else (v["rig"],), (v["rig"],) if bvh_target else ())


register_stage(StageSpec("retarget", RetargetJob, "retarget", "doppel.commands.retarget:retarget",
                         (InputField("clips", "clip"), InputField("rig", "rig"),
                          InputField("bone_map", "bone_map", optional=True)), _retarget_call, _retarget_gate,
                         extra_gates=_retarget_take_gate, discloses=True, file_or_name=("subject",)))


# --- export --------------------------------------------------------------------------------------------------
ExportFormat = Literal["fbx", "usd", "usda", "usdc", "usdz", "glb", "abc"]


class ExportJob(JobOptions):
    rig: str                                          # rig folder(s) (glob)
    anim: str | None = None                           # animation folder(s) (glob) to bake in
    formats: list[ExportFormat] = Field(min_length=1)  # one task per format ({format} in `out`)
    preset: Literal["maya", "unreal", "blender"] | None = None   # axes and units preset
    up: Literal["y", "z"] | None = None               # overrides the preset's up axis
    units: Literal["cm", "m"] | None = None           # overrides the preset's unit
    texture: str | None = None                        # albedo PNG (default: the rig's, else procedural)
    no_texture: bool = False                          # export without a material texture


def _export_call(v: dict) -> dict:
    Path(v["out"]).parent.mkdir(parents=True, exist_ok=True)
    return {"rig_dir": Path(v["rig"]), "out": Path(v["out"]), "fmt": v["format"], "anim": _p(v["anim"]),
            "preset": v["preset"], "up": v["up"], "units": v["units"], "texture": _p(v["texture"]),
            "no_texture": v["no_texture"]}


def _export_gate(v: dict) -> GateSpec:
    anim = (v["anim"],) if v["anim"] else ()
    looks = (v["rig"], *((v["texture"],) if v["texture"] and not v["no_texture"] else ()))   # as the command's
    return GateSpec((*looks, *anim), looks, anim)


register_stage(StageSpec("export", ExportJob, "export", "doppel.commands.export:export",
                         (InputField("rig", "rig"), InputField("anim", "anim", optional=True),
                          InputField("texture", "texture", optional=True)), _export_call,
                         _export_gate, output="file", expand=("formats", "format"), discloses=True))


# --- rig -----------------------------------------------------------------------------------------------------
class RigJob(JobOptions):
    fit: str | None = None                            # `doppel fit` folder(s) (glob); none: the default double
    model: Literal["anny", "smplx", "flame"] = "anny"
    phenotype: dict[str, float] = {}                  # shape parameters (Anny: gender, age, ... in [0, 1])
    seed: int = 0                                     # seed of the default double's shape
    anny_rig: str = "default"                         # Anny skeleton
    model_file: str | None = None                     # SMPL-X / FLAME model file or folder
    top_k: int | None = Field(None, ge=1)             # skin weights kept per vertex
    preview_size: int = Field(384, ge=64, le=4096)    # preview panel height, px


def _rig_call(v: dict) -> dict:
    return {"out": Path(v["out"]), "model": v["model"], "phenotype": [f"{k}={x}" for k, x in v["phenotype"].items()],
            "seed": v["seed"], "anny_rig": v["anny_rig"], "model_file": _p(v["model_file"]), "top_k": v["top_k"],
            "preview_size": v["preview_size"], "fit_dir": _p(v["fit"])}


def _rig_gate(v: dict) -> GateSpec:
    inputs = tuple(p for p in (v["model_file"], v["fit"]) if p is not None)
    return GateSpec(inputs, (v["fit"],) if v["fit"] else ())


register_stage(StageSpec("rig", RigJob, "rig", "doppel.commands.rig:rig",
                         (InputField("fit", "fit", optional=True), InputField("model_file", "model_file",
                                                                               optional=True)),
                         _rig_call, _rig_gate, discloses=True))


# --- fit -----------------------------------------------------------------------------------------------------
class FitJob(JobOptions):
    session: str | None = None                        # capture session folder(s) (glob)
    landmarks: str | None = None                      # ingest folder of the session ("ingest/{session}")
    scan: str | None = None                           # scan mesh(es) (glob) instead of a session
    model: Literal["anny", "smplx", "flame"] = "anny"
    stages: str = "40,300,100,100"                    # Adam iterations: rigid, body, face, all
    detail_iterations: int = Field(60, ge=0)          # silhouette detail iterations
    frame: str | None = None                          # frame to fit, or "all"
    frames: str | None = None                         # "A:B" (B exclusive): a range of the take alone
    device: Literal["auto", "cpu", "cuda"] = "auto"


def _fit_call(v: dict) -> dict:
    return {"session": _p(v["session"]), "out": Path(v["out"]), "landmarks": _p(v["landmarks"]),
            "scan": _p(v["scan"]), "model": v["model"], "stages": v["stages"],
            "detail_iterations": v["detail_iterations"], "frame": v["frame"], "frames": v.get("frames"),
            "device": v["device"], "resume": "auto"}  # a take's task retried (its worker lost) goes on from its frames


def _fit_gate(v: dict) -> GateSpec:
    if v["scan"]:
        return GateSpec((v["scan"],), None)
    return GateSpec(tuple(p for p in (v["session"], v["landmarks"]) if p), None)


register_stage(StageSpec("fit", FitJob, "fit", "doppel.commands.fit:fit",
                         (InputField("session", "session", optional=True),
                          InputField("landmarks", "landmarks", optional=True),
                          InputField("scan", "scan", optional=True)), _fit_call, _fit_gate, gpu=True))


# --- capture ingest ------------------------------------------------------------------------------------------
class IngestJob(JobOptions):
    session: str                                      # capture session folder(s) (glob)
    threshold: float = Field(8.0, gt=0)               # RANSAC inlier threshold, px
    face: bool = True                                 # run the face mesh
    hands: bool = True                                # run the hand model


def _ingest_call(v: dict) -> dict:
    return {"session_dir": Path(v["session"]), "out": Path(v["out"]), "threshold": v["threshold"],
            "no_face": not v["face"], "no_hands": not v["hands"]}


register_stage(StageSpec("capture ingest", IngestJob, "scan", "doppel.commands.capture:ingest_cmd",
                         (InputField("session", "session"),), _ingest_call,
                         lambda v: GateSpec((v["session"],), None)))


# --- texture -------------------------------------------------------------------------------------------------
class TextureJob(JobOptions):
    session: str                                      # capture session folder(s) (glob)
    fit: str                                          # the session's fit folder ("fits/{session}")
    size: int = Field(2048, ge=256, le=4096)          # texture size, texels
    masks: str | None = None                          # ingest folder or CAMERA.png folder of person masks


def _texture_call(v: dict) -> dict:
    return {"session": Path(v["session"]), "fit_dir": Path(v["fit"]), "out": Path(v["out"]), "size": v["size"],
            "masks": _p(v["masks"])}


register_stage(StageSpec("texture", TextureJob, "fit", "doppel.commands.texture:texture",
                         (InputField("session", "session"), InputField("fit", "fit"),
                          InputField("masks", "masks", optional=True)), _texture_call,
                         lambda v: GateSpec(tuple(p for p in (v["session"], v["fit"], v["masks"]) if p), None)))


# --- render train --------------------------------------------------------------------------------------------
class RenderTrainJob(JobOptions):
    session: str                                      # capture session folder(s) (glob)
    fit: str                                          # the session's fit folder ("fits/{session}")
    holdout: str = ""                                 # held-out cameras, comma separated
    size: int = Field(256, ge=32, le=4096)            # training image size, px
    iterations: int = Field(2000, ge=1)               # optimisation steps (at most)
    minutes: float | None = Field(None, gt=0)         # wall-clock budget
    masks: str | None = None                          # person masks (ingest folder or CAMERA.png folder)
    device: Literal["auto", "cpu", "cuda"] = "auto"


def _train_call(v: dict) -> dict:
    return {"session": Path(v["session"]), "fit_dir": Path(v["fit"]), "out": Path(v["out"]), "holdout": v["holdout"],
            "size": v["size"], "iterations": v["iterations"], "minutes": v["minutes"], "masks": _p(v["masks"]),
            "device": v["device"]}


register_stage(StageSpec("render train", RenderTrainJob, "render", "doppel.commands.render:train",
                         (InputField("session", "session"), InputField("fit", "fit"),
                          InputField("masks", "masks", optional=True)), _train_call,
                         lambda v: GateSpec(tuple(p for p in (v["session"], v["fit"], v["masks"]) if p), None),
                         gpu=True))


# --- render shot ---------------------------------------------------------------------------------------------
class RenderShotJob(JobOptions):
    model: str                                        # `render train` model folder(s) (glob)
    cameras: str                                      # calibration JSON of the shot's cameras
    camera: list[str] = []                            # camera names (default all)
    rig: str | None = None                            # rig driving the double (with anim)
    anim: str | None = None                           # animation folder(s) (glob) retargeted onto rig
    frames: str | None = None                         # "FIRST:LAST" inclusive: split into chunk_size-frame tasks
    chunk_size: int = Field(24, ge=1)                 # frames per task
    renderer: Literal["neural", "cgi"] = "neural"
    size: int | None = Field(None, ge=16, le=8192)    # longest image side, px
    jitter: int | None = Field(None, ge=1, le=16)     # renders per frame at sub-pixel camera shifts, averaged
                                                      # (None: 4, 1 for a `render distil` model; shot_jitter)
    views_per_call: int | None = Field(None, ge=1)    # renders a model call (None: 1 on the CPU, several on a GPU)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    label: str | None = None                          # visible disclosure label
    recentre: bool = False                            # the clip's frame 0 onto the actor's place (every chunk)
    aovs: str | None = None                           # render passes in the EXRs: "depth,...,crypto" or "all"
    lens: Literal["distorted", "undistorted"] = "distorted"   # through the cameras' lens distortion, or not
    shutter: float = Field(0.0, ge=0, le=360)         # motion blur: shutter angle, degrees (0: none)
    shutter_samples: int = Field(8, ge=1, le=64)      # renders over the open shutter
    shutter_position: Literal["centre", "start", "end"] = "centre"   # where the open shutter sits on the frame

    @field_validator("aovs")
    @classmethod
    def _known_passes(cls, v: str | None) -> str | None:
        from neural_render.aovs import parse_aovs

        parse_aovs(v)                                 # an unknown pass fails the plan's check, not a task
        return v


def _shot_call(v: dict) -> dict:
    frames = None
    if v["frames"]:
        first, last = (int(x) for x in str(v["frames"]).split(":"))
        frames = f"{first}:{last + 1}"                # the command's A:B is B-exclusive
    return {"model_dir": Path(v["model"]), "cameras": Path(v["cameras"]), "camera": list(v["camera"]),
            "rig": _p(v["rig"]), "anim": _p(v["anim"]), "frames": frames, "renderer": v["renderer"],
            "size": v["size"], "jitter": v["jitter"], "views_per_call": v["views_per_call"], "device": v["device"],
            "out": Path(v["out"]), "label": v["label"], "recentre": v["recentre"], "aovs": v["aovs"],
            "lens": v["lens"], "shutter": v["shutter"], "shutter_samples": v["shutter_samples"],
            "shutter_position": v["shutter_position"],
            "resume": "auto"}         # a task retried (its worker lost) goes on from the frames it wrote


def _shot_gate(v: dict) -> GateSpec:
    inputs = tuple(p for p in (v["model"], v["cameras"], v["rig"], v["anim"]) if p)
    return GateSpec(inputs, tuple(p for p in (v["model"], v["rig"]) if p), (v["anim"],) if v["anim"] else ())


register_stage(StageSpec("render shot", RenderShotJob, "render", "doppel.commands.render:shot",
                         (InputField("model", "model"), InputField("cameras", "cameras"),
                          InputField("rig", "rig", optional=True), InputField("anim", "anim", optional=True)),
                         _shot_call, _shot_gate, gpu=True, chunk="frames", discloses=True))


# --- swap ----------------------------------------------------------------------------------------------------
class SwapJob(JobOptions):
    plate: str                                        # plate(s) (glob): video, folder of numbered frames, or image
    double: str                                       # rig folder, or a neural double's model folder (with rig)
    rig: str | None = None                            # with a model folder: the rig built from the same fit
    plate_actor: str | None = None                    # actor id of the plate's performer (face_replace consent)
    face_index: int = Field(0, ge=0)                  # which face when the plate shows several (0 = largest)
    blend: Literal["poisson", "multiband", "feather"] = "poisson"
    colour: Literal["lab", "luma", "none"] = "lab"
    focal_px: float | None = Field(None, gt=0)        # plate camera focal length, px (default: a normal lens)
    plate_camera: str | None = None                   # the plate camera's calibration (K + lens distortion); a
                                                      # template per plate, e.g. "lenses/{plate}.json"
    plate_camera_name: str | None = None              # which camera of that file (when it has several)
    plate_undistort: str | None = None                # or the lens's ST-maps (with focal_px: the undistorted
    plate_redistort: str | None = None                # frame's focal length), undistort and redistort
    plate_principal: tuple[float, float] | None = None   # the maps' undistorted frame's principal point, px
    start: int = Field(0, ge=0)                       # first frame swapped
    end: int | None = Field(None, ge=1)               # frame after the last one swapped
    grow: float = Field(0.08, gt=-0.5, le=1.0)        # the face outline's growth for the matte
    relight: bool = False                             # shade the double by the plate's light
    matte: bool = False                               # write the per-frame blend masks
    shutter: Annotated[float, Field(ge=0, le=360)] | Literal["auto"] = 0.0   # the head's motion blur: the
                                                      # plate's shutter angle (0: none; auto: its frames' headers)
    shutter_samples: int = Field(6, ge=1, le=64)      # head renders over the open shutter
    bridge: int = Field(2, ge=0, le=12)               # detection dropouts of at most this many frames swapped
    identify: bool = True                             # after a cut, only the performer's face (told by their face)
    performer_photo: str | None = None                # a photo of the plate performer: swap that person
    face_reference: str | None = None                 # the plate performer's face reference folder (default: the
                                                      # plate actor's newest in the workspace, when they have one)
    label: str | None = None                          # visible disclosure label

    @model_validator(mode="after")
    def _maps_together(self):
        if bool(self.plate_undistort) != bool(self.plate_redistort):
            raise ValueError("plate_undistort and plate_redistort go together (the lens's two ST-maps)")
        if self.plate_principal is not None and not self.plate_undistort:
            raise ValueError("plate_principal is the principal point of the ST-maps' undistorted frame: give "
                             "plate_undistort and plate_redistort too")
        return self


def _swap_call(v: dict) -> dict:
    Path(v["out"]).parent.mkdir(parents=True, exist_ok=True)
    return {"plate": Path(v["plate"]), "double": Path(v["double"]), "rig": _p(v["rig"]), "out": Path(v["out"]),
            "plate_actor": v["plate_actor"], "face_index": v["face_index"], "blend": v["blend"],
            "colour": v["colour"], "focal_px": v["focal_px"], "plate_camera": _p(v["plate_camera"]),
            "plate_camera_name": v["plate_camera_name"], "plate_stmaps": _stmaps(v),
            "plate_principal": None if v["plate_principal"] is None else ",".join(map(str, v["plate_principal"])),
            "start": v["start"],
            "end": v["end"],
            "grow": v["grow"], "relight": v["relight"], "matte": v["matte"], "identify": v["identify"],
            "shutter": v["shutter"], "shutter_samples": v["shutter_samples"], "bridge": v["bridge"],
            "performer_photo": _p(v["performer_photo"]), "face_reference": _p(v["face_reference"]),
            "label": v["label"], "resume": "auto"}    # a task retried (its worker lost) goes on from its checkpoint


def _stmaps(v: dict) -> str | None:
    """`doppel swap --plate-stmaps` of a job's plate_undistort and plate_redistort (both, or None)."""
    maps = (v.get("plate_undistort"), v.get("plate_redistort"))
    return ",".join(maps) if all(maps) else None


def _swap_gate(v: dict) -> GateSpec:
    double = (v["double"], v["rig"]) if v["rig"] else (v["double"],)
    return GateSpec((v["plate"], *double), double)


def _swap_plate_gate(v: dict) -> tuple[ExtraGate, ...]:
    seen = (v["plate"], *(v[k] for k in ("performer_photo", "face_reference") if v[k]))   # the performer's likeness
    return (ExtraGate("plate_actor", "swap (plate performer)", GateSpec(seen, seen)),)


def _swap_reference(v: dict, workspace: Path | None) -> None:
    """The plate actor's face reference, as `doppel swap` would find it (its workers never open the workspace)."""
    if v["face_reference"] is None:
        from doppel.face_reference import plate_reference

        found = plate_reference(workspace, v["plate_actor"], None) if workspace is not None else None
        v["face_reference"] = str(found) if found is not None else None


def _swap_side(out: str) -> tuple[str, ...]:
    from doppel.face_swap.side_folder import side_folder

    return (str(side_folder(Path(out))),)


register_stage(StageSpec("swap", SwapJob, "face_replace", "doppel.commands.swap:swap",
                         (InputField("plate", "plate"), InputField("double", "double"),
                          InputField("rig", "rig", optional=True),
                          InputField("plate_camera", "lens", optional=True),
                          InputField("plate_undistort", "undistort", optional=True),
                          InputField("plate_redistort", "redistort", optional=True),
                          InputField("performer_photo", "photo", optional=True),
                          InputField("face_reference", "reference", optional=True)), _swap_call, _swap_gate,
                         output="file",
                         extra_gates=_swap_plate_gate, resolve=_swap_reference, discloses=True,
                         side_outputs=_swap_side))
