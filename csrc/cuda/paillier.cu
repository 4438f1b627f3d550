// CUDA kernels of the batched modular primitives (Paillier's engine), one batch element per
// thread, over the per-lane arithmetic of csrc/lane/lane.hpp: the same code the CPU's
// `lane` path runs and the property tests check.  Compiled at run time by NVRTC through
// CuPy (pyimgenc/math/cuda.py) for the limb count at hand (LC = the count for Paillier's usual
// sizes, LC = 0 - read at run time - for the rest); `nvcc -DPYIMGENC_CUDA_INSTANTIATE` (CI)
// compiles every kernel for a few limb counts so the source never rots.
//
// Limb layout: residues of W little-endian 64-bit limbs, row-major (batch, W), as on the CPU.
// Modulus constants, one device array `cst` (u64):
//   PAIR = 0 (Montgomery modulo N, LC = L):   N | R mod N | R^2 mod N        (L limbs each),
//            n0 = -N^-1 mod 2^64
//   PAIR = 1 (radix-n pairs, N = n^2, LC = K): n | R mod n | R^2 mod n        (K limbs each)
//            | R mod N as a pair | R^2 mod N as a pair   (2K limbs each),  n0 = -n^-1 mod 2^64
// Workspace: kernels that need per-element tables get `ws` of ws_limbs limbs per thread of
// the grid (grid-stride loops, so the grid - not the batch - sets its size).
#include "lane/lane.hpp"

