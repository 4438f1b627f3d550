"""Binary format: round trips, and every corruption rejected with ValueError."""
from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest

from pyimgenc.paillier import EncryptedTensor, PublicKey, SecretKey
from pyimgenc.paillier import serialize as ser


def rewrap(kind, body):
    """Valid envelope (correct checksum) around an arbitrary body."""
    return ser._wrap(kind, body)


def body_of(data):
    return data[16:-32]


def test_round_trips(keypair, exact):
    pk, sk = keypair
    pk2 = PublicKey.from_bytes(pk.to_bytes())
    assert pk2 == pk and pk2.hs == pk.hs
    sk2 = SecretKey.from_bytes(sk.to_bytes())
    assert (sk2.p, sk2.q) == (sk.p, sk.q) and sk2.public_key.hs == pk.hs
    for x in [np.arange(-6, 6).reshape(2, 3, 2), np.array(7), np.zeros((0, 4), np.int64)]:
        ct = pk.encrypt(x)
        data = ct.to_bytes()
        t1 = EncryptedTensor.from_bytes(data, pk2)  # an equal key loaded from bytes
        t2 = EncryptedTensor.from_bytes(bytearray(data), pk)
        assert t1.to_ints() == t2.to_ints() == ct.to_ints() and t2.shape == x.shape
        exact(sk.decrypt(t1), x)
        exact(sk2.decrypt(t2), x)


def test_layout_is_as_documented(keypair):
    pk, _ = keypair
    data = pk.to_bytes()
    magic, version, kind, reserved, blen = struct.unpack_from("<4sBBHQ", data)
    assert (magic, version, kind, reserved) == (b"PYIE", 1, 1, 0)
    assert len(data) == 16 + blen + 32
    assert data[-32:] == hashlib.sha256(data[:-32]).digest()
    body = body_of(data)
    ln = struct.unpack_from("<H", body)[0]
    assert int.from_bytes(body[2:2 + 8 * ln], "little") == pk.n
    assert int.from_bytes(body[2 + 8 * ln:], "little") == pk.hs
    assert len(body) == 2 + 8 * ln + 8 * pk.ct_limbs


def _samples(keypair):
    pk, sk = keypair
    return {"pk": (pk.to_bytes(), PublicKey.from_bytes),
            "sk": (sk.to_bytes(), SecretKey.from_bytes),
            "ct": (pk.encrypt(np.arange(4).reshape(2, 2)).to_bytes(),
                   lambda data: EncryptedTensor.from_bytes(data, pk))}


