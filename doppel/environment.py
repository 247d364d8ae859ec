"""Checks of the runtime environment, used by `doppel doctor` (and callable from Python)."""

from __future__ import annotations

import importlib
import os
import platform
from dataclasses import dataclass
from pathlib import Path

MODELS_ENV = "DOPPEL_MODELS_DIR"
_REINSTALL = "run `make setup` (or `pip install -e .`) in the Doppel checkout"


@dataclass(frozen=True)
class Check:
    name: str       # what was checked
    ok: bool        # present and usable
    required: bool  # Doppel cannot run its pipeline without it
    detail: str     # version or what was found
    fix: str = ""   # what to run or set when not ok


def _module_version(module: str, required: bool, fix: str = _REINSTALL, attr: str = "__version__") -> Check:
    try:
        mod = importlib.import_module(module)
    except (ImportError, OSError, RuntimeError, AttributeError) as e:  # missing .so, ABI: reported, not raised
        return Check(module, False, required, f"{type(e).__name__}: {e}".splitlines()[0][:120], fix)
    version = getattr(mod, attr, None)
    if version is None:
        try:
            from importlib import metadata
            version = metadata.version(module.replace("_", "-"))
        except metadata.PackageNotFoundError:
            version = "unknown version"
    return Check(module, True, required, str(version))


def _torch() -> list[Check]:
    base = _module_version("torch", True, "pip install torch==2.13.0")
    if not base.ok:
        return [base]
    import torch

    if torch.cuda.is_available():
        cuda = Check("cuda", True, False, f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})")
    else:
        cuda = Check("cuda", False, False, "no CUDA device: CPU paths are used", "")
    return [base, cuda, _openmp()]


def _openmp() -> Check:
    """OpenMP's wait policy for torch in this process (README "Threads"): passive keeps CPU work fast on a
    shared machine; busy-waiting threads (torch imported before Doppel, or DOPPEL_NO_TUNING=1) slow it."""
    from core.runtime import openmp_policy

    policy = openmp_policy()
    return Check("openmp", "PASSIVE" in policy.upper(), False, policy,
                 "import a Doppel package before torch, or set OMP_WAIT_POLICY=PASSIVE (README, Threads)")


def _bpy() -> Check:
    try:
        from importlib import metadata
        version = metadata.version("bpy")
    except metadata.PackageNotFoundError:
        return Check("bpy", False, False, "Blender as a Python module is not installed (FBX export needs it)",
                     "pip install bpy==5.0.1")
    # importing bpy takes seconds and a lot of memory; FBX export runs it in a worker process anyway
    return Check("bpy", True, False, f"{version} (FBX export runs it in a worker process)")


def _open3d() -> Check:
    c = _module_version("open3d", True)
    if not c.ok and "libusb" in c.detail:
        return Check("open3d", False, True, c.detail, "sudo apt-get install -y libusb-1.0-0")
    return c


def _uv_file_note(folder: Path, model: str) -> str:
    """'; UV layout: NAME' or what to download for one (a SMPL-X .npz usually carries its own vt / ft)."""
    from reconstruction.body_models.uv_layouts import UV_FILES

    uv = next((n for n in UV_FILES[model] if (folder / n).is_file()), None)
    if uv is not None:
        return f"; UV layout: {uv}"
    return ("; no smplx_uv.obj (used when the model file has no vt / ft)" if model == "smplx" else
            "; no FLAME_texture.npz / head_template_mesh.obj (`doppel texture` and `doppel render` need a UV layout)")


def _model_files() -> list[Check]:
    root = os.environ.get(MODELS_ENV)
    fix = (f"download SMPL-X / FLAME under their licences and set {MODELS_ENV}=/path/to/models "
           "(expects smplx/SMPLX_NEUTRAL.npz or .pkl, flame/FLAME_NEUTRAL.pkl)")
    if not root:
        return [Check("SMPL-X files", False, False, f"{MODELS_ENV} not set (Anny, the default, needs none)", fix),
                Check("FLAME files", False, False, f"{MODELS_ENV} not set", fix)]
    base = Path(root)
    out = []
    for name, sub, patterns in (("SMPL-X files", "smplx", ("SMPLX_*.npz", "SMPLX_*.pkl")),
                                ("FLAME files", "flame", ("FLAME_*.pkl", "generic_model.pkl"))):
        found = sorted({p.name for pat in patterns for p in (base / sub).glob(pat)}) if (base / sub).is_dir() else []
        detail = f"{base / sub}: {', '.join(found) if found else 'no model files'}"
        if sub == "flame" and found:
            has = (base / sub / "mediapipe_landmark_embedding.npz").is_file()
            detail += ("; MediaPipe embedding found" if has else
                       "; no mediapipe_landmark_embedding.npz (FLAME fits and `doppel swap` need it)")
        if sub == "smplx" and found:
            has = (base / sub / "SMPL-X__FLAME_vertex_ids.npy").is_file()
            detail += ("; FLAME correspondence found (face landmarks through FLAME's embedding)" if has else
                       "; no SMPL-X__FLAME_vertex_ids.npy (face landmarks through FLAME's embedding need it)")
        if found:
            detail += _uv_file_note(base / sub, sub)
        out.append(Check(name, bool(found), False, detail, fix))
    return out


