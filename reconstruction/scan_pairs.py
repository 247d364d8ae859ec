"""Control points for scan registration (Wrap's "point pairs"): a JSON file of pairs, each a point on the
scan and the model point that must land there, validated with pydantic (errors name the file and field).

    {
      "schema": 1,
      "weight": 10.0,                                   # optional: strength of every pair (default 10)
      "pairs": [
        {"scan_point": [0.031, 1.52, 0.094], "model_vertex": 8123},
        {"scan_vertex": 1520, "model_landmark": "face 61"},
        {"scan_point": [-0.4, 0.9, 0.0], "model_landmark": "pose 15", "weight": 20}
      ]
    }

Scan side: ``scan_point`` (x, y, z in the scan file's frame and units, as a DCC shows it) or
``scan_vertex`` (an index into the scan's vertices). Model side: ``model_vertex`` (an index into the body
model's vertices) or ``model_landmark``: a calibrated landmark name ("pose 0"-"pose 32", "face 0"-"face 477",
"hand.L 0"-"hand.L 20", "hand.R 0"-"hand.R 20", MediaPipe numbering; landmark_regressor.py) or a pose name such
as "left_wrist".
The automatic scan landmarks have strength about 1, so the default 10 puts control points above them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from reconstruction.scan_registration import Scan, ScanCorrespondences

__all__ = ["PairsFileError", "ScanPair", "ScanPairsFile", "read_pairs", "pairs_correspondences"]

SCHEMA = 1
DEFAULT_WEIGHT = 10.0


class PairsFileError(ValueError):
    """A control-point (pairs) file is missing, not JSON, or fails validation; the message names file and field."""


class ScanPair(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scan_point: tuple[float, float, float] | None = None    # scan file's frame and units
    scan_vertex: int | None = Field(default=None, ge=0)
    model_vertex: int | None = Field(default=None, ge=0)
    model_landmark: str | None = None
    weight: float | None = Field(default=None, gt=0, allow_inf_nan=False)

    @field_validator("scan_point")
    @classmethod
    def _finite(cls, v):
        if v is not None and not all(np.isfinite(v)):
            raise ValueError("coordinates must be finite numbers (metres)")
        return v

    @model_validator(mode="after")
    def _one_of_each(self):
        if (self.scan_point is None) == (self.scan_vertex is None):
            raise ValueError("give exactly one of scan_point [x, y, z] or scan_vertex (index)")
        if (self.model_vertex is None) == (self.model_landmark is None):
            raise ValueError("give exactly one of model_vertex (index) or model_landmark (name)")
        return self


class ScanPairsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_: int = Field(default=SCHEMA, alias="schema")
    weight: float = Field(default=DEFAULT_WEIGHT, gt=0, allow_inf_nan=False)
    pairs: list[ScanPair] = Field(min_length=1)

    @field_validator("schema_")
    @classmethod
    def _schema(cls, v):
        if v != SCHEMA:
            raise ValueError(f"this Doppel reads pairs files of schema {SCHEMA}, got {v}")
        return v


def _where(loc) -> str:
    parts = []
    for x in loc:
        parts.append(f"[{x}]" if isinstance(x, int) else ("." if parts else "") + str(x))
    return "".join(parts).replace("schema_", "schema") or "(top level)"


def read_pairs(path: str | Path) -> ScanPairsFile:
    """Read and validate a pairs file; FileNotFoundError / PairsFileError naming the file and field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: control-point (pairs) file not found")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PairsFileError(f"{path}: not valid JSON ({e})") from e
    try:
        return ScanPairsFile.model_validate(doc)
    except ValidationError as e:
        first = e.errors()[0]
        msg = first["msg"].removeprefix("Value error, ")
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise PairsFileError(f"{path}: {_where(first['loc'])}: {msg}{more}") from e


def _landmark_rows(model, names: list[str], path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (vertex indices (K,), weights (K,)) through the model's calibrated regressor."""
    from capture.landmarks import POSE_NAMES
    from reconstruction.fitting.landmark_regressor import SET_OFFSETS, default_regressor

    reg = default_regressor(model)
    out = {}
    for k, name in enumerate(names):
        lid = None
        if name in POSE_NAMES:
            lid = POSE_NAMES.index(name)
        else:
            kind, _, num = name.rpartition(" ")
            if kind in SET_OFFSETS and num.isdigit():
                lid = SET_OFFSETS[kind] + int(num)
        if lid is None:
            raise PairsFileError(f"{path}: pairs[{k}].model_landmark: unknown landmark {name!r} (use e.g. 'pose 15', "
                                 f"'face 61', 'hand.L 8' or a pose name such as 'left_wrist')")
        if reg is None or lid not in set(reg.ids.tolist()):
            raise PairsFileError(f"{path}: pairs[{k}].model_landmark: {name!r} has no calibrated position on "
                                 f"{getattr(model, 'name', 'this model')} (use model_vertex)")
        r = reg.rows([lid])[0]
        out[name] = (reg.index[r], reg.weight[r])
    return out


def pairs_correspondences(pairs: ScanPairsFile, model, scan: Scan, path: str | Path = "<pairs>"
                          ) -> ScanCorrespondences:
    """The pairs as ScanCorrespondences (user=True), checked against the scan and the model (index ranges,
    landmark names); PairsFileError naming the file and the pair."""
    path = Path(path)
    nv = int(model.num_vertices)
    lm_names = [p.model_landmark for p in pairs.pairs if p.model_landmark is not None]
    rows = _landmark_rows(model, lm_names, path) if lm_names else {}
    K = max([1] + [len(v[0]) for v in rows.values()])
    index = np.zeros((len(pairs.pairs), K), np.int64)
    weight = np.zeros((len(pairs.pairs), K))
    targets = np.zeros((len(pairs.pairs), 3))
    names = []
    for k, p in enumerate(pairs.pairs):
        if p.scan_vertex is not None and p.scan_vertex >= len(scan.vertices):
            raise PairsFileError(f"{path}: pairs[{k}].scan_vertex: {p.scan_vertex} is out of range (the scan has "
                                 f"{len(scan.vertices)} vertices)")
        if p.model_vertex is not None and p.model_vertex >= nv:
            raise PairsFileError(f"{path}: pairs[{k}].model_vertex: {p.model_vertex} is out of range (the model "
                                 f"has {nv} vertices)")
        targets[k] = (scan.vertices[p.scan_vertex] if p.scan_vertex is not None
                      else np.asarray(p.scan_point) * scan.unit_scale)
        if p.model_vertex is not None:
            index[k, 0], weight[k, 0] = p.model_vertex, 1.0
            names.append(f"vertex {p.model_vertex}")
        else:
            idx, w = rows[p.model_landmark]
            index[k, :len(idx)], weight[k, :len(idx)] = idx, w
            names.append(p.model_landmark)
    strength = np.array([p.weight if p.weight is not None else pairs.weight for p in pairs.pairs], np.float64)
    return ScanCorrespondences(index=index, weight=weight, targets=targets, strength=strength, names=names,
                               user=np.ones(len(pairs.pairs), bool))
