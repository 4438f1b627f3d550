"""System B: modular-component (RNS) CNN classification.

**This is fast obfuscation, not semantically secure encryption.**  The ratio of two
pixels' ciphertexts equals the ratio of the pixels, and :mod:`.attacks` recovers
MNIST images from ciphertexts of the literal scheme (and of the hardened one).
Use System A (:mod:`pyimgenc.twinserver`, twin-server Paillier) when the image must
stay confidential.  ``docs/rns.md`` describes the scheme, ``docs/rns-security.md``
the attacks and what hardening changes.

* :func:`keygen` -> (:class:`RNSPublicKey`, :class:`RNSSecretKey`); a fresh public key
  per prediction: :meth:`RNSSecretKey.fresh_public_key`; the server's key:
  ``sk.eval_key`` (:class:`RNSEvalKey`);
* :func:`encrypt` ``(public_key, images)``, :func:`decrypt` ``(secret_key, residues)``;
* :class:`Server` (the engine is chosen by :func:`pyimgenc.backend.get_rns_engine`),
  :class:`IntegerCNN` (the network in integers), :class:`RNSClassifier` (all in one).

Nothing here imports torch unless the torch engine is chosen.
"""
from .classifier import RNSClassifier, Server
from .keys import RNSEvalKey, RNSPublicKey, RNSSecretKey, decrypt, encrypt, garner, keygen
from .network import IntegerCNN

__all__ = ["RNSClassifier", "Server", "IntegerCNN", "keygen", "encrypt", "decrypt", "garner",
           "RNSPublicKey", "RNSSecretKey", "RNSEvalKey"]
