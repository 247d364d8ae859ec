"""Review sites that hold copies of a workspace's outputs, so that a consent's purge deletes those copies too.

`doppel review` copies the files its pages show (a swap's frames, a rig's previews, an export's glb) into the site
folder. A site built before a revocation kept them after the consent's purge: copies of the likeness nobody
registered. So building a site of a workspace appends ``review.site`` to its audit log (`record_site`: the site's
path, the assets whose files it copied, who and when) and the purge takes the sites whose latest build copied one
of the outputs it deletes (`sites_holding`): a site is rebuilt by `doppel review`, which leaves a lapsed consent's
files out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from assets import audit
from assets.lineage import on_disk, workspace_relative
from assets.workspace import Workspace

SITE = "review.site"


def record_site(ws: Workspace, site: str | os.PathLike, asset_ids: Iterable[str]) -> int:
    """Append the ``review.site`` record of a site built at ``site`` with copies of ``asset_ids``' files; its seq."""
    with ws.write() as con:
        return audit.append(con, {"action": SITE, "site": workspace_relative(ws, site),
                                  "assets": sorted(set(asset_ids))}).seq


def sites_holding(ws: Workspace, asset_ids: set[str]) -> list[tuple[str, Path, list[str]]]:
    """(stored path, path on disk, the assets of ``asset_ids`` it copied) of each review site on disk whose latest
    build copied files of one of ``asset_ids``."""
    latest: dict[str, list[str]] = {}
    with ws.read() as con:
        for (text,) in con.execute("SELECT record FROM audit WHERE record LIKE ? ORDER BY seq",
                                   (f'%"action":"{SITE}"%',)):
            rec = json.loads(text)
            if rec.get("action") == SITE and isinstance(rec.get("site"), str):
                latest[rec["site"]] = [str(a) for a in rec.get("assets") or ()]
    out = []
    for stored, copied in latest.items():
        hit = sorted(set(copied) & asset_ids)
        path = on_disk(ws, stored)
        if hit and path.is_dir():
            out.append((stored, path, hit))
    return out
