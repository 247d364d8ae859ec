"""Who a face is (`capture.face_identity`): two real people (scikit-image's astronaut and cameraman) told apart
through the moves, light and mirroring a plate puts them through, and the follower that keeps to the performer
across cuts."""

import cv2
import numpy as np
import pytest


def _photo(name: str) -> np.ndarray:
    """(512, 512, 3) uint8: the astronaut, or the cameraman's head and shoulders (MediaPipe misses his face in the
    whole photo)."""
    import skimage.data

    if name == "astronaut":
        return skimage.data.astronaut()
    gray = skimage.data.camera()[0:300, 100:400]
    return np.ascontiguousarray(cv2.resize(np.repeat(gray[..., None], 3, axis=2), (512, 512)))


def _moved(img: np.ndarray, angle: float, scale: float, gain: float, mirror: bool = False) -> np.ndarray:
    h, w = img.shape[:2]
    out = cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale), (w, h),
                         borderMode=cv2.BORDER_REFLECT)
    out = np.clip(out * gain, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out[:, ::-1]) if mirror else out


def _face(img: np.ndarray) -> np.ndarray:
    from capture.face_tracking import PlateTracker

    with PlateTracker(max_faces=1, hands=False) as t:
        faces = t.process(img).faces
    assert len(faces) == 1
    return faces[0]


MOVES = [(0, 1.0, 1.0), (12, 0.8, 1.0), (-15, 1.2, 0.7), (0, 1.0, 1.0, True)]


@pytest.fixture(scope="module")
def descriptors():
    from capture.face_identity import describe

    out = {}
    for name in ("astronaut", "camera"):
        for k, move in enumerate(MOVES):
            img = _moved(_photo(name), *move)
            out[name, k] = describe(img, _face(img))
    return out


def test_the_five_points_are_where_dlibs_own_shape_predictor_puts_them():
    """The alignment is MediaPipe's landmarks at the points of dlib's 5-point model: checked against that model."""
    import dlib

    from capture.face_identity import FIVE_POINTS, model_path

    img = _photo("astronaut")
    face = _face(img)
    x0, y0 = face.min(axis=0)
    x1, y1 = face.max(axis=0)
    predictor = dlib.shape_predictor(str(model_path().with_name("shape_predictor_5_face_landmarks.dat")))
    shape = predictor(img, dlib.rectangle(int(x0), int(y0), int(x1), int(y1)))
    theirs = np.array([(p.x + 0.5, p.y + 0.5) for p in shape.parts()])
    assert np.abs(face[list(FIVE_POINTS)] - theirs).max() < 4.0, (face[list(FIVE_POINTS)], theirs)


def test_one_person_through_moves_light_and_a_mirror_is_one_and_two_people_are_two(descriptors):
    from capture.face_identity import SAME_PERSON

    d = descriptors
    same = [np.linalg.norm(d[n, a] - d[n, b]) for n in ("astronaut", "camera") for a in range(4) for b in range(a)]
    other = [np.linalg.norm(d["astronaut", a] - d["camera", b]) for a in range(4) for b in range(4)]
    assert max(same) < SAME_PERSON - 0.15, same          # measured at most 0.38
    assert min(other) > SAME_PERSON + 0.1, other         # measured at least 0.79


def test_the_performer_is_found_among_faces_whatever_their_order_and_nobody_else_is_taken():
    from capture.face_identity import Performer

    astro, cam = _photo("astronaut"), _photo("camera")
    side = np.zeros((512, 1024, 3), np.uint8)                          # the cameraman larger, on the left
    side[:, :512], side[:, 512:] = cam, _moved(astro, 8, 0.8, 1.1)
    faces = np.stack([_face(side[:, :512]), _face(side[:, 512:]) + [512, 0]])
    performer = Performer()
    assert not performer.known and performer.find(side, faces) is None
    assert performer.learn(astro, _face(astro)) and performer.known
    k = performer.find(side, faces)
    assert k is not None and faces[k][:, 0].mean() > 512               # the astronaut, on the right
    assert not performer.learn(cam, _face(cam))                        # another person is never learnt as a view
    assert performer.find(cam, _face(cam)[None]) is None
    assert not performer.learn(astro, _face(astro))                    # the same view again: nothing new kept
    assert len(performer.views) == 1


def test_after_a_cut_to_another_person_the_follower_passes_and_takes_the_performer_again():
    from capture.face_identity import Performer
    from capture.face_tracking import RECHECK_FRAMES, FaceFollower

    astro, cam = _photo("astronaut"), _photo("camera")
    fa, fc = _face(astro), _face(cam)
    follow = FaceFollower(0, performer=Performer())
    assert follow.pick(fa[None], False, astro) is not None                  # the first pick: the performer
    assert follow.pick(fa[None], False, astro) is not None
    assert follow.pick(fc[None], True, cam) is None and follow.not_performer   # a cut to the cameraman: passed
    # the same place in the frame after the cut does not make him the performer; he is asked about again later
    for _ in range(RECHECK_FRAMES + 2):
        assert follow.pick(fc[None], False, cam) is None and follow.not_performer
    back = follow.pick(fa[None], True, astro)                                # a cut back to the astronaut
    assert back is not None and not follow.not_performer
    old = FaceFollower(0)                                                    # without a performer: by size (as before)
    old.pick(fa[None])
    assert old.pick(fc[None], True) is not None


