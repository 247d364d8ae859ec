"""`doppel render distil`'s checkpoints: what an interrupted distillation keeps, and what `--resume` goes on from.

The checkpoint folder is the trainer's (``render_stage.checkpoint_dir``: ``.OUT.checkpoint`` beside OUT, removed
when the model folder is in place). It holds the student as a model folder (weights, the optimizer's moments,
config.json with the run's state under ``training`` and what it was distilled from under ``distil``), and
``distil_state.safetensors``: the best state so far and the crops' random generator. Written every
``DistilConfig.checkpoint_every`` steps, at a held-out evaluation; a resumed run then takes the steps the
uninterrupted run would have taken.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

STATE_FILE = "distil_state.safetensors"
SETTINGS = ("jitter", "supersample", "output_filter", "crop")   # what a resumed run must share with the checkpoint


def teacher_id(teacher: Path) -> str:
    """The teacher's identity: the sha256 of its weights (a checkpoint of another teacher is refused)."""
    from core.storage import sha256_file

    return sha256_file(Path(teacher) / "model.safetensors")


def checkpoint_writer(ck: Path, distilled: dict) -> Callable:
    """checkpoint(student, optimizer, state) for ``neural_render.distill.distil``: writes the folder ``ck``
    (and whose likeness it holds, `core.leftovers.record_owner`). ``distilled``: the teacher's id, the member
    started from and SETTINGS, kept in its config.json."""
    from safetensors.torch import save

    from core.leftovers import record_owner
    from core.storage import atomic_open
    from neural_render.neural_double import save_model

    def write(student, opt, st) -> None:
        tensors = {f"best.{k}": v.detach().cpu().contiguous() for k, v in st.best_state.items()}
        tensors["generator"] = st.generator.contiguous()
        save_model(ck, student, extra={"training": st.as_json(), "distil": distilled}, optimizer=opt)
        with atomic_open(ck / STATE_FILE, "wb") as f:        # last: its step says the folder is whole
            f.write(save(tensors, metadata={"step": str(st.step)}))
        record_owner(ck)

    return write


def load_checkpoint(ck: Path, req, distilled: dict, device: str, optimizer_for: Callable):
    """(student, optimizer, DistilState) from the checkpoint folder ``ck`` of ``req`` (a DistilRequest), or None
    when there is none. ``distilled``: this run's teacher id and SETTINGS, which the checkpoint's must equal;
    optimizer_for(student): a new optimizer for the student, into which the saved moments are loaded.
    ModelError (one line) for a checkpoint of another teacher or other settings, or one cut off while written."""
    from safetensors import SafetensorError, safe_open

    from neural_render.distill import DistilState
    from neural_render.neural_double import ModelError, load_model
    from neural_render.training import load_optimizer_state

    if not (ck / "config.json").is_file():
        return None
    student, meta, opt_t = load_model(ck, device, optimizer_for=True)
    kept = meta.get("distil")
    if not isinstance(kept, dict):
        raise ModelError(f"--resume: {ck} is a `doppel render train` checkpoint, not a distillation's; give "
                         "another --out, or delete it")
    if kept.get("teacher") != distilled["teacher"]:
        raise ModelError(f"--resume: the checkpoint in {ck} was distilled from another teacher than {req.teacher}")
    other = [f"--{k.replace('_', '-')} {kept.get(k)} (now {distilled[k]})" for k in SETTINGS
             if kept.get(k) != distilled[k]]
    if other:
        raise ModelError(f"--resume: the checkpoint in {ck} was made with {', '.join(other)}; resume with its "
                         "settings")
    try:
        with safe_open(str(ck / STATE_FILE), "pt") as f:
            step = int((f.metadata() or {}).get("step", -1))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"--resume: {ck / STATE_FILE} unreadable ({e}); delete {ck} to start again") from None
    if step != int(meta["training"]["step"]):
        raise ModelError(f"--resume: the checkpoint in {ck} was cut off while being written (steps {step} and "
                         f"{meta['training']['step']}); delete it to start again")
    opt = optimizer_for(student)
    load_optimizer_state(student, opt, opt_t, meta.get("optimizer_steps", {}))
    best = {k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("best.")}
    return student, opt, DistilState.from_json(meta["training"], best, tensors["generator"])


def forget_checkpoint(ck: Path) -> None:
    """A run that does not resume starts without the folder an earlier, interrupted one left."""
    shutil.rmtree(ck, ignore_errors=True)