namespace pyimgenc {
namespace cuda {

using lane::i64;
using lane::u64;

template <int LC, int PAIR>
struct Arith;

template <int LC>
struct Arith<LC, 0> {
  using type = lane::Mont<LC>;
  static __device__ type make(const u64* c, u64 n0, int L, int) { return type(c, c + L, c + 2 * L, n0, L); }
};

template <int LC>
struct Arith<LC, 1> {
  using type = lane::Pair<LC>;
  static __device__ type make(const u64* c, u64 n0, int L, int K) {
    return type(lane::Mont<LC>(c, c + K, c + 2 * K, n0, K), c + 3 * K, c + 5 * K, L);
  }
};

__device__ inline long long thread_index() { return (long long)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ inline long long thread_count() { return (long long)gridDim.x * blockDim.x; }

// out[i] = bases[i]^exps[i] mod N; exps (B or 1, E) with row stride estride (0: shared);
// secret: fixed windows, masked table reads (lane::powmod_one_ct) over 64 E bits
template <int LC, int PAIR>
__global__ void powmod(u64* out, const u64* bases, const u64* exps, long long B, int E, long long estride,
                       int secret, const u64* cst, u64 n0, int L, int K, u64* ws, long long ws_limbs) {
  const auto ar = Arith<LC, PAIR>::make(cst, n0, L, K);
  u64* tbl = ws + thread_index() * ws_limbs;
  for (long long i = thread_index(); i < B; i += thread_count()) {
    const u64* e = exps + i * estride;
    if (secret)
      lane::powmod_one_ct(ar, out + i * L, bases + i * L, e, E, 64 * E, tbl);
    else
      lane::powmod_one(ar, out + i * L, bases + i * L, e, E, tbl);
  }
}

// out[i] = a[i] b[i] mod N (Montgomery modulo N)
template <int LC>
__global__ void mulmod(u64* out, const u64* a, const u64* b, long long B, const u64* cst, u64 n0, int L) {
  const auto ar = Arith<LC, 0>::make(cst, n0, L, 0);
  for (long long i = thread_index(); i < B; i += thread_count())
    ar.mul_normal(out + i * L, a + i * L, b + i * L);
}

// Fixed-base table [nwin][2^w][W], one row per thread: row i = powers of base^(2^(w i))
template <int LC, int PAIR>
__global__ void fixed_base_rows(u64* entries, const u64* base, int nwin, int w, const u64* cst, u64 n0, int L,
                                int K) {
  const auto ar = Arith<LC, PAIR>::make(cst, n0, L, K);
  for (long long i = thread_index(); i < nwin; i += thread_count())
    lane::fixed_base_row_at(ar, entries + i * ((long long)1 << w) * ar.W, base, (int)i, w);
}

// out[i] = base^exps[i] from the table: one product per non-zero window
template <int LC, int PAIR>
__global__ void fixed_base_pow(u64* out, const u64* entries, int nwin, int w, const u64* exps, long long B,
                               int E, const u64* cst, u64 n0, int L, int K) {
  const auto ar = Arith<LC, PAIR>::make(cst, n0, L, K);
  for (long long i = thread_index(); i < B; i += thread_count())
    lane::fixed_base_one(ar, out + i * L, entries, nwin, w, exps + i * E, E);
}

// Multi-exponentiation tables [nsign][Kb][2^w][W]: powers of bases (sign 0) and of their
// inverses (sign 1), one (sign, base) per thread
template <int LC, int PAIR>
__global__ void multiexp_tables(u64* tables, const u64* bases, const u64* inv_bases, long long Kb, int nsign,
                                int w, const u64* cst, u64 n0, int L, int K) {
  const auto ar = Arith<LC, PAIR>::make(cst, n0, L, K);
  const int nd = 1 << w;
  for (long long j = thread_index(); j < nsign * Kb; j += thread_count()) {
    const long long s = j / Kb, k = j % Kb;
    u64 g[decltype(ar)::kCap];
    ar.to_mont(g, (s ? inv_bases : bases) + k * L);
    lane::powers_row(ar, tables + j * nd * ar.W, g, nd);
  }
}

// out[m] = prod_t bases[idx[m,t]]^exps[m,t] (negative exponents from the inverses' tables)
template <int LC, int PAIR>
__global__ void multiexp(u64* out, const u64* tables, long long Kb, int w, int nwin, const i64* idx,
                         const i64* exps, long long M, long long T, const u64* cst, u64 n0, int L, int K) {
  const auto ar = Arith<LC, PAIR>::make(cst, n0, L, K);
  for (long long m = thread_index(); m < M; m += thread_count())
    lane::multiexp_one(ar, out + m * L, tables, Kb, w, nwin, idx + m * T, exps + m * T, T);
}

#if defined(PYIMGENC_CUDA_INSTANTIATE)
// CI: every kernel for the limb counts of 1024/2048/4096-bit n^2 (and pairs of their n), and
// the runtime-L instances (LC = 0) that serve every other limb count
#define PYIMGENC_INSTANTIATE(LC, P)                                                                    \
  template __global__ void powmod<LC, P>(u64*, const u64*, const u64*, long long, int, long long, int, \
                                         const u64*, u64, int, int, u64*, long long);                   \
  template __global__ void fixed_base_rows<LC, P>(u64*, const u64*, int, int, const u64*, u64, int, int); \
  template __global__ void fixed_base_pow<LC, P>(u64*, const u64*, int, int, const u64*, long long, int,  \
                                                 const u64*, u64, int, int);                              \
  template __global__ void multiexp_tables<LC, P>(u64*, const u64*, const u64*, long long, int, int,      \
                                                  const u64*, u64, int, int);                             \
  template __global__ void multiexp<LC, P>(u64*, const u64*, long long, int, int, const i64*, const i64*,  \
                                           long long, long long, const u64*, u64, int, int);
PYIMGENC_INSTANTIATE(16, 1)
PYIMGENC_INSTANTIATE(32, 1)
PYIMGENC_INSTANTIATE(32, 0)
PYIMGENC_INSTANTIATE(64, 0)
PYIMGENC_INSTANTIATE(0, 0)
PYIMGENC_INSTANTIATE(0, 1)
template __global__ void mulmod<32>(u64*, const u64*, const u64*, long long, const u64*, u64, int);
template __global__ void mulmod<64>(u64*, const u64*, const u64*, long long, const u64*, u64, int);
#undef PYIMGENC_INSTANTIATE
#endif

}  // namespace cuda
}  // namespace pyimgenc
