"""The import layering check (``python -m pyimgenc.tools.layers``): clean on the package, and able to fail."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyimgenc
from pyimgenc.tools import layers

PACKAGE = Path(pyimgenc.__file__).resolve().parent


def test_package_is_clean():
    violations = layers.check(PACKAGE)
    assert violations == [], "\n".join(map(str, violations))


def test_benchmarks_use_public_names_only():
    bench = Path(__file__).resolve().parents[2] / "benchmarks"   # tests/ and benchmarks/ ship together
    assert (bench / "conftest.py").is_file()
    assert [str(v) for v in layers.check(PACKAGE, {"benchmarks": bench})] == []


def test_command_line_exit_status():
    r = subprocess.run([sys.executable, "-m", "pyimgenc.tools.layers"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 violations" in r.stdout


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pyimgenc"
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        for parent in p.relative_to(root).parents:
            (root / parent / "__init__.py").touch()
        p.write_text(text)
    return root


def test_detects_each_kind_of_violation(tmp_path):
    root = _tree(tmp_path, {
        "_ext.py": "from . import _core\n",
        "backend.py": "from . import _ext\n",
        "math/ops.py": "from .. import _ext, backend\nX = _ext._core\n",                  # allowed
        "paillier/keys.py": "class PublicKey:\n    def _mul_plain(self):\n        return self._n\n",
        "paillier/tensor.py": "def f(pk):\n    return pk._mul_plain()\n",                   # same package: allowed
        "models/icnn.py": "from ..paillier import keys\n",                                 # up: layer
        "rns/net.py": "from ..paillier import keys\n",                                     # sideways: layer
        "twinserver/s1.py": "from ..paillier.keys import PublicKey\n"
                            "from ..paillier import tensor as _t\n"                        # alias only: allowed
                            "def g(pk):\n    return pk._mul_plain()\n",                   # private attribute
        "twinserver/graph.py": "from ..models.icnn import _conv_int\n",                   # private name
        "factor/env.py": "from .. import _ext\n",                                          # native
        "factor/lim.py": "from ..paillier._limbs import pad\n",                            # private module
        "paillier/_limbs.py": "def pad():\n    pass\n",
    })
    found = {(Path(v.path).relative_to(root).as_posix(), v.rule) for v in layers.check(root)}
    assert found == {
        ("models/icnn.py", "layer"),
        ("rns/net.py", "layer"),
        ("twinserver/s1.py", "private"),
        ("twinserver/graph.py", "private"),
        ("factor/env.py", "native"),
        ("factor/lim.py", "private"),
    }


def test_command_line_reports_and_fails(tmp_path):
    root = _tree(tmp_path, {"math/a.py": "from ..twinserver import s1\n", "twinserver/s1.py": "X = 1\n"})
    r = subprocess.run([sys.executable, "-m", "pyimgenc.tools.layers", "--package", str(root)],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "[layer] pyimgenc.math.a (math) imports pyimgenc.twinserver.s1 (systems)" in r.stdout
    assert "1 violation" in r.stdout
