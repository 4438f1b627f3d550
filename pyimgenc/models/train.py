"""Training of the shipped models on the real data: System C's VAE and DCGAN on the Olivetti
faces, System A's ICNN and System B's AvgPoolPolyCNN on MNIST (torch, progress bars).

Reproduce the shipped checkpoints (about 2 and 6 minutes on 2 CPU cores)::

    python -m pyimgenc.models.train vae --out pyimgenc/models/checkpoints/vae_olivetti64.npz
    python -m pyimgenc.models.train gan --out pyimgenc/models/checkpoints/dcgan_olivetti32.npz
    python -m pyimgenc.models.train polycnn --out pyimgenc/models/checkpoints/polycnn_mnist.npz
    python -m pyimgenc.models.train icnn --out pyimgenc/models/checkpoints/icnn_mnist.npz

then ``python -m pyimgenc.factor.faces calibrate`` (face-matching projection and
threshold, stored in the VAE checkpoint's metadata).

Both train on subjects 0..29 of the 40 Olivetti people (images 0..9 each) and
leave subjects 30..39 unseen, so face-matching error rates can be measured on
people the model never saw (:mod:`pyimgenc.factor.faces`).

The VAE models each pixel as a Bernoulli variable whose mean is the grey level
in [0, 1] (cross-entropy against grey targets); ``--binarize`` trains on
stochastically binarised pixels instead, the binarisation of System C's design — it loses
most of a face's identity at 64x64, so the shipped checkpoint uses grey levels.

The DCGAN needs the noisy/clean pairs of System C's design.  The dataset has one clean
capture per pose, so the poor-quality partner of each clean face is made from
it the way a bad terminal capture looks: sensor noise, defocus blur, a
brightness/contrast change and sometimes an occluding bar, drawn afresh each
epoch (:func:`degrade`).  The generator learns to map the degraded capture
back to the clean face (cross-entropy adversarial loss plus an L1 term, as in
image-to-image GANs); the discriminator learns to tell clean faces from
generated ones.
"""
from __future__ import annotations

import argparse
import hashlib
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from . import checkpoint
from .nets import VAE, Discriminator, Generator, elbo_loss, gan_losses
from .preprocess import resize_box

TRAIN_SUBJECTS = range(0, 30)  # subjects 30..39 are held out for face-matching error rates


