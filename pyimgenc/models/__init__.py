"""The models of all three systems: shipped checkpoints, integer forms and the torch modules.

* :mod:`.registry` — the shipped models by public name (``mnist-icnn``, ``mnist-avgpool``,
  ``vae``, ``gan``), their checkpoint files and systems; :func:`pretrained` builds a
  model's integer form;
* :mod:`.checkpoint` — loading and saving weights (``.npz`` plus JSON metadata);
* :mod:`.intops` — exact integer convolution, pooling, ReLU and the MNIST input
  encoding shared by System A's and System B's integer models;
* :mod:`.preprocess` — :func:`check_images` / :func:`check_capture`, the one set of
  image checks, and the exact integer preprocessing of the security factor;
* :mod:`.icnn` — System A's Inception CNN as an exact integer model;
* :mod:`.qnn` — System C's VAE and DCGAN in exact integer arithmetic;
* torch modules, for training and float comparisons: :mod:`.icnn_float` (System A),
  :mod:`.polycnn` (System B), :mod:`.nets` (System C), and :mod:`.train`.

Only those four torch modules import torch (:mod:`.qnn` may use it as an optional
GPU engine); integer inference of every shipped model runs without it.
"""
from . import checkpoint, intops, preprocess, registry
from .preprocess import check_capture, check_images
from .registry import pretrained

__all__ = ["checkpoint", "intops", "preprocess", "registry", "pretrained", "check_images", "check_capture"]
