"""The shipped models: one registry from public name to checkpoint file, system and integer class.

* ``mnist-icnn`` — ``icnn_mnist.npz``, System A (:mod:`pyimgenc.twinserver`):
  :class:`pyimgenc.models.icnn.IntegerICNN`;
* ``mnist-avgpool`` — ``polycnn_mnist.npz``, System B (:mod:`pyimgenc.rns`):
  :class:`pyimgenc.rns.IntegerCNN`;
* ``vae`` — ``vae_olivetti64.npz``, System C (:mod:`pyimgenc.factor`):
  :class:`pyimgenc.models.qnn.QVAE`;
* ``gan`` — ``dcgan_olivetti32.npz``, System C: :class:`pyimgenc.models.qnn.QGAN`.

``SecureClassifier.pretrained``, ``RNSClassifier.pretrained``, the security factor's
``model=`` argument and :func:`pyimgenc.models.checkpoint.load` all look names up
here; an unknown name is a :class:`ValueError` that lists the available ones.
Nothing here imports torch.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

SYSTEMS = {"twinserver": "System A (pyimgenc.twinserver, twin-server Paillier)",
           "rns": "System B (pyimgenc.rns, modular components)",
           "factor": "System C (pyimgenc.factor, image security factor)"}


@dataclass(frozen=True)
class ModelEntry:
    """One shipped model.

    Attributes:
        name: the public name.
        file: checkpoint file in ``pyimgenc/models/checkpoints``.
        kind: the checkpoint's ``meta["kind"]`` (its architecture).
        system: the package that uses it (a key of :data:`SYSTEMS`).
        integer_class: ``"module:Class"`` of the integer model :func:`pretrained` builds,
            called as ``Class(checkpoint, **options)``.
        description: one line for listings.
    """

    name: str
    file: str
    kind: str
    system: str
    integer_class: str
    description: str


REGISTRY: dict[str, ModelEntry] = {e.name: e for e in (
    ModelEntry("mnist-icnn", "icnn_mnist.npz", "icnn", "twinserver", "pyimgenc.models.icnn:IntegerICNN",
               "Inception CNN (11 convolutions, 4 max-pools) on MNIST, fixed-point for twin-server Paillier"),
    ModelEntry("mnist-avgpool", "polycnn_mnist.npz", "polycnn", "rns", "pyimgenc.rns.network:IntegerCNN",
               "CNN with average pooling and a polynomial activation on MNIST, for modular components"),
    ModelEntry("vae", "vae_olivetti64.npz", "vae", "factor", "pyimgenc.models.qnn:QVAE",
               "convolutional VAE on 64x64 Olivetti faces: first security factor and face matching"),
    ModelEntry("gan", "dcgan_olivetti32.npz", "gan", "factor", "pyimgenc.models.qnn:QGAN",
               "DCGAN generator and discriminator on 32x32 Olivetti faces: first security factor"),
)}


def available(system: str | None = None) -> list[str]:
    """Public names of the shipped models, all or those of one system (``"twinserver"``, ``"rns"``, ``"factor"``)."""
    if system is not None and system not in SYSTEMS:
        raise ValueError(f"system must be one of {sorted(SYSTEMS)}, got {system!r}")
    return [n for n, e in REGISTRY.items() if system is None or e.system == system]


def lookup(name: str, system: str | None = None) -> ModelEntry:
    """The registry entry of ``name``, optionally required to belong to ``system``.

    Raises:
        TypeError: if ``name`` is not a string.
        ValueError: for an unknown name or a model of another system, listing the available names.
    """
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    names = available(system)
    entry = REGISTRY.get(name)
    if entry is None or (system is not None and entry.system != system):
        where = f" for {SYSTEMS[system]}" if system is not None else ""
        other = f" ({name!r} belongs to {SYSTEMS[entry.system]})" if entry is not None else ""
        raise ValueError(f"unknown pretrained model {name!r}{where}{other}; available: {', '.join(names)}")
    return entry


def pretrained(name: str, system: str | None = None, **options):
    """The integer model of a shipped checkpoint, ready to use (no torch needed).

    Args:
        name: a public model name (see the module docstring).
        system: when given, ``name`` must belong to this system.
        **options: passed to the integer class (``fw``/``fx`` for ``mnist-icnn``,
            ``delta`` for ``mnist-avgpool``, ``engine`` for ``vae``/``gan``).

    Raises:
        ValueError: for an unknown name (listing the available ones).
    """
    entry = lookup(name, system)
    from .checkpoint import load
    module, cls = entry.integer_class.split(":")
    return getattr(importlib.import_module(module), cls)(load(name), **options)
