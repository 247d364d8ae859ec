"""An actor's face reference: what their face looks like, kept in the workspace, so that a swap can check that
the plate shows the person whose consent ``--plate-actor`` names.

Without one, ``--plate-actor`` is the operator's word: the swap picks the largest face of the first frame and
the consent looked up is whoever was named. With one (`doppel actor face ACTOR PHOTO...`, gated on the actor's
``face_replace`` consent: its only use is finding them in plates for face replacement), a swap under
``--plate-actor ACTOR`` swaps that person's face wherever they are, passes every other face through (listed),
and refuses a plate in which they are never found: nothing is written.

A reference holds no photo: 128-number face descriptors (dlib's face-recognition model,
`capture.face_identity`), one a photo, and crops of the photos' faces for people to see whom it shows.
It is a stage folder registered as an asset of kind ``face_reference``; the newest registered one of an actor
is the one used, and one whose files no longer match their registration is refused, never ignored.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.errors import DoppelError

REFERENCE_KIND = "face_reference"        # asset kind in the workspace index
REFERENCE_STAGE = "actor face"           # the stage that writes the folder
REFERENCES_FOLDER = "references"         # <workspace>/references/<actor id>/
DESCRIPTORS = "face_reference.npz"
THUMBNAIL = "face.png"                   # the first photo's face
CONTACT_SHEET = "faces.png"              # every photo's face, side by side (160 px tall)


class FaceReferenceError(DoppelError):
    """An actor's face reference cannot be used: edited or missing since it was registered, or unreadable."""


def reference_folder(workspace_root: str | os.PathLike, actor_id: str) -> Path:
    """Where `doppel actor face` writes an actor's face reference: <workspace>/references/<actor id>."""
    return Path(workspace_root) / REFERENCES_FOLDER / actor_id


def write_face_reference(photos: Sequence[str | os.PathLike], folder: str | os.PathLike,
                         params: dict | None = None) -> int:
    """Describe the face in each photo (one person's face alone in each, at least `MIN_FACE_PX` wide) and write
    ``folder``/face_reference.npz (descriptors (N, 128) float32, threshold), face.png (the first photo's face),
    faces.png (each photo's face, side by side) and manifest.json (the photos' hashes, never the photos).
    Returns N. ValueError (one line naming the photo) when a photo shows no face, several, one too small, or
    another person than the first."""
    from capture.face_identity import SAME_PERSON, performer_from_photos
    from core.meshio import write_png
    from core.storage import write_manifest

    photos = [Path(p) for p in photos]
    performer = performer_from_photos(photos, SAME_PERSON, what="face photo")
    folder = Path(folder)
    np.savez(folder / DESCRIPTORS, descriptors=np.stack(performer.views), threshold=np.float32(SAME_PERSON))
    write_png(folder / THUMBNAIL, performer.thumbnail)
    write_png(folder / CONTACT_SHEET, np.hstack(performer.crops))        # every photo's face, in order
    write_manifest(folder, REFERENCE_STAGE, inputs={f"photo_{i}": p for i, p in enumerate(photos)},
                   params={**(params or {}), "photos": len(photos), "model": "dlib_face_recognition_resnet_model_v1"},
                   outputs={"descriptors": DESCRIPTORS, "thumbnail": THUMBNAIL, "faces": CONTACT_SHEET})
    return len(performer.views)


def capture_views(session: str | os.PathLike, count: int = 4) -> list[Path]:
    """The images of a capture session (its first frame) that show the actor's face best: each camera's image
    with exactly one face at least `MIN_FACE_PX` wide, the ``count`` widest faces (px) first. ValueError (one
    line) when no camera shows one."""
    from capture.face_identity import faces_in_still, wide_enough
    from capture.frame_files import read_frame
    from capture.session import load_session

    s = load_session(session)
    first = s.frames[sorted(s.frames)[0]]
    widths = {}
    for cam in s.camera_names:
        if cam in first and len(faces := faces_in_still(read_frame(first[cam]))) == 1 and wide_enough(faces[0]):
            widths[first[cam]] = float(np.ptp(faces[0][:, 0]))
    if not widths:
        raise ValueError(f"capture {session}: no camera shows one face wide enough to tell who it is; give photos")
    return sorted(widths, key=widths.get, reverse=True)[:count]


