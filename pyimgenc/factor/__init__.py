"""System C (seed 002): image encryption with an image-derived security factor.

Implemented so far (issue 3, in progress): the second security factor
(:mod:`.second`), the image security factor and the signed, sealed envelope
(:mod:`.envelope`, byte layout in ``docs/envelope.md``), and the verifier's
state and checks with SQLite counters (:mod:`.verifier`), and the terminal with
its persistent counter and retry loop (:mod:`.terminal`), cipher-image mode
(:mod:`.cipher_image`) and the image-encryption metrics (:mod:`.metrics`).  The
VAE/DCGAN first factor, the HTTP service and the report with plots are still to come.
"""
from .envelope import EnvelopeError, Opened, image_security_factor, open_envelope, parse_header, seal
from .second import SecondFactor
from .terminal import Terminal
from .verifier import Verified, VerificationError, Verifier

__all__ = ["SecondFactor", "EnvelopeError", "Opened", "image_security_factor", "seal", "open_envelope",
           "parse_header", "Verifier", "Verified", "VerificationError", "Terminal"]