def test_a_face_too_small_to_tell_is_never_taken_for_the_performer():
    """Under MIN_FACE_PX wide the descriptors of two people come too close (benchmarks/performer_identity.py):
    such a face is neither learnt nor found, and a performer first seen that small is found nowhere after a cut
    (a gate that cannot tell refuses)."""
    from capture.face_identity import MIN_FACE_PX, Performer, wide_enough
    from capture.face_tracking import FaceFollower

    astro = _photo("astronaut")
    fa = _face(astro)
    tiny = np.full_like(astro, 70)
    tiny[224:288, 224:288] = cv2.resize(astro, (64, 64), interpolation=cv2.INTER_AREA)
    ft = (fa - 256) / 8 + 256                          # the same landmarks scaled as the face was
    assert wide_enough(fa) and not wide_enough(ft) and np.ptp(ft[:, 0]) < MIN_FACE_PX
    performer = Performer()
    assert not performer.learn(tiny, ft) and not performer.known
    assert performer.learn(astro, fa) and performer.find(tiny, ft[None]) is None
    follow = FaceFollower(0, performer=Performer())
    assert follow.pick(ft[None], False, tiny) is not None                   # the first pick is the performer ...
    assert follow.pick(fa[None], True, astro) is None and follow.not_performer   # ... but cannot be told after a cut
    assert follow.too_small                                                 # and says why
    known = FaceFollower(0, performer=Performer())
    known.pick(fa[None], False, astro)
    assert known.pick(ft[None], True, tiny) is None and known.not_performer and known.too_small
    cam = _photo("camera")
    assert known.pick(_face(cam)[None], True, cam) is None and known.not_performer and not known.too_small


def test_in_a_two_shot_the_other_face_is_not_taken_when_the_performers_is_missed():
    """A shot that has shown two faces: MediaPipe misses the performer's for a frame and the other face, within
    FOLLOW_DISTANCE of where hers was, is the only one in view. By place alone it was taken (and swapped); a jump
    over JUMP of a face width is now asked who it is."""
    from capture.face_identity import Performer
    from capture.face_tracking import FaceFollower

    astro, cam = _photo("astronaut"), _photo("camera")
    fa, fc = _face(astro), _face(cam)
    wa, wc = np.ptp(fa[:, 0]), np.ptp(fc[:, 0])
    s = wa / wc                                               # the cameraman's face the astronaut's width
    target = fa.mean(axis=0) + [0.8 * wa, 0]                  # 0.8 of her face's width to the right of hers
    patch_centre = fc.mean(axis=0)
    small = cv2.resize(cam, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    frame = astro.copy()
    x0, y0 = np.round(target - patch_centre * s).astype(int)            # his face's box (+10 px) pasted there
    (bx0, by0), (bx1, by1) = (fc.min(axis=0) * s).astype(int) - 10, (fc.max(axis=0) * s).astype(int) + 10
    ys = slice(max(y0 + by0, 0), min(y0 + by1, 512))
    xs = slice(max(x0 + bx0, 0), min(x0 + bx1, 512))
    frame[ys, xs] = small[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
    other = (fc - patch_centre) * s + target
    follow = FaceFollower(0, performer=Performer())
    assert follow.pick(np.stack([fa, other]), False, astro) is not None        # two faces: the astronaut picked
    taken = FaceFollower(0)                                                     # by place alone
    taken.pick(np.stack([fa, other]))
    assert taken.pick(other[None]) is not None                                  # the cameraman, near enough
    assert follow.pick(other[None], False, frame) is None and follow.not_performer
    back = follow.pick(fa[None], False, astro)                                  # hers again, where it was
    assert back is not None and np.allclose(back, fa)


def test_a_performer_photo_must_show_one_face_big_enough(tmp_path):
    """`performer_from_photo`: one face 32 px wide or more, else one line saying what is wrong."""
    import skimage.data

    from capture.face_identity import performer_from_photo

    head = skimage.data.astronaut()[0:300, 100:400]
    two = np.full((320, 640, 3), 90, np.uint8)                 # the same two-shot the follower's tests use
    for x0, side, img in ((20, 280, head), (380, 220, np.ascontiguousarray(head[:, ::-1]))):
        y0 = (320 - side) // 2
        two[y0:y0 + side, x0:x0 + side] = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(tmp_path / "two.png"), cv2.cvtColor(two, cv2.COLOR_RGB2BGR))
    with pytest.raises(ValueError, match="several faces found"):
        performer_from_photo(tmp_path / "two.png")
    with pytest.raises(ValueError, match="no such file"):
        performer_from_photo(tmp_path / "missing.png")
    (tmp_path / "garbage.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot be read|no face"):
        performer_from_photo(tmp_path / "garbage.png")
    one = tmp_path / "one.png"
    cv2.imwrite(str(one), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    performer = performer_from_photo(one)
    assert performer.known and performer.source == one and performer.thumbnail.shape[0] == 160
