"""The ``pyimgenc`` command line: help, info, and the demo on a real MNIST digit."""
from __future__ import annotations

import pytest

from pyimgenc import cli

def test_help_lists_commands(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert "info" in out and "demo" in out


def test_info_reports_engines(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "backends available" in out and "python" in out


def test_demo_is_exact_on_the_shipped_samples(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("PYIMGENC_DATA", raising=False)                 # a bare install: no data anywhere
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cli.main(["demo", "--systems", "paillier,b,c", "--bits", "512", "--insecure", "--index", "3",
                     "--quiet"]) == 0
    out = capsys.readouterr()
    assert "using the 300 shipped sample digits" in out.err
    assert "Paillier: MNIST test image #3 (label 0), 512-bit key" in out.out
    assert "equal to the plaintext integer computation: YES" in out.out
    assert "decrypted logits equal to the plaintext integer model: 64/64" in out.out
    assert "image exact: YES" in out.out and "(face_mismatch)" in out.out and "(replayed_counter)" in out.out


def test_demo_with_a_data_directory_without_mnist_says_how_to_get_it(tmp_path, capsys):
    assert cli.main(["demo", "--data", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pyimgenc: error: mnist/mnist.npz not found in ") and "pyimgenc data download mnist" in err
    assert cli.main(["demo", "--systems", "x", "--quiet"]) == 1
    assert "--systems: unknown ['x']" in capsys.readouterr().err


def test_factor_report_writes_tables_and_plots(tmp_path, capsys, photos, olivetti):
    import json
    assert cli.main(["factor", "report", "--out", str(tmp_path), "--quiet"]) == 0
    res = json.loads((tmp_path / "report.json").read_text())
    assert {r["side"] for r in res["cipher_images"]} == {256, 512}
    # single rows are alpha = 0.05 tests (one in twenty fails for an ideal cipher); the rate must be ~95%
    study = res["seal_study_256_grey"]
    assert study["npcr_pass_rate"] >= 0.85 and study["uaci_pass_rate"] >= 0.85
    assert sum(r["npcr_ok"] and r["uaci_ok"] for r in res["cipher_images"]) >= 5  # P(fewer) < 1e-4
    # random seals: for 256x256 grey |r| has sd 0.0039, so 0.01 is 2.6 sd; 0.025 (6 sd) cannot fail by chance
    assert all(abs(r[f"corr_cipher_{d}"]) < 0.025 for r in res["cipher_images"] for d in "hvd")
    assert study["corr_below_0.01_rate"] >= 0.85
    try:
        import torch  # noqa: F401
        assert res["first_factor"] and all(d["numpy_eq_torch"] for d in res["first_factor"])
    except ImportError:                               # that section needs the torch extra
        assert res["first_factor"] == []
    for p in res["plots"]:
        assert (tmp_path / p).stat().st_size > 10_000  # a real PNG, not an empty file
    assert "Face matching" in capsys.readouterr().out


def test_serve_verifier_answers_over_http(tmp_path):
    import json
    import os
    import subprocess
    import sys
    import urllib.request
    env = dict(os.environ, ADMIN_TOKEN="t0k")
    proc = subprocess.Popen([sys.executable, "-m", "pyimgenc.cli", "serve", "verifier", "--db", str(tmp_path / "v.db"),
                             "--port", "0", "--admin-token-env", "ADMIN_TOKEN"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("verifier on http://"), line
        url = line.split()[2]
        with urllib.request.urlopen(url + "/v1/public-key", timeout=10) as r:
            assert len(bytes.fromhex(json.loads(r.read())["x25519"])) == 32
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert (tmp_path / "v.db").is_file()


def test_rns_eval_and_attacks(capsys, mnist_test):
    assert cli.main(["rns", "eval", "-n", "40", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "not semantically secure" in out and "40/40" in out
    assert cli.main(["rns", "attacks", "-n", "5", "--quiet"]) == 0
    assert "| literal, N=4, M=4 | ratio | 100% of 5" in capsys.readouterr().out


def test_twinserver_setup_writes_certificates_and_owner_only_secrets(tmp_path, capsys):
    import stat
    assert cli.main(["twinserver", "setup", "--out", str(tmp_path), "--bits", "512", "--insecure",
                     "--s1-name", "s1.example", "--s2-name", "10.0.0.2"]) == 0
    assert "Secret files are mode 0600" in capsys.readouterr().out
    for name in ("s2.key", "s2.share", "s1.share", "s1-tls.key", "s2-tls.key"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    from cryptography import x509
    s1 = x509.load_pem_x509_certificate((tmp_path / "s1.crt").read_bytes())
    s2 = x509.load_pem_x509_certificate((tmp_path / "s2.crt").read_bytes())
    san = lambda c: c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value  # noqa: E731
    assert san(s1).get_values_for_type(x509.DNSName) == ["s1.example"]
    assert [str(a) for a in san(s2).get_values_for_type(x509.IPAddress)] == ["10.0.0.2"]


def test_serve_and_classify_say_when_tls_is_off(capsys):
    import argparse
    for argv in (["serve", "s1", "--dir", "d", "--s2", "h:1", "--insecure-plaintext", "--help"],
                 ["serve", "s2", "--dir", "d", "--insecure-plaintext", "--help"],
                 ["classify", "--dir", "d", "--s1", "h:1", "--s2", "h:2", "--insecure-plaintext", "--help"]):
        with pytest.raises(SystemExit) as exc:             # the flag exists on all three commands
            cli.main(argv)
        assert exc.value.code == 0 and "--insecure-plaintext" in capsys.readouterr().out
    assert cli._plaintext_warning(argparse.Namespace(insecure_plaintext=True)) is True
    assert "no TLS" in capsys.readouterr().err
    assert cli._plaintext_warning(argparse.Namespace(insecure_plaintext=False)) is False
    assert capsys.readouterr().err == ""


def test_errors_are_one_line_with_a_nonzero_exit(tmp_path, capsys):
    """User mistakes: a one-line message on stderr and exit status 1 (2 for bad arguments), no traceback."""
    assert cli.main(["twinserver", "setup", "--out", str(tmp_path), "--bits", "1024"]) == 1
    assert "pyimgenc: error: --bits 1024: keys below 2048 bits are insecure; add --insecure" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())                       # nothing written
    for argv in (["serve", "verifier", "--db", str(tmp_path / "x.sqlite"), "--port", "70000"],
                 ["serve", "s2", "--dir", str(tmp_path), "--port", "-1"],
                 ["serve", "verifier", "--max-concurrent", "0"]):
        with pytest.raises(SystemExit) as ei:
            cli.main(argv)
        assert ei.value.code == 2
    assert "expected a port number 0..65535, got '70000'" in capsys.readouterr().err
    assert cli.main(["classify", "--dir", str(tmp_path), "--s1", "127.0.0.1:70001", "--s2", "h:1"]) == 1
    assert "port in 1..65535" in capsys.readouterr().err
    (tmp_path / "not-a-db").write_text("hello")
    assert cli.main(["serve", "verifier", "--db", str(tmp_path / "not-a-db"), "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pyimgenc: error: ") and "Traceback" not in err
    assert cli.main(["serve", "verifier", "--db", str(tmp_path / "no" / "dir" / "v.sqlite"), "--port", "0"]) == 1
    assert capsys.readouterr().err.startswith("pyimgenc: error: ")
    assert cli.main(["data", "list", "--data", str(tmp_path / "nowhere")]) == 1
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as ei:
        cli.main(["rns", "eval", "-n", "0"])
    assert ei.value.code == 2 and "-n must be at least 1" in capsys.readouterr().err
    rc = cli.main(["serve", "s2", "--dir", str(tmp_path / "nowhere"), "--port", "0"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("pyimgenc: error: ") and err.count("\n") == 1 and "Traceback" not in err
    with pytest.raises(FileNotFoundError):                    # --debug: the traceback
        cli.main(["--debug", "serve", "s2", "--dir", str(tmp_path / "nowhere"), "--port", "0"])


def test_a_secret_file_others_can_read_is_refused_with_the_fix(tmp_path, capsys):
    import os
    assert cli.main(["twinserver", "setup", "--out", str(tmp_path), "--bits", "512", "--insecure"]) == 0
    capsys.readouterr()
    os.chmod(tmp_path / "s2.key", 0o644)
    rc = cli.main(["serve", "s2", "--dir", str(tmp_path), "--port", "0"])
    err = capsys.readouterr().err
    assert rc == 1 and "s2.key is a secret but readable or writable by others (mode 644)" in err
    assert f"chmod 600 {tmp_path / 's2.key'}" in err


def test_a_server_that_cannot_start_does_not_announce_itself(tmp_path, capsys):
    assert cli.main(["serve", "s2", "--dir", str(tmp_path), "--port", "0"]) == 1
    out = capsys.readouterr()
    assert "S2 (key server) on" not in out.out and out.err.startswith("pyimgenc: error: ")
    assert "s2.key: no such file" in out.err
