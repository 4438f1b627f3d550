"""System A (seed 000): twin-server Paillier classification with the claim-2 ICNN.

In progress (issue 5): the transport (:mod:`.channel`), SMP (:mod:`.smp`, tensor and literal
per-element paths, the key server S2), one-round SACT (:mod:`.sact`) and SMAP as a SACT
tournament (:mod:`.smap`) are here; SCVL, SCT, the parties and ``SecureClassifier``
follow the design in ``docs/twinserver-protocol.md``.
"""
from .channel import Channel, ChannelError, TcpChannel, in_process_pair
from .sact import sact
from .smap import smap
from .smp import KeyServer, smp, smp_literal

__all__ = ["Channel", "ChannelError", "TcpChannel", "in_process_pair", "KeyServer", "smp", "smp_literal",
           "sact", "smap"]
