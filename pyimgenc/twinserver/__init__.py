"""System A (seed 000): twin-server Paillier classification with the claim-2 ICNN.

In progress (issue 5): the transport (:mod:`.channel`) is here; the primitives
(SMP, SCVL, SMAP, SACT, SCT), the parties and ``SecureClassifier`` follow the design
in ``docs/twinserver-protocol.md``.
"""
from .channel import Channel, ChannelError, TcpChannel, in_process_pair

__all__ = ["Channel", "ChannelError", "TcpChannel", "in_process_pair"]
