// Per-lane modular arithmetic, written once for the CPU and the GPU.
//
// Everything here is a __host__ __device__ function (plain `inline` for a host compiler):
// the CPU extension compiles it for its `generic` kernels and for the `lane` path (the GPU's
// code run on the CPU, so the property tests exercise exactly what a GPU thread runs), and
// csrc/cuda/*.cu compile it for the device (nvcc in CI; NVRTC through CuPy at run time).
//
// Layout: a residue is W little-endian 64-bit limbs, the same layout as every CPU path.
// One lane = one thread, one batch element at a time (see docs/engine.md, "GPU").
//
//   mul / sqr / redc : the Montgomery kernels' contract (kernels.hpp): t = a b, t = a a;
//                      redc leaves the quotient digits in t[0..L) and returns whether it
//                      subtracted n; no branch or address depends on the data.
//   Mont<LC>         : Montgomery arithmetic modulo N (L limbs).
//   Pair<LC>         : radix-n pairs modulo N = n^2 (x = A + B n, K limbs each; see
//                      radix_cpu.hpp for the identity).
//   powmod_one / powmod_one_ct / powers_row / fixed_base_row_at / fixed_base_one /
//   multiexp_one     : the exponentiation drivers, generic over the arithmetic (the CPU's
//                      MontArith / PairArith use them too).
// LC > 0: limb count fixed at compile time (loops unroll, scratch sized to fit); LC = 0:
// runtime limb count up to kLaneMaxLimbs.  Scratch that depends on a window width comes
// from the caller (`ws`), so a GPU kernel can hand every thread its own slice.
#pragma once

#if defined(__CUDACC__)
#define PYI_HD __host__ __device__ __forceinline__
// the L^2 kernels: called, not inlined, and only their inner loops unrolled (compile time
// and code size stay bounded at 64+ limbs)
#define PYI_HD_KERNEL __host__ __device__ __noinline__
#if defined(__CUDA_ARCH__)
#define PYI_OUTER_LOOP _Pragma("unroll 1")
#else
#define PYI_OUTER_LOOP
#endif
#else
#define PYI_HD inline
#define PYI_HD_KERNEL inline
#define PYI_OUTER_LOOP
#endif

#if !defined(__CUDACC_RTC__)
#include <cstdint>
#endif

