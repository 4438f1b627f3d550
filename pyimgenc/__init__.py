"""pyimgenc: privacy-preserving image classification and image encryption.

Subpackages:
    math       batched modular arithmetic over fixed-width limbs (C++ core)
    paillier   Paillier keys, EncryptedTensor, serialisation
"""
from .backend import get_num_threads, set_backend, set_num_threads

__version__ = "0.1.0"
__all__ = ["set_num_threads", "get_num_threads", "set_backend", "__version__"]