def check_environment() -> list[Check]:
    """Every check `doppel doctor` shows, in display order."""
    import doppel

    checks = [
        Check("python", platform.python_version().startswith("3.11"), True, platform.python_version(),
              "Doppel needs Python 3.11 (bpy 5.0 wheels exist only for 3.11)"),
        Check("doppel", True, True, doppel.__version__),
        _module_version("numpy", True),
    ]
    np_check = checks[-1]
    if np_check.ok and not np_check.detail.startswith("1."):
        checks[-1] = Check("numpy", False, True, np_check.detail,
                           "pip install 'numpy<2' (MediaPipe 0.10.21 and bpy need 1.x)")
    checks += _torch()
    checks += [
        _module_version("cv2", True),
        _module_version("mediapipe", True),
        _open3d(),
        _bpy(),
        _usd(),
        _module_version("ezc3d", True),                                    # C3D marker takes
        _module_version("anny", True),
        _module_version("smplx", True),
        _module_version("pycolmap", True),
        _module_version("roma", True),
        _module_version("OpenImageIO", True, attr="VERSION_STRING"),     # DPX plates
        _ocio(),
        _face_identity(),
        _ffmpeg(),
        _used_for(_module_version("c2pa", True), "content credentials: disclosure, `doppel verify`"),
        _used_for(_module_version("ray", True), "`doppel batch`: embedded, or a cluster with --address"),
    ]
    checks += _model_files()
    checks += [_cpus(), _workspace_storage()]
    return checks


def _cpus() -> Check:
    """The cores the CPU work uses: the affinity, capped by a container's CPU quota (core/cpu_quota.py)."""
    from core.cpu_quota import container_cpus, usable_cores

    quota = container_cpus()
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    where = f"container quota {quota:g} CPUs" if quota is not None else "no container CPU quota"
    return Check("cpus", True, False, f"{usable_cores()} usable ({where}; OMP_NUM_THREADS {threads})")


def _workspace_storage() -> Check:
    """Where the workspace's index is ($DOPPEL_WORKSPACE or the current folder, when it is one): its file system
    and SQLite journal (the rollback journal on a network file system, assets.workspace.journal_mode_for), and
    whether it is shared with a group (core.group_sharing)."""
    from assets.workspace import INDEX_NAME, journal_mode_for, resolve_root
    from core.filesystems import filesystem_type
    from core.group_sharing import group_label, sharing_gid

    root = resolve_root(None)
    index = root / INDEX_NAME
    if not index.is_file():
        return Check("workspace", True, False, f"none at {root} ($DOPPEL_WORKSPACE or the current folder)")
    gid = sharing_gid(root)
    shared = f"shared with group {group_label(gid)}" if gid is not None else "one account's (`doppel init --group`)"
    return Check("workspace", True, False, f"{root}: index on {filesystem_type(index) or 'an unknown file system'},"
                                           f" journal {journal_mode_for(index)}, {shared}")


def _ocio() -> Check:
    """PyOpenColorIO and the config plate colour spaces are read in ($OCIO, else the built-in ACES studio one)."""
    base = _module_version("PyOpenColorIO", True)
    if not base.ok:
        return base
    from capture.plate_colour import available_colorspaces, config_name

    try:
        n = len(available_colorspaces())
    except ValueError as e:
        return Check("PyOpenColorIO", False, True, f"{base.detail}; {e}", "set $OCIO to a readable config or unset it")
    return Check("PyOpenColorIO", True, True, f"{base.detail}; config {config_name()} ({n} colour spaces)")


def _face_identity() -> Check:
    """dlib and its face-recognition model (`doppel swap` tells the plate performer from other people)."""
    base = _module_version("dlib", True)
    if not base.ok:
        return base
    from capture.face_identity import model_path

    try:
        path = model_path()
    except FileNotFoundError as e:
        return Check("dlib", False, True, f"{base.detail}; {e}", _REINSTALL)
    return Check("dlib", True, True, f"{base.detail}; face-recognition model {path.name}")


def _usd() -> Check:
    try:
        from pxr import Usd
    except (ImportError, OSError) as e:
        return Check("usd-core", False, True, f"{type(e).__name__}: {e}", _REINSTALL)
    return Check("usd-core", True, True, ".".join(str(x) for x in Usd.GetVersion()))


def _used_for(check: Check, what: str) -> Check:
    """``check`` with what the component is for added to its detail when it is present."""
    return Check(check.name, check.ok, check.required, f"{check.detail} ({what})" if check.ok else check.detail,
                 check.fix)


def _ffmpeg() -> Check:
    """The ffmpeg binary imageio-ffmpeg ships (video plates, previews, shot movies): found and runnable."""
    try:
        import imageio_ffmpeg

        exe, version = imageio_ffmpeg.get_ffmpeg_exe(), imageio_ffmpeg.get_ffmpeg_version()
    except (ImportError, OSError, RuntimeError) as e:
        return Check("ffmpeg", False, True, f"{type(e).__name__}: {e}".splitlines()[0][:120], _REINSTALL)
    return Check("ffmpeg", True, True, f"{version} (video plates, previews and shot movies; {exe})")
