"""COLMAP's structure-from-motion steps (SIFT features, matching of every pair of photos or of each photo with its
most alike, incremental mapping) run in a child process, so that Ctrl-C stops them at once.

A pycolmap step is one long C++ call: Python sees Ctrl-C only when it returns (a minute into a 24-camera rig's
matching, tens of minutes on a large rig), and pycolmap's own cancellation token returns without joining the
matcher's verification threads, which then abort the process as it exits (`std::out_of_range` from a thread still
in `EstimateTwoViewGeometry`, 4 interrupts in 11 here). In a child process the parent waits in short
joins, hears Ctrl-C at once, and ends the child with its threads. The module needs pycolmap and the standard
library only; the child's start (a spawned Python importing the `capture` package) takes about a second.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ColmapJob:
    """What the child runs. database: COLMAP's database file (written); image_dir / names: the photos;
    sparse_dir: where the mapper writes its models (sparse_dir/0, /1, ...); matching: "exhaustive" (every pair) or
    "retrieval" (each photo with its ``neighbours`` most alike: `capture.colmap_retrieval`). num_threads: the
    features' and the matching's threads, which give the same result on any number (the photos numbered in the
    order of ``names`` before their features, the matcher's RANSAC seeded with ``seed``); mapper_threads: the
    mapper's, whose cameras differ a little from run to run on more than one."""

    database: Path
    image_dir: Path
    names: tuple[str, ...]
    sparse_dir: Path
    camera_model: str = "SIMPLE_RADIAL"
    single_camera: bool = False
    max_image_size: int = 1600
    num_threads: int = 1
    mapper_threads: int = 1
    seed: int = 0
    matching: str = "exhaustive"
    neighbours: int = 30


@dataclass(frozen=True)
class ColmapRun:
    """What a job made. best: the folder of the model that registered most photos (None when the mapper made none);
    seconds: per step {features_s, matching_s, mapping_s}; matching: {"mode": "exhaustive" | "retrieval", "pairs":
    pairs of photos matched, and under retrieval "neighbours" and "visual_words"}."""

    best: Path | None
    seconds: dict[str, float]
    matching: dict


def run_colmap(job: ColmapJob, progress: Callable[[str, float], None] | None = None) -> ColmapRun:
    """Run ``job`` in a spawned child process and return what it made. progress(step, fraction) is
    called in this process as the child starts each step, as COLMAP reports its features and matching photo by
    photo (`capture.colmap_progress`), and as it places each photo. A KeyboardInterrupt here kills the
    child (its threads with it) and is raised again; the child's error is raised as a RuntimeError naming it."""
    report = progress or (lambda *_: None)
    if mp.current_process().daemon:        # a pool's worker may have no children: run here (Ctrl-C as before)
        return _steps(job, report)
    ctx = mp.get_context("spawn")
    messages = ctx.Queue()
    child = ctx.Process(target=_child_main, args=(job, messages), name="doppel-colmap", daemon=True)
    child.start()
    try:
        return _wait(child, messages, report)
    finally:
        if child.is_alive():
            child.kill()        # SIGKILL: pycolmap's failure-signal handler prints a stack trace on SIGTERM; its
        child.join(timeout=10)  # database is half-written either way and the next run replaces it
        messages.close()


def _wait(child, messages, report: Callable[[str, float], None]) -> ColmapRun:
    """Relay the child's messages until its result; short waits so that Ctrl-C is heard at once."""
    while True:
        try:
            kind, *rest = messages.get(timeout=0.2)
        except queue.Empty:
            if not child.is_alive():
                raise RuntimeError(f"COLMAP's process ended (exit code {child.exitcode}) without a result") from None
            continue
        if kind == "progress":
            report(*rest)
        elif kind == "error":
            raise RuntimeError(f"COLMAP failed: {rest[0]}")
        else:
            return rest[0]


def _child_main(job: ColmapJob, messages) -> None:
    """The child: Ctrl-C is the parent's to handle (it ends this process), so the child ignores it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        messages.put(("result", _steps(job, lambda step, f: messages.put(("progress", step, f)), log_ticks=True)))
    except Exception as e:  # noqa: BLE001 - reported to the parent, which raises it
        messages.put(("error", f"{type(e).__name__}: {e}"))


def _steps(job: ColmapJob, report: Callable[[str, float], None], log_ticks: bool = False) -> ColmapRun:
    """Features, matching and mapping into job.database / job.sparse_dir. log_ticks: report the progress within
    the features and the matching from COLMAP's log lines (`capture.colmap_progress`; it takes over fd 2, so only
    in COLMAP's own child process)."""
    import pycolmap

    from capture.colmap_progress import colmap_ticks

    pycolmap.set_random_seed(job.seed)
    n, secs = len(job.names), {}
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = job.camera_model
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = job.num_threads
    extraction.max_image_size = job.max_image_size
    mode = pycolmap.CameraMode.SINGLE if job.single_camera else pycolmap.CameraMode.PER_IMAGE
    t = time.perf_counter()
    report(f"features of {n} photos", 0.0)
    ticking = (lambda: colmap_ticks(_tick_reporter(job, report))) if log_ticks else contextlib.nullcontext
    # the photos numbered in the job's order first: COLMAP's extractor numbers a photo as its features are done,
    # so on several threads the numbers (and with them the mapper's choices) would differ from run to run
    pycolmap.Database.open(job.database).close()
    pycolmap.import_images(job.database, job.image_dir, camera_mode=mode, image_names=list(job.names), options=reader)
    with ticking():
        pycolmap.extract_features(job.database, job.image_dir, image_names=list(job.names), camera_mode=mode,
                                  reader_options=reader, extraction_options=extraction, device=pycolmap.Device.cpu)
    secs["features_s"], t = time.perf_counter() - t, time.perf_counter()
    pycolmap.set_random_seed(job.seed)      # each step draws from COLMAP's generator as if it ran alone, not
    with ticking():                         # from what the steps before it left (the vocabulary seeds it too)
        matched = _match(job, report)
    secs["matching_s"], t = time.perf_counter() - t, time.perf_counter()
    pycolmap.set_random_seed(job.seed)
    opts = pycolmap.IncrementalPipelineOptions()
    opts.num_threads = job.mapper_threads
    placed = [2]

    def next_image() -> None:
        placed[0] += 1
        report(f"mapping: {min(placed[0], n)} of {n} photos placed", 0.6 + 0.35 * min(1.0, placed[0] / n))

    report("mapping: the first pair of photos", 0.6)
    recs = pycolmap.incremental_mapping(job.database, job.image_dir, job.sparse_dir, options=opts,
                                        next_image_callback=next_image)
    secs["mapping_s"] = time.perf_counter() - t
    if not recs:
        return ColmapRun(None, secs, matched)
    best = max(recs, key=lambda k: recs[k].num_reg_images())
    return ColmapRun(job.sparse_dir / str(best), secs, matched)


def _match(job: ColmapJob, report: Callable[[str, float], None]) -> dict:
    """Every pair of photos, or each photo with its job.neighbours most alike (a vocabulary built beside the
    database first); what was matched (`ColmapRun.matching`)."""
    import pycolmap

    from capture.colmap_retrieval import build_vocabulary, match_by_retrieval, matched_pairs, seeded_verification

    n = len(job.names)
    if job.matching == "retrieval":
        report(f"visual words of {n} photos (to find each one's most alike): clustering their features", 0.2)
        vocabulary = job.database.with_name("vocabulary_tree.bin")
        words = build_vocabulary(job.database, vocabulary, seed=job.seed)
        report(f"visual words: indexing {n} photos", 0.22)
        match_by_retrieval(job.database, vocabulary, job.neighbours, job.num_threads, job.seed)
        return {"mode": "retrieval", "pairs": matched_pairs(job.database), "neighbours": job.neighbours,
                "visual_words": words}
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = job.num_threads
    report(f"matching {n * (n - 1) // 2} pairs of photos", 0.25)
    pycolmap.match_exhaustive(job.database, matching_options=matching,
                              verification_options=seeded_verification(job.seed), device=pycolmap.Device.cpu)
    return {"mode": "exhaustive", "pairs": matched_pairs(job.database)}


def _tick_reporter(job: ColmapJob, report: Callable[[str, float], None]) -> Callable:
    """A `capture.colmap_progress.Tick` as a progress report: the features from 0 to 0.2 of the run; under retrieval
    the vocabulary at 0.2, the photos' indexing by it 0.22 to 0.27 and the matching 0.27 to 0.6; every pair's
    matching 0.25 to 0.6 (the mapping follows from 0.6)."""
    n = len(job.names)
    spans = {"features": (0.0, 0.2), "indexing": (0.22, 0.27),
             "matching": (0.27, 0.6) if job.matching == "retrieval" else (0.25, 0.6)}

    def on_tick(tick) -> None:
        finished = tick.done if tick.what == "features" else tick.done - 1   # COLMAP logs a photo's features
        lo, hi = spans[tick.what]                                            # when done, the rest as they start
        if tick.what == "features":
            words = f"features: {tick.done} of {tick.total} photos"
        elif tick.what == "indexing":
            words = f"visual words: indexing photo {tick.done} of {tick.total}"
        elif job.matching == "retrieval":
            words = f"matching each photo with its {job.neighbours} most alike: photo {tick.done} of {tick.total}"
        else:
            words = f"matching {n * (n - 1) // 2} pairs of photos: block {tick.done} of {tick.total}"
        report(words, lo + (hi - lo) * min(1.0, finished / max(1, tick.total)))

    return on_tick
