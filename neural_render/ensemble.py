"""``NeuralEnsemble``: several neural doubles of one mesh, trained apart (different seeds, one CPU core each), drawn
as the mean of their renders.

Members trained from different random starts and crop orders overfit the training views differently; on the views
no camera trained on, the mean of their premultiplied RGBA has a lower squared error than a member's (a mean's
error is at most the mean of the errors: Jensen), which is what held-out and novel views gain. Every member draws
the same G-buffer (one rasterization per view); the cost is one texture lookup and one U-Net per member.

A model folder with members (the output of `doppel render train --members N`) is member 0's folder
(``neural_render.neural_double``) whose config.json lists the others' folders, relative to it, under
``"members"`` (``members/1``, ...); any folder may list its own (a member's snapshots, ``snapshots/1``, ...:
``neural_render.snapshots``). ``load_double`` reads either kind.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from capture.camera import Camera
from neural_render.gbuffer import GBuffer
from neural_render.neural_double import ModelError, NeuralDouble, load_model, read_model_config

__all__ = ["NeuralEnsemble", "mean_rgba", "load_double", "member_folders", "MEMBERS_KEY"]

MEMBERS_KEY = "members"


def mean_rgba(renders: list[Tensor]) -> Tensor:
    """The mean of K straight-alpha RGBA renders (each (..., 4), RGB in [0, 1]) taken in premultiplied form (what
    compositing averages): (..., 4) straight alpha; RGB is 0 where every alpha is 0."""
    a = torch.stack([r[..., 3:] for r in renders]).mean(0)
    prem = torch.stack([r[..., :3] * r[..., 3:] for r in renders]).mean(0)
    return torch.cat([prem / a.clamp_min(1e-6), a], -1)


class NeuralEnsemble(nn.Module):
    """Members (NeuralDouble, the same topology, UV layout and training cameras) drawn as one model: rendering
    returns ``mean_rgba`` of the members' renders. Everything else (mesh buffers, the CGI texture, ``surface``,
    ``gbuffer``, ``config``, ``renderer`` for its size multiple) is member 0's."""

    def __init__(self, members: list[NeuralDouble]):
        super().__init__()
        if not members:
            raise ValueError("NeuralEnsemble: needs at least one member")
        sig, cams = members[0].signature(), members[0].config.cameras
        for k, m in enumerate(members[1:], 1):
            if m.signature() != sig:
                raise ModelError(f"ensemble member {k} was trained on another topology / UV layout than member 0")
            if m.config.cameras != cams:
                raise ModelError(f"ensemble member {k} was trained on cameras {m.config.cameras}, member 0 on {cams}")
            if m.config.refine_mesh:
                raise ModelError(f"ensemble member {k} learned its own mesh offsets (refine_mesh): members must "
                                 "draw one surface")
        self.members = nn.ModuleList(members)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            members = self.__dict__.get("_modules", {}).get("members")
            if members is None:         # not built yet (copying, unpickling): nothing to delegate to
                raise
            return getattr(members[0], name)

    def __len__(self) -> int:
        return len(self.members)

    def render_gbuffer(self, g: GBuffer, code: Tensor | None = None, camera_index: Tensor | None = None,
                       with_residual: bool = False) -> Tensor:
        """(B, H, W, 4) RGBA, sRGB, straight alpha: ``mean_rgba`` of every member's ``render_gbuffer`` of g (see
        NeuralDouble.render_gbuffer). with_residual is for training a single member and is refused here."""
        if with_residual:
            raise ValueError("NeuralEnsemble.render_gbuffer: with_residual is for training one member")
        return mean_rgba([m.render_gbuffer(g, code, camera_index) for m in self.members])

    def forward(self, verts: Tensor, cameras: Camera, code: Tensor | None = None) -> Tensor:
        """Render verts (V, 3) or (B, V, 3) world metres in B cameras: (B, H, W, 4) RGBA, sRGB, straight alpha
        (one G-buffer, drawn by every member)."""
        return self.render_gbuffer(self.members[0].gbuffer(verts, cameras), code)


def member_folders(directory: str | Path) -> list[Path]:
    """Every model folder drawn by the model folder ``directory``: itself first, then the folders its config.json
    lists under ``"members"`` (relative paths inside it; each may list its own, e.g. a member's snapshots,
    ``neural_render.snapshots``), depth first. ModelError (one line) for a listed folder outside its parent."""
    d = Path(directory)
    out = [d]
    for name in read_model_config(d).get(MEMBERS_KEY) or []:
        sub = (d / name).resolve()
        if d.resolve() not in sub.parents:
            raise ModelError(f"{d}: member folder {name!r} is outside the model folder")
        out += member_folders(d / name)
    return out


def load_double(directory: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """(model, the folder's config.json dict) of a model folder: a NeuralDouble, or a NeuralEnsemble of every
    folder ``member_folders`` lists when there are several. ModelError (one line) when a member is missing,
    unreadable or does not match the first."""
    d = Path(directory)
    model, meta, _ = load_model(d, device)
    folders = member_folders(d)
    if len(folders) == 1:
        return model, meta
    members = [model] + [load_model(f, device)[0] for f in folders[1:]]
    return NeuralEnsemble(members).to(device), meta