def find_face_reference(ws, actor_id: str) -> Path | None:
    """The folder of ``actor_id``'s newest registered face reference in workspace ``ws``, or None when they have
    none. FaceReferenceError (one line) when that folder is gone or its files differ from what was registered
    (an edited reference could wave another person's plate through), or when the consent it was made under has
    been revoked (the person withdrew it: the reference is theirs to have deleted, not to be used)."""
    from assets.consent import get_consent
    from assets.hashing import path_sha256
    from assets.lineage import list_assets, on_disk

    found = list_assets(ws, actor_id, REFERENCE_KIND)
    if not found:
        return None
    asset = found[-1]
    folder = on_disk(ws, asset.path)
    fix = f"make it again: doppel actor face {actor_id} PHOTO..."
    consent = get_consent(ws, asset.consent_id) if asset.consent_id else None
    if consent is not None and consent.revoked:
        raise FaceReferenceError(f"{actor_id}'s face reference {folder} ({asset.id}) was made under consent "
                                 f"{consent.id}, revoked {consent.revoked[:10]}: delete it, and {fix} under a valid "
                                 "consent")
    if not folder.is_dir():
        raise FaceReferenceError(f"{actor_id}'s face reference {folder} ({asset.id}) is missing; {fix}")
    if path_sha256(folder) != asset.sha256:
        raise FaceReferenceError(f"{actor_id}'s face reference {folder} ({asset.id}) was changed since it was "
                                 f"registered; {fix}")
    return folder


def plate_reference(workspace, plate_actor: str | None, given: Path | None) -> Path | None:
    """The plate performer's face reference folder: --face-reference, else --plate-actor's newest in the workspace
    (`find_face_reference`; FaceReferenceError when it was edited), else None. Under a batch
    driver's authorisation the workspace is not opened (the driver resolved it: `doppel.batch.stages`)."""
    from assets.workspace import UNKNOWN_ACTOR_ID, VIRTUAL_ACTOR_ID
    from doppel.consent_gate import find_workspace, is_preauthorized

    if given is not None or plate_actor in (None, VIRTUAL_ACTOR_ID, UNKNOWN_ACTOR_ID) or is_preauthorized():
        return given
    ws = find_workspace(workspace)
    return find_face_reference(ws, plate_actor) if ws is not None else None


def plate_performer(photo: str | os.PathLike | None, reference: str | os.PathLike | None, cfg):
    """Whom a swap takes for the plate performer (`capture.face_identity.Performer`, or None: the largest face of
    the first frame), checked against ``cfg`` (`doppel.face_swap.swap.SwapConfig`): the face reference's person
    (the photo's view added when the photo shows the same person), else the person of the photo. ValueError (one
    line) when the photo shows another person than the reference, or the options cannot honour them."""
    from capture.face_identity import MAX_VIEWS, performer_from_photo
    from doppel.face_swap.swap import check_performer

    if reference is None:
        performer = performer_from_photo(photo) if photo is not None else None
        check_performer(performer, cfg)
        return performer
    performer = load_face_reference(reference)
    check_performer(performer, cfg)
    if photo is not None:
        seen = performer_from_photo(photo)
        gap = performer.distance(seen.views[0])
        if gap >= performer.threshold:
            raise ValueError(f"--performer-photo {photo}: shows another person than {performer.name}'s face "
                             f"reference {reference} (face descriptor distance {gap:.2f}, one person under "
                             f"{performer.threshold:g})")
        if len(performer.views) < MAX_VIEWS:
            performer.add_view(seen.views[0])
    return performer


def performer_check(plate_actor: str | None, reference: str | os.PathLike | None) -> str:
    """How a swap checks that the plate shows ``plate_actor``, in words for its manifest and the command's output."""
    from assets.workspace import UNKNOWN_ACTOR_ID, VIRTUAL_ACTOR_ID

    if reference is not None:
        return f"face reference {reference}"
    if plate_actor in (None, VIRTUAL_ACTOR_ID, UNKNOWN_ACTOR_ID):
        return "no real person named by --plate-actor"
    return f"not checked: {plate_actor} has no face reference (doppel actor face {plate_actor} PHOTO...)"


def load_face_reference(folder: str | os.PathLike):
    """The `capture.face_identity.Performer` a face reference folder describes (its views, threshold and face
    crop; ``source`` the folder, ``name`` the actor it was made for). FaceReferenceError when a file differs from
    its manifest or cannot be read."""
    from capture.face_identity import Performer
    from core.storage import read_manifest, sha256_file

    folder = Path(folder)
    try:
        manifest = read_manifest(folder)
        for entry in manifest["outputs"].values():
            if sha256_file(folder / entry["path"]) != entry["sha256"]:
                raise FaceReferenceError(f"{folder / entry['path']}: differs from the face reference's manifest; "
                                         "make the reference again (doppel actor face)")
        with np.load(folder / DESCRIPTORS) as z:
            views, threshold = np.asarray(z["descriptors"], np.float32), float(z["threshold"])
        thumb = _read_png(folder / THUMBNAIL)
    except (OSError, KeyError, ValueError) as e:
        raise FaceReferenceError(f"{folder}: not a readable face reference ({e})") from None
    if views.ndim != 2 or views.shape[1] != 128 or not len(views) or not 0 < threshold < 2:
        raise FaceReferenceError(f"{folder}: not a face reference (descriptors {views.shape})")
    name = manifest.get("params", {}).get("actor_id") or folder.name
    performer = Performer(threshold, source=folder, name=str(name))
    for i, view in enumerate(views):
        performer.add_view(view, thumb if i == 0 else None)
    return performer


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
