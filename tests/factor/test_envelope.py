"""Envelope: exact round trips on real faces, and a specific rejection for every kind of damage."""
from __future__ import annotations

import os
import struct

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from pyimgenc.factor import EnvelopeError, SecondFactor, image_security_factor, open_envelope, parse_header, seal
from pyimgenc.factor.first import first_factor



@pytest.fixture(scope="module")
def keys():
    srv = X25519PrivateKey.generate()
    dev = Ed25519PrivateKey.generate()
    return srv, dev


def _lookup(dev):
    return lambda device_id: dev.public_key() if device_id == "dev-1" else None


def _seal(img, keys, counter=1, first=b"first-factor-bytes", device="dev-1", model="vae", scope="tag"):
    srv, dev = keys
    sf = SecondFactor.new(device, counter, 1_700_000_000_000 + counter)
    return seal(img, first, sf, srv.public_key(), dev, model, scope), sf


@pytest.mark.parametrize("index", [0, 17, 399])
def test_round_trip_grey_face_is_exact(faces, keys, index):
    env, sf = _seal(faces[index], keys, counter=index)
    out = open_envelope(env, keys[0], _lookup(keys[1]))
    assert out.image.dtype == np.uint8 and np.array_equal(out.image, faces[index])
    assert out.second == sf and out.first_factor == b"first-factor-bytes" and out.model == "vae"


def test_round_trip_rgb(faces, keys):
    rgb = np.stack([faces[1], faces[2], faces[3]], axis=-1)
    env, _ = _seal(rgb, keys, model="gan")
    out = open_envelope(env, keys[0], _lookup(keys[1]))
    assert np.array_equal(out.image, rgb) and out.model == "gan"


@pytest.mark.parametrize("scope", ["tag", "full"])
def test_every_flipped_byte_is_rejected(faces, keys, scope):
    env, _ = _seal(faces[5][:16, :16], keys, scope=scope)
    for pos in range(len(env)):
        bad = bytearray(env)
        bad[pos] ^= 0x01
        with pytest.raises(EnvelopeError):
            open_envelope(bytes(bad), keys[0], _lookup(keys[1]))


def test_every_truncation_and_extension_is_rejected(faces, keys):
    env, _ = _seal(faces[6][:8, :8], keys)
    for cut in range(len(env)):
        with pytest.raises(EnvelopeError):
            open_envelope(env[:cut], keys[0], _lookup(keys[1]))
    with pytest.raises(EnvelopeError, match="trailing_bytes"):
        open_envelope(env + b"\x00", keys[0], _lookup(keys[1]))


def test_specific_reasons(faces, keys):
    env, _ = _seal(faces[7][:8, :8], keys)
    srv, dev = keys
    with pytest.raises(EnvelopeError, match="bad_capsule"):
        open_envelope(env, X25519PrivateKey.generate(), _lookup(dev))
    with pytest.raises(EnvelopeError, match="unknown_device"):
        open_envelope(env, srv, lambda _id: None)
    with pytest.raises(EnvelopeError, match="bad_signature"):
        open_envelope(env, srv, lambda _id: Ed25519PrivateKey.generate().public_key())
    with pytest.raises(EnvelopeError, match="bad_magic"):
        open_envelope(b"XXXX" + env[4:], srv, _lookup(dev))
    with pytest.raises(EnvelopeError, match="bad_version"):
        open_envelope(env[:4] + b"\x09" + env[5:], srv, _lookup(dev))
    with pytest.raises(EnvelopeError, match="truncated"):
        open_envelope(b"", srv, _lookup(dev))
    with pytest.raises(EnvelopeError, match="oversized"):
        open_envelope(os.urandom(16) * (1 << 20) * 4, srv, _lookup(dev))
    with pytest.raises(TypeError):
        open_envelope("not bytes", srv, _lookup(dev))


def test_bad_images_are_refused(keys):
    srv, dev = keys
    sf = SecondFactor.new("dev-1", 1, 1)
    with pytest.raises(TypeError, match="uint8"):
        seal(np.zeros((4, 4), dtype=np.float32), b"f", sf, srv.public_key(), dev)
    with pytest.raises(ValueError, match="shape"):
        seal(np.zeros((4, 4, 2), dtype=np.uint8), b"f", sf, srv.public_key(), dev)
    with pytest.raises(TypeError, match="X25519"):
        seal(np.zeros((4, 4), dtype=np.uint8), b"f", sf, dev, dev)
    with pytest.raises(ValueError, match="scope"):
        seal(np.zeros((4, 4), dtype=np.uint8), b"f", sf, srv.public_key(), dev, "vae", "some")


