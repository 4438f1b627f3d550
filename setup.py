"""Build of pyimgenc and its private native core ``pyimgenc._core``.

The core is portable C++17 compiled with -O3 (no -march=native); the AVX-512
IFMA kernels carry per-function target attributes, the x86-64 BMI2/ADX kernels are
generated assembly (csrc/cpu/gen_adx_kernels.py), and both are chosen at run time.
OpenMP is used when the compiler supports it.  CUDA is never needed to build.
"""
import os
import sys
import tempfile

import shutil

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

# CUDA engine sources, shipped in the wheel (pyimgenc/cuda_src/) and compiled at run time by
# NVRTC through CuPy: no CUDA toolkit is needed to build or install.
CUDA_SOURCES = ["csrc/cuda/paillier.cu", "csrc/lane/lane.hpp"]


def _has_openmp(compiler) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "omp.cpp")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main(){return omp_get_max_threads() > 0 ? 0 : 1;}\n")
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=["-fopenmp"])
            compiler.link_executable(objs, os.path.join(tmp, "omp"), extra_postargs=["-fopenmp"])
            return True
        except Exception:
            return False


class BuildExt(build_ext):
    def build_extensions(self):
        omp = sys.platform != "win32" and _has_openmp(self.compiler)
        for ext in self.extensions:
            if omp:
                ext.extra_compile_args.append("-fopenmp")
                ext.extra_link_args.append("-fopenmp")
            else:
                ext.define_macros.append(("PYIMGENC_NO_OPENMP", "1"))
        super().build_extensions()


class BuildPy(build_py):
    def run(self):
        super().run()
        for src in CUDA_SOURCES:
            dst = os.path.join(self.build_lib, "pyimgenc", "cuda_src", os.path.relpath(src, "csrc"))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(src, dst)


ext = Pybind11Extension(
    "pyimgenc._core",
    sorted(
        [
            "csrc/bindings.cpp",
            "csrc/cpu/mont_cpu.cpp",
            "csrc/cpu/modexp_cpu.cpp",
            "csrc/cpu/ifma_cpu.cpp",
            "csrc/cpu/kernels.cpp",
            "csrc/cpu/adx_kernels.cpp",
            "csrc/cpu/radix_cpu.cpp",
        ]
    ),
    include_dirs=["csrc"],
    cxx_std=17,
    extra_compile_args=["-O3", "-fno-strict-aliasing"],
)

SERVICE = ["starlette>=0.40", "uvicorn>=0.30", "httpx>=0.27"]
POSTGRES = ["psycopg[binary]>=3.1", "psycopg-pool>=3.2"]
DASK = ["dask[array,distributed]>=2024.1"]

setup(
    name="pyimgenc",
    version="0.1.0",
    description="Privacy-preserving image classification and image encryption "
    "(twin-server Paillier CNN, RNS CNN, image-derived security factor)",
    long_description=open("README.md", encoding="utf-8").read() if os.path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["pyimgenc", "pyimgenc.*"]),
    ext_modules=[ext],
    cmdclass={"build_ext": BuildExt, "build_py": BuildPy},
    install_requires=[
        "numpy>=1.24",
        "gmpy2>=2.1",
        "numba>=0.58",
        "tqdm>=4.60",
        "cryptography>=50",   # hpke module, AESGCM.encrypt_into
        "matplotlib>=3.7",    # pyimgenc factor report plots
        "pillow>=10",         # reading the test photographs
    ],
    extras_require={
        # the CUDA engine (CuPy with the CUDA toolkit's NVRTC from wheels - [ctk] - so no local
        # toolkit is needed; for CUDA 13 drivers install cupy-cuda13x[ctk] instead) and System B's
        # GPU kernels (numba's CUDA target)
        "gpu": ["cupy-cuda12x[ctk]>=14.0", "numba-cuda>=0.20"],
        # training, the float models, the torch engines (inference of the shipped models needs none of it)
        "torch": ["torch>=2.1"],
        "data": ["scipy>=1.10"],   # pyimgenc data download olivetti (reads the .mat file)
        "service": SERVICE,   # the System C verifier over HTTP(S): ASGI app, server, client
        "postgres": POSTGRES,  # verifier state in PostgreSQL, shared by several verifier processes
        "dask": DASK,          # pyimgenc.dist: encrypted tensors and batch classification on a Dask cluster
        "bench": ["pytest>=7", "pytest-benchmark>=4", "phe>=1.5", "tenseal>=0.3.14"],
        "test": [
            "pytest>=7",
            "pytest-benchmark>=4",
            "hypothesis>=6",
            "phe>=1.5",
            "pillow>=10",
            "scipy>=1.10",
            *SERVICE,
            *POSTGRES,
            *DASK,
        ],
    },
    entry_points={"console_scripts": ["pyimgenc=pyimgenc.cli:main"]},
    package_data={"pyimgenc": ["py.typed"], "pyimgenc.models": ["checkpoints/*.npz"],
                  "pyimgenc.datasets": ["samples/*.npz", "samples/*.png"]},
    zip_safe=False,
)
