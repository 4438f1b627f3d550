#!/usr/bin/env bash
# The portable kernels' known-answer program (csrc/tests/kat_kernels.cpp), built from the
# same sources as the native core: natively (every path this CPU has) and cross-compiled
# for aarch64 (warnings are errors), run under qemu-user.  Needs g++, and for the second
# part g++-aarch64-linux-gnu and qemu-user (Debian packages).
set -euo pipefail
cd "$(dirname "$0")/../.."
SRC=(csrc/tests/kat_kernels.cpp csrc/cpu/kernels.cpp csrc/cpu/adx_kernels.cpp csrc/cpu/mont_cpu.cpp
     csrc/cpu/radix_cpu.cpp csrc/cpu/modexp_cpu.cpp csrc/cpu/ifma_cpu.cpp)
PY=${PYTHON:-python3}
"$PY" csrc/cpu/gen_adx_kernels.py --check   # generated files match their generators
"$PY" csrc/tests/gen_kat.py --check
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
g++ -O2 -std=c++17 -fopenmp -w -Icsrc -Icsrc/tests -o "$OUT/kat-native" "${SRC[@]}"
echo "native ($(uname -m)):"
"$OUT/kat-native"
aarch64-linux-gnu-g++ -O2 -std=c++17 -fopenmp -Wall -Wextra -Werror -Icsrc -Icsrc/tests \
  -o "$OUT/kat-aarch64" "${SRC[@]}"
echo "aarch64 under qemu:"
qemu-aarch64 -L /usr/aarch64-linux-gnu "$OUT/kat-aarch64"
