"""System C: image encryption with an image-derived security factor.

* :mod:`.first` — the first security factor, what the shipped VAE or DCGAN makes of
  the capture (exact integers, ``docs/first-factor.md``); :mod:`.faces` — face
  matching on the VAE's embedding;
* :mod:`.second` — the second security factor (device, time, counter, randomness);
* :mod:`.envelope` — the image security factor and the signed, sealed envelope
  (byte layout in ``docs/envelope.md``), :func:`cipher_image` (the ciphertext in the
  image's shape);
* :mod:`.terminal` — the capture terminal (persistent counter, retry loop);
  :mod:`.verifier` — the verification server's state and checks (SQLite);
  :mod:`.service` — the verifier over HTTP (``pyimgenc serve verifier``);
* :mod:`.metrics` — image-encryption metrics (NPCR, UACI, entropy, correlation);
  :mod:`.report` — ``pyimgenc factor report`` with plots.

Captures are checked by :func:`pyimgenc.models.check_capture`.
"""
from .envelope import EnvelopeError, Opened, cipher_image, image_security_factor, open_envelope, parse_header, seal
from .second import SecondFactor
from .terminal import Terminal
from .verifier import Verified, VerificationError, Verifier

__all__ = ["SecondFactor", "EnvelopeError", "Opened", "image_security_factor", "seal", "open_envelope",
           "parse_header", "cipher_image", "Verifier", "Verified", "VerificationError", "Terminal"]
