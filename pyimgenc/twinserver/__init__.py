"""System A: twin-server Paillier classification with the Inception CNN (ICNN).

* :class:`SecureClassifier` — data owner, user, S1 and S2 wired together
  (``SecureClassifier.pretrained("mnist-icnn").classify(images)``);
  :func:`load_integer_model` — the shipped model's exact integer form (no torch);
* parties: :class:`DataOwner` (model outsourcing), :class:`User` (image outsourcing),
  :class:`ComputeServer` (S1), :class:`TwinKeyServer` (S2); transport: :class:`Channel`,
  :class:`TcpChannel`;
* fast protocol over blinded tensors (:mod:`.s1`, :mod:`.s2`; SCVL/SCT with packed
  multi-exponentiation, SACT, SMAP) and the literal reference paths: :func:`smp`,
  :func:`smp_literal`, :func:`sact`, :func:`smap`, :func:`scvl_literal`, :func:`sct_literal`.

Protocol, messages and leakage: ``docs/twinserver-protocol.md``.
"""
from .channel import Channel, ChannelError, TcpChannel, in_process_pair
from .classifier import SecureClassifier, load_integer_model
from .literal import sct_literal, scvl_literal
from .owner import DataOwner, S1Share, S2Share, User
from .s1 import ComputeServer, Tape
from .s2 import TwinKeyServer
from .sact import sact
from .smap import smap
from .smp import KeyServer, smp, smp_literal

scvl, sct = scvl_literal, sct_literal   # the protocol's names for the layers; the fast path is ComputeServer's

__all__ = ["SecureClassifier", "load_integer_model", "DataOwner", "User", "S1Share", "S2Share",
           "ComputeServer", "Tape", "TwinKeyServer", "Channel", "ChannelError", "TcpChannel", "in_process_pair",
           "KeyServer", "smp", "smp_literal", "sact", "smap", "scvl", "sct", "scvl_literal", "sct_literal"]
