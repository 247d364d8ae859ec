"""``Snapshots``: the K best states of one training run by held-out PSNR, kept to be drawn together.

A run's held-out PSNR wanders by a few tenths of a dB from one evaluation to the next once the model starts to
overfit the training views; the states around the peak overfit them differently. Drawn as the mean of their
renders (``neural_render.ensemble``) they cost nothing to train, only one U-Net per state to render.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

from torch import Tensor, nn

__all__ = ["Snapshot", "Snapshots"]


@dataclass
class Snapshot:
    """One kept state: its held-out PSNR (dB), the step it was scored at, a copy of its state_dict."""

    psnr: float
    step: int
    state: dict[str, Tensor]


class Snapshots:
    """The ``k`` best states offered (ties keep the earlier), best first; ``k`` <= 1 keeps nothing (the trainer keeps
    its best state itself)."""

    def __init__(self, k: int):
        if k < 1:
            raise ValueError(f"snapshots must be >= 1, got {k}")
        self.k = k
        self.items: list[Snapshot] = []

    def offer(self, psnr: float, step: int, model: nn.Module) -> bool:
        """Keep a copy of ``model``'s state when ``psnr`` is among the k best so far; True when kept."""
        if self.k <= 1 or not math.isfinite(psnr):
            return False
        if len(self.items) >= self.k and psnr <= self.items[-1].psnr:
            return False
        self.items.append(Snapshot(psnr, step, copy.deepcopy(model.state_dict())))
        self.items.sort(key=lambda s: -s.psnr)
        del self.items[self.k:]
        return True

    def others(self, best_step: int) -> list[Snapshot]:
        """The kept states other than the one of step ``best_step`` (the run's kept best), best first, at most k - 1."""
        return [s for s in self.items if s.step != best_step][:self.k - 1]
