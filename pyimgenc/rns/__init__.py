"""System B (seed 001): modular-component (RNS) CNN classification.

**This is fast obfuscation, not semantically secure encryption.**  The ratio of two
pixels' ciphertexts equals the ratio of the pixels, and :mod:`.attacks` recovers
MNIST images from ciphertexts of the literal scheme (and of the hardened one).
Use System A (:mod:`pyimgenc.paillier`, twin-server Paillier) when the image must
stay confidential.  ``docs/rns.md`` describes the scheme, ``docs/rns-security.md``
the attacks and what hardening changes.
"""
from .classifier import RNSClassifier, Server
from .keys import EvalKey, PublicKey, SecretKey, decrypt, encrypt, garner, keygen, make_public_key
from .network import IntegerCNN

__all__ = ["RNSClassifier", "Server", "IntegerCNN", "keygen", "make_public_key", "encrypt", "decrypt",
           "garner", "SecretKey", "EvalKey", "PublicKey"]
