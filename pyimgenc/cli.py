"""pyimgenc command line: privacy-preserving image classification and encryption.

Commands:
    info                what this machine runs: native core, CPU path, threads, backends,
                        System B engines
    demo                encrypt a real MNIST digit, run an encrypted convolution and dense
                        layer on it (plaintext integer weights), decrypt, and check the
                        result equals the plaintext integer computation bit for bit
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
import sys
import time
from pathlib import Path


def _find_data(path: str | None) -> Path:
    for c in ([path] if path else [os.environ.get("PYIMGENC_DATA", ""), "../shared/data", "shared/data",
                                   "../../shared/data"]):
        if c and (Path(c) / "faces").is_dir():
            return Path(c)
    raise SystemExit("data directory not found; pass --data PATH (holding faces/ and images/) "
                     "or set PYIMGENC_DATA")


def cmd_serve(args) -> int:
    import logging

    from .factor import Verifier
    try:
        from .factor.service import Server
    except ImportError as exc:
        raise SystemExit(f"serve verifier needs the web extra: pip install 'pyimgenc[service]' ({exc})")

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    db = args.db                              # a SQLite path or a postgresql:// DSN (factor.store.open_store)
    token = os.environ.get(args.admin_token_env) if args.admin_token_env else None
    if args.admin_token_env and not token:
        raise SystemExit(f"serve: environment variable {args.admin_token_env} is empty")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise SystemExit("serve: --tls-cert and --tls-key go together")
    for f in (args.tls_cert, args.tls_key):
        if f is not None and not Path(f).is_file():
            raise SystemExit(f"serve: {f} not found")
    lock = dict(max_failures=args.max_failures, failure_window_s=args.failure_window)
    try:
        try:
            srv = Verifier(db, window_s=args.window, **lock)
        except FileNotFoundError:            # a new file, or a PostgreSQL database without the tables
            srv = Verifier.create(db, window_s=args.window, **lock)
    except (ConnectionError, ImportError, FileExistsError) as exc:
        raise SystemExit(f"serve: {exc}")
    web = Server(srv, args.host, args.port, tls_cert=args.tls_cert, tls_key=args.tls_key, admin_token=token,
                 max_concurrent=args.max_concurrent)
    try:
        web.start()
    except RuntimeError as exc:
        raise SystemExit(f"serve: {exc}")
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

    res = write_report(_find_data(args.data), args.out, quiet=args.quiet)
    print((Path(args.out) / "report.md").read_text())
    print(f"wrote {args.out}/report.md, report.json and {len(res['plots'])} plots in {res['seconds']} s")
    study = res.get("seal_study_256_grey") or {}
    # alpha = 0.05 tests: fail only when the pass rate is implausible for an ideal cipher
    ok = study.get("npcr_pass_rate", 1.0) >= 0.85 and study.get("uaci_pass_rate", 1.0) >= 0.85
    return 0 if ok else 1


def cmd_rns_eval(args) -> int:
    import numpy as np

    from . import rns

    data = np.load(_find_mnist(args.data))
    x, y = data["x_test"][:args.n], data["y_test"][:args.n]
    clf = rns.RNSClassifier.pretrained("mnist-avgpool", n_moduli=args.moduli, redundancy=args.redundancy,
                                       hardened=args.hardened, engine=args.engine)
    t = time.perf_counter()
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
    print(f"  encrypted inference {1e3 * t_enc / len(x):.2f} ms/image | plaintext integer model (Python ints) "
          f"{1e3 * t_ref / len(x):.2f} ms/image")
    print(f"  decrypted logits equal to the plaintext integer model: {exact}/{len(x)}")
    print(f"  accuracy {100 * acc:.2f}%")
    return 0 if exact == len(x) else 1


def cmd_rns_attacks(args) -> int:
    import numpy as np

    from .rns import attacks

    data = np.load(_find_mnist(args.data))
    rows = attacks.security_table(data["x_test"][:args.n], seed=args.seed, progress=not args.quiet)
    print(attacks.markdown(rows))
    if args.plot:
        attacks.plot(data["x_test"][:6], args.plot, seed=args.seed)
        print(f"wrote {args.plot}")
    return 0


def _find_mnist(path: str | None) -> Path:
    candidates = [path] if path else [
        os.environ.get("PYIMGENC_DATA", ""),
        "../shared/data", "shared/data", "../../shared/data",
    ]
    for c in candidates:
        if not c:
            continue
        p = Path(c)
        if p.is_dir():
            p = p / "mnist" / "mnist.npz"
        if p.is_file():
            return p
    raise SystemExit("demo: MNIST not found; pass --data PATH (a directory holding mnist/mnist.npz "
                     "or the .npz itself) or set PYIMGENC_DATA")


def cmd_info(args) -> int:
    from . import backend

    native = backend.native_status()
    print(f"pyimgenc native core: {'yes' if native['core'] else 'NO (' + str(native['core_error']) + ')'}")
    print(f"AVX-512 IFMA path:    {'yes' if native['ifma'] else 'no'}")
    print(f"CUDA engine:          {'yes' if native['cuda'] else 'no'}")
    print(f"backends available:   {', '.join(backend.available_backends())}")
    print(f"CPU paths available:  {', '.join(backend.available_cpu_paths()) or '-'}")
    print(f"RNS engines:          {', '.join(backend.available_rns_engines()) or '-'} (System B; first is automatic)")
    print(f"selected:             backend={backend.get_backend()} "
          + (f"cpu_path={backend.get_cpu_path()} " if native["core"] else "")
          + f"threads={backend.get_num_threads()}")
    return 0


def cmd_demo(args) -> int:
    import numpy as np
    from tqdm import tqdm

    from . import paillier

    data = np.load(_find_mnist(args.data))
    img = data["x_test"][args.index].astype(np.int64)           # 28x28 real digit, 0..255
    label = int(data["y_test"][args.index])
    rng = np.random.default_rng(args.seed)
    kernels = rng.integers(-8, 9, size=(4, 1, 3, 3))               # 4 integer 3x3 filters
    dense = rng.integers(-8, 9, size=(10, 4 * 13 * 13))            # dense layer to 10 scores

    steps = tqdm(total=5, desc="demo", unit="step", disable=args.quiet)
    t = time.perf_counter()
    pk, sk = paillier.keygen(_key_bits(args), insecure=args.bits < 2048)
    steps.set_postfix_str(f"keygen {args.bits}-bit"); steps.update()
    t_key = time.perf_counter() - t

    t = time.perf_counter()
    enc = pk.encrypt(img[None])                                     # (1, 28, 28) ciphertexts
    steps.set_postfix_str("encrypt"); steps.update()
    t_enc = time.perf_counter() - t

    t = time.perf_counter()
    conv = enc.conv2d(kernels, stride=2)                            # (4, 13, 13) encrypted
    steps.set_postfix_str("encrypted conv"); steps.update()
    scores = dense @ conv.reshape(-1)                               # (10,) encrypted
    steps.set_postfix_str("encrypted dense"); steps.update()
    t_eval = time.perf_counter() - t

    t = time.perf_counter()
    out = sk.decrypt(scores)
    steps.set_postfix_str("decrypt"); steps.update()
    steps.close()
    t_dec = time.perf_counter() - t

    # plaintext integer reference
    ref_conv = np.zeros((4, 13, 13), dtype=object)
    for o in range(4):
        for y in range(13):
            for x in range(13):
                ref_conv[o, y, x] = int((img[2 * y:2 * y + 3, 2 * x:2 * x + 3] * kernels[o, 0]).sum())
    ref = dense.astype(object) @ ref_conv.reshape(-1)
    ok = [int(v) for v in out.tolist()] == [int(v) for v in ref.tolist()]
    print(f"MNIST test image #{args.index} (label {label}), {args.bits}-bit Paillier key")
    print(f"  keygen {t_key:.2f} s | encrypt 784 px {t_enc:.3f} s | encrypted conv(4x3x3, s2) + "
          f"dense(10x676) {t_eval:.2f} s | decrypt 10 {t_dec:.3f} s")
    print(f"  decrypted scores: {out.tolist()}")
    print(f"  equal to the plaintext integer computation: {'YES' if ok else 'NO'}")
    return 0 if ok else 1


def _hostport(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"expected HOST:PORT, got {s!r}")
    return host, int(port)


def _key_bits(args) -> int:
    if args.bits < 2048 and not args.insecure:
        raise SystemExit(f"--bits {args.bits}: keys below 2048 bits are insecure; add --insecure to use one anyway "
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


def cmd_serve_s2(args) -> int:
    from .twinserver import deploy
    print(f"S2 (key server) on {args.host}:{args.port}", flush=True)
    deploy.serve_s2(args.dir, args.host, args.port, timeout_s=args.timeout, plaintext=_plaintext_warning(args))
    return 0


def cmd_serve_s1(args) -> int:
    from .twinserver import deploy
    h, p = _hostport(args.s2)
    print(f"S1 (compute server) on {args.host}:{args.port}, S2 at {h}:{p}", flush=True)
    deploy.serve_s1(Path(args.dir) / "s1.share", h, p, args.host, args.port, timeout_s=args.timeout,
                    plaintext=_plaintext_warning(args))
    return 0


def cmd_classify(args) -> int:
    import numpy as np

    from .twinserver import deploy
    if args.image:
        from PIL import Image
        imgs = np.stack([np.asarray(Image.open(f).convert("L").resize((28, 28)), dtype=np.uint8) for f in args.image])
    else:
        imgs = np.load(_find_mnist(args.data))["x_test"][args.index:args.index + args.n]
    logits = deploy.classify_remote(Path(args.dir) / "public.json", imgs, _hostport(args.s1), _hostport(args.s2),
                                    plaintext=_plaintext_warning(args))
    for i, row in enumerate(logits):
        print(f"image {i}: class {int(np.argmax([int(v) for v in row]))}  logits {[int(v) for v in row]}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyimgenc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("info", help="native core, CPU path, threads and backends of this machine")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("demo", help="encrypted conv + dense on a real MNIST digit, checked exactly")
    p.add_argument("--bits", type=int, default=2048, help="Paillier key size (default 2048)")
    p.add_argument("--insecure", action="store_true", help="allow keys below 2048 bits (tests, demos)")
    p.add_argument("--data", help="directory with mnist/mnist.npz (default: ../shared/data)")
    p.add_argument("--index", type=int, default=0, help="MNIST test image index")
    p.add_argument("--seed", type=int, default=0, help="seed of the random integer weights")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="run a service (System C verifier; System A servers s1, s2)")
    ssub = p.add_subparsers(dest="service", metavar="SERVICE", required=True)
    q = ssub.add_parser("verifier", help="the verification server (creates the database if missing)")
    q.add_argument("--db", default="verifier.sqlite", help="SQLite file, or a postgresql:// DSN shared by several verifier processes "
                        "(server key, devices, counters, records)")
    q.add_argument("--host", default="127.0.0.1")
    q.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    q.add_argument("--window", type=float, default=300.0, help="accepted capture clock skew, seconds")
    q.add_argument("--admin-token-env", default=None,
                   help="environment variable holding the token that enables the admin endpoints "
                        "(/v1/devices: register, list, unlock)")
    q.add_argument("--tls-cert", help="PEM certificate: serve HTTPS (with --tls-key)")
    q.add_argument("--tls-key", help="PEM private key of --tls-cert")
    q.add_argument("--max-concurrent", type=int, default=8,
                   help="verifications at once (whole bodies only; 503 busy beyond); about the core count")
    q.add_argument("--max-failures", type=int, default=5,
                   help="failed face/factor matches of one device that lock it (default 5)")
    q.add_argument("--failure-window", type=float, default=3600.0,
                   help="seconds those failures are counted over (default 3600)")
    q.set_defaults(func=cmd_serve)

    q = ssub.add_parser("s2", help="System A key server (needs s2.key and s2.share from 'twinserver setup')")
    q.add_argument("--dir", required=True, help="directory written by 'pyimgenc twinserver setup'")
    q.add_argument("--host", default="127.0.0.1")
    q.add_argument("--port", type=int, default=7002)
    q.add_argument("--timeout", type=float, default=300.0, help="seconds a peer may stay silent mid-message")
    q.add_argument("--insecure-plaintext", action="store_true",
                   help="plain TCP without TLS (loopback tests only: no encryption, no authentication)")
    q.set_defaults(func=cmd_serve_s2)
    q = ssub.add_parser("s1", help="System A compute server (needs s1.share; connects to S2)")
    q.add_argument("--dir", required=True, help="directory written by 'pyimgenc twinserver setup'")
    q.add_argument("--s2", required=True, help="S2's HOST:PORT")
    q.add_argument("--host", default="127.0.0.1")
    q.add_argument("--port", type=int, default=7001)
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
    p.add_argument("--s1", required=True, help="S1's HOST:PORT")
    p.add_argument("--s2", required=True, help="S2's HOST:PORT")
    p.add_argument("image", nargs="*", help="image files (greyscale, resized to 28x28); default: MNIST test images")
    p.add_argument("--data", help="directory with mnist/mnist.npz when no image is given")
    p.add_argument("--index", type=int, default=0)
    p.add_argument("-n", type=int, default=1)
    p.add_argument("--insecure-plaintext", action="store_true",
                   help="plain TCP without TLS (loopback tests only: no encryption, no authentication)")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("factor", help="System C: image-derived security factor")
    fsub = p.add_subparsers(dest="factor_command", metavar="COMMAND", required=True)
    q = fsub.add_parser("report", help="metrics and plots on the real test images and faces")
    q.add_argument("--data", help="shared data directory (default: ../shared/data)")
    q.add_argument("--out", default="factor-report", help="output directory")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_factor_report)

    p = sub.add_parser("rns", help="System B: modular-component CNN (fast obfuscation, not encryption)")
    rsub = p.add_subparsers(dest="rns_command", metavar="COMMAND", required=True)
    q = rsub.add_parser("eval", help="encrypted MNIST inference, checked against the integer model")
    q.add_argument("--data", help="directory with mnist/mnist.npz (default: ../shared/data)")
    q.add_argument("-n", type=int, default=1000, help="number of test images (default 1000)")
    q.add_argument("--moduli", type=int, default=4, help="N (default 4)")
    q.add_argument("--redundancy", type=int, default=4, help="M (default 4)")
    q.add_argument("--hardened", action="store_true", help="fresh decoys, secret multipliers, PK kept")
    q.add_argument("--engine", default=None, choices=["numba", "torch"],
                   help="evaluation engine (default: PYIMGENC_RNS_ENGINE, else torch on a GPU, else numba)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_rns_eval)
    q = rsub.add_parser("attacks", help="recover images from ciphertexts: a table per parameter set")
    q.add_argument("--data", help="directory with mnist/mnist.npz (default: ../shared/data)")
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
    except (OSError, ValueError, ImportError, RuntimeError, KeyError) as exc:   # user mistakes, dead peers
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
