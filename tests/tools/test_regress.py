"""benchmarks/regress.py's comparison on synthetic pytest-benchmark JSON (nothing is timed or run)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "regress.py"   # tests/ and benchmarks/ ship together


@pytest.fixture(scope="module")
def regress():
    spec = importlib.util.spec_from_file_location("regress", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def result(tmp_path: Path, name: str, paillier: dict, envelope: float, flags=("avx2",)) -> Path:
    """A pytest-benchmark JSON holding paired Paillier rounds (op -> ratio) and one paired envelope round."""
    benches = [{"name": f"test_paired[2048bit-{op}]", "stats": {"median": 1.0},
                "extra_info": {"paired_op": op, "bits": 2048, "ours_median": 10 * r, "phe_median": 10.0,
                               "ratio_median": r, "ratio_min": r, "ratio_max": r}} for op, r in paillier.items()]
    benches.append({"name": "test_paired[1024]", "stats": {"median": 1.0},
                    "extra_info": {"paired": True, "size": "1024", "overhead_over_aes": envelope,
                                   "overhead_over_aes_min": envelope, "overhead_over_aes_max": envelope}})
    data = {"machine_info": {"cpu": {"brand_raw": "Test CPU 9000", "count": 4, "flags": list(flags)}},
            "commit_info": {"id": "0" * 40, "dirty": False}, "datetime": "2026-01-01T00:00:00", "benchmarks": benches}
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def baseline(regress, tmp_path):
    src = result(tmp_path, "base.json", {"encrypt": 10.0, "decrypt": 2.0}, envelope=1.5)
    path = tmp_path / "baseline.json"
    assert regress.main(["--from-json", str(src), "--baseline", str(path), "--update"]) == 0
    saved = json.loads(path.read_text())
    assert saved["machine"]["key"] == "generic-test-cpu-9000-4-cores"
    assert set(saved["suites"]) == {"paillier", "factor"}
    return path


def check(regress, tmp_path, baseline, *json_files, margin="0.25"):
    return regress.main(["--from-json", *map(str, json_files), "--baseline", str(baseline), "--margin", margin])


def test_drop_beyond_margin_fails_naming_the_ratio(regress, tmp_path, baseline, capsys):
    now = result(tmp_path, "now.json", {"encrypt": 6.0, "decrypt": 2.1}, envelope=1.5)   # encrypt -40%
    assert check(regress, tmp_path, baseline, now) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "paillier/encrypt-2048" in out.splitlines()[-1]
    assert "paillier/decrypt-2048" not in out.splitlines()[-1]


def test_within_margin_passes(regress, tmp_path, baseline, capsys):
    now = result(tmp_path, "now.json", {"encrypt": 8.0, "decrypt": 1.7}, envelope=1.8)   # -20%, -15%, +20%
    assert check(regress, tmp_path, baseline, now) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "paillier/encrypt-2048" in out and "factor/envelope-over-aesgcm-1024" in out


def test_lower_is_better_ratio_fails_when_it_grows(regress, tmp_path, baseline, capsys):
    better = result(tmp_path, "better.json", {"encrypt": 10.0, "decrypt": 2.0}, envelope=0.5)
    assert check(regress, tmp_path, baseline, better) == 0
    worse = result(tmp_path, "worse.json", {"encrypt": 10.0, "decrypt": 2.0}, envelope=2.0)   # envelope +33%
    assert check(regress, tmp_path, baseline, worse) == 1
    assert "factor/envelope-over-aesgcm-1024" in capsys.readouterr().out.splitlines()[-1]
    assert check(regress, tmp_path, baseline, worse, margin="0.4") == 0


def test_missing_ratio_fails(regress, tmp_path, baseline, capsys):
    now = result(tmp_path, "now.json", {"encrypt": 10.0}, envelope=1.5)
    assert check(regress, tmp_path, baseline, now) == 1
    assert "paillier/decrypt-2048" in capsys.readouterr().out.splitlines()[-1]


def test_other_machines_baseline_is_refused(regress, tmp_path, baseline, capsys):
    ifma = result(tmp_path, "ifma.json", {"encrypt": 10.0, "decrypt": 2.0}, envelope=1.5, flags=("avx512ifma",))
    assert check(regress, tmp_path, baseline, ifma) == 2
    err = capsys.readouterr().err
    assert "generic-test-cpu-9000-4-cores" in err and "ifma-test-cpu-9000-4-cores" in err and "not used" in err


def test_update_keeps_the_other_suites(regress, tmp_path, baseline):
    now = result(tmp_path, "now.json", {"encrypt": 20.0, "decrypt": 4.0}, envelope=9.0)
    assert regress.main(["--from-json", str(now), "--baseline", str(baseline), "--suite", "paillier", "--update"]) == 0
    suites = json.loads(baseline.read_text())["suites"]
    assert suites["paillier"]["ratios"]["paillier/encrypt-2048"]["value"] == 20.0
    assert suites["factor"]["ratios"]["factor/envelope-over-aesgcm-1024"]["value"] == 1.5
