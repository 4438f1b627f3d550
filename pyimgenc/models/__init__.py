"""The generative models of System C (seed 002).

``pyimgenc.models.nets`` (torch) defines the VAE and DCGAN, ``.train`` trains them
on the real faces, ``.checkpoint`` loads the shipped weights, and ``.qnn`` runs
them in exact integer arithmetic (numpy only) for the deterministic first
security factor.  Torch is imported only by ``nets`` and ``train``.
"""
from . import checkpoint, preprocess

__all__ = ["checkpoint", "preprocess"]
