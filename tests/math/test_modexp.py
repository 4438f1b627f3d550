"""powmod against Python's pow, on every backend and CPU path.

The IFMA path works on groups of 8 lanes, so batch sizes straddle multiples of 8;
moduli straddle multiples of 64 bits (limbs) and of 52 bits (IFMA digits).
"""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyimgenc.math import Modulus, ints_to_limbs, limbs_to_ints, nlimbs_for, powmod

BATCHES = (0, 1, 7, 8, 9, 15, 16, 17)
U64 = 2 ** 64


def enc(values, n):
    return ints_to_limbs(values, nlimbs_for(n))


def rand_odd(rng: random.Random, bits: int) -> int:
    return rng.getrandbits(bits) | (1 << (bits - 1)) | 1


def edge_bases(rng, n):
    bits = n.bit_length()
    out = [0, 1, n - 1, 2, 2 ** (bits - 1), 2 ** min(64, bits - 1), 2 ** ((bits - 1) // 2)]
    return [b % n for b in out]


def edge_exps(rng, n, big_bits):
    return [0, 1, 2, U64 - 1, U64, U64 + 1, 2 ** 63, rng.getrandbits(big_bits) | 1 << (big_bits - 1),
            rng.getrandbits(big_bits)]


@st.composite
def powmod_cases(draw):
    bits = draw(st.integers(2, 4200))
    n = draw(st.integers(2 ** (bits - 1), 2 ** bits - 1)) | 1
    batch = draw(st.sampled_from(BATCHES))
    special = st.sampled_from([0, 1, n - 1, 2 ** (bits - 1) % n])
    bases = draw(st.lists(st.one_of(special, st.integers(0, n - 1)), min_size=batch, max_size=batch))
    # exponent cost grows with modulus size: keep big moduli to short exponents
    ebits = 2 * bits + 64 if bits <= 1100 else 200
    exp = st.one_of(st.sampled_from([0, 1, U64 - 1, U64]), st.integers(0, 2 ** ebits - 1))
    shared = draw(st.booleans())
    exps = draw(st.lists(exp, min_size=1, max_size=1) if shared
                else st.lists(exp, min_size=batch, max_size=batch))
    return n, bases, exps


@given(powmod_cases())
def test_powmod_matches_pow(kw, case):
    n, bases, exps = case
    out = powmod(enc(bases, n), exps, n, **kw)
    assert out.dtype == np.uint64 and out.shape == (len(bases), nlimbs_for(n))
    es = exps * len(bases) if len(exps) == 1 else exps
    assert limbs_to_ints(out) == [pow(b, e, n) for b, e in zip(bases, es)]


SIZES = [2, 3, 52, 53, 63, 64, 65, 104, 105, 127, 128, 500, 1024, 1040, 1041, 2048, 2049, 2080,
         2081, 4096, 4097, 4160, 4161]


@pytest.mark.parametrize("bits", SIZES)
def test_powmod_sizes_and_edges(kw, bits):
    rng = random.Random(bits)
    n = rand_odd(rng, bits)
    big = min(2 * bits + 1, 300) if bits <= 1100 else 130
    bases = edge_bases(rng, n) + [rng.randrange(n) for _ in range(10)]  # 17 rows
    exps = (edge_exps(rng, n, big) * 2)[:len(bases)]
    out = powmod(enc(bases, n), exps, n, **kw)
    assert limbs_to_ints(out) == [pow(b, e, n) for b, e in zip(bases, exps)]
    # one exponent shared by every row, at each batch size around the 8-lane groups
    for batch in (0, 1, 7, 8, 9, 17):
        for e in ((0, U64 + 1, exps[7]) if bits <= 2100 else (exps[7],)):
            out = powmod(enc(bases[:batch], n), [e], n, **kw)
            assert out.shape == (batch, nlimbs_for(n))
            assert limbs_to_ints(out) == [pow(b, e, n) for b in bases[:batch]], (batch, e)


@pytest.mark.parametrize("bits", [3, 64, 65, 1024])
def test_full_size_exponent_multi_limb(kw, bits):
    rng = random.Random(bits + 1)
    n = rand_odd(rng, bits)
    bases = [rng.randrange(n) for _ in range(9)]
    exps = [rng.getrandbits(64 * nlimbs_for(n) * 2) for _ in range(9)]  # wider than N
    assert limbs_to_ints(powmod(enc(bases, n), exps, n, **kw)) == [pow(b, e, n) for b, e in zip(bases, exps)]


def test_exponent_forms_agree(kw):
    rng = random.Random(7)
    n = rand_odd(rng, 200)
    bases = enc([rng.randrange(n) for _ in range(9)], n)
    es = [rng.getrandbits(60) for _ in range(9)]
    want = [pow(b, e, n) for b, e in zip(limbs_to_ints(bases), es)]
    wide = np.zeros((9, 4), dtype=np.uint64)  # exponent limbs wider than needed
    wide[:, 0] = es
    for exps in (es, np.array(es, dtype=np.int64), np.array(es, dtype=np.uint64), wide,
                 ints_to_limbs(es, 1)):
        assert limbs_to_ints(powmod(bases, exps, n, **kw)) == want
    # a Modulus object and a plain int give the same answer; 1-D bases are one row
    assert limbs_to_ints(powmod(bases, es, Modulus(n), **kw)) == want
    assert limbs_to_ints(powmod(bases[0], [es[0]], n, **kw)) == want[:1]


def test_shared_exponent_equals_repeated(kw):
    rng = random.Random(8)
    n = rand_odd(rng, 700)
    bases = enc([rng.randrange(n) for _ in range(17)], n)
    e = rng.getrandbits(700)
    shared = powmod(bases, ints_to_limbs([e], 11), n, **kw)
    per_row = powmod(bases, ints_to_limbs([e] * 17, 11), n, **kw)
    assert np.array_equal(shared, per_row)
    assert limbs_to_ints(shared) == [pow(b, e, n) for b in limbs_to_ints(bases)]


KAT = [  # (modulus, base, exponent, base**exponent % modulus), computed with Python's pow
    pytest.param(  # 127-bit modulus
        int("4343d8c68ce14c8b6edd3a249018775b", 16),
        int("1ff373df9ba057171ed40c227dab7ad2", 16),
        int("169c6f3e3bec5519cb674d999253f6b7", 16),
        int("12361ca66e4ace097656ad7518415159", 16),
        id="kat-127"),
    pytest.param(  # 1024-bit modulus
        int("b74cc47ee0d33d024285a3e8267133ee6acc5fa209ae3ad42d4cc06b3a1290fc187e81ac2c112e7937302053"
            "8dcceab088b065e74dd5a9ec0b0084f7de574f6d7f5364eb98d00ba6b51d8b61ea81606d70db71c4a6d5169e"
            "e2c532cf9756a036a93f99f2e8a4987e06082c084826f652bafcaba920f0ac5c57b39e4dbda513bd", 16),
        int("a5c7bac6a99bd634ada11e9451fc914b999753ea56fca68d353e81ce74592c37f7525481775fdcc1ade2c9db"
            "cbfa5cd5e0c18e67ea435e559f81d902837a0c109c3572d8d8a33341189c32bf71c61315f78a2b517d521eaf"
            "4df03e1122d5189bb4d343a84b68f1c71dba58587dc7abbe40eb60ed801cf3574e9ac62aa1b018a7", 16),
        int("fe662778b674d90d30f3b4ff76760431029d22e1fc83b786d700d83f57c8ded057c0bf6c0b9dbe79ceb56d91"
            "60effb82f3660c08c2c0cf0e7f31f3257b05dee562bfc05ac8e65212fbc17bff601f46969c0109457924d5d6"
            "3e2b585df625e510bba06c4cbb847ea73ddf5687b4ae07d487e15dc4738be54072ce2b9581ba40bb", 16),
        int("2b621dbc9895bf3872500ae89601e3c64fd7f9d9d979c84eaf845f457b0f60cd46fe0d9f54ac2ab9c9b43282"
            "8125f33d8b5d1827e3160ad74f1d1319fa770d28c6ea55cb8ee535d5c261dac005737e551461364448d3b027"
            "41280d8c5cedf8a7c69099755ea650089e8688895387de8524882a6108ffbfe318aafeaed3d6dfc4", 16),
        id="kat-1024"),
    pytest.param(  # 4096-bit modulus
        int("a65525e74b94aefa32f6dd7927009bf77b8d7d8036a1b1ee71369e319aea401e3f4c73e75680035ef582753a"
            "e90c2d8a00b736912e66c8972214e09c45cbee010622d292805230f5f35e760730c175ed1c8795618832da04"
            "782c95c7648d2a49905309318752412b69b83a102febab13a120dacebfcad4d1247200a8c4a8360957a05468"
            "390cd11729bc2b8eb78d1e7e13d13cbc6ae890c79b1eb53b188b2fc3bbca868e543329ec0924faaf8b4b122c"
            "626e45b403d1bb54fd5e42c14e93334f973f83deb892e89ac98b708c43c12b59204c1bfd485a61c204c711fe"
            "703b43bfc8344c9faf79fa817c43230ec5b1a4abcb1bb61960448e56b134aa70ff0ec4a8df91e44a7ee9d805"
            "131dad12b0149b4c2e28cc720318fb7795e40570f7d5068d36bfb6b9d2a829de1317e2c8d419f8d7704b0413"
            "30cc96845ed2fce29c476bc9f530d78640c58b8c3a27cceb7bf464dd74612510418466b578fa89d52bbedfc5"
            "d6f0e60c2d36caa19ec92e15cfdc20f39b43380af1de1d008d1af78861e2412c3741f3ae8d7fd0c6ae160fd5"
            "f6ddf0b8bd1c8831be873bab0c7450763c375d474032fe3bfee1ca6886c074ecdeaa3171aa880385d606563e"
            "c42416dda1204208daa0e46bb15779ced056c66c37316c0088cea9fee945a791c84b039cbae0e87b636feb0c"
            "e7e56d537bafa7fc3425bec407286e92584e9cb7108aea221324c267", 16),
        int("1a95a7dd9b620941745d884a588098325df1eec9b2bf3b64dd33d7019a79d52930b5ccc4d2cc8ad198e458e3"
            "9c67479f0844ec473136e861e93df9d68fd5f980ce7e1f8eb768128ab2d9146e8d17908c23c975e7a3b18531"
            "78e5d26c91ac3fe42e65be59d22c6c0a2a54a294f3d9c815b8fe74b812b5bc84c59baad2975a547d062e2511"
            "a49854b29749944db15b09413d90594d6ad27635b2dffc3eb2ddd13da6a856c508b02e97052689329345c1cb"
            "b904498d52c737f301e4d0c2555ebbc6f2cecde27faa631144bfb2f1ce96793fd7ec91993544fb141b73fbf5"
            "d526005b4ee7b6e089b77a3053507fb1dd8a2a7b783be2660c7def51b5c61a9d41026483c173f5ee67ccb7cc"
            "25eabd18efb5f6b89c1e11896f1eb3a5e1241ab5dce825d7eef5f12d89167314b4f05a285bf05b2561bc5602"
            "a2547e826a5246ede2048a4db4223cc96e39cbfed9b6e0b1f5e5836a423279e6233fc5c99657ec10737bc2c6"
            "7dd6005f47c971dba88f09a1fdb11d28a9a340633e5674f410dc462c91610c4b00d9783d197b994c9a30fde5"
            "c015fcbb5a7235ddfa945f20397334accb9d7a58213dbadc75088a2f8177a77793a4e65a3f9fe29e66590cc1"
            "2a052b0728ed59cc08264eb27694487f3aaf33bc5363f3eeabfd080c480c892d936b2a3ca268ae9318ab4fd0"
            "304f150b636a617b53c74dbd190fe42ee82396a72b846a85b742db00", 16),
        int("11d5dc1f3c4299de991ea71894ec7629bfa51aa5ad4ee2f86bb07250d0f6fa9b36e8b37d12018e21a18f49a3"
            "14970a38fe68180259124cf16883523b7ce388820a1ee3a00805648f6c1fd22735aa8b40f97dca4c4a38eb2e"
            "864033a5b878cee34420c16a167e86f4d19508a21136fb9967453d94b224c4bc501272a2ef62ec87586ec283"
            "ee569bfa4343d98044d26a3a3fd4ce3fb90e084220b3db26d16b212cd3556f8f84997872fbbdf4b58c9e5674"
            "15224b58ce3a65bf7b7a1a6e747419e5958a84feedcf144383f950925b6322e785836a99a48e0b146a39daba"
            "e9af693ca083224ef3966e3c2c2e439dab889bec38122462b7e363b659b15f768e8fba379e221e841d304fb6"
            "e521e04e671a536d047fe2aa5d28b5f728e11a4634eb18447f57feff129acadd51eb85d112fcca2784c0768d"
            "c4915189192d3911779d12ad59bd160b94b18f4957194db82a361242597621b03c2f3bda4bfee19dc5652f67"
            "804b72867bc237f17e8b455214085b4407e562c44c85ed85685bdf78801a5d61d2ee9a23ffcea7e7202600f5"
            "974f47b589eef789e4b791c35145b3c1719ad0e06cf250c88707f6a53f69265ca33d850960874b564c29d23a"
            "b992982948c25b9f24f61b69479c8ce55300669124ac42c1485b90636f0ed2f46c8d203807ee601e29550188"
            "dbdc396e930245314094c9921a6b0179848fbb646f6232f6179bd642", 16),
        int("2cf4973788f6f392e0bfae0308a504581edaefd97378053e21f8fffaa055659f9b60c3e621facb57ffa7ee11"
            "524ef900d71185f6acf40f3968802cde2d0bba306106c70414e8c2a6855f5339183d5d09044ef8694e3213a4"
            "fbfcdbde9f9bde1e1a3274c4ba803ac3dfbac0a7e7c6deabdad9b67803f6ff8a405a4e1d5dfcfa9db2e2e245"
            "a108e1fcd823b2ab3aa7fa35c810a817b20a5826e80e2176ec8009eddf5b2559851d323797b5dc06fc1253bb"
            "994f79edcea38a6dbedf1ecfc39be72504482ea4885b93e2e5342d8812f92149d5bca8e9e1fa1ed5ec9d4442"
            "80185129a808aace6bf79cb1ef0bccb9971366775809fc1407fa92898929d30dcb0e32d2087d2b405671eb24"
            "0789086db33bbce3e81054f653fe4beb68644a742b4c32bab49f08021c99370186cddf5c99cf5c82e514e9c1"
            "ec761612c4aea4638d75622907bfc1a877ed5a3e19777b6bc8c71a33249f77113491c97168b502736d75b651"
            "a5f97569746919203c0cb9727ea49f0957f9b50011618b44e4e9f0a8a135250ed45c7afb3201b5f16bb15300"
            "73e67af4600a8feb44c3244f9557dd38ab970ad41952d4a8eefa65343c58a824d5671bd630365660d3cab9be"
            "5a050062312c648c74f049461c045eca952ddf18295c418c6f070aa024f2fb67cf374c01fa2ba175218f6ff0"
            "5b8e482f25adf4b069cbbb88ff08a77cb4e92510d11a9bbbdcd346a3", 16),
        id="kat-4096"),
]


@pytest.mark.parametrize("n,b,e,r", KAT)
def test_known_answers(kw, n, b, e, r):
    for batch in (1, 9):  # lone value, and the 9th lane of a second IFMA group
        out = powmod(enc([b] * batch, n), [e], n, **kw)
        assert limbs_to_ints(out) == [r] * batch


@pytest.mark.slow
@pytest.mark.parametrize("bits", [6144, 6145, 8192])
def test_powmod_large_moduli(kw, bits):
    rng = random.Random(bits)
    n = rand_odd(rng, bits)
    bases = edge_bases(rng, n) + [rng.randrange(n) for _ in range(10)]  # 17 rows
    exps = [0, 1, U64 - 1, U64, 65537, 3, rng.getrandbits(1024), rng.getrandbits(512)]
    exps += [rng.getrandbits(128) for _ in range(17 - len(exps))]
    assert limbs_to_ints(powmod(enc(bases, n), exps, n, **kw)) == [pow(b, e, n) for b, e in zip(bases, exps)]
    shared = powmod(enc(bases[:9], n), [exps[6]], n, **kw)
    assert limbs_to_ints(shared) == [pow(b, exps[6], n) for b in bases[:9]]


@pytest.mark.slow
def test_powmod_16384_bits(kw):
    rng = random.Random(16384)
    n = rand_odd(rng, 16384)  # the largest modulus the core takes (n^2, 8192-bit key)
    bases = [n - 1, 0, 1, 2 ** 16383] + [rng.randrange(n) for _ in range(5)]  # 9 rows
    exps = [U64 + 1, 0, U64, rng.getrandbits(200), rng.getrandbits(1024), 65537, 0, 1, U64 - 1]
    assert limbs_to_ints(powmod(enc(bases, n), exps, n, **kw)) == [pow(b, e, n) for b, e in zip(bases, exps)]


# --- bad input -----------------------------------------------------------------

N_SMALL = (1 << 127) + 45  # odd, 2 limbs


@pytest.mark.parametrize("bases,exc,msg", [
    (np.zeros((3, 2), dtype=np.int64), TypeError, "bases must have dtype uint64"),
    (np.zeros((3, 2), dtype=np.float64), TypeError, "bases must have dtype uint64"),
    ([[0, 0]], TypeError, "bases must be a numpy uint64 array"),
    (np.zeros((3, 3), dtype=np.uint64), ValueError, "bases must have 2 limbs"),
    (np.zeros((3, 1), dtype=np.uint64), ValueError, "bases must have 2 limbs"),
    (np.zeros((3, 1, 2), dtype=np.uint64), ValueError, r"bases must have shape \(batch, limbs\)"),
])
def test_powmod_rejects_bad_bases(kw, bases, exc, msg):
    with pytest.raises(exc, match=msg):
        powmod(bases, [3], N_SMALL, **kw)


@pytest.mark.parametrize("bad", [N_SMALL, N_SMALL + 1, 2 ** 128 - 1])
def test_powmod_rejects_unreduced_base(kw, bad):
    bases = ints_to_limbs([1, 2, 3, 4, 5, 6, 7, 8, bad], 2)  # bad value in the tail lane
    with pytest.raises(ValueError, match="not reduced modulo N"):
        powmod(bases, [3], N_SMALL, **kw)


@pytest.mark.parametrize("n", [0, 1, 2, 4, -7, 2 ** 128])
def test_powmod_rejects_bad_modulus(kw, n):
    with pytest.raises(ValueError, match="odd integer greater than 1"):
        powmod(ints_to_limbs([0], 2), [1], n, **kw)


def test_powmod_rejects_bad_exponents(kw):
    bases = ints_to_limbs([1, 2, 3], 2)
    with pytest.raises(ValueError, match="exps has 2 rows; expected 1 or 3"):
        powmod(bases, [1, 2], N_SMALL, **kw)
    with pytest.raises(ValueError, match="non-negative"):
        powmod(bases, [1, -2, 3], N_SMALL, **kw)
    with pytest.raises(ValueError, match="non-negative"):
        powmod(bases, np.array([1, -2, 3], dtype=np.int64), N_SMALL, **kw)


@pytest.mark.parametrize("exps", [np.array([1.0, 2.5, 3.0]), [1.0, 2.5, 3.0],
                                  np.zeros((3, 1), dtype=np.float64)])
def test_powmod_rejects_float_exponents(kw, exps):
    # a float exponent must not be silently truncated to an int
    with pytest.raises(TypeError, match="exps"):
        powmod(ints_to_limbs([1, 2, 3], 2), exps, N_SMALL, **kw)


def test_powmod_unknown_path_or_backend():
    bases = ints_to_limbs([2], 2)
    with pytest.raises(ValueError, match="unknown CPU path 'avx2'"):
        powmod(bases, [3], N_SMALL, backend_name="cpu", cpu_path="avx2")
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        powmod(bases, [3], N_SMALL, backend_name="gpu")


@pytest.mark.parametrize("bits", [64, 521, 1024, 2048])
def test_secret_exponent_path_matches_pow(bits, kw):
    """Constant-time exponentiation (decryption's p-1) gives the same numbers."""
    import random

    if kw["backend_name"] == "python":
        pytest.skip("the gmpy2 reference has no constant-time mode; secret_exponent is a native option")
    rng = random.Random(bits)
    n = rng.getrandbits(bits) | 1 | (1 << (bits - 1))
    for root in (None, n):
        m = Modulus(n * n, root=root, radix_min_digits=2)
        xs = [rng.randrange(n * n) for _ in range(9)] + [0, 1, n * n - 1]
        for e in (0, 1, 31, 32, rng.getrandbits(bits), (1 << bits) - 1):
            got = limbs_to_ints(powmod(ints_to_limbs(xs, m.nlimbs), [e], m, secret_exponent=True, **kw))
            assert got == [pow(x, e, n * n) for x in xs]
    with pytest.raises(ValueError, match="shared"):
        powmod(ints_to_limbs(xs, m.nlimbs), np.array([1] * len(xs), dtype=np.uint64), m,
               secret_exponent=True, **kw)


@pytest.mark.parametrize("limbs", [0, 257])
def test_exponent_limb_count_is_checked_on_every_engine(kw, limbs):
    b = ints_to_limbs([2, 3], 1)
    with pytest.raises(ValueError, match="1 to 256 limbs"):
        powmod(b, np.ones((1, limbs), dtype=np.uint64), 1000003, **kw)