def test_image_security_factor_binds_the_secret_and_both_factors():
    k1, k2 = bytes(32), b"\x01" * 32
    a = image_security_factor(k1, b"f1", b"s1")
    assert len(a) == 32
    assert a != image_security_factor(k1, b"f2", b"s1") and a != image_security_factor(k1, b"f1", b"s2")
    assert a != image_security_factor(k2, b"f1", b"s1")
    assert a == image_security_factor(k1, b"f1", b"s1")
    with pytest.raises(ValueError, match="32 bytes"):
        image_security_factor(b"short", b"f1", b"s1")


def test_second_factor_splice_round_trip_and_errors():
    sf = SecondFactor.new("términal-7", 42, 1_700_000_000_123)
    raw = sf.splice()
    assert raw[:4] == b"PIS1" and SecondFactor.parse(raw) == sf
    with pytest.raises(ValueError, match="magic"):
        SecondFactor.parse(b"XXXX" + raw[4:])
    with pytest.raises(ValueError, match="bytes, expected"):
        SecondFactor.parse(raw[:-1])
    with pytest.raises(ValueError, match="device_info"):
        SecondFactor("", 1, 1, os.urandom(16))
    with pytest.raises(ValueError, match="counter"):
        SecondFactor("d", 1, -1, os.urandom(16))


def test_scope_decides_which_reason_a_damaged_ciphertext_gets(faces, keys):
    srv, dev = keys
    for scope, reason in (("tag", "bad_image_tag"), ("full", "bad_signature")):
        env, _ = _seal(faces[9][:16, :16], keys, scope=scope)
        bad = bytearray(env)
        bad[-64 - 16 - 5] ^= 0x40  # a ciphertext byte
        with pytest.raises(EnvelopeError, match=reason):
            open_envelope(bytes(bad), srv, _lookup(dev))
    for pos, reason in ((6, "bad_scheme"), (7, "bad_scope")):
        with pytest.raises(EnvelopeError, match=reason):
            open_envelope(env[:pos] + b"\x09" + env[pos + 1:], srv, _lookup(dev))


@pytest.fixture(scope="module")
def rsa_key():
    from cryptography.hazmat.primitives.asymmetric import rsa
    return rsa.generate_private_key(65537, 3072)


def test_rsa_oaep_capsule(faces, keys, rsa_key):
    srv, dev = keys
    sf = SecondFactor.new("dev-1", 3, 1_700_000_000_003)
    env = seal(faces[11], b"factor", sf, rsa_key.public_key(), dev)
    out = open_envelope(env, (srv, rsa_key), _lookup(dev))
    assert np.array_equal(out.image, faces[11]) and out.scheme == "rsa-oaep" and out.first_factor == b"factor"
    with pytest.raises(EnvelopeError, match="no key for the rsa-oaep"):
        open_envelope(env, srv, _lookup(dev))
    from cryptography.hazmat.primitives.asymmetric import rsa
    with pytest.raises(EnvelopeError, match="bad_capsule"):
        open_envelope(env, rsa.generate_private_key(65537, 3072), _lookup(dev))
    with pytest.raises(ValueError, match="at least 3072"):
        seal(faces[11], b"f", sf, rsa.generate_private_key(65537, 2048).public_key(), dev)


def _gf128_mul(x: int, y: int) -> int:
    """Multiplication in GCM's GF(2^128) (NIST SP 800-38D, algorithm 1), for the attack below only."""
    r, z, v = 0xE1 << 120, 0, y
    for i in range(127, -1, -1):
        if (x >> i) & 1:
            z ^= v
        v = (v >> 1) ^ r if v & 1 else v >> 1
    return z


