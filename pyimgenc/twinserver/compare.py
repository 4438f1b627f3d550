"""Secure comparison of a value shared between S1 and S2: the millionaires' protocol over OT.

SACT and SMAP need, per element, the bit ``t = [y >= 0]`` of a value ``y`` that S2 holds
blinded (``z = y + r``) and S1 holds the mask of (``r``).  This module computes XOR shares
``t1 xor t2 = t`` (S1 holds ``t1``, S2 ``t2``) so that each server's view is simulatable
from its own input: every message either carries is a uniformly random bit string to
the other (``docs/twinserver-protocol.md``, "Comparison").  The construction is the
millionaires' protocol of CrypTFlow2 (Rathee et al., CCS 2020), on the random OTs of
:mod:`.ot`; S1's half and S2's half sit side by side below.

**From the sign to a comparison.**  With ``|y| < 2**vb`` and ``l = vb + 1``, S2's share is
``A = z mod 2**l`` and S1's ``B = -r mod 2**l``; ``y = A + B mod 2**l`` is an l-bit two's
complement number, so ``[y < 0] = msb(A) xor msb(B) xor carry`` with
``carry = [A' + B' >= 2**(l-1)] = [X < A']``, ``A' = A mod 2**(l-1)`` (S2) and
``X = 2**(l-1) - 1 - (B mod 2**(l-1))`` (S1, known offline: the masks are).

**Leaves.**  ``X`` and ``A'`` are cut into ``q = ceil(vb / 4)`` nibbles.  For nibble j, S2
draws bits ``lt2, eq2`` and sends the 16-entry table ``T[k] = (lt2 xor [k < A_j],
eq2 xor [k = A_j]) xor pad[k]``; S1 knows only ``pad[X_j]`` (a 1-out-of-16 random OT
made of four 1-out-of-2 OTs whose choice bits are X_j's bits, each entry under its own
hash tweak) and reads ``lt1 = lt2 xor [X_j < A_j]``, ``eq1 = eq2 xor [X_j = A_j]``.

**Tree.**  ``[X < A'] = lt_hi xor (eq_hi and lt_lo)``, ``eq = eq_hi and eq_lo`` combine
neighbouring nibbles up a binary tree (an odd one out moves up unchanged); the two ANDs
of a node share the operand ``eq_hi`` and use one *correlated* Beaver triple
``(a, b, b')``, ``c = a and b``, ``c' = a and b'``.  One level per message: each party
opens ``e = eq_hi xor a``, ``f = lt_lo xor b``, ``f' = eq_lo xor b'`` and both finish the
level (:class:`AndTree`, :func:`exchange`).

**Triples** come from one random OT each way: S2 sends in the f-instance (S1 chooses
``a1``), S1 in the c-instance (S2's random choice is ``a2``); the two-bit key differences
are ``b2, b2'`` (S2's) and ``b1, b1'`` (S1's), and ``a and b`` splits into the four
products ``a1 b1, a2 b2`` (local) and ``a1 b2, a2 b1`` (one OT each).

The OT material of one session lies in three ranges of the f-instance (selection,
leaves, triples) and two of the c-instance (selection, triples); :class:`Layout`
numbers them, S1 and S2 walk them in the same order.

Messages (S1 drives; :func:`s1_compare` and :func:`s2_cmp1` / :func:`s2_cmp2`)::

    S1 -> S2  cmp1: the name of z, the OT cursors      S2 -> S1  leaf tables, S2's level-1 openings
    S1 -> S2  cmp2: S1's openings (one or two levels)  S2 -> S1  S2's openings of the next level
    ...                                                 (S1's last openings ride in SACT's relu2)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import ot
from .graph import STAT_BITS
from .messages import ProtocolError

BLOCK = 4                      # bits per leaf: 1-out-of-16 OTs
ENTRIES = 1 << BLOCK
DOMAIN_C, DOMAIN_F = 1, 2      # hash-tweak domains of the two IKNP instances
_K = np.arange(ENTRIES, dtype=np.uint8)
_BITS = ((_K[:, None] >> np.arange(BLOCK, dtype=np.uint8)[None, :]) & 1).astype(bool)   # [k, i] = bit i of k


def leaves(vb: int) -> int:
    """Nibbles compared for a value with ``|y| < 2**vb`` (``vb`` bits below the sign)."""
    return max(1, -(-vb // BLOCK))


def levels(q: int) -> list[int]:
    """Pairs combined at each level of the tree over ``q`` leaves (their sum is ``q - 1``)."""
    out = []
    while q > 1:
        out.append(q // 2)
        q = q // 2 + q % 2
    return out


@dataclass
class Layout:
    """Counts of one session's OT material: per element 1 selection OT, q leaves, q - 1 triples."""
    sel: int = 0
    leaf: int = 0
    tri: int = 0

    def add(self, size: int, vb: int) -> tuple[int, int, int]:
        """Reserve the material of ``size`` comparisons of ``vb``-bit values; returns the start cursors."""
        q = leaves(vb)
        start = (self.sel, self.leaf, self.tri)
        self.sel += size
        self.leaf += size * q
        self.tri += size * (q - 1)
        return start

    @property
    def m_f(self) -> int:          # f-instance: S2 sends, S1 chooses
        return self.sel + BLOCK * self.leaf + self.tri

    @property
    def m_c(self) -> int:          # c-instance: S1 sends, S2 chooses at random
        return self.sel + self.tri

    def covers(self, other: "Layout") -> bool:
        return other.sel <= self.sel and other.leaf <= self.leaf and other.tri <= self.tri