@pytest.mark.parametrize("which", ["pk", "sk", "ct"])
def test_truncated_and_extended(keypair, which):
    data, load = _samples(keypair)[which]
    for cut in [0, 3, 15, 16, 17, len(data) // 2, len(data) - 33, len(data) - 1]:
        with pytest.raises(ValueError, match="truncated"):
            load(data[:cut])
    for extra in [b"\x00", b"junk" * 10]:
        with pytest.raises(ValueError, match="trailing bytes"):
            load(data + extra)


@pytest.mark.parametrize("which", ["pk", "sk", "ct"])
def test_every_flipped_byte_is_detected(keypair, which):
    data, load = _samples(keypair)[which]
    for pos in range(len(data)):  # every region: header, body fields, checksum
        bad = bytearray(data)
        bad[pos] ^= 0x5A
        with pytest.raises(ValueError):
            load(bytes(bad))


def test_specific_header_errors(keypair):
    pk, sk = keypair
    data = pk.to_bytes()
    with pytest.raises(ValueError, match="bad magic"):
        PublicKey.from_bytes(b"XXXX" + data[4:])
    with pytest.raises(ValueError, match="unsupported format version 2"):
        PublicKey.from_bytes(data[:4] + b"\x02" + data[5:])
    with pytest.raises(ValueError, match="wrong kind 2"):
        PublicKey.from_bytes(sk.to_bytes())
    with pytest.raises(ValueError, match="wrong kind 1"):
        EncryptedTensor.from_bytes(data, pk)
    with pytest.raises(ValueError, match="checksum mismatch"):
        PublicKey.from_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(TypeError, match="data must be bytes"):
        PublicKey.from_bytes("PYIE")


def test_semantic_errors_behind_valid_checksums(keypair, other_keypair):
    pk, sk = keypair
    pkb = body_of(pk.to_bytes())
    ln = struct.unpack_from("<H", pkb)[0]
    n_even = (pk.n + 1).to_bytes(8 * ln, "little")
    with pytest.raises(ValueError, match="odd number"):
        PublicKey.from_bytes(rewrap(1, pkb[:2] + n_even + pkb[2 + 8 * ln:]))
    hs_zero = bytes(8 * pk.ct_limbs)
    with pytest.raises(ValueError, match="hs must be a unit"):
        PublicKey.from_bytes(rewrap(1, pkb[:2 + 8 * ln] + hs_zero))
    with pytest.raises(ValueError, match="unexpected bytes"):
        PublicKey.from_bytes(rewrap(1, pkb + b"\x00"))
    with pytest.raises(ValueError, match="body truncated"):
        PublicKey.from_bytes(rewrap(1, pkb[:-1]))
    # secret key with the other key's q: p * q != n
    skb = body_of(sk.to_bytes())
    q_other = other_keypair[1].q
    nl = (q_other.bit_length() + 63) // 64
    forged = skb[:-(2 + 8 * ((sk.q.bit_length() + 63) // 64))] + struct.pack("<H", nl) + q_other.to_bytes(8 * nl, "little")
    with pytest.raises(ValueError, match="p \\* q does not equal n"):
        SecretKey.from_bytes(rewrap(2, forged))
    # composite "factors": n = 1 * n
    one, nn = (1).to_bytes(8, "little"), pk.n.to_bytes(8 * ln, "little")
    with pytest.raises(ValueError, match="not prime"):
        SecretKey.from_bytes(rewrap(2, pkb + struct.pack("<H", 1) + one + struct.pack("<H", ln) + nn))


def test_tensor_semantic_errors(keypair, other_keypair):
    pk, sk = keypair
    ct = pk.encrypt([1, 2])
    data = ct.to_bytes()
    with pytest.raises(ValueError, match="different public key"):
        EncryptedTensor.from_bytes(data, other_keypair[0])
    with pytest.raises(TypeError, match="public_key"):
        EncryptedTensor.from_bytes(data, pk.n)
    with pytest.raises(TypeError, match="public_key"):   # the embedded key is never trusted on its own
        EncryptedTensor.from_bytes(data)
    body = body_of(data)
    width = 8 * pk.ct_limbs
    head = body[:-2 * width]
    for bad_ct, why in [(0, "not in"), (pk.nsquare, "not in"), (2**(8 * width) - 1, "not in")]:
        forged = head + bad_ct.to_bytes(width, "little") + body[-width:]
        with pytest.raises(ValueError, match=why):
            EncryptedTensor.from_bytes(rewrap(3, forged), pk)
    # shape says 3 ciphertexts, body has 2
    klen = struct.unpack_from("<I", body)[0]
    dims_at = 4 + klen + 1
    forged = body[:dims_at] + struct.pack("<Q", 3) + body[dims_at + 8:]
    with pytest.raises(ValueError, match="needs .* bytes of ciphertexts"):
        EncryptedTensor.from_bytes(rewrap(3, forged), pk)
    forged = body[:4 + klen] + b"\xff" + body[4 + klen + 1:]
    with pytest.raises(ValueError, match="ndim 255"):
        EncryptedTensor.from_bytes(rewrap(3, forged), pk)


def test_the_format_module_is_a_leaf_over_primitives(keypair):
    import ast
    import inspect
    tree = ast.parse(inspect.getsource(ser))
    imported = {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"keys", "tensor"}, imported
    pk, sk = keypair
    assert ser.public_key_from_bytes(pk.to_bytes()) == (pk.n, pk.hs)
    assert ser.secret_key_from_bytes(sk.to_bytes()) == (pk.n, pk.hs, sk.p, sk.q)
    ct = pk.encrypt(np.arange(6).reshape(2, 3))
    n, hs, limbs = ser.tensor_from_bytes(ct.to_bytes())
    assert (n, hs) == (pk.n, pk.hs) and limbs.shape == (2, 3, pk.ct_limbs) and (limbs == ct.limbs).all()
    assert ser.tensor_to_bytes(pk.n, pk.hs, limbs) == ct.to_bytes()


def test_a_secret_key_with_a_bad_hs_is_refused(keypair):
    """An hs that is not an n-th residue passes the checksum (recomputed) but would make the
    key decrypt its own encryptions wrongly: loading refuses it, naming the problem."""
    pk, sk = keypair
    bad_hs = pk.hs * (1 + pk.n) % pk.nsquare          # a unit, but E(1)-shifted: not an n-th residue
    bad_pk = PublicKey(pk.n, bad_hs)
    assert sk.decrypt(bad_pk.encrypt([5]))[0] != 5   # what the check prevents
    forged = ser.secret_key_to_bytes(pk.n, bad_hs, sk.p, sk.q)
    with pytest.raises(ValueError, match="not an n-th residue"):
        SecretKey.from_bytes(forged)
    with pytest.raises(ValueError, match="not an n-th residue"):
        SecretKey(bad_pk, sk.p, sk.q)


@pytest.mark.parametrize("hs", [1, -1])
def test_a_public_key_whose_hs_has_order_two_is_refused(keypair, hs):
    pk, _ = keypair
    with pytest.raises(ValueError, match="order 1 or 2"):
        PublicKey(pk.n, hs % pk.nsquare)
    with pytest.raises(ValueError, match="order 1 or 2"):
        PublicKey.from_bytes(ser.public_key_to_bytes(pk.n, hs % pk.nsquare))
