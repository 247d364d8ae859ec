"""Exponential moving average of a model's weights (Polyak averaging) for evaluation and the kept state.

A neural double's held-out PSNR wanders by a few tenths of a dB from one evaluation to the next on the plateau
(each step sees two random crops); the average of the recent weights is a steadier, usually better model than
any one of them. The trainer keeps the average beside the live weights, scores the held-out views with it and
keeps it as the best state; the optimiser only ever sees the live weights.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn


class WeightAverage:
    """EMA of every floating-point parameter of ``model``: avg = d * avg + (1 - d) * live after each step.

    decay: d in [0, 1); the first steps use min(d, (1 + n) / (10 + n)) (n = updates so far) so the average is
    not dominated by the initial weights.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"WeightAverage: decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.average = {n: p.detach().clone() for n, p in model.named_parameters() if p.is_floating_point()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's current parameters into the average."""
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for n, p in model.named_parameters():
            if n in self.average:
                self.average[n].mul_(d).add_(p.detach(), alpha=1 - d)
        self.updates += 1

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[None]:
        """Inside the block the model holds the averaged parameters; the live ones are put back after it."""
        live: dict[str, Tensor] = {}
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n in self.average:
                    live[n] = p.detach().clone()
                    p.copy_(self.average[n])
        try:
            yield
        finally:
            with torch.no_grad():
                for n, p in model.named_parameters():
                    if n in live:
                        p.copy_(live[n])