def load_faces(data_dir: str | Path | None) -> tuple[np.ndarray, np.ndarray, str]:
    """Olivetti faces (400, 64, 64) uint8, subject ids, and the file's SHA-256."""
    from .. import datasets
    path = datasets.find(datasets.FILES["olivetti"], data_dir)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with np.load(path) as z:
        return z["images"], z["subject"].astype(np.int64), digest


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and shift by up to 2 pixels (replicate padding)."""
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    dy, dx = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
    x = F.pad(x, (2, 2, 2, 2), mode="replicate")
    h, w = x.shape[-2:]
    return x[..., 2 + dy:h - 2 + dy, 2 + dx:w - 2 + dx]


def degrade(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A poor-quality capture of clean faces in [-1, 1]: blur, contrast, noise, occlusion."""
    n, _, h, w = x.shape
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (k[:, None] * k[None, :] / 16).view(1, 1, 3, 3)
    blur = torch.rand(n, generator=gen) < 0.5
    x = torch.where(blur[:, None, None, None], F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k), x)
    a = 0.7 + 0.6 * torch.rand(n, 1, 1, 1, generator=gen)
    b = 0.3 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5)
    x = a * x + b + 0.15 * torch.rand(n, 1, 1, 1, generator=gen) * torch.randn(x.shape, generator=gen)
    occ = torch.rand(n, generator=gen) < 0.25
    for i in torch.nonzero(occ).flatten().tolist():
        r = int(torch.randint(0, h - h // 6, (1,), generator=gen))
        x[i, :, r:r + h // 6, :] = -1.0
    return x.clamp(-1, 1)


def _meta(kind: str, args, digest: str, extra: dict) -> dict:
    return {"kind": kind, "data": "olivetti.npz", "data_sha256": digest,
            "train_subjects": [TRAIN_SUBJECTS.start, TRAIN_SUBJECTS.stop - 1],
            "command": "python -m pyimgenc.models.train " + " ".join(sys.argv[1:]),
            "epochs": args.epochs, "seed": args.seed, "torch": torch.__version__,
            "machine": platform.machine(), "trained_at": time.strftime("%Y-%m-%d"), **extra}


def train_vae(args) -> dict:
    images, subject, digest = load_faces(args.data)
    x = torch.from_numpy(images[np.isin(subject, TRAIN_SUBJECTS)].astype(np.float32) / 255.0)[:, None]
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    model = VAE(size=64, latent=args.latent)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    bar = tqdm(range(args.epochs), desc="VAE", unit="epoch", disable=args.quiet)
    for epoch in bar:
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), args.batch):
            xb = _augment(x[perm[i:i + args.batch]], gen)
            if args.binarize:  # the design's binarised data set: each pixel a Bernoulli draw of its grey level
                xb = torch.bernoulli(xb, generator=gen)
            logits, mu, logvar = model(xb)
            # KL warm-up over the first fifth of training keeps the latent informative
            beta = min(1.0, (epoch + 1) / max(1, args.epochs // 5))
            loss = elbo_loss(logits, xb, mu, logvar, beta=beta)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(xb)
        bar.set_postfix(neg_elbo=f"{total / len(x):.1f}")
    model.eval()
    with torch.no_grad():
        logits, mu, logvar = model(x)
        final = float(elbo_loss(logits, x, mu, logvar))
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    meta = _meta("vae", args, digest, {"size": 64, "latent": args.latent, "base_channels": 32,
                                       "binarized": bool(args.binarize),
                                       "final_neg_elbo_per_image": round(final, 2)})
    return {"weights": weights, "meta": meta}


def train_gan(args) -> dict:
    images, subject, digest = load_faces(args.data)
    small = np.stack([resize_box(im, 32) for im in images[np.isin(subject, TRAIN_SUBJECTS)]])
    x = torch.from_numpy(small.astype(np.float32) / 127.5 - 1.0)[:, None]
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    g, d = Generator(size=32), Discriminator(size=32)
    opt_g = torch.optim.Adam(g.parameters(), lr=args.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=args.lr, betas=(0.5, 0.999))
    bar = tqdm(range(args.epochs), desc="DCGAN", unit="epoch", disable=args.quiet)
    for _ in bar:
        g.train(), d.train()
        perm = torch.randperm(len(x), generator=gen)
        ld = lg = l1 = 0.0
        for i in range(0, len(x), args.batch):
            clean = _augment(x[perm[i:i + args.batch]], gen)
            noisy = degrade(clean.clone(), gen)
            fake = g(noisy)
            loss_d = gan_losses(d(clean), d(fake.detach()))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            d_fake = d(fake)
            rec = F.l1_loss(fake, clean)
            loss_g = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake)) + args.l1 * rec
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            ld, lg, l1 = ld + loss_d.item(), lg + loss_g.item(), l1 + rec.item()
        nb = (len(x) + args.batch - 1) // args.batch
        bar.set_postfix(d=f"{ld / nb:.2f}", g=f"{lg / nb:.2f}", l1=f"{l1 / nb:.3f}")
    g.eval(), d.eval()
    with torch.no_grad():
        final_l1 = float(F.l1_loss(g(x), x))
    weights = {f"generator.{k}": v.detach().numpy() for k, v in g.state_dict().items()
               if not k.endswith("num_batches_tracked")}
    weights.update({f"discriminator.{k}": v.detach().numpy() for k, v in d.state_dict().items()})
    meta = _meta("gan", args, digest, {"size": 32, "base_channels": 16, "l1_weight": args.l1,
                                       "final_l1_clean": round(final_l1, 4)})
    return {"weights": weights, "meta": meta}


def _train_mnist(args, model, kind: str, weights_fn, extra: dict) -> dict:
    """Cross-entropy training of an MNIST classifier; accuracy on the 10,000 test images each epoch."""
    from .polycnn import normalise
    from .. import datasets
    path = datasets.find(datasets.FILES["mnist"], args.data)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with np.load(path) as z:
        xtr, ytr, xte, yte = z["x_train"], z["y_train"], z["x_test"], z["y_test"]
    gen = torch.Generator().manual_seed(args.seed)
    x, y = normalise(xtr), torch.as_tensor(ytr, dtype=torch.long)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    bar = tqdm(range(args.epochs), desc=kind, unit="epoch", disable=args.quiet)
    for _ in bar:
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), args.batch):
            idx = perm[i:i + args.batch]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        model.eval()
        with torch.no_grad():
            acc = float(np.mean(np.concatenate([model(normalise(xte[j:j + 2000])).argmax(1).numpy()
                                                for j in range(0, len(xte), 2000)]) == yte))
        bar.set_postfix(loss=f"{loss.item():.3f}", test_acc=f"{acc:.4f}")
    meta = {"kind": kind, "data": "mnist.npz", "data_sha256": digest,
            "command": "python -m pyimgenc.models.train " + " ".join(sys.argv[1:]),
            "epochs": args.epochs, "seed": args.seed, "torch": torch.__version__,
            "float_test_accuracy": round(acc, 4), "trained_at": time.strftime("%Y-%m-%d"), **extra}
    return {"weights": weights_fn(model), "meta": meta}