def test_attack_the_key_holder_can_swap_pixels_under_a_tag_scope_signature(faces, keys):
    """Why scope "full" exists.  With scope "tag" the device signs the header and the GCM tag.
    Whoever holds the image key (the server, after opening the envelope) can change two
    ciphertext blocks by D and D*H (H = AES_K(0)): GHASH, hence the tag, is unchanged, so
    the device's signature also verifies on a *different* image.  Outsiders cannot do this
    (they lack K); with scope "full" the same forgery fails the signature."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    srv, dev = keys
    img = faces[13]
    for scope in ("tag", "full"):
        env, _ = _seal(img, keys, scope=scope)
        out = open_envelope(env, srv, _lookup(dev))
        key = image_security_factor(out.key_secret, out.first_factor, out.second.splice())  # what the server knows
        enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        h = int.from_bytes(enc.update(bytes(16)) + enc.finalize(), "big")
        d1 = int.from_bytes(b"forged by server", "big")
        d2 = _gf128_mul(d1, h)                     # GHASH: X_j H^(e) + X_(j+1) H^(e-1); D_(j+1) = D_j * H
        c_start = len(env) - 64 - (img.size + 16)  # first ciphertext byte (block aligned within C)
        forged = bytearray(env)
        for off, d in ((c_start, d1), (c_start + 16, d2)):
            blk = int.from_bytes(forged[off:off + 16], "big") ^ d
            forged[off:off + 16] = blk.to_bytes(16, "big")
        if scope == "tag":
            fake = open_envelope(bytes(forged), srv, _lookup(dev))   # signature and tag both verify
            assert not np.array_equal(fake.image, img)
            assert fake.image.ravel()[:16].tobytes() != img.ravel()[:16].tobytes()
        else:
            with pytest.raises(EnvelopeError, match="bad_signature"):
                open_envelope(bytes(forged), srv, _lookup(dev))


def test_review_fixes_counter_range_buffers_and_capsule_size(faces, keys):
    srv, dev = keys
    with pytest.raises(ValueError, match="2\\*\\*63"):
        SecondFactor.new("dev-1", 2**63, 1)
    env, _ = _seal(faces[3][:8, :8], keys)
    buf = bytearray(env)
    view = memoryview(buf)
    out = open_envelope(view, srv, _lookup(dev))          # a writable view is snapshotted
    assert np.array_equal(out.image, faces[3][:8, :8])
    with pytest.raises(EnvelopeError):
        open_envelope(memoryview(env)[::2], srv, _lookup(dev))  # non-contiguous: refused, not TypeError
    sf = SecondFactor.new("dev-1", 1, 1)
    with pytest.raises(ValueError, match="capsule"):
        seal(faces[3][:8, :8], bytes(65500), sf, srv.public_key(), dev)


def test_gan_row_means_are_clipped_to_int8():
    from pyimgenc.factor import first
    f = np.arange(1, 64 * 16 * 16 + 1, dtype=np.int64).reshape(64, 16, 16)
    fields = first._gan_fields(f, 2 * f, 0)
    assert max(fields["rows"]) == 127
    _, _, back = first.parse(first._pack("gan", bytes(8), fields))
    assert np.array_equal(back["rows"], fields["rows"])


def _v2_key(first: bytes, second: bytes) -> bytes:
    """The version-2 pixel key: HKDF of the first factor and the clear second factor, no secret."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    ikm = struct.pack(">H", len(first)) + first + second
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"pyimgenc/isf/v1", info=b"image-security-factor").derive(ikm)


def _guess(env: bytes, gallery, keys_for) -> int | None:
    """The eavesdropper: for each guessed image, every key it can derive without a secret; GCM tells a hit."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    hdr, _ = parse_header(env)
    for i, img in enumerate(gallery):
        for key in keys_for(first_factor(img, "vae"), hdr):
            try:
                AESGCM(key).decrypt(hdr["nonce"], bytes(hdr["ct"]), hdr["aad"])
                return i
            except InvalidTag:
                pass
    return None


def test_attack_guessing_the_image_does_not_give_the_key(faces, keys):
    """Issue 14: with the version-2 key (no secret input) an eavesdropper who guesses the image
    decrypts it — a face from a gallery, a dark frame at the first guess.  Against real version-3
    envelopes (Terminal.seal: the real first factor) every guess fails, with every secret-free key
    the attacker can form: the v2 derivation, the v3 derivation with a zero or a public key secret
    (the HPKE encapsulated key, the second factor's random bytes)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from pyimgenc.factor import Terminal
    from pyimgenc.factor.envelope import KEY_SECRET_BYTES
    srv, dev = keys
    term = Terminal("dev-1", srv.public_key(), device_key=dev, model="vae")
    target = faces[238]
    dark = np.zeros((480, 640), dtype=np.uint8)

    def secret_free_keys(f1, hdr):
        sec = hdr["sec_bytes"]
        yield _v2_key(f1, sec)
        for ks in (bytes(KEY_SECRET_BYTES), hdr["capsule"][:KEY_SECRET_BYTES], hdr["second"].random * 2):
            yield image_security_factor(ks, f1, sec)

    # the attack works on the old derivation: seal the same capture the version-2 way
    env = bytearray(term.seal(target))
    hdr, _ = parse_header(bytes(env))
    n = target.size
    ct_off = len(hdr["aad"])
    env[ct_off:ct_off + n + 16] = AESGCM(_v2_key(first_factor(target, "vae"), hdr["sec_bytes"])).encrypt(
        hdr["nonce"], target.tobytes(), hdr["aad"])
    assert _guess(bytes(env), faces, secret_free_keys) == 238          # found: the gallery attack of the issue
    # ... and fails on the real envelopes
    for img in (target, dark):
        real = term.seal(img)
        assert open_envelope(real, srv, _lookup(dev)).image.tobytes() == img.tobytes()   # the server opens it
        assert _guess(real, [dark, *faces] if img is dark else faces, secret_free_keys) is None


def test_old_envelope_versions_are_refused_with_the_reason(keys):
    env, _ = _seal(np.zeros((4, 4), dtype=np.uint8), keys)
    for v in (1, 2):
        old = bytearray(env)
        old[4] = v
        with pytest.raises(EnvelopeError, match="no secret input") as ei:
            open_envelope(bytes(old), keys[0], _lookup(keys[1]))
        assert ei.value.reason == "bad_version"
