"""Per-step cost of choosing training crops: the person pixels found every step (as before 2026-12-03) against the
crop centres kept per view (`neural_render.training.crop_centres`), at 256 and 1024 px, supersample 2, batch 2.

    PYTHONPATH=. python benchmarks/crop_centres.py

A standing figure (an ellipse over 22 % of each view) stands in for the person and mesh masks; one torch thread.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import _contention  # noqa: F401 - first: Doppel's core before torch (benchmarks/_contention.py)
import torch

import neural_render.training as training

S, VIEWS, STEPS = 2, 14, 20


def fake_views(size: int) -> SimpleNamespace:
    """masks (VIEWS, size, size) and a supersampled mesh mask (VIEWS, S size, S size) of one ellipse."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    c = size / 2
    person = (((yy - c) / (0.44 * size)) ** 2 + ((xx - c) / (0.156 * size)) ** 2) < 1
    g = person.repeat_interleave(S, 0).repeat_interleave(S, 1)
    return SimpleNamespace(masks=person.float()[None].expand(VIEWS, -1, -1).contiguous(),
                           g=SimpleNamespace(mask=g[None].expand(VIEWS, -1, -1).contiguous()), crop_centres=None)


def found_each_step(views, ids, gen) -> list[tuple[int, int]]:
    """The centres as drawn before they were kept: a nonzero over each batch view's masks."""
    H, W = views.masks.shape[1:]
    out = []
    for i in ids.tolist():
        gm = views.g.mask[i].view(H, S, W, S).any(3).any(1)
        pts = ((views.masks[i] > 0.5) | gm).nonzero()
        out.append(tuple(pts[int(torch.randint(len(pts), (1,), generator=gen))].tolist()))
    return out


def main() -> None:
    from _contention import machine_line, time_idle_and_busy

    torch.set_num_threads(1)
    training._supersample = lambda v: S           # the fake views carry no G-buffer shape to read it from
    ids = torch.tensor([3, 7])
    print(machine_line())
    for size in (256, 1024):
        views, kept, gen = fake_views(size), fake_views(size), torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        kept.crop_centres = training.crop_centres(kept)
        once = time.perf_counter() - t0
        # (a call that returns a list reports its own samples to time_idle_and_busy: these return None)
        rows = time_idle_and_busy({"found each step": lambda v=views, g=gen: [found_each_step(v, ids, g)] and None,
                                   "kept": lambda v=kept, n=size, g=gen: [training._crop_boxes(v, ids, n // 2, g)]
                                   and None}, repeats=STEPS)
        a, b = rows["found each step"], rows["kept"]
        print(f"{size} px, supersample {S}, batch 2, ms per step (idle / one core busy): found each step "
              f"{a.idle_ms:.2f} / {a.busy_ms:.2f}, kept {b.idle_ms:.3f} / {b.busy_ms:.3f} "
              f"({a.idle_ms / b.idle_ms:.0f}x idle); kept centres made once for {VIEWS} views in {once:.2f} s")


if __name__ == "__main__":
    main()
