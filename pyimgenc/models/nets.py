"""System C's generative models (the VAE and the DCGAN of the security factor) as torch modules.

Both follow the layer lists of System C's design.  That design calls the
deconvolution stack of its VAE the "encoder" and the
convolution stack the "decoder"; by the usual convention (and by what each stack
computes) the convolution stack is the *inference network* q(z|x) and the
deconvolution stack the *generative network* p(x|z), and the code names them
that way:

* :class:`VAE` — ``encoder``: conv 16, 32, 64 @3x3 stride 2 ReLU -> dense to
  (mu, log sigma^2); ``decoder``: dense ReLU -> reshape -> deconv 64, 32, 16 @3x3
  stride 2 ReLU -> deconv 1 @3x3 stride 1 linear, giving the logits of
  independent Bernoulli pixels, p(x|z).  Reparameterised sampling, ELBO loss.
* :class:`Generator` — dense (no bias) ReLU -> batch norm -> leaky ReLU ->
  reshape -> deconv 128 @5x5 s1 ReLU -> deconv 64 @5x5 s2 ReLU -> deconv 1 @5x5
  s2 tanh, no biases; it maps a (noisy) capture in [-1, 1] to its derivative image.
* :class:`Discriminator` — conv 64 @5x5 s2 leaky ReLU, dropout, conv 128 @5x5 s2
  leaky ReLU, dropout, dense to one logit (real/forged), cross-entropy loss.

"SAME" padding with stride s and an even side gives side/s outputs; the torch
equivalents are ``padding=k//2`` (and ``output_padding=s-1`` for the transposed
convolutions).  Only modules and losses live here; :mod:`.train` trains them and
:mod:`.checkpoint` saves/loads the shipped weights; :mod:`.qnn` runs them in exact
integer arithmetic for the security factor.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

LEAK = 0.2  # leaky-ReLU slope (generator and discriminator)


def _deconv(cin: int, cout: int, k: int, s: int, bias: bool = True) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, k, stride=s, padding=k // 2, output_padding=s - 1, bias=bias)


class VAE(nn.Module):
    """Convolutional VAE with Bernoulli pixels on ``size`` x ``size`` grey images in [0, 1].

    Args:
        size: image side, a multiple of 8 (three stride-2 stages).
        latent: dimension of z.
        base_channels: channels of the decoder's first (reshaped) feature map.
    """

    def __init__(self, size: int = 64, latent: int = 32, base_channels: int = 32):
        super().__init__()
        if size % 8:
            raise ValueError(f"size must be a multiple of 8, got {size}")
        self.size, self.latent, self.base_channels = size, latent, base_channels
        b = size // 8
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * b * b, 2 * latent))
        self.decoder_fc = nn.Sequential(nn.Linear(latent, base_channels * b * b), nn.ReLU())
        self.decoder = nn.Sequential(
            _deconv(base_channels, 64, 3, 2), nn.ReLU(),
            _deconv(64, 32, 3, 2), nn.ReLU(),
            _deconv(32, 16, 3, 2), nn.ReLU(),
            _deconv(16, 1, 3, 1))  # linear: Bernoulli logits

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x): mean and log-variance, each (N, latent)."""
        h = self.encoder(x)
        return h[:, :self.latent], h[:, self.latent:]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """p(x|z): Bernoulli logits (N, 1, size, size)."""
        b = self.size // 8
        return self.decoder(self.decoder_fc(z).view(-1, self.base_channels, b, b))

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None):
        """z = mu + sigma * eps with eps ~ N(0, I)."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def forward(self, x: torch.Tensor):
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def elbo_loss(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
              beta: float = 1.0) -> torch.Tensor:
    """Negative ELBO per image: Bernoulli reconstruction cross-entropy + beta * KL(q(z|x) || N(0, I))."""
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (rec + beta * kl) / x.shape[0]


class Generator(nn.Module):
    """DCGAN generator: a ``size`` x ``size`` capture in [-1, 1] -> derivative image in [-1, 1]."""

    def __init__(self, size: int = 32, base_channels: int = 16):
        super().__init__()
        if size % 4:
            raise ValueError(f"size must be a multiple of 4, got {size}")
        self.size, self.base_channels = size, base_channels
        b = size // 4
        self.fc = nn.Linear(size * size, base_channels * b * b, bias=False)
        self.bn = nn.BatchNorm1d(base_channels * b * b)
        self.deconv = nn.Sequential(
            _deconv(base_channels, 128, 5, 1, bias=False), nn.ReLU(),
            _deconv(128, 64, 5, 2, bias=False), nn.ReLU(),
            _deconv(64, 1, 5, 2, bias=False), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.size // 4
        h = F.leaky_relu(self.bn(F.relu(self.fc(x.flatten(1)))), LEAK)
        return self.deconv(h.view(-1, self.base_channels, b, b))


class Discriminator(nn.Module):
    """DCGAN discriminator: image in [-1, 1] -> one logit (positive: real)."""

    def __init__(self, size: int = 32, dropout: float = 0.3):
        super().__init__()
        self.size = size
        self.conv1 = nn.Conv2d(1, 64, 5, stride=2, padding=2)
        self.conv2 = nn.Conv2d(64, 128, 5, stride=2, padding=2)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(128 * (size // 4) ** 2, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """First-layer feature map (N, 64, size/2, size/2): what the similarity distribution compares."""
        return F.leaky_relu(self.conv1(x), LEAK)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(self.features(x))
        h = self.drop(F.leaky_relu(self.conv2(h), LEAK))
        return self.fc(h.flatten(1))


def gan_losses(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator cross-entropy: real -> 1, generated -> 0."""
    return (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
            + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