def plan_layout(plan: dict, out_channels: dict, n_images: int) -> Layout:
    """The OT material of ``n_images`` images of the planned ICNN, from public data only.

    ``out_channels[name]`` is each linear layer's output channels (both servers know it
    from their model shares).  S1 checks a batch against the per-session cap before any
    offline work; S2 refuses ``ot1`` counts beyond this.
    """
    from .graph import Bound, BoundOps, icnn_forward, max2_bounds, STAT_BITS

    class _Count(BoundOps):
        def __init__(self):
            self.layout = Layout()

        def conv(self, name, h, pad):
            shape = h.shape if name != "fc" else (h.shape[0], int(np.prod(h.shape[1:])), 1, 1)
            vb = plan["layers"][name]["vb"]
            return Bound((shape[0], int(out_channels[name]), shape[2], shape[3]), vb, vb + STAT_BITS)

        def relu(self, h):
            self.layout.add(int(np.prod(h.shape)), h.vb)
            return super().relu(h)

        def max2(self, a, b):
            self.layout.add(int(np.prod(a.shape)), max2_bounds((a.vb, a.mb), (b.vb, b.mb))[0][0])
            return super().max2(a, b)
    ops = _Count()
    vb0 = plan["input_vb"]
    icnn_forward(ops, type("Arch", (), {"fw": plan["fw"]}), Bound((n_images, 1, 28, 28), vb0, vb0 + STAT_BITS))
    return ops.layout


