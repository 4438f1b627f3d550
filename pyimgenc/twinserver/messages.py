"""Every message of System A in one place: frame types, the key server's operations, one call.

Frame types (the ``type`` byte of :mod:`.channel`'s frames):

====================  =====  ===============================================================
type                  value  body
====================  =====  ===============================================================
SMP_REQUEST / REPLY   1 / 2  literal SMP (:mod:`.smp`): two / one length-prefixed tensors
SACT_REQUEST / REPLY  3 / 4  literal SACT (:mod:`.literal`): two / two tensors
FAST_REQUEST / REPLY  10/11  the fast protocol: :func:`.wire.pack_message` with ``meta["op"]``
CLASSIFY_REQUEST/REP  20/21  user -> S1 service (:mod:`.deploy`): sid, n, ``E(image)``
ERROR_REPLY           255    UTF-8 text: the peer refused the request (it keeps serving)
====================  =====  ===============================================================

The fast protocol's operations, grouped by the protocol module that holds both halves
(:data:`OPS`: who may send each, whether it carries raw blobs, and the reply's shape —
how many tensors and blobs S2 answers with; ``None`` for a count that varies):

=========  ==============  ======================================================  ====================================
op         module          S2 receives                                             S2 returns
=========  ==============  ======================================================  ====================================
open       (S2)            (user) SHA-256 of a 32-byte secret (hex), no sid        a fresh session id (S2 draws it)
fetch      (S2)            (user) the session id and the secret                    v + r (hex), once
prepare    (S2)            a count                                                 — (precomputes encryption randomness)
load       (S1/S2)         E(d + R) packed (the user's image, re-masked by S1)     —
result     (S1/S2)         the name of the logits' blinded tensor                  — (keeps it for the user)
qterm      :mod:`.linear`  E(conv(R, Wb) + M2), packed by output channel           — (stores Q = -(conv(R, Wb) + M2))
lin1       :mod:`.linear`  the name of X' = X + R                                  E(cols of X'), E(conv(X', Wb) + bb + Q)
lin2       :mod:`.linear`  E(Y + R'), packed by position                           — (stores Y + R')
ot1        :mod:`.randot`  counts of selection OTs, leaves and triples             base OTs: E(k0_i), E(k1_i), E(s2_i)
ot2        :mod:`.randot`  base-OT replies, S1's IKNP matrix (blob)                k_{s_i} + rho_i (words), S2's matrix
cmp1       :mod:`.compare` the name of z, the OT cursors                           leaf tables, S2's openings
cmp2       :mod:`.compare` S1's openings of one or two tree levels (bits)          S2's openings of the next levels
relu2      :mod:`.sact`    S1's last openings, delta = t1 xor f (bits)             e = t' xor c (bits), y0, y1 (words)
relu3      :mod:`.sact`    w0, w1, v (words)                                       — (stores relu(y) + m)
=========  ==============  ======================================================  ====================================

Every request may carry ``pre``: local steps (slice, concat with shifts, add, sub, free)
S2 runs on its blinded tensors first (:mod:`.smap`'s max is ``b + relu(a - b)``: a local
``sub``, a SACT, a local ``add``).  :func:`call` is the one round trip every caller uses.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import wire

SMP_REQUEST, SMP_REPLY, SACT_REQUEST, SACT_REPLY = 1, 2, 3, 4
FAST_REQUEST, FAST_REPLY = 10, 11
CLASSIFY_REQUEST, CLASSIFY_REPLY = 20, 21
ERROR_REPLY = 255


class ProtocolError(ValueError):
    """A request that does not fit the session (unknown name, wrong shape, bad parameter)."""


@dataclass(frozen=True)
class Op:
    """One operation of the fast protocol: who sends it and what S2 answers."""
    caller: str                      # "user" or "s1"
    blobs: bool = False              # the request carries raw blobs
    reply: tuple = (0, 0)            # (tensors, blobs) in S2's reply; None: a count that varies


OPS = {
    "open": Op("user"), "fetch": Op("user"), "prepare": Op("s1"), "load": Op("s1"), "result": Op("s1"),
    "qterm": Op("s1"), "lin1": Op("s1", reply=(2, 0)), "lin2": Op("s1"),
    "ot1": Op("s1", reply=(3, 0)), "ot2": Op("s1", blobs=True, reply=(0, 2)),
    "cmp1": Op("s1", reply=(0, None)), "cmp2": Op("s1", blobs=True, reply=(0, None)),
    "relu2": Op("s1", blobs=True, reply=(0, 3)), "relu3": Op("s1", blobs=True),
}


def call(ch, pk, meta: dict, tensors=(), blobs=()) -> tuple[dict, list, list]:
    """One round trip of the fast protocol to S2, for S1 and the user alike.

    Returns:
        ``(meta, tensors, blobs)`` of S2's reply, checked against :data:`OPS`.

    Raises:
        ChannelError: S2 refused (``peer_error``), answered with another message type, a
            malformed body or the wrong number of parts (``bad_reply``), or the channel broke.
    """
    from .channel import ChannelError        # channel imports this module
    op = meta.get("op")
    data = ch.request(FAST_REQUEST, wire.pack_message(meta, tensors, blobs), FAST_REPLY, what=f"S2 refused {op}")
    try:
        rmeta, rtensors, rblobs = wire.unpack_message_parts(data, pk)
    except ValueError as exc:
        raise ChannelError("bad_reply", f"{op}: {exc}") from None
    want = OPS[op].reply if op in OPS else (None, None)
    if (want[0] is not None and len(rtensors) != want[0]) or (want[1] is not None and len(rblobs) != want[1]):
        raise ChannelError("bad_reply", f"{op}: expected {want[0]} tensors and {want[1]} blobs, "
                                        f"got {len(rtensors)} and {len(rblobs)}")
    return rmeta, rtensors, rblobs