def train_polycnn(args) -> dict:
    """AvgPoolPolyCNN (System B) on the real MNIST training set."""
    from .polycnn import AvgPoolPolyCNN
    torch.manual_seed(args.seed)
    model = AvgPoolPolyCNN()
    return _train_mnist(args, model, "polycnn", lambda m: m.folded(),
                        {"channels": model.channels, "kernel": model.kernel})


def train_icnn(args) -> dict:
    """ICNN (System A's Inception CNN) on the real MNIST training set."""
    from .icnn_float import ICNN
    torch.manual_seed(args.seed)
    model = ICNN()
    return _train_mnist(args, model, "icnn",
                        lambda m: {k: v.detach().numpy().copy() for k, v in m.state_dict().items()},
                        {"widths": model.widths})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pyimgenc.models.train", description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=["vae", "gan", "polycnn", "icnn"])
    p.add_argument("--data", help="data directory (faces/olivetti.npz, mnist/mnist.npz; default: PYIMGENC_DATA, then the user cache)")
    p.add_argument("--out", required=True, help="checkpoint file to write (.npz)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--latent", type=int, default=32, help="VAE latent dimension")
    p.add_argument("--binarize", action="store_true",
                   help="VAE: train on stochastically binarised pixels (the design's binarisation) instead of "
                        "grey levels as Bernoulli means (the shipped checkpoint uses grey levels)")
    p.add_argument("--l1", type=float, default=50.0, help="weight of the generator's L1 term")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.kind == "icnn":
        args.epochs = args.epochs or 6
        args.lr = args.lr or 2e-3
        args.batch = args.batch if args.batch != 32 else 128
        res = train_icnn(args)
    elif args.kind == "polycnn":
        args.epochs = args.epochs or 8
        args.lr = args.lr or 2e-3
        args.batch = args.batch if args.batch != 32 else 128
        res = train_polycnn(args)
    elif args.kind == "vae":
        args.epochs = args.epochs or 400
        args.lr = args.lr or 1e-3
        res = train_vae(args)
    else:
        args.epochs = args.epochs or 300
        args.lr = args.lr or 2e-4
        res = train_gan(args)
    digest = checkpoint.save(args.out, res["weights"], res["meta"])
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.2f} MB, weights sha256 {digest.hex()[:16]}…)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