def nibbles(values, q: int) -> np.ndarray:
    """(N, q) uint8: the low ``4q`` bits of non-negative integers, least significant nibble first."""
    nb = -(-q // 2)
    raw = np.frombuffer(b"".join(int(v).to_bytes(nb, "little") for v in values), dtype=np.uint8)
    raw = raw.reshape(-1, nb)
    out = np.empty((raw.shape[0], 2 * nb), dtype=np.uint8)
    out[:, 0::2], out[:, 1::2] = raw & 15, raw >> 4
    return out[:, :q]


def s1_inputs(r, vb: int) -> tuple[np.ndarray, np.ndarray]:
    """S1's side of ``[y >= 0]`` for masks ``r``: (msb of B, nibbles of X), ``l = vb + 1``."""
    ell = vb + 1
    half = 1 << (ell - 1)
    b = [(-int(v)) % (half << 1) for v in r]
    msb = np.array([v >> (ell - 1) for v in b], dtype=np.uint8)
    x = [half - 1 - (v & (half - 1)) for v in b]
    return msb, nibbles(x, leaves(vb))


def s2_inputs(z, vb: int) -> tuple[np.ndarray, np.ndarray]:
    """S2's side for blinded values ``z``: (msb of A, nibbles of A')."""
    ell = vb + 1
    a = [int(v) % (1 << ell) for v in z]
    msb = np.array([v >> (ell - 1) for v in a], dtype=np.uint8)
    return msb, nibbles([v & ((1 << (ell - 1)) - 1) for v in a], leaves(vb))


# ---------------------------------------------------------------------------------- leaves
def s2_leaf_pads(q_rows: np.ndarray, srow: np.ndarray, index0: int) -> np.ndarray:
    """S2 (f-instance sender): (L, 16) two-bit pads of L leaves from their 4L OT rows.

    ``pad[l, k] = xor_i H(q_{4l+i} xor k_i s, (index, k))``, low two bits: the entry that S1,
    with choice bits ``k_i``, can compute is ``k = X_l``; every other entry involves a
    key S1 does not hold, under a tweak used nowhere else.
    """
    n = len(q_rows) // BLOCK
    pads = np.zeros((n, ENTRIES), dtype=np.uint8)
    step = ot.CHUNK // BLOCK
    for l0 in range(0, n, step):
        x = q_rows[BLOCK * l0:BLOCK * min(n, l0 + step)]
        cnt = len(x) // BLOCK
        p = (ot._pi(x).reshape(cnt, BLOCK, 16), ot._pi(x ^ srow[None, :]).reshape(cnt, BLOCK, 16))
        tw = ot.tweaks(DOMAIN_F, index0 + BLOCK * l0 + np.arange(cnt * BLOCK)).reshape(cnt, BLOCK, 16)
        pt = (p[0] ^ tw, p[1] ^ tw)            # H(x, (j, k)) = pi(pi(x) ^ tw_j ^ k) ^ pi(x): k sits in byte 0
        low = (p[0][..., 0] & 3, p[1][..., 0] & 3)
        inp = np.empty((cnt, BLOCK, 16), dtype=np.uint8)
        for k in range(ENTRIES):
            acc = np.zeros(cnt, dtype=np.uint8)
            for i in range(BLOCK):
                b = int(_BITS[k, i])
                inp[:, i] = pt[b][:, i]
                acc ^= low[b][:, i]
            inp[:, :, 0] ^= np.uint8(k)
            h = ot._pi(inp)[..., 0] & 3
            pads[l0:l0 + cnt, k] = acc ^ np.bitwise_xor.reduce(h, axis=1)
    return pads


def s1_leaf_pads(t_rows: np.ndarray, x: np.ndarray, index0: int) -> np.ndarray:
    """S1 (f-instance receiver, choice bits the bits of ``x``): (L,) pads ``pad[l, x_l]``."""
    n = len(x)
    out = np.zeros(n, dtype=np.uint8)
    step = ot.CHUNK // BLOCK
    for l0 in range(0, n, step):
        xs = x[l0:l0 + step]
        cnt = len(xs)
        rows = t_rows[BLOCK * l0:BLOCK * (l0 + cnt)]
        idx = index0 + BLOCK * l0 + np.arange(cnt * BLOCK)
        h = ot.tccr(rows, ot.tweaks(DOMAIN_F, idx, np.repeat(xs, BLOCK)))[:, 0]
        out[l0:l0 + cnt] = np.bitwise_xor.reduce((h & 3).reshape(cnt, BLOCK), axis=1)
    return out


def leaf_choices(x: np.ndarray) -> np.ndarray:
    """S1's f-instance choice bits for leaves ``x`` (bit i of each nibble, in order)."""
    return ((x.reshape(-1)[:, None] >> np.arange(BLOCK, dtype=np.uint8)[None, :]) & 1).reshape(-1)


def s2_table(a: np.ndarray, pads: np.ndarray, lt2: np.ndarray, eq2: np.ndarray) -> bytes:
    """S2's message: for each leaf the 16 entries ``(lt2 xor [k < a], eq2 xor [k = a]) xor pad[k]``."""
    lt = (_K[None, None, :] < a[..., None]).astype(np.uint8) ^ lt2[..., None]
    eq = (_K[None, None, :] == a[..., None]).astype(np.uint8) ^ eq2[..., None]
    return ot.pack_bits(((lt | (eq << 1)) ^ pads.reshape(lt.shape))[..., None] >> np.array([0, 1], dtype=np.uint8)
                        & 1).tobytes()


def s1_read_table(blob, x: np.ndarray, pads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """S1 opens entry ``x`` of each leaf's table: its shares (lt1, eq1), each (N, q)."""
    n = x.size * ENTRIES * 2
    if not isinstance(blob, (bytes, bytearray)) or len(blob) != -(-n // 8):
        raise ValueError(f"a comparison table must be {-(-n // 8)} bytes for {x.size} leaves")
    bits = ot.unpack_bits(blob, n).reshape(x.size, ENTRIES, 2)
    e = bits[np.arange(x.size), x.reshape(-1)]
    v = (e[:, 0] | (e[:, 1] << 1)) ^ pads.reshape(-1)
    return (v & 1).reshape(x.shape), (v >> 1).reshape(x.shape)


# ---------------------------------------------------------------------------------- triples
def s1_triples(a1: np.ndarray, u: np.ndarray, h0: np.ndarray, h1: np.ndarray):
    """S1's correlated-triple shares from its OT outputs: a1 (its f-choice), u = g_{a1}, h0, h1."""
    b1 = h0 ^ h1
    return a1, b1, (a1 * b1) ^ u ^ h0


def s2_triples(a2: np.ndarray, g0: np.ndarray, g1: np.ndarray, ha: np.ndarray):
    """S2's shares: a2 (its c-choice), its f-keys' two bits g0, g1, and h_{a2} from the c-instance."""
    b2 = g0 ^ g1
    return a2, b2, (a2 * b2) ^ g0 ^ ha


# ---------------------------------------------------------------------------------- the tree
class AndTree:
    """One party's XOR shares of ``[X < A']`` from its leaf shares, one tree level per message.

    ``triples`` = (a, b, c), each (N, q - 1): ``a`` a bit, ``b`` and ``c`` two bits (the pair
    of correlated triples).  ``adds_ef`` is True for exactly one party (S1).
    """

    def __init__(self, lt: np.ndarray, eq: np.ndarray, triples, adds_ef: bool):
        self.lt, self.eq = lt.copy(), eq.copy()
        self.a, self.b, self.c = (np.asarray(t, dtype=np.uint8).reshape(lt.shape[0], -1) for t in triples)
        self.adds_ef = np.uint8(1 if adds_ef else 0)
        self.pairs = levels(lt.shape[1])
        self.level = self.opened = self.off = 0
        self._mine = None

    @property
    def done(self) -> bool:
        return self.level == len(self.pairs)

    @property
    def root(self) -> np.ndarray:
        if not self.done:
            raise RuntimeError("the comparison tree is not finished")
        return self.lt[:, 0]

    def _slice(self):
        p = self.pairs[self.level]
        return p, slice(self.off, self.off + p)

    def open(self) -> bytes:
        """This party's openings ``e, f, f'`` of the current level (3 bits per pair)."""
        if self.opened != self.level or self.done:
            raise RuntimeError("nothing to open at this point of the comparison")
        p, sl = self._slice()
        e = self.eq[:, 1:2 * p:2] ^ self.a[:, sl]
        f = (self.lt[:, 0:2 * p:2] | (self.eq[:, 0:2 * p:2] << 1)) ^ self.b[:, sl]
        self._mine = (e, f)
        self.opened += 1
        return ot.pack_bits(np.stack([e, f & 1, f >> 1], axis=-1)).tobytes()

    def absorb(self, blob) -> None:
        """Finish the current level with the other party's openings."""
        p, sl = self._slice()
        n = self.lt.shape[0] * p * 3
        if self.opened != self.level + 1:
            raise RuntimeError("absorb before open")
        if not isinstance(blob, (bytes, bytearray)) or len(blob) != -(-n // 8):
            raise ValueError(f"comparison level {self.level}: openings must be {-(-n // 8)} bytes")
        o = ot.unpack_bits(blob, n).reshape(self.lt.shape[0], p, 3)
        e = self._mine[0] ^ o[..., 0]
        f = self._mine[1] ^ (o[..., 1] | (o[..., 2] << 1))
        z = self.c[:, sl] ^ (e * self.b[:, sl]) ^ (f * self.a[:, sl]) ^ (self.adds_ef * e * f)
        lt = self.lt[:, 1:2 * p:2] ^ (z & 1)
        eq = z >> 1
        q = self.lt.shape[1]
        if q % 2:
            lt, eq = np.concatenate([lt, self.lt[:, -1:]], axis=1), np.concatenate([eq, self.eq[:, -1:]], axis=1)
        self.lt, self.eq = lt, eq
        self.off += p
        self.level += 1


def exchange(tree: AndTree, incoming) -> list[bytes]:
    """Absorb the other party's openings, level by level; return this party's next openings."""
    out = []
    for blob in incoming:
        if tree.done:
            raise ValueError("comparison: more openings than tree levels")
        if tree.opened == tree.level:
            out.append(tree.open())
        tree.absorb(blob)
    if not tree.done and tree.opened == tree.level:
        out.append(tree.open())
    return out


# ---------------------------------------------------------------------------------- S1's half

def s1_compare(ops, src: str, width: int, e: dict) -> tuple[AndTree, list[bytes]]:
    """S1: run cmp1/cmp2 on S2's tensor ``src`` with S1's offline entry ``e`` (``x``, ``a1``, OT cursor ``cur``).

    Returns:
        S1's tree (its root, once done, is S1's share ``t1`` xor the msb terms) and S1's
        last openings, which the caller sends with its next message (SACT's relu2).
    """
    from .channel import ChannelError
    mat = ops.tape.ot
    js, jl, jt = e["cur"]
    x = e["x"]
    nl, nt = x.size, x.shape[0] * (x.shape[1] - 1)
    try:
        table, *theirs = ops.request("cmp1", dict(src=src, width=width, ot=[js, jl, jt]))
        lt1, eq1 = s1_read_table(table, x, mat.pads[jl:jl + nl])
        tree = AndTree(lt1, eq1, s1_triples(e["a1"], mat.u[jt:jt + nt], mat.h0[jt:jt + nt], mat.h1[jt:jt + nt]),
                       adds_ef=True)
        mine = exchange(tree, theirs)
        while not tree.done:
            mine = exchange(tree, ops.request("cmp2", {}, blobs=mine))
    except ValueError as exc:
        raise ChannelError("bad_reply", f"comparison: {exc}") from None
    return tree, mine


# ---------------------------------------------------------------------------------- S2's half

def session_ot(sess) -> dict:
    """S2: the session's OT material (refused before the offline phase made it)."""
    st = sess.get("ot")
    if st is None:
        raise ProtocolError("no oblivious-transfer material in this session (run the offline phase first)")
    return st


def awaiting(st: dict, kind: str, op: str) -> dict:
    """S2: the pending step of ``kind`` (a comparison, a selection), or refuse ``op`` as out of order."""
    p = st["pending"]
    if p is None or p["kind"] != kind:
        st["pending"] = None
        raise ProtocolError(f"{op} out of order")
    return p


def s2_cmp1(srv, sess, meta, tensors, blobs):
    """S2: start the comparisons ``[y >= 0]`` of a tensor: S2's leaf tables and first openings."""
    zt = srv.get(sess, meta.get("src"))
    z = zt.ravel()
    w, _ = srv.width(meta)
    st = session_ot(sess)
    size = len(z)
    vb = w - STAT_BITS - 3
    if not 1 <= vb or w > ot.KEY_BITS:
        raise ProtocolError(f"cmp1: words of {w} bits: need {STAT_BITS + 4}..{ot.KEY_BITS}")
    if st["pending"] is not None:
        raise ProtocolError("cmp1 while the previous comparison is unfinished")
    cur = meta.get("ot")
    if cur != list(st["cursor"]):
        raise ProtocolError("cmp1: the oblivious transfers named are not the next unused ones")
    lay, q = st["lay"], leaves(vb)
    js, jl, jt = cur
    end = (js + size, jl + size * q, jt + size * (q - 1))
    if end[0] > lay.sel or end[1] > lay.leaf or end[2] > lay.tri:
        raise ProtocolError("cmp1: not enough oblivious transfers left in this session")
    st["cursor"] = end                                # spent, whatever happens next
    msb, a = s2_inputs(z, vb)
    lt2, eq2 = (ot.random_bits(size * q).reshape(size, q) for _ in range(2))
    table = s2_table(a, st["pads"][jl:end[1]], lt2, eq2)
    tree = AndTree(lt2, eq2, (t[jt:end[2]] for t in st["tri"]), adds_ef=False)
    st["pending"] = dict(kind="cmp", tree=tree, msb=msb, z=z, shape=zt.shape, w=w, js=js, size=size)
    return {}, [], [table, *exchange(tree, [])]


def s2_cmp2(srv, sess, meta, tensors, blobs):
    """S2: one step of the comparison tree: S1's openings in, S2's out."""
    st = session_ot(sess)
    p = awaiting(st, "cmp", "cmp2")
    try:
        if tensors or p["tree"].done:
            raise ValueError("no comparison level is waiting")
        return {}, [], exchange(p["tree"], blobs)
    except (ValueError, RuntimeError) as exc:
        st["pending"] = None
        raise ProtocolError(f"cmp2: {exc}") from None


def s2_finish(p: dict, openings: list) -> np.ndarray:
    """S2: absorb S1's last openings; S2's share ``t2`` of ``[y >= 0]`` (``ValueError`` if unfinished)."""
    tree = p["tree"]
    if exchange(tree, openings) or not tree.done:
        raise ValueError("the comparison is unfinished")
    return p["msb"] ^ tree.root ^ np.uint8(1)


S2_OPS = {"cmp1": s2_cmp1, "cmp2": s2_cmp2}
