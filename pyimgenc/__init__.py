"""pyimgenc: privacy-preserving image classification and image encryption.

Subpackages (lowest layer first; ``docs/architecture.md``):
    math        batched modular arithmetic over fixed-width limbs (C++ core)
    models      model definitions, exact integer ops and encodings, the model registry
    paillier    Paillier keys, EncryptedTensor, its raw layer for protocols, serialisation
    rns         System B: modular-component (RNS) CNN -- fast obfuscation, not encryption
    twinserver  System A: twin-server Paillier CNN (S1, S2, SMP/SCVL/SCT/SACT/SMAP)
    factor      System C: image encryption with an image-derived security factor
    tools       developer checks (``python -m pyimgenc.tools.layers``)

Engines and threads: :func:`set_backend`, :func:`set_num_threads` (``pyimgenc.backend``).
"""
from .backend import get_num_threads, set_backend, set_num_threads

__version__ = "0.1.0"
__all__ = ["set_num_threads", "get_num_threads", "set_backend", "__version__"]