namespace pyimgenc {
namespace lane {

#if defined(__CUDACC_RTC__)
typedef unsigned long long u64;
typedef long long i64;
#else
using u64 = std::uint64_t;
using i64 = std::int64_t;
#endif

constexpr int kLaneMaxLimbs = 256;  // 16384-bit moduli (n^2 of an 8192-bit key)

// ----------------------------------------------------------------------------- limb ops

// lo + hi 2^64 = a b + c + d (never overflows)
PYI_HD u64 mac(u64 a, u64 b, u64 c, u64 d, u64& lo) {
#if defined(__CUDA_ARCH__)
  u64 l = a * b, h = __umul64hi(a, b);
  l += c;
  h += (l < c);
  l += d;
  h += (l < d);
  lo = l;
  return h;
#else
  const unsigned __int128 s = (unsigned __int128)a * b + c + d;
  lo = (u64)s;
  return (u64)(s >> 64);
#endif
}

// a + b + carry (carry 0/1) -> sum, carry out
PYI_HD u64 addc(u64 a, u64 b, u64& carry) {
  const u64 s = a + b, c1 = s < a, t = s + carry, c2 = t < s;
  carry = c1 | c2;
  return t;
}

// a - b - borrow (borrow 0/1) -> difference, borrow out
PYI_HD u64 subb(u64 a, u64 b, u64& borrow) {
  const u64 d = a - b, b1 = a < b, t = d - borrow, b2 = d < borrow;
  borrow = b1 | b2;
  return t;
}

PYI_HD u64 mask_if(u64 bit) { return (u64)0 - bit; }  // 0/1 -> all zeros / all ones

PYI_HD int clz64(u64 x) {
#if defined(__CUDA_ARCH__)
  return __clzll((long long)x);
#else
  return __builtin_clzll(x);
#endif
}

PYI_HD void copy(u64* r, const u64* x, int n) {
  for (int j = 0; j < n; ++j) r[j] = x[j];
}

PYI_HD void zero(u64* r, int n) {
  for (int j = 0; j < n; ++j) r[j] = 0;
}

// ----------------------------------------------------------------------------- kernels

template <int LC>
PYI_HD_KERNEL void mul(u64* t, const u64* a, const u64* b, int Lrt) {
  const int L = LC ? LC : Lrt;
  for (int j = 0; j < L; ++j) t[j] = 0;
  PYI_OUTER_LOOP
  for (int i = 0; i < L; ++i) {
    const u64 x = a[i];
    u64 carry = 0;
    for (int j = 0; j < L; ++j) carry = mac(x, b[j], t[i + j], carry, t[i + j]);
    t[i + L] = carry;
  }
}

template <int LC>
PYI_HD_KERNEL void sqr(u64* t, const u64* a, int Lrt) {
  const int L = LC ? LC : Lrt;
  for (int j = 0; j < 2 * L; ++j) t[j] = 0;
  PYI_OUTER_LOOP
  for (int i = 0; i + 1 < L; ++i) {  // off-diagonal triangle
    const u64 x = a[i];
    u64 carry = 0;
    for (int j = i + 1; j < L; ++j) carry = mac(x, a[j], t[i + j], carry, t[i + j]);
    t[i + L] = carry;
  }
  u64 shift = 0, carry = 0;  // t = 2 t + diagonal
  for (int i = 0; i < L; ++i) {
    u64 dlo;
    const u64 dhi = mac(a[i], a[i], 0, 0, dlo);
    const u64 lo = t[2 * i], hi = t[2 * i + 1];
    const u64 slo = (lo << 1) | shift, shi = (hi << 1) | (lo >> 63);
    shift = hi >> 63;
    t[2 * i] = addc(slo, dlo, carry);
    t[2 * i + 1] = addc(shi, dhi, carry);
  }
}

template <int LC>
PYI_HD_KERNEL u64 redc(u64* r, u64* t, const u64* n, u64 n0, int Lrt) {
  const int L = LC ? LC : Lrt;
  u64 pending = 0;  // carry into t[i + L + 1]
  PYI_OUTER_LOOP
  for (int i = 0; i < L; ++i) {
    const u64 m = t[i] * n0;
    u64 carry = 0;
    for (int j = 0; j < L; ++j) carry = mac(m, n[j], t[i + j], carry, t[i + j]);
    t[i] = m;
    u64 c = 0;
    t[i + L] = addc(t[i + L], carry, c);
    const u64 s = t[i + L] + pending;
    c += s < pending;
    t[i + L] = s;
    pending = c;
  }
  const u64* h = t + L;  // h + pending 2^(64L) < 2n
  u64 borrow = 0;
  for (int j = 0; j < L; ++j) r[j] = subb(h[j], n[j], borrow);  // r = h - n
  const u64 s = pending | (borrow ^ 1);
  const u64 keep = s - 1;  // all ones: keep h
  for (int j = 0; j < L; ++j) r[j] = (r[j] & ~keep) | (h[j] & keep);
  return s;
}

// ----------------------------------------------------------------------------- Montgomery

// The kernels as a policy (the CPU's adx/generic paths plug their own kernels into Mont
// and Pair with the same interface; see radix_cpu.hpp).
template <int LC>
struct LaneKernels {
  PYI_HD void mul(u64* t, const u64* a, const u64* b, int L) const { lane::mul<LC>(t, a, b, L); }
  PYI_HD void sqr(u64* t, const u64* a, int L) const { lane::sqr<LC>(t, a, L); }
  PYI_HD u64 redc(u64* r, u64* t, const u64* n, u64 n0, int L) const {
    return lane::redc<LC>(r, t, n, n0, L);
  }
};

// Montgomery arithmetic modulo N (L limbs, R = 2^(64 L)); residues fully reduced.
// Outputs may alias inputs.
template <int LC, class KP = LaneKernels<LC>>
struct Mont {
  static constexpr int kCap = LC ? LC : kLaneMaxLimbs;
  const u64* N;   // L limbs
  const u64* R1;  // R mod N
  const u64* R2;  // R^2 mod N
  u64 n0;         // -N^-1 mod 2^64
  int L, W;       // W == L: limbs per residue
  KP kp;
  PYI_HD Mont(const u64* n, const u64* r1, const u64* r2, u64 n0inv, int limbs, KP kern = KP())
      : N(n), R1(r1), R2(r2), n0(n0inv), L(LC ? LC : limbs), W(LC ? LC : limbs), kp(kern) {}
  PYI_HD_KERNEL void mul(u64* r, const u64* a, const u64* b) const {
    u64 t[2 * kCap];
    kp.mul(t, a, b, L);
    kp.redc(r, t, N, n0, L);
  }
  PYI_HD_KERNEL void sqr(u64* r, const u64* a) const {
    u64 t[2 * kCap];
    kp.sqr(t, a, L);
    kp.redc(r, t, N, n0, L);
  }
  PYI_HD_KERNEL void to_mont(u64* r, const u64* x) const { mul(r, x, R2); }
  PYI_HD_KERNEL void from_mont(u64* r, const u64* x) const {
    u64 t[2 * kCap];
    copy(t, x, L);
    zero(t + L, L);
    kp.redc(r, t, N, n0, L);
  }
  // a b mod N in the normal representation: (a b R^-1) R^2 R^-1
  PYI_HD_KERNEL void mul_normal(u64* r, const u64* a, const u64* b) const {
    u64 t[kCap];
    mul(t, a, b);
    mul(r, t, R2);
  }
  PYI_HD const u64* one() const { return R1; }
};

// ----------------------------------------------------------------------------- radix-n pairs

// U (2K limbs) + uc R^2 - m + s R, a value in [-R, 2 n^2 + R), brought into [0, n R) by
// adding or subtracting n R once (2 n^2 + R - n R < n R as R > n + 1); in place.
template <int LC>
PYI_HD_KERNEL void fold(u64* U, u64 uc, const u64* m, u64 s, const u64* n, int Krt) {
  const int K = LC ? LC : Krt;
  u64 borrow = 0;
  for (int j = 0; j < K; ++j) U[j] = subb(U[j], m[j], borrow);
  for (int j = K; j < 2 * K; ++j) U[j] = subb(U[j], 0, borrow);
  u64 carry = s;
  for (int j = K; j < 2 * K; ++j) U[j] = addc(U[j], 0, carry);
  const i64 top = (i64)uc - (i64)borrow + (i64)carry;  // -1, 0 or 1
  u64* h = U + K;  // V = (top : h) R
  constexpr int cap = LC ? LC : kLaneMaxLimbs / 2;
  u64 d[cap], e[cap];
  borrow = 0;
  carry = 0;
  for (int j = 0; j < K; ++j) {
    d[j] = subb(h[j], n[j], borrow);
    e[j] = addc(h[j], n[j], carry);
  }
  const u64 take_d = mask_if((u64)((top - (i64)borrow) >= 0));  // V >= n R
  const u64 take_e = mask_if((u64)(top < 0));                  // V < 0
  for (int j = 0; j < K; ++j) h[j] = (d[j] & take_d) | (e[j] & take_e) | (h[j] & ~(take_d | take_e));
}

// GCC cannot follow that redc writes the quotient digits fold reads (runtime-L loops)
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// Radix-n pairs modulo N = n^2: residues of W = 2K limbs [A | B], x = A + B n, A, B < n,
// in the Montgomery domain of R = 2^(64 K); normal residues (to_mont's input, from_mont's
// output) have L limbs.  LC: limbs of n (K).
template <int LC, class KP = LaneKernels<LC>>
struct Pair {
  static constexpr int kCapK = LC ? LC : kLaneMaxLimbs / 2;
  static constexpr int kCap = 2 * kCapK;
  Mont<LC, KP> rn;       // modulo n itself (N = n, R1, R2 of n, -n^-1)
  const u64* one_pair;   // R mod N as a pair
  const u64* r2_pair;    // R^2 mod N as a pair
  int K, W, L;
  PYI_HD Pair(const Mont<LC, KP>& modn, const u64* one_p, const u64* r2_p, int limbs_N)
      : rn(modn), one_pair(one_p), r2_pair(r2_p), K(modn.L), W(2 * modn.L), L(limbs_N) {}

