"""pyimgenc command line: privacy-preserving image classification and encryption.

Commands:
    info                what this machine runs: native core, CPU path, threads, backends,
                        System B engines
    demo                Paillier (an encrypted convolution and dense layer) and Systems A, B, C
                        on real sample images, each checked bit for bit against plaintext
    data list|download  where the datasets are; fetch the full sets (SHA-256 checked)
    twinserver setup    System A: S2's Paillier key and the data owner's two model shares
    serve s2            System A key server (S2)
    serve s1            System A compute server (S1), connected to S2
    classify            System A user: classify images through S1 and S2
    rns eval            System B: encrypted MNIST classification, checked against the
                        plaintext integer model (obfuscation, not encryption)
    rns attacks         System B: recover MNIST images from ciphertexts, a table per
                        parameter set
    serve verifier      System C verification server over HTTP(S) (Starlette + uvicorn; SQLite or PostgreSQL)
    factor report       System C: cipher-image metrics, face-matching error rates and
                        first-factor determinism on the real test images, with plots
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from pathlib import Path


def cmd_serve(args) -> int:
    import logging

    from .factor import Verifier
    try:
        from .factor.service import Server
    except ImportError as exc:
        raise ValueError(f"serve verifier needs the web extra: pip install 'pyimgenc[service]' ({exc})")

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    db = args.db                              # a SQLite path or a postgresql:// DSN (factor.store.open_store)
    token = os.environ.get(args.admin_token_env) if args.admin_token_env else None
    if args.admin_token_env and not token:
        raise ValueError(f"serve: environment variable {args.admin_token_env} is empty")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("serve: --tls-cert and --tls-key go together")
    for f in (args.tls_cert, args.tls_key):
        if f is not None and not Path(f).is_file():
            raise ValueError(f"serve: {f} not found")
    lock = dict(max_failures=args.max_failures, failure_window_s=args.failure_window)
    try:
        try:
            srv = Verifier(db, window_s=args.window, **lock)
        except FileNotFoundError:            # a new file, or a PostgreSQL database without the tables
            srv = Verifier.create(db, window_s=args.window, **lock)
    except (ConnectionError, ImportError, FileExistsError) as exc:
        raise ValueError(f"serve: {exc}")
    web = Server(srv, args.host, args.port, tls_cert=args.tls_cert, tls_key=args.tls_key, admin_token=token,
                 max_concurrent=args.max_concurrent)
    try:
        web.start()
    except RuntimeError as exc:
        raise ValueError(f"serve: {exc}")
    print(f"verifier on {web.url}  db={srv.db_path}  window={args.window:g}s  "
          f"device registration {'enabled' if token else 'disabled'}", flush=True)
    if not web.tls and args.host not in ("127.0.0.1", "localhost", "::1"):
        print("warning: plain HTTP on a non-loopback address: the admin token and envelopes travel "
              "unencrypted; use --tls-cert/--tls-key", file=sys.stderr, flush=True)
    try:
        web.wait()
    except KeyboardInterrupt:
        pass
    finally:
        web.stop()
    return 0


def cmd_factor_report(args) -> int:
    from .factor.report import write_report

    res = write_report(args.data, args.out, quiet=args.quiet)
    print((Path(args.out) / "report.md").read_text())
    print(f"wrote {args.out}/report.md, report.json and {len(res['plots'])} plots in {res['seconds']} s")
    study = res.get("seal_study_256_grey") or {}
    # alpha = 0.05 tests: fail only when the pass rate is implausible for an ideal cipher
    ok = study.get("npcr_pass_rate", 1.0) >= 0.85 and study.get("uaci_pass_rate", 1.0) >= 0.85
    return 0 if ok else 1


def cmd_rns_eval(args) -> int:
    import numpy as np

    from . import rns

    x, y = _take(*_mnist(args), 0, args.n)
    clf = rns.RNSClassifier.pretrained("mnist-avgpool", n_moduli=args.moduli, redundancy=args.redundancy,
                                       hardened=args.hardened, engine=args.engine)
    t = time.perf_counter()
    if args.scheduler:
        got = _dist_rns(args, x)
    else:
        got = clf.classify(x, progress=not args.quiet)
    t_enc = time.perf_counter() - t
    t = time.perf_counter()
    ref = clf.reference_logits(x)
    t_ref = time.perf_counter() - t
    exact = int(sum(np.array_equal(a, b) for a, b in zip(got, ref)))
    acc = float((np.argmax(clf.net.float_logits(got), 1) == y).mean())
    print("System B is fast obfuscation, not semantically secure encryption (see `pyimgenc rns attacks`).")
    print(f"{len(x)} MNIST test images, N={args.moduli} moduli x M={args.redundancy} positions"
          f"{' (hardened)' if args.hardened else ''}, engine {clf.server.engine}")
    where = f" on Dask cluster {args.scheduler} (start-up and worker warm-up included)" if args.scheduler else ""
    print(f"  encrypted inference {1e3 * t_enc / len(x):.2f} ms/image{where} | plaintext integer model "
          f"(Python ints) {1e3 * t_ref / len(x):.2f} ms/image")
    print(f"  decrypted logits equal to the plaintext integer model: {exact}/{len(x)}")
    print(f"  accuracy {100 * acc:.2f}%")
    return 0 if exact == len(x) else 1


def _pair_arg(v: str) -> tuple[str, str]:
    parts = v.split(",")
    if len(parts) != 2 or not all(parts):
        raise SystemExit(f"pyimgenc: error: --pair {v!r}: expected S1HOST:PORT,S2HOST:PORT")
    for hp in parts:
        try:
            _hostport(hp)
        except ValueError as exc:
            raise SystemExit(f"pyimgenc: error: --pair {v!r}: {exc}") from None
    return parts[0], parts[1]


def _dask_client(spec: str):
    """A Dask client: ``local:K`` starts K single-threaded worker processes on 127.0.0.1 (closed
    with the client), anything else is a scheduler address (``tcp://host:8786``, ``tls://...``)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise SystemExit("pyimgenc: error: --scheduler needs Dask: pip install 'pyimgenc[dask]'") from None
    if spec == "local" or spec.startswith("local:"):
        k = spec.partition(":")[2] or "2"
        if not k.isdigit() or not 1 <= int(k) <= 256:
            raise SystemExit(f"pyimgenc: error: --scheduler {spec!r}: expected local:K with K in 1..256")
        cluster = LocalCluster(n_workers=int(k), threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None)
        client = Client(cluster)
        client._pyimgenc_cluster = cluster   # closed by _close_client
        return client
    return Client(spec, timeout=30)


def _close_client(client) -> None:
    cluster = getattr(client, "_pyimgenc_cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def _dist_rns(args, x):
    from . import dist
    client = _dask_client(args.scheduler)
    try:
        opts = dict(n_moduli=args.moduli, redundancy=args.redundancy, hardened=args.hardened, engine=args.engine)
        fut = client.compute(dist.classify("mnist-avgpool", x, chunk=args.chunk, **opts))
        if not args.quiet:
            from distributed import progress
            progress(fut)
            print(file=sys.stderr)
        return fut.result()
    finally:
        _close_client(client)


def cmd_rns_attacks(args) -> int:
    from .rns import attacks

    x, _ = _mnist(args)
    rows = attacks.security_table(_take(x, x, 0, args.n)[0], seed=args.seed, progress=not args.quiet)
    print(attacks.markdown(rows))
    if args.plot:
        attacks.plot(x[:6], args.plot, seed=args.seed)
        print(f"wrote {args.plot}")
    return 0


def _mnist(args) -> tuple:
    """MNIST test images and labels: the full set from --data / PYIMGENC_DATA / the user cache,
    else (with a note on stderr) the 300 shipped sample digits."""
    from . import datasets
    try:
        return datasets.load_mnist(data=args.data)
    except datasets.DataNotFoundError:
        if args.data:
            raise
    x, y = datasets.load_mnist(sample=True)
    print(f"note: full MNIST not found (pyimgenc data download mnist); using the {len(x)} shipped sample "
          f"digits", file=sys.stderr)
    return x, y


def _take(x, y, start: int, n: int, what: str = "MNIST test images"):
    if start >= len(x):
        raise ValueError(f"--index {start}: only {len(x)} {what} available")
    if start + n > len(x):
        print(f"note: {len(x) - start} of the {n} images asked for are available", file=sys.stderr)
    return x[start:start + n], y[start:start + n]


def cmd_info(args) -> int:
    from . import backend

    native = backend.native_status()
    print(f"pyimgenc native core: {'yes' if native['core'] else 'NO (' + str(native['core_error']) + ')'}")
    print(f"AVX-512 IFMA path:    {'yes' if native['ifma'] else 'no'}")
    print(f"BMI2/ADX path:        {'yes' if native['adx'] else 'no'}")
    print(f"CUDA engine:          {'yes' if native['cuda'] else 'no'} ({native['cuda_reason']})")
    print(f"backends available:   {', '.join(backend.available_backends())}")
    print(f"CPU paths available:  {', '.join(backend.available_cpu_paths()) or '-'}")
    print(f"RNS engines:          {', '.join(backend.available_rns_engines()) or '-'} (System B; first is automatic)")
    print(f"selected:             backend={backend.get_backend()} "
          + (f"cpu_path={backend.get_cpu_path()} " if native["core"] else "")
          + f"threads={backend.get_num_threads()}")
    if native["core"]:
        print(f"CPU path in use:      {backend.cpu_path_reason()}")
    return 0


class _Steps:
    """A progress bar over named steps that keeps its clock running while one step waits on a
    server (refreshed every second); called with each step's name as it begins."""

    def __init__(self, names: list[str], desc: str, quiet: bool):
        from tqdm import tqdm
        self.names = names
        self.bar = tqdm(total=len(names), desc=desc, unit="step", disable=quiet)

    def __call__(self, name: str) -> None:
        k = self.names.index(name)
        self.bar.update(k - self.bar.n)
        self.bar.set_postfix_str(name)

    def __enter__(self):
        import threading
        self._stop = threading.Event()

        def tick():
            while not self._stop.wait(1.0):
                self.bar.refresh()
        threading.Thread(target=tick, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if exc[0] is None:
            self.bar.update(self.bar.total - self.bar.n)
            self.bar.set_postfix_str("done")
        self.bar.close()


DEMO_SYSTEMS = ("paillier", "b", "c", "a")


def cmd_demo(args) -> int:
    systems = [s.strip().lower() for s in args.systems.split(",") if s.strip()]
    bad = [s for s in systems if s not in DEMO_SYSTEMS]
    if bad or not systems:
        raise ValueError(f"--systems: unknown {bad or systems}; choose from {','.join(DEMO_SYSTEMS)}")
    bits = _key_bits(args)
    x, y = _mnist(args)
    if args.index >= len(x):
        raise ValueError(f"--index {args.index}: only {len(x)} MNIST test images available")
    ok = True
    for name in DEMO_SYSTEMS:
        if name in systems:
            ok &= {"paillier": _demo_paillier, "a": _demo_a, "b": _demo_b, "c": _demo_c}[name](args, bits, x, y)
    return 0 if ok else 1


def _yes(ok: bool) -> str:
    return "YES" if ok else "NO"


def _demo_paillier(args, bits, x, y) -> bool:
    """Paillier: an encrypted 3x3 convolution and dense layer on one digit, checked exactly."""
    import numpy as np
    from tqdm import tqdm

    from . import paillier

    img = x[args.index].astype(np.int64)                            # 28x28 real digit, 0..255
    rng = np.random.default_rng(args.seed)
    kernels = rng.integers(-8, 9, size=(4, 1, 3, 3))               # 4 integer 3x3 filters
    dense = rng.integers(-8, 9, size=(10, 4 * 13 * 13))            # dense layer to 10 scores
    with tqdm(total=4, desc="Paillier", unit="step", disable=args.quiet) as steps:
        t = time.perf_counter()
        pk, sk = paillier.keygen(bits, insecure=bits < 2048)
        t_key = time.perf_counter() - t
        steps.update()
        t = time.perf_counter()
        enc = pk.encrypt(img[None])                                 # (1, 28, 28) ciphertexts
        t_enc = time.perf_counter() - t
        steps.update()
        t = time.perf_counter()
        scores = dense @ enc.conv2d(kernels, stride=2).reshape(-1)  # (10,) encrypted
        t_eval = time.perf_counter() - t
        steps.update()
        t = time.perf_counter()
        out = sk.decrypt(scores)
        t_dec = time.perf_counter() - t
        steps.update()
    ref_conv = np.zeros((4, 13, 13), dtype=object)                  # plaintext integer reference
    for o in range(4):
        for r in range(13):
            for c in range(13):
                ref_conv[o, r, c] = int((img[2 * r:2 * r + 3, 2 * c:2 * c + 3] * kernels[o, 0]).sum())
    ref = dense.astype(object) @ ref_conv.reshape(-1)
    ok = [int(v) for v in out.tolist()] == [int(v) for v in ref.tolist()]
    print(f"Paillier: MNIST test image #{args.index} (label {int(y[args.index])}), {bits}-bit key")
    print(f"  keygen {t_key:.2f} s | encrypt 784 px {t_enc:.3f} s | encrypted conv(4x3x3, s2) + "
          f"dense(10x676) {t_eval:.2f} s | decrypt 10 {t_dec:.3f} s")
    print(f"  decrypted scores: {out.tolist()}")
    print(f"  equal to the plaintext integer computation: {_yes(ok)}")
    return ok


def _demo_a(args, bits, x, y) -> bool:
    """System A: one digit through S1 and S2 (in this process), checked against the integer model."""
    import numpy as np

    from .twinserver import SecureClassifier

    img = x[args.index:args.index + 1]
    clf = SecureClassifier.pretrained("mnist-icnn", key_bits=bits, insecure=bits < 2048)
    try:
        logits = clf.classify(img, progress=not args.quiet)
    finally:
        clf.close()
    ok = bool((logits == clf.reference_logits(img)).all())
    row = [int(v) for v in logits[0]]
    print(f"System A (twin-server Paillier ICNN, {bits}-bit key, S1 and S2 in this process): "
          f"image #{args.index} (label {int(y[args.index])})")
    print(f"  class {int(np.argmax(row))} | offline {clf.last.offline_s:.1f} s, online {clf.last.online_s:.1f} s | "
          f"online traffic {clf.last.bytes_online / 2**20:.1f} MiB")
    print(f"  logits equal to the plaintext integer model: {_yes(ok)}")
    return ok


def _demo_b(args, bits, x, y) -> bool:
    """System B: 64 digits encrypted, inferred, decrypted, checked exactly (obfuscation only)."""
    import numpy as np

    from . import rns

    xs, ys = x[:64], y[:64]
    clf = rns.RNSClassifier.pretrained("mnist-avgpool")
    t = time.perf_counter()
    got = clf.classify(xs, progress=not args.quiet)
    ms = 1e3 * (time.perf_counter() - t) / len(xs)
    exact = int(sum(np.array_equal(a, b) for a, b in zip(got, clf.reference_logits(xs))))
    acc = float((np.argmax(clf.net.float_logits(got), 1) == ys).mean())
    print(f"System B (RNS CNN; fast obfuscation, not encryption): {len(xs)} MNIST test images, "
          f"engine {clf.server.engine}")
    print(f"  {ms:.2f} ms/image (including the first call's compilation) | accuracy {100 * acc:.1f}%")
    print(f"  decrypted logits equal to the plaintext integer model: {exact}/{len(xs)}")
    return exact == len(xs)


def _demo_c(args, bits, x, y) -> bool:
    """System C: a terminal seals a face for a verifier, which opens it; a forged bit, a replay and
    another person's face are refused."""
    import logging
    import tempfile

    import numpy as np

    from . import datasets, factor

    faces, who = datasets.load_olivetti(sample=True)
    enrol, capture, other = 20, 21, 0           # subject 32's photos #0 and #1; subject 30's photo #0
    logging.getLogger("pyimgenc.verifier").setLevel(logging.ERROR)   # the rejections below are the point
    with tempfile.TemporaryDirectory() as tmp:
        srv = factor.Verifier.create(Path(tmp) / "verifier.sqlite")
        dev = factor.Terminal.create(device_id="demo-1", server_public_key=srv.public_key, model="vae")
        srv.register_device("demo-1", dev.public_key)
        srv.register_face("demo-1", faces[enrol])
        env = dev.seal(faces[capture])
        try:
            exact = bool(np.array_equal(srv.open(env).image, faces[capture]))
        except factor.VerificationError as exc:
            print(f"  the genuine capture was rejected: {exc.reason}")
            exact = False
        reasons = []
        for bad in (env[:-1] + bytes([env[-1] ^ 1]), env, dev.seal(faces[other])):
            try:
                srv.open(bad)
                reasons.append("ACCEPTED")
            except factor.VerificationError as exc:
                reasons.append(exc.reason)
        srv.close()
    print(f"System C (image-derived security factor, VAE first factor): Olivetti subject {int(who[enrol])} "
          f"enrolled, a second photo of them captured (64x64)")
    print(f"  envelope {len(env)} bytes | opened, face matched, image exact: {_yes(exact)}")
    print(f"  refused: one flipped bit ({reasons[0]}), the same envelope again ({reasons[1]}), "
          f"subject {int(who[other])}'s face ({reasons[2]})")
    return exact and "ACCEPTED" not in reasons


def cmd_data(args) -> int:
    from . import datasets

    if args.data_command == "list":
        print(f"searched: {', '.join(map(str, datasets.data_dirs(args.data)))}")
        for name, path in datasets.status(args.data).items():
            get = f"pyimgenc data download {name}" + (f" --dest {args.data}" if args.data else "")
            print(f"  {name:14s} {path or f'missing ({get})'}")
        print(f"  {'samples':14s} {datasets.SAMPLES} (shipped: 300 MNIST, 200 Fashion-MNIST, 40 faces, camera)")
        return 0
    for name in args.names:
        path = datasets.download(name, args.dest, progress=not args.quiet, force=args.force)
        print(f"{name}: {path}")
    return 0


def _hostport(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT with a port in 1..65535, got {s!r}")
    return host, int(port)


def _port(s: str) -> int:
    """argparse type of --port: 0 (any free port) .. 65535."""
    if not s.isdigit() or int(s) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535, got {s!r}")
    return int(s)


def _positive(s: str) -> int:
    if not s.isdigit() or int(s) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return int(s)


def _wait_for(host: str, port: int, seconds: float) -> None:
    """Wait up to ``seconds`` for a TCP listener at host:port (servers just started)."""
    import socket
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection((host, port), timeout=2).close()
            return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise ConnectionError(f"{host}:{port}: {exc.strerror or exc}"
                                      + (f" (waited {seconds:g} s)" if seconds else "")) from None
            time.sleep(0.2)


def _key_bits(args) -> int:
    if args.bits < 2048 and not args.insecure:
        raise ValueError(f"--bits {args.bits}: keys below 2048 bits are insecure; add --insecure to use one anyway "
                         f"(tests, demos)")
    return args.bits


def cmd_twin_setup(args) -> int:
    from .twinserver import deploy
    info = deploy.setup(args.out, key_bits=_key_bits(args), insecure=args.bits < 2048,
                        s1_names=args.s1_name or ("localhost", "127.0.0.1"),
                        s2_names=args.s2_name or ("localhost", "127.0.0.1"))
    print(f"wrote to {info['dir']}: s2.key, s2.share, s2.crt, s2-tls.key (S2 only); s1.share, s1.crt, "
          f"s1-tls.key (S1 only); public.json, ca.crt (everyone). Secret files are mode 0600.")
    return 0


def _plaintext_warning(args) -> bool:
    if args.insecure_plaintext:
        print("warning: --insecure-plaintext: no TLS, no server authentication (loopback tests only)",
              file=sys.stderr, flush=True)
    return args.insecure_plaintext


class _Announce:
    """The ``ready`` event of a System A server: prints its line once the port is bound and
    the key and share have loaded (not before a failure)."""

    def __init__(self, text: str):
        self.text, self.port = text, None

    def set(self) -> None:
        print(self.text.format(port=self.port), flush=True)


def cmd_serve_s2(args) -> int:
    from .twinserver import deploy
    deploy.serve_s2(args.dir, args.host, args.port, timeout_s=args.timeout, plaintext=_plaintext_warning(args),
                    ready=_Announce(f"S2 (key server) on {args.host}:{{port}}"))
    return 0


def cmd_serve_s1(args) -> int:
    from .twinserver import deploy
    h, p = _hostport(args.s2)
    deploy.serve_s1(Path(args.dir) / "s1.share", h, p, args.host, args.port, timeout_s=args.timeout,
                    plaintext=_plaintext_warning(args),
                    ready=_Announce(f"S1 (compute server) on {args.host}:{{port}}, S2 at {h}:{p}"))
    return 0


def cmd_classify(args) -> int:
    import numpy as np

    from .twinserver import deploy
    if args.image:
        from PIL import Image
        imgs = np.stack([np.asarray(Image.open(f).convert("L").resize((28, 28)), dtype=np.uint8) for f in args.image])
    else:
        imgs, _ = _take(*_mnist(args), args.index, args.n)
    if bool(args.s1) != bool(args.s2) or bool(args.s1) == bool(args.pair):
        raise SystemExit("pyimgenc: error: give --s1 and --s2, or one --pair S1HOST:PORT,S2HOST:PORT per server pair")
    if args.scheduler and not args.pair:
        raise SystemExit("pyimgenc: error: --scheduler goes with --pair (it runs the requests to several pairs)")
    pairs = [(args.s1, args.s2)] if args.s1 else [_pair_arg(v) for v in args.pair]
    for s1, s2 in pairs:
        for hp in (s1, s2):
            _wait_for(*_hostport(hp), args.wait)
    if args.pair:   # a batch fanned out over the pairs (pyimgenc.dist.classify_pairs)
        from .dist.systems import classify_pairs
        client = _dask_client(args.scheduler) if args.scheduler else None
        try:
            logits = classify_pairs(Path(args.dir) / "public.json", imgs,
                                    [(_hostport(a), _hostport(b)) for a, b in pairs],
                                    client=client, plaintext=_plaintext_warning(args), progress=not args.quiet)
        finally:
            if client is not None:
                _close_client(client)
    else:
        with _Steps(["open", "encrypt", "classify", "fetch"], f"classify {len(imgs)} image(s)", args.quiet) as step:
            logits = deploy.classify_remote(Path(args.dir) / "public.json", imgs, _hostport(args.s1),
                                            _hostport(args.s2), plaintext=_plaintext_warning(args), step=step)
    for i, row in enumerate(logits):
        print(f"image {i}: class {int(np.argmax([int(v) for v in row]))}  logits {[int(v) for v in row]}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyimgenc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("info", help="native core, CPU path, threads and backends of this machine")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("demo", help="Paillier and Systems A, B, C on real sample images, each checked exactly")
    p.add_argument("--systems", default=",".join(DEMO_SYSTEMS),
                   help=f"comma-separated subset of {','.join(DEMO_SYSTEMS)} (default: all; System A takes "
                        f"about a minute at 2048 bits on a CPU without AVX-512 IFMA)")
    p.add_argument("--bits", type=int, default=2048, help="Paillier key size for Paillier and System A (default 2048)")
    p.add_argument("--insecure", action="store_true", help="allow keys below 2048 bits (tests, demos)")
    p.add_argument("--data", help="data directory with mnist/mnist.npz (default: PYIMGENC_DATA, the user cache, "
                                  "else the shipped samples)")
    p.add_argument("--index", type=int, default=0, help="MNIST test image index")
    p.add_argument("--seed", type=int, default=0, help="seed of the random integer weights")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("data", help="datasets: where they are, download the full sets")
    dsub = p.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    q = dsub.add_parser("list", help="each dataset's file, or how to get it")
    q.add_argument("--data", help="a data directory to look in (only it; default: PYIMGENC_DATA, the user cache)")
    q.set_defaults(func=cmd_data)
    q = dsub.add_parser("download", help="fetch from the official sources, SHA-256 checked")
    q.add_argument("names", nargs="+", choices=sorted(__import__("pyimgenc.datasets").datasets.SOURCES),
                   metavar="NAME", help="mnist, fashion_mnist, olivetti (needs scipy), astronaut")
    q.add_argument("--dest", help="data directory to write (default: the user cache, ~/.cache/pyimgenc)")
    q.add_argument("--force", action="store_true", help="download again even if the file is there")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_data)

    p = sub.add_parser("serve", help="run a service (System C verifier; System A servers s1, s2)")
    ssub = p.add_subparsers(dest="service", metavar="SERVICE", required=True)
    q = ssub.add_parser("verifier", help="the verification server (creates the database if missing)")
    q.add_argument("--db", default="verifier.sqlite", help="SQLite file, or a postgresql:// DSN shared by several verifier processes "
                        "(server key, devices, counters, records)")
    q.add_argument("--host", default="127.0.0.1")
    q.add_argument("--port", type=_port, default=8080, help="0 picks a free port")
    q.add_argument("--window", type=float, default=300.0, help="accepted capture clock skew, seconds")
    q.add_argument("--admin-token-env", default=None,
                   help="environment variable holding the token that enables the admin endpoints "
                        "(/v1/devices: register, list, unlock)")
    q.add_argument("--tls-cert", help="PEM certificate: serve HTTPS (with --tls-key)")
    q.add_argument("--tls-key", help="PEM private key of --tls-cert")
    q.add_argument("--max-concurrent", type=_positive, default=8,
                   help="verifications at once (whole bodies only; 503 busy beyond); about the core count")
    q.add_argument("--max-failures", type=_positive, default=5,
                   help="failed face/factor matches of one device that lock it (default 5)")
    q.add_argument("--failure-window", type=float, default=3600.0,
                   help="seconds those failures are counted over (default 3600)")
    q.set_defaults(func=cmd_serve)

    q = ssub.add_parser("s2", help="System A key server (needs s2.key and s2.share from 'twinserver setup')")
    q.add_argument("--dir", required=True, help="directory written by 'pyimgenc twinserver setup'")
    q.add_argument("--host", default="127.0.0.1")
    q.add_argument("--port", type=_port, default=7002)
    q.add_argument("--timeout", type=float, default=300.0, help="seconds a peer may stay silent mid-message")
    q.add_argument("--insecure-plaintext", action="store_true",
                   help="plain TCP without TLS (loopback tests only: no encryption, no authentication)")
    q.set_defaults(func=cmd_serve_s2)
    q = ssub.add_parser("s1", help="System A compute server (needs s1.share; connects to S2)")
    q.add_argument("--dir", required=True, help="directory written by 'pyimgenc twinserver setup'")
    q.add_argument("--s2", required=True, help="S2's HOST:PORT")
    q.add_argument("--host", default="127.0.0.1")
    q.add_argument("--port", type=_port, default=7001)
    q.add_argument("--timeout", type=float, default=300.0)
    q.add_argument("--insecure-plaintext", action="store_true",
                   help="plain TCP without TLS (loopback tests only: no encryption, no authentication)")
    q.set_defaults(func=cmd_serve_s1)

    p = sub.add_parser("twinserver", help="System A: twin-server Paillier ICNN (setup files for the servers)")
    tsub = p.add_subparsers(dest="twin_command", metavar="COMMAND", required=True)
    q = tsub.add_parser("setup", help="S2's key and both model shares (the data owner's outsourcing)")
    q.add_argument("--out", required=True)
    q.add_argument("--bits", type=int, default=2048, help="Paillier key size (default 2048)")
    q.add_argument("--insecure", action="store_true", help="allow keys below 2048 bits (tests only)")
    q.add_argument("--s1-name", action="append", help="host name or address users dial S1 at (repeatable; "
                                                       "default localhost and 127.0.0.1): goes into S1's certificate")
    q.add_argument("--s2-name", action="append", help="the same for S2")
    q.set_defaults(func=cmd_twin_setup)

    p = sub.add_parser("classify", help="System A user: classify images via the S1/S2 servers")
    p.add_argument("--dir", required=True, help="directory holding public.json")
    p.add_argument("--s1", help="S1's HOST:PORT")
    p.add_argument("--s2", help="S2's HOST:PORT")
    p.add_argument("--pair", action="append", default=[], metavar="S1HOST:PORT,S2HOST:PORT",
                   help="instead of --s1/--s2: one server pair of the same setup; repeat to fan the images "
                        "out over several pairs (one request per image, round robin)")
    p.add_argument("--scheduler", help="with --pair: send the requests from a Dask cluster (scheduler address, "
                                       "or local:K) instead of threads here (needs pyimgenc[dask])")
    p.add_argument("image", nargs="*", help="image files (greyscale, resized to 28x28); default: MNIST test images")
    p.add_argument("--data", help="data directory with mnist/mnist.npz when no image is given (default: as for demo)")
    p.add_argument("--index", type=int, default=0)
    p.add_argument("-n", type=int, default=1)
    p.add_argument("--insecure-plaintext", action="store_true",
                   help="plain TCP without TLS (loopback tests only: no encryption, no authentication)")
    p.add_argument("--wait", type=float, default=0.0, help="seconds to wait for servers that are still starting")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("factor", help="System C: image-derived security factor")
    fsub = p.add_subparsers(dest="factor_command", metavar="COMMAND", required=True)
    q = fsub.add_parser("report", help="metrics and plots on the real test images and faces")
    q.add_argument("--data", help="data directory with images/*.png and faces/olivetti.npz "
                                  "(default: PYIMGENC_DATA, then the user cache)")
    q.add_argument("--out", default="factor-report", help="output directory (default: ./factor-report)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_factor_report)

    p = sub.add_parser("rns", help="System B: modular-component CNN (fast obfuscation, not encryption)")
    rsub = p.add_subparsers(dest="rns_command", metavar="COMMAND", required=True)
    q = rsub.add_parser("eval", help="encrypted MNIST inference, checked against the integer model")
    q.add_argument("--data", help="data directory with mnist/mnist.npz (default: PYIMGENC_DATA, the user cache, else the shipped samples)")
    q.add_argument("-n", type=int, default=1000, help="number of test images (default 1000)")
    q.add_argument("--moduli", type=int, default=4, help="N (default 4)")
    q.add_argument("--redundancy", type=int, default=4, help="M (default 4)")
    q.add_argument("--hardened", action="store_true", help="fresh decoys, secret multipliers, PK kept")
    q.add_argument("--engine", default=None, choices=["cuda", "numba", "torch"],
                   help="evaluation engine (default: PYIMGENC_RNS_ENGINE, else cuda on a GPU, else numba)")
    q.add_argument("--scheduler", help="run on a Dask cluster: a scheduler address, or local:K for K worker "
                                       "processes on 127.0.0.1 (needs pyimgenc[dask]; the cluster sees the images)")
    q.add_argument("--chunk", type=_positive, default=250, help="images per Dask task (with --scheduler)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_rns_eval)
    q = rsub.add_parser("attacks", help="recover images from ciphertexts: a table per parameter set")
    q.add_argument("--data", help="data directory with mnist/mnist.npz (default: PYIMGENC_DATA, the user cache, else the shipped samples)")
    q.add_argument("-n", type=int, default=100, help="number of test images (default 100)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--plot", help="also write a figure (PNG) of six digits and what the attacks recover")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_rns_attacks)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    if getattr(args, "n", None) is not None and args.n < 1:
        parser.error(f"-n must be at least 1, got {args.n}")
    if getattr(args, "index", None) is not None and args.index < 0:
        parser.error(f"--index must be >= 0, got {args.index}")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("pyimgenc: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError, ImportError, RuntimeError, KeyError, OverflowError,
            sqlite3.Error) as exc:                                   # user mistakes, dead peers
        if args.debug:
            raise
        print(f"pyimgenc: error: {_one_line(exc)}", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    """``exc`` as one line a user can act on (the traceback: --debug)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, FileNotFoundError) and exc.filename:
        text = f"{exc.filename}: no such file"
    elif isinstance(exc, ConnectionError) and not str(exc):
        text = f"connection failed ({type(exc).__name__})"
    return text


if __name__ == "__main__":
    sys.exit(main())
