"""An export's --out that already exists: replaced only when it is an earlier Doppel export (its provenance inside
it tells), else refused without --force."""

from __future__ import annotations

from pathlib import Path

from assets.export.gltf import read_glb_json


def check_replaceable(out: Path, force: bool) -> None:
    """ValueError (one line) when ``out`` exists and is not an earlier Doppel export (its provenance is what tells:
    `written_by_doppel`), unless ``force``: `doppel export` replaced any file of the name, a client's delivery or
    a hand-finished rig among them, without a word. Re-exporting over Doppel's own export is the usual case."""
    if out.exists() and not force and not written_by_doppel(out):
        raise ValueError(f"{out}: exists and is not a Doppel export (no Doppel provenance in it); give another "
                         "name, or --force to replace it")


def written_by_doppel(path: Path) -> bool:
    """Whether the export file ``path`` carries Doppel's provenance: a glb's asset.extras.doppel, a USD layer's
    customLayerData "doppel", an FBX's or an Alembic cache's doppel_version user property."""
    import mmap

    suffix = path.suffix.lower()
    try:
        if suffix == ".glb":
            return "doppel" in ((read_glb_json(path).get("asset") or {}).get("extras") or {})
        if suffix in (".usd", ".usda", ".usdc", ".usdz"):
            from pxr import Usd

            stage = Usd.Stage.Open(str(path))
            return stage is not None and "doppel" in stage.GetRootLayer().customLayerData
        if suffix == ".abc":
            from assets.export.alembic_read import string_properties

            return "doppel_doppel_version" in string_properties(path)
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return m.find(b"doppel_version") >= 0
    except Exception:  # noqa: BLE001 - unreadable as that format: not something Doppel wrote
        return False
