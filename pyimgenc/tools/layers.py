"""Check pyimgenc's import layering and its private names.

Run ``python -m pyimgenc.tools.layers`` (exit status 0 when the tree is clean, 1
with one line per violation otherwise).  It reads the installed package's source
with :mod:`ast` and imports nothing of it, so it also works on a broken build.

The layers, lowest first (``docs/architecture.md``)::

    0  native     pyimgenc._core, pyimgenc._ext   the compiled core and its try-import
    1  engines    pyimgenc.backend                which engine and CPU path, threads
    2  math       pyimgenc.math, pyimgenc         batched modular arithmetic; the package root
    3  models     pyimgenc.models                 model definitions, exact integer ops, encodings
    4  schemes    pyimgenc.paillier, pyimgenc.rns
    5  systems    pyimgenc.twinserver, pyimgenc.factor
    6  scale-out  pyimgenc.dist                  the schemes and systems on a Dask cluster
    7  front      pyimgenc.cli, pyimgenc.tools, benchmarks/

Rules:

1. **Layering.** A module imports modules of its own package (``pyimgenc.paillier.*``
   from ``pyimgenc.paillier.*``) or of a strictly lower layer.  Two packages of one
   layer do not import each other (System A does not reach into System C).
2. **Native code stays behind ``math``.** Only ``backend`` and ``math`` import ``_core``/``_ext``
   or read their private names.
3. **Private names stay home.** No module imports another package's ``_private`` module
   or name, and no module reads ``obj._private`` unless its own package defines a
   ``_private`` of that name (so ``other._data`` between two instances of one class is
   fine, ``public_key._mul_plain`` from a protocol is not).
"""
from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

LAYERS: dict[str, int] = {
    "pyimgenc._core": 0,
    "pyimgenc._ext": 0,
    "pyimgenc.backend": 1,
    "pyimgenc.math": 2,
    "pyimgenc": 2,
    "pyimgenc.models": 3,
    "pyimgenc.paillier": 4,
    "pyimgenc.rns": 4,
    "pyimgenc.twinserver": 5,
    "pyimgenc.factor": 5,
    "pyimgenc.dist": 6,
    "pyimgenc.cli": 7,
    "pyimgenc.tools": 7,
    "benchmarks": 7,
}
LAYER_NAMES = {0: "native", 1: "engines", 2: "math", 3: "models", 4: "schemes", 5: "systems", 6: "scale-out",
               7: "front"}
NATIVE_USERS = 2  # layers up to math may use the native core
NATIVE = {"pyimgenc._core", "pyimgenc._ext"}

# Private-looking attributes that belong to other libraries' public API.
FOREIGN_API = {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}


@dataclass(frozen=True)
class Violation:
    """One broken rule: where, which rule, what."""

    path: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: [{self.rule}] {self.message}"


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def package_of(module: str) -> str:
    """The unit a module belongs to for the rules: the longest key of :data:`LAYERS` prefixing it."""
    best = ""
    for key in LAYERS:
        if (module == key or module.startswith(key + ".")) and len(key) > len(best):
            best = key
    if not best:
        raise ValueError(f"module {module!r} is in no layer; add its package to LAYERS")
    return best


def _module_name(path: Path, root: Path, prefix: str) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([prefix] + parts) if parts else prefix


def _collect(root: Path, prefix: str) -> dict[str, Path]:
    return {_module_name(p, root, prefix): p for p in sorted(root.rglob("*.py"))}


def _resolve(importer: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = importer.split(".")
    if not is_pkg:
        base = base[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _defined_private(tree: ast.AST) -> set[str]:
    """Private names a module defines: functions, classes, attributes set anywhere, module names."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and _is_private(node.name):
            out.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _is_private(node.attr):
            out.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and _is_private(node.id):
            out.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and _is_private(node.target.id):
            out.add(node.target.id)
    return out


def check(package_dir: Path, extra: dict[str, Path] | None = None) -> list[Violation]:
    """All violations in the package at ``package_dir`` (and in ``extra`` prefix -> folder trees).

    Args:
        package_dir: the ``pyimgenc`` folder to check.
        extra: more source trees checked against the same rules, e.g. ``{"benchmarks": Path("benchmarks")}``.

    Returns:
        The violations, sorted by path and line.
    """
    modules = _collect(package_dir, "pyimgenc")
    for prefix, folder in (extra or {}).items():
        modules.update(_collect(folder, prefix))
    trees = {m: ast.parse(p.read_text(encoding="utf-8"), filename=str(p)) for m, p in modules.items()}
    private_by_pkg: dict[str, set[str]] = {}
    for m, tree in trees.items():
        private_by_pkg.setdefault(package_of(m), set()).update(_defined_private(tree))
    known = set(modules) | NATIVE
    native_private = set().union(*(_defined_private(trees[m]) for m in NATIVE if m in trees)) | {"_core"}

    out: list[Violation] = []
    for m, tree in trees.items():
        path = str(modules[m])
        pkg = package_of(m)
        level = LAYERS[pkg]
        is_pkg = modules[m].name == "__init__.py"

        def target_check(target: str, line: int, names: list[str]) -> None:
            if not (target == "pyimgenc" or target.startswith("pyimgenc.")):
                return
            tpkg = package_of(target)
            if tpkg != pkg and not (target in NATIVE and m in NATIVE):
                tlevel = LAYERS[tpkg]
                if target in NATIVE and level > NATIVE_USERS:
                    out.append(Violation(path, line, "native", f"{m} imports {target}: only math/backend "
                                         "touch the native core"))
                elif tlevel >= level:
                    out.append(Violation(path, line, "layer", f"{m} ({LAYER_NAMES[level]}) imports {target} "
                                         f"({LAYER_NAMES[tlevel]}): imports must point to a lower layer"))
                private = [p for p in target.split(".") if _is_private(p)] + [n for n in names if _is_private(n)]
                if private and target not in NATIVE:
                    out.append(Violation(path, line, "private", f"{m} imports {', '.join(private)} "
                                         f"from {target}, private to {tpkg}"))

        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target_check(alias.name, node.lineno, [])
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(m, is_pkg, node)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in known:
                        target_check(sub, node.lineno, [])
                    else:
                        target_check(base, node.lineno, [alias.name])
            elif (isinstance(node, ast.Attribute) and _is_private(node.attr)
                  and node.attr not in FOREIGN_API
                  and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                  and node.attr not in private_by_pkg.get(pkg, set())
                  and not (level <= NATIVE_USERS and node.attr in native_private)):
                out.append(Violation(path, node.lineno, "private",
                                     f"{m} reads .{node.attr}, which its package {pkg} does not define"))
    return sorted(out, key=lambda v: (v.path, v.line, v.message))


def main(argv: list[str] | None = None) -> int:
    """Command line: print violations, exit 1 if there are any."""
    ap = argparse.ArgumentParser(prog="python -m pyimgenc.tools.layers", description=__doc__.split("\n")[0])
    ap.add_argument("--package", type=Path, default=Path(__file__).resolve().parents[1],
                    help="the pyimgenc folder to check (default: the imported package)")
    ap.add_argument("--benchmarks", type=Path, default=None,
                    help="also check a benchmarks/ folder (front layer)")
    args = ap.parse_args(argv)
    extra = {"benchmarks": args.benchmarks} if args.benchmarks else None
    violations = check(args.package, extra)
    for v in violations:
        print(v)
    n = len(_collect(args.package, "pyimgenc")) + (len(_collect(args.benchmarks, "benchmarks")) if extra else 0)
    print(f"{n} modules checked: {len(violations)} violation{'s' * (len(violations) != 1)}")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
