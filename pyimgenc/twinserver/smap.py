"""SMAP, the secure max-pool on blinded tensors: ``max(a, b) = b + relu(a - b)``.

S1 drives it on its masks; S2's half is only local steps and SACT's operations:

    S1 -> S2  (in the next request's ``pre``) sub: d = a - b          S2 holds z_d = d + (r_a - r_b)
    S1 <-> S2 SACT on d (:mod:`.sact`)                                 S2 holds relu(d) + m
    S1 -> S2  (``pre``) add: b + relu(d)                               S2 holds max(a, b) + (r_b + m)

The graph (:mod:`.graph`) builds every pool from batched pairwise maxima over all windows
of a layer at once: the 2x2 stem pool as a 2-round tournament, the 3x3 pools separably
(rows, then columns), so S2 learns nothing but the public shapes.  The bounds of the difference and of the max
are public (:func:`.graph.max2_bounds`).  The seed's literal SMAP (a tournament of the
literal, leaky SACT) is :func:`.literal.smap_literal`.
"""
from __future__ import annotations

from . import sact
from .graph import max2_bounds


def max2(ops, a, b):
    """S1: the blinded ``max(a, b)`` of two blinded tensors of one shape."""
    diff, out = max2_bounds((a.vb, a.mb), (b.vb, b.mb))
    r = sact.relu(ops, ops.local2("sub", a, b, a.mask - b.mask, *diff))
    return ops.local2("add", b, r, b.mask + r.mask, *out)
