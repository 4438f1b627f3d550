"""Systems at scale: System B over Dask workers equal to the in-process classifier on 1,000
MNIST test images; System A fanned out over two local server pairs equal to the plaintext
integer model's logits (which the in-process twin-server classifier reproduces exactly)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("dask", reason="Dask is an optional extra (pip install 'pyimgenc[dask]'), not installed")
distributed = pytest.importorskip("distributed", reason="Dask distributed is part of pyimgenc[dask], not installed")

from pyimgenc.dist import systems  # noqa: E402
from pyimgenc.rns import RNSClassifier  # noqa: E402
from pyimgenc.twinserver import deploy, load_integer_model  # noqa: E402


def test_system_b_on_two_workers_equals_in_process(mnist_test, tmp_path):
    x = mnist_test[0][:1000]
    want = RNSClassifier.pretrained().classify(x)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        got = systems.classify("mnist-avgpool", x, chunk=250).compute()
        assert got.shape == (1000, 10)
        assert (got == want).all()
        # shards on disk (a shared file system in a real cluster)
        paths = []
        for i, part in enumerate(np.array_split(x[:300], 3)):
            paths.append(tmp_path / f"shard{i}.npz")
            np.savez(paths[-1], images=part)
        assert (systems.classify("mnist-avgpool", paths).compute() == want[:300]).all()
    with pytest.raises(KeyError, match="no array 'pixels'"):
        systems.classify("mnist-avgpool", paths, key="pixels")
    with pytest.raises(ValueError, match="no seed"):
        systems.classify("mnist-avgpool", x, seed=1)
    with pytest.raises(ValueError, match="chunk must be a positive int"):
        systems.classify("mnist-avgpool", x, chunk=0)
    with pytest.raises(TypeError, match="unknown option"):
        systems.classify("mnist-avgpool", x, client=None)
    with pytest.raises(ValueError):
        systems.classify("no-such-model", x)


def test_rns_eval_command_on_a_local_cluster(capsys):
    from pyimgenc import cli
    assert cli.main(["rns", "eval", "-n", "40", "--scheduler", "local:2", "--chunk", "10", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "equal to the plaintext integer model: 40/40" in out and "on Dask cluster local:2" in out
    with pytest.raises(SystemExit, match="expected local:K"):
        cli.main(["rns", "eval", "-n", "4", "--scheduler", "local:x", "--quiet"])


def test_system_a_over_two_server_pairs(mnist_test, tmp_path, capsys, start_server_pair):
    deploy.setup(tmp_path, key_bits=1024, insecure=True)
    stop = threading.Event()
    try:
        pairs = [tuple(("127.0.0.1", p) for p in start_server_pair(tmp_path, stop, plaintext=True))
                 for _ in range(2)]
        x = mnist_test[0][20:22]
        got = systems.classify_pairs(tmp_path / "public.json", x, pairs, plaintext=True)
        assert got.shape == (2, 10)
        assert (got == load_integer_model().logits(x)[0]).all()
        # the same requests as tasks of a Dask cluster playing the user
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                      dashboard_address=None) as cluster, distributed.Client(cluster) as client:
            again = systems.classify_pairs(tmp_path / "public.json", x, pairs, plaintext=True, client=client)
        assert (again == got).all()
        # the command line: one --pair per server pair
        from pyimgenc import cli
        args = ["classify", "--dir", str(tmp_path), "-n", "2", "--index", "20", "--insecure-plaintext", "--quiet"]
        for (h1, p1), (h2, p2) in pairs:
            args += ["--pair", f"{h1}:{p1},{h2}:{p2}"]
        assert cli.main(args) == 0
        out = capsys.readouterr().out.splitlines()
        rows = [line for line in out if line.startswith("image ")]
        assert [int(r.split("logits ")[1].strip("[]").split(", ")[0]) for r in rows] == [int(v) for v in got[:, 0]]
        with pytest.raises(SystemExit, match="give --s1 and --s2, or one --pair"):
            cli.main(args + ["--s1", "127.0.0.1:1", "--s2", "127.0.0.1:2"])
        with pytest.raises(SystemExit, match="expected S1HOST:PORT,S2HOST:PORT"):
            cli.main(args[:8] + ["--pair", "a:1,b:2,c:3"])
        with pytest.raises(SystemExit, match="--scheduler goes with --pair"):
            cli.main(["classify", "--dir", str(tmp_path), "--s1", "127.0.0.1:1", "--s2", "127.0.0.1:2",
                      "--scheduler", "local:1", "--quiet"])
    finally:
        stop.set()
    with pytest.raises(ValueError, match="no server pairs"):
        systems.classify_pairs(tmp_path / "public.json", x, [])
