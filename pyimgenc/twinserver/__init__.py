"""System A: twin-server Paillier classification with the Inception CNN (ICNN).

* :class:`SecureClassifier` — data owner, user, S1 and S2 wired together
  (``SecureClassifier.pretrained("mnist-icnn").classify(images)``);
  :func:`load_integer_model` — the shipped model's exact integer form (no torch);
* parties: :class:`DataOwner` (model outsourcing), :class:`User` (image outsourcing),
  :class:`ComputeServer` (S1), :class:`TwinKeyServer` (S2); transport: :class:`Channel`,
  :class:`TcpChannel`;
* fast protocol over blinded tensors, driven by S1 (:mod:`.s1`) and served by S2
  (:mod:`.s2`); each protocol one module with both halves: :mod:`.linear` (SCVL/SCT,
  packed multi-exponentiation), :mod:`.compare` (secure comparison over OT),
  :mod:`.sact` (ReLU), :mod:`.smap` (max-pool), :mod:`.randot` (the session's random
  OTs); every message in :mod:`.messages`;
* the literal reference paths of the design: :func:`smp`, :func:`smp_literal`,
  :func:`sact_literal`, :func:`smap_literal` (leaky: see :mod:`.literal`), :func:`scvl_literal`,
  :func:`sct_literal` (``scvl``, ``sct``: the design's names).  ``twinserver.sact`` and
  ``twinserver.smap`` are the secure protocols' modules.

Protocol, messages and leakage: ``docs/twinserver-protocol.md``.
"""
from .channel import Channel, ChannelError, TcpChannel, in_process_pair
from .classifier import SecureClassifier, load_integer_model
from .literal import sact_literal, sct_literal, scvl_literal, smap_literal
from .owner import DataOwner, S1Share, S2Share, User
from .s1 import ComputeServer, Tape
from .s2 import TwinKeyServer
from .smp import KeyServer, smp, smp_literal

scvl, sct = scvl_literal, sct_literal   # the design's names for the literal layers; the fast path is ComputeServer's

__all__ = ["SecureClassifier", "load_integer_model", "DataOwner", "User", "S1Share", "S2Share",
           "ComputeServer", "Tape", "TwinKeyServer", "Channel", "ChannelError", "TcpChannel", "in_process_pair",
           "KeyServer", "smp", "smp_literal", "scvl", "sct", "scvl_literal", "sct_literal",
           "sact_literal", "smap_literal"]