  PYI_HD_KERNEL void mul(u64* r, const u64* x, const u64* y) const {
    const u64* n = rn.N;
    u64 T[2 * kCapK], U[2 * kCapK], V[2 * kCapK], t[kCapK];
    rn.kp.mul(T, x, y, K);                           // A C
    const u64 s = rn.kp.redc(t, T, n, rn.n0, K);     // A C + m n = (t + s n) R
    rn.kp.mul(U, x, y + K, K);                       // A D
    rn.kp.mul(V, x + K, y, K);                       // B C
    u64 uc = 0;
    for (int j = 0; j < 2 * K; ++j) U[j] = addc(U[j], V[j], uc);
    fold<LC>(U, uc, T, s, n, K);
    rn.kp.redc(r + K, U, n, rn.n0, K);
    copy(r, t, K);
  }
  PYI_HD_KERNEL void sqr(u64* r, const u64* x) const {
    const u64* n = rn.N;
    u64 T[2 * kCapK], U[2 * kCapK], t[kCapK], a2[kCapK];
    rn.kp.sqr(T, x, K);                              // A^2
    const u64 s = rn.kp.redc(t, T, n, rn.n0, K);
    u64 carry = 0, borrow = 0;                           // a2 = 2A mod n
    for (int j = 0; j < K; ++j) {
      const u64 v = (x[j] << 1) | carry;
      carry = x[j] >> 63;
      a2[j] = v;
      U[j] = subb(v, n[j], borrow);
    }
    const u64 sub = mask_if(carry | (borrow ^ 1));
    for (int j = 0; j < K; ++j) a2[j] = (U[j] & sub) | (a2[j] & ~sub);
    rn.kp.mul(U, a2, x + K, K);                      // (2A mod n) B
    fold<LC>(U, 0, T, s, n, K);
    rn.kp.redc(r + K, U, n, rn.n0, K);
    copy(r, t, K);
  }
  // x (L limbs, < N) -> (x mod n, x div n), not in the Montgomery domain
  PYI_HD_KERNEL void split(u64* pair, const u64* x) const {
    u64 X[2 * kCapK], Y[2 * kCapK], t[kCapK];
    copy(X, x, L);
    zero(X + L, 2 * K - L);
    copy(Y, X, 2 * K);
    rn.kp.redc(t, Y, rn.N, rn.n0, K);                // x R^-1 mod n   (x < n^2 < n R)
    rn.mul(pair, t, rn.R2);                              // a = x mod n
    u64 borrow = 0;                                      // X = x - a = b n
    for (int j = 0; j < K; ++j) X[j] = subb(X[j], pair[j], borrow);
    for (int j = K; j < 2 * K; ++j) X[j] = subb(X[j], 0, borrow);
    rn.kp.redc(t, X, rn.N, rn.n0, K);                // b n + m n = 0 (mod R): b = -m mod R
    u64 carry = 1;
    for (int j = 0; j < K; ++j) pair[K + j] = addc(~X[j], 0, carry);
  }
  PYI_HD_KERNEL void to_mont(u64* r, const u64* x) const {
    u64 p[kCap];
    split(p, x);
    mul(r, p, r2_pair);
  }
  PYI_HD_KERNEL void from_mont(u64* r, const u64* x) const {
    u64 unit[kCap], p[kCap], T[kCap];
    zero(unit, W);
    unit[0] = 1;
    mul(p, x, unit);                                     // (t, y), x = t + y n
    rn.kp.mul(T, p + K, rn.N, K);
    u64 carry = 0;
    for (int j = 0; j < K; ++j) T[j] = addc(T[j], p[j], carry);
    for (int j = K; j < 2 * K; ++j) T[j] = addc(T[j], 0, carry);
    copy(r, T, L);
  }
  PYI_HD const u64* one() const { return one_pair; }
};

#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#pragma GCC diagnostic pop
#endif

// ----------------------------------------------------------------------------- exponents

PYI_HD int exp_bit_length(const u64* e, int E) {
  for (int i = E - 1; i >= 0; --i)
    if (e[i]) return 64 * i + 64 - clz64(e[i]);
  return 0;
}

PYI_HD unsigned exp_bit(const u64* e, int b) { return (unsigned)(e[b >> 6] >> (b & 63)) & 1; }

// bits [pos, pos+w) of e, without branching on their values (so also right for secret
// exponents); bits past E limbs read as zero
PYI_HD unsigned exp_window(const u64* e, int E, int pos, int w) {
  unsigned v = 0;
  for (int k = 0; k < w; ++k) {
    const int b = pos + k;
    const u64 limb = b / 64 < E ? e[b / 64] : 0;  // the position is public
    v |= (unsigned)((limb >> (b % 64)) & 1) << k;
  }
  return v;
}

// Sliding window over odd powers: 2^(w-1) table products against ebits/(w+1) others.
PYI_HD int sliding_window(int ebits) {
  int best = 1;
  double best_cost = 1e300;
  for (int w = 1; w <= 8; ++w) {
    const double cost = (double)(1 << (w - 1)) + (double)ebits / (w + 1);
    if (cost < best_cost) best_cost = cost, best = w;
  }
  return best;
}

// Limbs of workspace powmod_one needs for exponents of at most ebits bits
PYI_HD long powmod_ws_limbs(int ebits, int W) { return ((1L << (sliding_window(ebits) - 1)) + 1) * W; }
constexpr int kCtWindow = 5;  // powmod_one_ct: fixed windows of 5 bits, 32 table entries
PYI_HD long powmod_ct_ws_limbs(int W) { return (1L << kCtWindow) * W; }

// Public exponent: left-to-right sliding window (branches and table indices follow the
// exponent's bits).  tbl: powmod_ws_limbs(ebits, W) limbs.
template <class A>
PYI_HD void powmod_one(const A& ar, u64* out, const u64* base, const u64* e, int E, u64* tbl) {
  const int W = ar.W;
  const int ebits = exp_bit_length(e, E);
  if (ebits == 0) return ar.from_mont(out, ar.one());
  const int w = sliding_window(ebits);
  u64* g2 = tbl + (long)(1 << (w - 1)) * W;
  ar.to_mont(tbl, base);
  ar.sqr(g2, tbl);
  for (int k = 1; k < (1 << (w - 1)); ++k) ar.mul(tbl + (long)k * W, tbl + (long)(k - 1) * W, g2);
  u64 acc[A::kCap];
  bool started = false;
  for (int i = ebits - 1; i >= 0;) {
    if (!exp_bit(e, i)) {
      ar.sqr(acc, acc);  // started: the top bit is 1
      --i;
      continue;
    }
    int j = i - w + 1 > 0 ? i - w + 1 : 0;
    while (!exp_bit(e, j)) ++j;
    unsigned v = 0;
    for (int b = i; b >= j; --b) v = (v << 1) | exp_bit(e, b);
    const u64* entry = tbl + (long)(v >> 1) * W;
    if (started) {
      for (int b = i; b >= j; --b) ar.sqr(acc, acc);
      ar.mul(acc, acc, entry);
    } else {
      copy(acc, entry, W);
      started = true;
    }
    i = j - 1;
  }
  ar.from_mont(out, acc);
}

// Secret exponent: fixed 5-bit windows over all ebits bits, every table entry read and
// masked in for every window, a multiplication every window.  tbl: powmod_ct_ws_limbs(W).
template <class A>
PYI_HD void powmod_one_ct(const A& ar, u64* out, const u64* base, const u64* e, int E, int ebits,
                          u64* tbl) {
  const int W = ar.W;
  constexpr int w = kCtWindow, nt = 1 << w;
  copy(tbl, ar.one(), W);
  ar.to_mont(tbl + W, base);
  for (int k = 2; k < nt; ++k) ar.mul(tbl + (long)k * W, tbl + (long)(k - 1) * W, tbl + W);
  u64 acc[A::kCap], sel[A::kCap];
  copy(acc, ar.one(), W);
  for (int i = (ebits + w - 1) / w - 1; i >= 0; --i) {
    for (int s = 0; s < w; ++s) ar.sqr(acc, acc);
    const unsigned d = exp_window(e, E, i * w, w);
    zero(sel, W);
    for (int k = 0; k < nt; ++k) {
      const u64 m = mask_if((u64)((unsigned)k == d));
      const u64* t = tbl + (long)k * W;
      for (int j = 0; j < W; ++j) sel[j] |= t[j] & m;
    }
    ar.mul(acc, acc, sel);
  }
  ar.from_mont(out, acc);
}

// row[d] = g^d for d in [0, nd), g already in the arithmetic's Montgomery form
template <class A>
PYI_HD void powers_row(const A& ar, u64* row, const u64* g, int nd) {
  const int W = ar.W;
  copy(row, ar.one(), W);
  if (nd > 1) copy(row + W, g, W);
  for (int d = 2; d < nd; ++d) ar.mul(row + (long)d * W, row + (long)(d - 1) * W, g);
}

// Row i of a fixed-base table on its own (GPU: one thread per row): g_i = base^(2^(w i))
// by w i squarings of the Montgomery form of base (normal residue), then its powers.
template <class A>
PYI_HD void fixed_base_row_at(const A& ar, u64* row, const u64* base, int i, int w) {
  u64 g[A::kCap];
  ar.to_mont(g, base);
  for (long s = 0; s < (long)w * i; ++s) ar.sqr(g, g);
  powers_row(ar, row, g, 1 << w);
}

// base^e from a fixed-base table ([nwin][2^w][W]: g^(d 2^(w i))): one product per non-zero
// window, no squaring
template <class A>
PYI_HD void fixed_base_one(const A& ar, u64* out, const u64* entries, int nwin, int w, const u64* e,
                           int E) {
  const int W = ar.W, nd = 1 << w;
  u64 acc[A::kCap];
  copy(acc, ar.one(), W);
  for (int i = 0; i < nwin; ++i) {
    const unsigned d = exp_window(e, E, i * w, w);
    if (d) ar.mul(acc, acc, entries + ((long)i * nd + d) * W);
  }
  ar.from_mont(out, acc);
}

// Multi-exponentiation window: table cost K 2^w against uses * ceil(ebits / w) products
PYI_HD int multiexp_window(int ebits, long K, long uses) {
  int best = 1;
  double best_cost = 1e300;
  for (int w = 1; w <= 8; ++w) {
    const double cost = (double)K * (1 << w) + (double)uses * ((ebits + w - 1) / w);
    if (cost < best_cost) best_cost = cost, best = w;
  }
  return best;
}

// prod_t table[sign(e_t)][idx_t]^|e_t| (Straus: the squarings shared by the T terms);
// tables: [2][K][2^w][W] (the second half only when negative exponents occur)
template <class A>
PYI_HD void multiexp_one(const A& ar, u64* out, const u64* tables, long K, int w, int nwin,
                         const i64* idx, const i64* exps, long T) {
  const int W = ar.W, nd = 1 << w;
  u64 acc[A::kCap];
  copy(acc, ar.one(), W);
  bool is_one = true;
  for (int i = nwin - 1; i >= 0; --i) {
    if (!is_one)
      for (int sq = 0; sq < w; ++sq) ar.sqr(acc, acc);
    for (long t = 0; t < T; ++t) {
      const i64 e = exps[t];
      const u64 a = e < 0 ? (u64)0 - (u64)e : (u64)e;
      const unsigned d = (unsigned)((a >> (i * w)) & (u64)(nd - 1));
      if (!d) continue;
      ar.mul(acc, acc, tables + (((long)(e < 0) * K + idx[t]) * nd + d) * W);
      is_one = false;
    }
  }
  ar.from_mont(out, acc);
}

}  // namespace lane
}  // namespace pyimgenc
