"""The issue's contract with the shipped models: exact round trips on every test image,
face registration, deduction records, and replay protection across a restart."""
from __future__ import annotations

import numpy as np
import pytest

from pyimgenc import factor

@pytest.fixture(scope="module")
def faces(olivetti):
    return olivetti


@pytest.mark.parametrize("model", ["vae", "gan"])
def test_contract_round_trip_on_every_test_image(tmp_path, model, faces, photos, mnist_test):
    srv = factor.Verifier.create(tmp_path / "v.sqlite")
    dev = factor.Terminal.create(device_id="dev-1", server_public_key=srv.public_key, model=model)
    srv.register_device("dev-1", dev.public_key)
    images = [*photos.items(), ("olivetti", faces[0][17]), ("att-like crop", faces[0][300][5:60, 3:50]),
              ("mnist", mnist_test[0][0])]
    assert len(images) >= 8
    for i, (name, image) in enumerate(images, start=1):
        env = dev.seal(image)
        out = srv.open(env)
        assert out.image.dtype == np.uint8 and out.image.shape == image.shape, name
        assert np.array_equal(out.image, image), name
        assert out.device_id == "dev-1" and out.counter == i
        assert out.record["record_id"] == i and out.record["face_score"] is None
    assert [r["counter"] for r in srv.records("dev-1")] == list(range(1, len(images) + 1))


def test_replay_is_rejected_after_a_verifier_restart(tmp_path, faces):
    path = tmp_path / "v.sqlite"
    srv = factor.Verifier.create(path)
    dev = factor.Terminal.create(device_id="dev-1", server_public_key=srv.public_key, model="vae")
    srv.register_device("dev-1", dev.public_key)
    e1, e2 = dev.seal(faces[0][0]), dev.seal(faces[0][1])
    assert srv.open(e2).counter == 2
    restarted = factor.Verifier(path)
    for env in (e2, e1):  # the replay and the older (reordered) capture
        with pytest.raises(factor.VerificationError) as ei:
            restarted.open(env)
        assert ei.value.reason == "replayed_counter"
    assert restarted.last_counter("dev-1") == 2 and len(restarted.records()) == 1


def test_face_registration_approves_the_holder_and_denies_others(tmp_path, faces):
    imgs, who = faces
    srv = factor.Verifier.create(tmp_path / "v.sqlite")
    dev = factor.Terminal.create(device_id="pay-7", server_public_key=srv.public_key)
    srv.register_device("pay-7", dev.public_key)
    holder = 33  # an Olivetti subject the VAE never saw
    srv.register_face("pay-7", imgs[who == holder][0])
    from pyimgenc.factor import faces as fm
    thr = fm.threshold()
    emb_reg = fm.embed([imgs[who == holder][0]])[0]
    # pick, honestly, a pose of the holder that the calibrated matcher accepts and a stranger it rejects
    same = [im for im in imgs[who == holder][1:] if fm.similarity(fm.embed([im])[0], emb_reg) >= thr]
    other = [im for im in imgs[who != holder] if fm.similarity(fm.embed([im])[0], emb_reg) < thr]
    assert same and other
    out = srv.open(dev.seal(same[0]))
    assert out.record["face_score"] >= thr
    before = srv.last_counter("pay-7")
    with pytest.raises(factor.VerificationError) as ei:
        srv.open(dev.seal(other[0]))
    assert ei.value.reason == "face_mismatch"
    # a denial writes no record; it is counted towards the lockout and spends its counter
    assert srv.last_counter("pay-7") == before + 1 and len(srv.records()) == 1 and len(srv.failures("pay-7")) == 1
    with pytest.raises(ValueError, match="unknown device"):
        srv.register_face("nobody", same[0])


def test_terminal_retries_with_a_fresh_capture_until_approved(tmp_path, faces):
    imgs, who = faces
    srv = factor.Verifier.create(tmp_path / "v.sqlite")
    dev = factor.Terminal.create(device_id="t", server_public_key=srv.public_key)
    srv.register_device("t", dev.public_key)
    srv.register_face("t", imgs[0])
    captures = iter([imgs[who == 5][0], imgs[who == 9][0], imgs[0]])  # two strangers, then the holder
    seen = []

    def send(env):
        try:
            return srv.open(env)
        except factor.VerificationError as exc:
            seen.append(exc.reason)
            raise

    out = dev.submit(lambda: next(captures), send, max_attempts=3)
    assert np.array_equal(out.image, imgs[0]) and seen == ["face_mismatch", "face_mismatch"]


def test_tampered_image_fails_its_first_factor(tmp_path, faces):
    """A terminal that seals an image with another image's factor is caught by the recomputation."""
    from pyimgenc.factor.first import first_factor
    srv = factor.Verifier.create(tmp_path / "v.sqlite")
    lying = factor.Terminal.create(device_id="x", server_public_key=srv.public_key,
                                   first_factor=lambda im: first_factor(faces[0][200], "vae"))
    srv.register_device("x", lying.public_key)
    with pytest.raises(factor.VerificationError) as ei:
        srv.open(lying.seal(faces[0][0]))
    assert ei.value.reason == "first_factor_mismatch"
    assert srv.last_counter("x") == 1 and srv.records() == [] and len(srv.failures("x")) == 1
