"""Which pairs of photos structure from motion matches: every pair on a small rig, each photo with its most alike
photos on a large one.

Matching every pair costs N(N-1)/2 two-view matchings: 276 for 24 cameras (69 s on one thread at 1280x960), 4560
for 96, 19900 for 200. On a large rig most pairs share nothing (cameras on opposite sides of the actor), so a photo
is matched only with the ``neighbours`` photos most like it, found by image retrieval: a vocabulary tree of visual
words is built from the rig's own SIFT features (a sample of them), every photo is indexed by its words, and COLMAP's
vocabulary-tree pairing queries it. Nothing is downloaded: the tree is the session's own, written beside its
database. The module needs pycolmap and numpy; it runs inside COLMAP's child process (`capture.colmap_process`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MATCHING_CHOICES = ("auto", "exhaustive", "retrieval")
DEFAULT_NEIGHBOURS = 30          # photos each photo is matched with under retrieval
VOCABULARY_SAMPLE = 100_000      # SIFT descriptors the visual words are clustered from (at most)
DESCRIPTORS_PER_WORD = 24        # the vocabulary's size: the sample's descriptors per visual word ...
WORDS_MIN, WORDS_MAX = 256, 4096  # ... within these bounds
KMEANS_ITERATIONS = 10           # of the clustering (COLMAP's default: 100). On a 96-photo ring 10 on 100k
#                                  descriptors took 17 s and found more pairs with 100 inliers than 20 on 200k (63 s)
MIN_DESCRIPTORS = 64             # fewer SIFT features in all the photos: no vocabulary


def resolve_matching(matching: str, n_photos: int, neighbours: int = DEFAULT_NEIGHBOURS) -> str:
    """"exhaustive" or "retrieval" for ``n_photos`` photos; "auto" matches every pair while a photo's ``neighbours``
    would be half the rig or more (up to 60 photos for 30: retrieval saves little there and costs its vocabulary),
    and each photo with its neighbours beyond."""
    if matching not in MATCHING_CHOICES:
        raise ValueError(f"matching {matching!r}: expected one of {', '.join(MATCHING_CHOICES)}")
    if matching == "auto":
        return "exhaustive" if n_photos <= 2 * neighbours else "retrieval"
    return matching


def vocabulary_words(n_descriptors: int) -> int:
    """Visual words for a vocabulary clustered from ``n_descriptors`` descriptors (a power of two, never more words
    than descriptors)."""
    words = int(np.clip(2 ** int(np.log2(max(1, n_descriptors // DESCRIPTORS_PER_WORD))), WORDS_MIN, WORDS_MAX))
    return min(words, 2 ** int(np.log2(max(1, n_descriptors))))


def build_vocabulary(database: Path, out: Path, *, seed: int = 0) -> int:
    """Cluster a sample of the SIFT descriptors in COLMAP's ``database`` into visual words and write the vocabulary
    tree to ``out`` (COLMAP's format, read by its vocabulary-tree pairing). Returns the number of visual words.
    The sample is drawn with ``seed``, and the k-means (on one thread: no faster on two, 16 s for 100k descriptors)
    starts from COLMAP's random generator seeded with it here: it drew from the generator as the steps before had
    left it, and two builds in one process gave two trees."""
    import pycolmap

    db = pycolmap.Database.open(database)
    try:
        per_image = [np.asarray(db.read_descriptors(im.image_id).data) for im in db.read_all_images()]
    finally:
        db.close()
    if sum(map(len, per_image)) < MIN_DESCRIPTORS:
        raise RuntimeError(f"{sum(map(len, per_image))} SIFT features in all the photos: too few to find the photos "
                           "most alike (matching every pair needs none)")
    sample = _sample(per_image, VOCABULARY_SAMPLE, seed).astype(np.float32)
    index = pycolmap.VisualIndex.create(sample.shape[1], 64)
    options = pycolmap.VisualIndex.BuildOptions()
    options.num_visual_words = vocabulary_words(len(sample))
    options.num_threads = 1
    options.num_iterations, options.num_rounds = KMEANS_ITERATIONS, 1
    pycolmap.set_random_seed(seed)
    index.build(options, pycolmap.FeatureDescriptorsFloat(pycolmap.FeatureExtractorType.SIFT, sample))
    index.write(out)
    return int(index.num_visual_words())


def _sample(per_image: list[np.ndarray], n: int, seed: int) -> np.ndarray:
    """``n`` rows (at most) drawn with ``seed`` from the photos' descriptors taken as one list in photo order, without
    copying them all into one array first (a 300-photo rig's descriptors are hundreds of MB)."""
    ends = np.cumsum([len(d) for d in per_image])
    pick = np.sort(np.random.default_rng(seed).choice(ends[-1], min(int(ends[-1]), n), replace=False))
    image = np.searchsorted(ends, pick, side="right")
    starts = ends - [len(d) for d in per_image]
    return np.concatenate([per_image[i][pick[image == i] - starts[i]] for i in np.unique(image)])


def match_by_retrieval(database: Path, vocabulary: Path, neighbours: int, num_threads: int, seed: int = 0) -> None:
    """COLMAP's matching of each photo in ``database`` with its ``neighbours`` most alike by ``vocabulary``: the
    pairs found on one thread (COLMAP's queries on several found other pairs from run to run), matched on
    ``num_threads`` (the same matches on any number: `seeded_verification`)."""
    import pycolmap

    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = num_threads
    pairing = pycolmap.VocabTreePairingOptions()
    pairing.num_images = neighbours + 1     # the photo itself is the first a query finds
    pairing.vocab_tree_path = vocabulary
    pairing.num_threads = 1
    pycolmap.match_vocabtree(database, matching_options=matching, pairing_options=pairing,
                             verification_options=seeded_verification(seed), device=pycolmap.Device.cpu)


def seeded_verification(seed: int):
    """COLMAP's two-view geometry options with every pair's RANSAC seeded by ``seed``: the verified matches are the
    same on any number of threads (unseeded, the threads shared one random stream and the inliers of a pair
    differed from run to run on two)."""
    import pycolmap

    options = pycolmap.TwoViewGeometryOptions()
    options.ransac.random_seed = seed
    return options


def matched_pairs(database: Path) -> int:
    """Pairs of photos COLMAP's matching compared in ``database``."""
    import pycolmap

    db = pycolmap.Database.open(database)
    try:
        return int(db.num_matched_image_pairs())
    finally:
        db.close()
