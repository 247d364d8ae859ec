"""Alembic geometry caches: written through Blender's Alembic writer, read back by Blender's Alembic reader (a mesh
sequence cache, no skeleton), every frame compared with Rig.pose; units, the bind pose alone, the provenance read
by Doppel's own Ogawa reader, and what is refused. Blender processes in this module: 3 exports + 1 import."""

import numpy as np
import pytest

from assets.export import export_rig
from assets.export.alembic_read import AlembicReadError, property_headers, string_properties
from assets.export.common import reference_vertices
from assets.export.existing_out import written_by_doppel
from assets.export.fbx import evaluation_task
from assets.export.run import default_options
from assets.export_verify import read_export_provenance

TOL_M = 1e-5
FRAMES = [0, 5, 11]
PROV = {"actor_id": "actor-42", "consent_ref": "consent-7", "doppel_version": "0.1.0", "frames": 12}


@pytest.fixture(scope="module")
def caches(tmp_path_factory, tiny_rig, tiny_anim):
    from assets.blender_worker import run_blender_tasks
    from core.conventions import zup_to_doppel

    d = tmp_path_factory.mktemp("abc")
    files = {"m": export_rig(tiny_rig, "abc", d / "double.abc", tiny_anim, provenance=PROV),
             "cm": export_rig(tiny_rig, "abc", d / "maya.abc", tiny_anim, default_options("abc", "maya")),
             "rest": export_rig(tiny_rig, "abc", d / "rest.abc", None, provenance=PROV)}
    tasks = [evaluation_task(files["m"].path, FRAMES, tiny_anim.fps),
             evaluation_task(files["cm"].path, FRAMES, tiny_anim.fps, scale=0.01),        # centimetres
             evaluation_task(files["rest"].path, [0], tiny_anim.fps, static=True)]
    points = [zup_to_doppel(r.arrays["vertices"]) for r in run_blender_tasks(tasks)]
    return files, dict(zip(("m", "cm", "rest"), points, strict=True))


def test_every_frame_of_the_cache_is_the_rigs_pose(caches, tiny_rig, tiny_anim):
    files, points = caches
    ref = reference_vertices(tiny_rig, tiny_anim, FRAMES)
    for k in ("m", "cm"):                                  # the Maya preset's file is in centimetres
        assert points[k].shape == ref.shape, k             # the rig's vertex order, every frame asked for
        assert np.abs(points[k] - ref).max() < TOL_M, k
    assert np.abs(points["m"][1] - ref[0]).max() > 1e-3     # the comparison can fail: another frame is far off
    assert files["m"].frames == 12 and files["m"].options.up == "y" and files["m"].options.units == "m"
    assert files["cm"].options.units == "cm"


def test_without_an_animation_the_cache_is_the_bind_pose(caches, tiny_rig):
    files, points = caches
    assert files["rest"].frames == 0
    assert np.abs(points["rest"][0] - tiny_rig.vertices).max() < TOL_M


def test_the_provenance_is_read_back_from_the_file(caches, tmp_path):
    files, _ = caches
    prov = read_export_provenance(files["m"].path)
    assert prov == {k: str(v) for k, v in PROV.items()}
    assert written_by_doppel(files["m"].path) and not written_by_doppel(files["cm"].path)   # no provenance given
    assert string_properties(files["cm"].path) == {}
    (tmp_path / "x.abc").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))                      # an HDF5 Alembic
    with pytest.raises(ValueError, match=r"x\.abc: not a readable ABC file \(not an Alembic file"):
        read_export_provenance(tmp_path / "x.abc")
    data = files["m"].path.read_bytes()
    (tmp_path / "cut.abc").write_bytes(data[: len(data) // 2])                              # a copy cut short
    with pytest.raises(AlembicReadError, match="past the end"):
        string_properties(tmp_path / "cut.abc")
    assert not written_by_doppel(tmp_path / "cut.abc")


def test_property_headers_decode_a_compound_alembic_writes():
    # a compound of: a scalar string "doppel_actor_id" (1-byte sizes, 3 samples, time sampling 1, inline metadata
    # "interpretation=x") and a compound ".geom" (indexed metadata 0)
    info = 0x1 | (12 << 4) | 0x100 | 0x200 | (1 << 12) | (0xFF << 20)
    name, meta = b"doppel_actor_id", b"interpretation=x"
    scalar = info.to_bytes(4, "little") + bytes([3, 1, 2, 1, len(name)]) + name + bytes([len(meta)]) + meta
    compound = (0).to_bytes(4, "little") + bytes([5]) + b".geom"
    heads = property_headers(scalar + compound)
    assert [(h.kind, h.pod, h.name) for h in heads] == [(1, 12, "doppel_actor_id"), (0, 0, ".geom")]
    with pytest.raises(AlembicReadError, match="cut short"):
        property_headers((scalar + compound)[:-3] + bytes([9]))


def test_a_z_up_alembic_is_refused(tiny_rig, tmp_path):
    for kw in ({"preset": "unreal"}, {"up": "z"}):
        with pytest.raises(ValueError, match="Alembic files are Y-up by convention"):
            default_options("abc", **kw)
    with pytest.raises(ValueError, match=r"expected a file ending in \.abc"):
        export_rig(tiny_rig, "abc", tmp_path / "double.fbx")
    assert not list(tmp_path.iterdir())


def test_a_cache_that_cannot_fit_on_the_disk_is_refused_before_any_work(tiny_rig, tiny_anim, tmp_path, monkeypatch):
    import assets.blender_worker as bw
    from core.limits import ResourceLimitError

    monkeypatch.setattr("core.limits.free_disk_bytes", lambda p: 10_000.0)     # 12 x 192 x 12 bytes needed
    monkeypatch.setattr(bw, "run_blender_tasks", lambda *a, **k: pytest.fail("Blender started"))
    with pytest.raises(ResourceLimitError, match=r"an Alembic cache of 12 frames of 192 vertices takes about .* free"):
        export_rig(tiny_rig, "abc", tmp_path / "double.abc", tiny_anim)
    assert not list(tmp_path.iterdir())
