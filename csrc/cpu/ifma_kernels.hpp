// AVX-512 IFMA 8-lane kernels (internal header of ifma_cpu.cpp): radix 2^52,
// lane-interleaved digits, almost-Montgomery multiplication and squaring,
// vectorised radix conversion.  Every function carries IFMA_TARGET.
#pragma once
#include <immintrin.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "modexp_cpu.hpp"

#define IFMA_TARGET __attribute__((target("avx512f,avx512ifma,avx512vl,avx512bw,avx512dq")))

namespace pyimgenc {
namespace {

constexpr int kMaxD = (kMaxModulusBits + 2 + 51) / 52;
using V = __m512i;

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
template <class T>
std::unique_ptr<T[], AlignedFree> valloc(size_t n) {
  size_t bytes = ((n * sizeof(T) + 63) / 64) * 64;
  return std::unique_ptr<T[], AlignedFree>(static_cast<T*>(std::aligned_alloc(64, bytes ? bytes : 64)));
}

// Broadcast constants of one modulus for the 8-lane kernels.
struct Ctx8 {
  int D;
  std::unique_ptr<V[], AlignedFree> N, R2, one;
  V k0;
  IFMA_TARGET explicit Ctx8(const ModCtx& c) : D(c.D) {
    N = valloc<V>(D);
    R2 = valloc<V>(D);
    one = valloc<V>(D);
    for (int j = 0; j < D; ++j) {
      N[j] = _mm512_set1_epi64((long long)c.N52[j]);
      R2[j] = _mm512_set1_epi64((long long)c.R2_52[j]);
      one[j] = _mm512_set1_epi64((long long)c.one52[j]);
    }
    k0 = _mm512_set1_epi64((long long)c.k0_52);
  }
};

// r = a b 2^(-52 D) mod N, almost reduced (< 2N), digits normalised. r may alias a, b.
// Operand scanning over b, two digits of b (and two Montgomery rounds) per pass so
// that each accumulator load/store carries eight multiply-adds.
template <int DT>
IFMA_TARGET inline void amm8_t(const Ctx8& c, V* r, const V* a, const V* b) {
  const int D = DT ? DT : c.D;
  const V* N = c.N.get();
  alignas(64) V acc[(DT ? DT : kMaxD) + 1];
  const V zero = _mm512_setzero_si512();
  for (int j = 0; j <= D; ++j) acc[j] = zero;
  int i = 0;
  for (; i + 1 < D; i += 2) {
    const V b0 = b[i], b1 = b[i + 1];
    V t0 = _mm512_madd52lo_epu64(acc[0], a[0], b0);
    const V m0 = _mm512_madd52lo_epu64(zero, t0, c.k0);
    t0 = _mm512_madd52lo_epu64(t0, N[0], m0);
    V t1 = _mm512_add_epi64(acc[1], _mm512_srli_epi64(t0, 52));
    t1 = _mm512_madd52lo_epu64(t1, a[1], b0);
    t1 = _mm512_madd52hi_epu64(t1, a[0], b0);
    t1 = _mm512_madd52lo_epu64(t1, N[1], m0);
    t1 = _mm512_madd52hi_epu64(t1, N[0], m0);
    t1 = _mm512_madd52lo_epu64(t1, a[0], b1);
    const V m1 = _mm512_madd52lo_epu64(zero, t1, c.k0);
    t1 = _mm512_madd52lo_epu64(t1, N[0], m1);
    const V c1 = _mm512_srli_epi64(t1, 52);
    for (int P = 2; P < D; ++P) {
      V x = _mm512_madd52lo_epu64(acc[P], a[P], b0);
      V y = _mm512_madd52lo_epu64(zero, N[P], m0);
      V z = _mm512_madd52lo_epu64(zero, a[P - 1], b1);
      V u = _mm512_madd52lo_epu64(zero, N[P - 1], m1);
      x = _mm512_madd52hi_epu64(x, a[P - 1], b0);
      y = _mm512_madd52hi_epu64(y, N[P - 1], m0);
      z = _mm512_madd52hi_epu64(z, a[P - 2], b1);
      u = _mm512_madd52hi_epu64(u, N[P - 2], m1);
      acc[P - 2] = _mm512_add_epi64(_mm512_add_epi64(x, y), _mm512_add_epi64(z, u));
    }
    {
      V x = _mm512_madd52hi_epu64(zero, a[D - 1], b0);
      x = _mm512_madd52hi_epu64(x, N[D - 1], m0);
      x = _mm512_madd52lo_epu64(x, a[D - 1], b1);
      x = _mm512_madd52lo_epu64(x, N[D - 1], m1);
      if (D >= 2) {
        x = _mm512_madd52hi_epu64(x, a[D - 2], b1);
        x = _mm512_madd52hi_epu64(x, N[D - 2], m1);
      }
      acc[D - 2] = x;
      V y = _mm512_madd52hi_epu64(zero, a[D - 1], b1);
      acc[D - 1] = _mm512_madd52hi_epu64(y, N[D - 1], m1);
    }
    acc[0] = _mm512_add_epi64(acc[0], c1);
  }
  if (i < D) {  // odd D: a last single pass
    const V bi = b[i];
    V t0 = _mm512_madd52lo_epu64(acc[0], a[0], bi);
    const V m = _mm512_madd52lo_epu64(zero, t0, c.k0);
    t0 = _mm512_madd52lo_epu64(t0, N[0], m);
    const V carry = _mm512_srli_epi64(t0, 52);
    for (int j = 1; j < D; ++j) {
      V x = _mm512_madd52lo_epu64(acc[j], a[j], bi);
      V y = _mm512_madd52hi_epu64(zero, a[j - 1], bi);
      x = _mm512_madd52lo_epu64(x, N[j], m);
      y = _mm512_madd52hi_epu64(y, N[j - 1], m);
      acc[j - 1] = _mm512_add_epi64(x, y);
    }
    V top = _mm512_madd52hi_epu64(zero, a[D - 1], bi);
    acc[D - 1] = _mm512_madd52hi_epu64(top, N[D - 1], m);
    acc[0] = _mm512_add_epi64(acc[0], carry);
  }
  const V mask = _mm512_set1_epi64((1LL << 52) - 1);
  V cy = zero;
  for (int j = 0; j < D; ++j) {
    V x = _mm512_add_epi64(acc[j], cy);
    r[j] = _mm512_and_si512(x, mask);
    cy = _mm512_srli_epi64(x, 52);
  }
}

// r = a^2 2^(-52 D) mod N (< 2N): schoolbook square (off-diagonal products once,
// doubled) into 2D digits, then a Montgomery reduction fused two rounds at a time.
// T[0 .. 2D+1] = a^2 as unnormalised column sums (each < 2^63 for D <= kMaxD):
// off-diagonal products once (two rows per pass), doubled, plus the diagonal.
template <int DT>
IFMA_TARGET inline void sqr_product8(V* T, const V* a, int Dr) {
  const int D = DT ? DT : Dr;
  const V zero = _mm512_setzero_si512();
  for (int k = 0; k < 2 * D + 2; ++k) T[k] = zero;
  // off-diagonal: row i contributes lo(a_i a_j) to T[i+j], hi to T[i+j+1], j > i
  // rows i and i+1 together: four products per load/store of T
  int i0 = 0;
  for (; i0 + 1 < D; i0 += 2) {
    const V ai = a[i0], bi = a[i0 + 1];
    // row i0 alone at k = 2 i0 + 1 and 2 i0 + 2 (row i0+1 starts at k = 2 i0 + 3)
    T[2 * i0 + 1] = _mm512_madd52lo_epu64(T[2 * i0 + 1], ai, bi);
    if (i0 + 2 < D) {
      V x = _mm512_madd52lo_epu64(T[2 * i0 + 2], ai, a[i0 + 2]);
      T[2 * i0 + 2] = _mm512_madd52hi_epu64(x, ai, bi);
    } else {
      T[2 * i0 + 2] = _mm512_madd52hi_epu64(T[2 * i0 + 2], ai, bi);
    }
    // k = i0 + j for j = i0+4 .. D-1: lo(ai a_j) + hi(ai a_{j-1}) + lo(bi a_{j-1}) + hi(bi a_{j-2})
    if (i0 + 3 < D) {  // k = 2 i0 + 3: row i0+1 has no hi term yet
      V x = _mm512_madd52lo_epu64(T[2 * i0 + 3], ai, a[i0 + 3]);
      x = _mm512_madd52hi_epu64(x, ai, a[i0 + 2]);
      T[2 * i0 + 3] = _mm512_madd52lo_epu64(x, bi, a[i0 + 2]);
    }
    for (int j = i0 + 4; j < D; ++j) {
      V x = _mm512_madd52lo_epu64(T[i0 + j], ai, a[j]);
      V y = _mm512_madd52lo_epu64(_mm512_setzero_si512(), bi, a[j - 1]);
      x = _mm512_madd52hi_epu64(x, ai, a[j - 1]);
      y = _mm512_madd52hi_epu64(y, bi, a[j - 2]);
      T[i0 + j] = _mm512_add_epi64(x, y);
    }
    if (i0 + 2 < D) {
      // k = i0 + D: hi(ai a_{D-1}) + lo(bi a_{D-1}) + hi(bi a_{D-2}); k = i0 + D + 1: hi(bi a_{D-1})
      V x = _mm512_madd52hi_epu64(T[i0 + D], ai, a[D - 1]);
      x = _mm512_madd52lo_epu64(x, bi, a[D - 1]);
      if (i0 + 3 < D) x = _mm512_madd52hi_epu64(x, bi, a[D - 2]);
      T[i0 + D] = x;
      T[i0 + D + 1] = _mm512_madd52hi_epu64(T[i0 + D + 1], bi, a[D - 1]);
    }
  }
  (void)i0;  // an odd last row i = D-1 has no off-diagonal products
  for (int k = 0; k < 2 * D; ++k) T[k] = _mm512_slli_epi64(T[k], 1);
  for (int i = 0; i < D; ++i) {
    T[2 * i] = _mm512_madd52lo_epu64(T[2 * i], a[i], a[i]);
    T[2 * i + 1] = _mm512_madd52hi_epu64(T[2 * i + 1], a[i], a[i]);
  }
}

// r = T 2^(-52 D) mod N (< 2N when T < 4 N^2... see amm8), Montgomery reduction of
// the unnormalised column sums T[0 .. 2D+1] (modified), two rounds per pass.  If
// m_out, m_out[i] receives the i-th Montgomery digit, so that T + m N = r 2^(52 D).
template <int DT>
IFMA_TARGET inline void mont_reduce8(const Ctx8& c, V* r, V* T, V* m_out) {
  const int D = DT ? DT : c.D;
  const V* N = c.N.get();
  const V zero = _mm512_setzero_si512();
  // reduction: two rounds per pass
  int i = 0;
  for (; i + 1 < D; i += 2) {
    const V m0 = _mm512_madd52lo_epu64(zero, T[i], c.k0);
    V t0 = _mm512_madd52lo_epu64(T[i], N[0], m0);
    V t1 = _mm512_add_epi64(T[i + 1], _mm512_srli_epi64(t0, 52));
    t1 = _mm512_madd52lo_epu64(t1, N[1], m0);
    t1 = _mm512_madd52hi_epu64(t1, N[0], m0);
    const V m1 = _mm512_madd52lo_epu64(zero, t1, c.k0);
    if (m_out) m_out[i] = m0, m_out[i + 1] = m1;
    t1 = _mm512_madd52lo_epu64(t1, N[0], m1);
    T[i + 2] = _mm512_add_epi64(T[i + 2], _mm512_srli_epi64(t1, 52));
    // T[i+2+j'] for j' >= 0: lo(m0 N[j'+2]) + hi(m0 N[j'+1]) + lo(m1 N[j'+1]) + hi(m1 N[j'])
    for (int j = 2; j < D; ++j) {
      V x = _mm512_madd52lo_epu64(T[i + j], N[j], m0);
      V y = _mm512_madd52hi_epu64(zero, N[j - 1], m0);
      x = _mm512_madd52lo_epu64(x, N[j - 1], m1);
      y = _mm512_madd52hi_epu64(y, N[j - 2], m1);
      T[i + j] = _mm512_add_epi64(x, y);
    }
    V x = _mm512_madd52hi_epu64(T[i + D], N[D - 1], m0);
    x = _mm512_madd52lo_epu64(x, N[D - 1], m1);
    T[i + D] = _mm512_madd52hi_epu64(x, N[D - 2], m1);
    T[i + D + 1] = _mm512_madd52hi_epu64(T[i + D + 1], N[D - 1], m1);
  }
  if (i < D) {  // odd D: one last single round
    const V m0 = _mm512_madd52lo_epu64(zero, T[i], c.k0);
    if (m_out) m_out[i] = m0;
    V t0 = _mm512_madd52lo_epu64(T[i], N[0], m0);
    T[i + 1] = _mm512_add_epi64(T[i + 1], _mm512_srli_epi64(t0, 52));
    for (int j = 1; j < D; ++j) {
      V x = _mm512_madd52lo_epu64(T[i + j], N[j], m0);
      T[i + j] = _mm512_madd52hi_epu64(x, N[j - 1], m0);
    }
    T[i + D] = _mm512_madd52hi_epu64(T[i + D], N[D - 1], m0);
  }
  const V mask = _mm512_set1_epi64((1LL << 52) - 1);
  V cy = zero;
  for (int j = 0; j < D; ++j) {
    V x = _mm512_add_epi64(T[D + j], cy);
    r[j] = _mm512_and_si512(x, mask);
    cy = _mm512_srli_epi64(x, 52);
  }
}


template <int DT>
IFMA_TARGET inline void ams8_t(const Ctx8& c, V* r, const V* a) {
  const int D = DT ? DT : c.D;
  alignas(64) V T[2 * (DT ? DT : kMaxD) + 2];
  sqr_product8<DT>(T, a, D);
  mont_reduce8<DT>(c, r, T, nullptr);
}

IFMA_TARGET void ams8(const Ctx8& c, V* r, const V* a) {
  switch (c.D) {
    case 20: return ams8_t<20>(c, r, a);
    case 40: return ams8_t<40>(c, r, a);
    case 60: return ams8_t<60>(c, r, a);
    case 79: return ams8_t<79>(c, r, a);
    case 119: return ams8_t<119>(c, r, a);
    default: return ams8_t<0>(c, r, a);
  }
}

IFMA_TARGET void amm8(const Ctx8& c, V* r, const V* a, const V* b) {
  switch (c.D) {
    case 20: return amm8_t<20>(c, r, a, b);
    case 40: return amm8_t<40>(c, r, a, b);
    case 60: return amm8_t<60>(c, r, a, b);
    case 79: return amm8_t<79>(c, r, a, b);
    case 119: return amm8_t<119>(c, r, a, b);
    default: return amm8_t<0>(c, r, a, b);
  }
}

// lanes <- up to 8 numbers of L limbs (missing lanes get `fill`, in digits).
// Digit j of every lane is bits [52 j, 52 j + 52): two gathered limbs, one funnel shift.
IFMA_TARGET void load8(const ModCtx& c, V* dst, const u64* src, long stride, int nl,
                       const u64* fill_digits, int ndigits = 0) {
  const int L = c.L, D = ndigits ? ndigits : c.D;
  const V mask = _mm512_set1_epi64((1LL << 52) - 1);
  const V lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  const __mmask8 valid = (__mmask8)((1u << nl) - 1);
  const V base = _mm512_mullo_epi64(lane, _mm512_set1_epi64(stride));
  for (int j = 0; j < D; ++j) {
    const long bit = 52L * j;
    const int w = (int)(bit >> 6), sh = (int)(bit & 63);
    V lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
    if (w < L)
      lo = _mm512_mask_i64gather_epi64(lo, valid, _mm512_add_epi64(base, _mm512_set1_epi64(w)),
                                       (const long long*)src, 8);
    if (w + 1 < L && sh > 12)
      hi = _mm512_mask_i64gather_epi64(hi, valid, _mm512_add_epi64(base, _mm512_set1_epi64(w + 1)),
                                       (const long long*)src, 8);
    V v = _mm512_srl_epi64(lo, _mm_cvtsi32_si128(sh));
    if (sh > 12) v = _mm512_or_si512(v, _mm512_sll_epi64(hi, _mm_cvtsi32_si128(64 - sh)));
    v = _mm512_and_si512(v, mask);
    dst[j] = _mm512_mask_blend_epi64(
        valid, _mm512_set1_epi64(fill_digits ? (long long)fill_digits[j] : 0LL), v);
  }
}

// normalised lane digits (ndig of them, value < 2^(64 L)) -> L limbs per lane, scattered
IFMA_TARGET void store8_digits(const ModCtx& c, u64* dst, long stride, int nl, const V* r, int D) {
  const int L = c.L;
  // limb i takes bits [64 i, 64 i + 64), spanning up to 3 digits
  const V lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  const V base = _mm512_mullo_epi64(lane, _mm512_set1_epi64(stride));
  const __mmask8 valid = (__mmask8)((1u << nl) - 1);
  for (int i = 0; i < L; ++i) {
    const long bit = 64L * i;
    const int j = (int)(bit / 52), sh = (int)(bit % 52);
    V v = _mm512_srl_epi64(r[j], _mm_cvtsi32_si128(sh));
    if (j + 1 < D) v = _mm512_or_si512(v, _mm512_sll_epi64(r[j + 1], _mm_cvtsi32_si128(52 - sh)));
    if (j + 2 < D && 104 - sh < 64)
      v = _mm512_or_si512(v, _mm512_sll_epi64(r[j + 2], _mm_cvtsi32_si128(104 - sh)));
    _mm512_mask_i64scatter_epi64((long long*)dst, valid, _mm512_add_epi64(base, _mm512_set1_epi64(i)), v, 8);
  }
}

// lanes (< 2N; in Montgomery form unless `normal`) -> normal form, fully reduced, L limbs each
IFMA_TARGET void store8_from_mont(const ModCtx& c, const Ctx8& c8, u64* dst, long stride, int nl,
                                  const V* x, bool normal = false) {
  const int D = c.D, L = c.L;
  alignas(64) V r[kMaxD];
  if (normal) {
    std::memcpy(r, x, sizeof(V) * D);
  } else {
    alignas(64) V one[kMaxD];
    for (int j = 0; j < D; ++j) one[j] = _mm512_setzero_si512();
    one[0] = _mm512_set1_epi64(1);
    amm8(c8, r, x, one);  // <= N
  }
  // r < 2N: t = r - N digit by digit (signed borrow), keep t in lanes without final borrow
  const V mask = _mm512_set1_epi64((1LL << 52) - 1);
  alignas(64) V t[kMaxD];
  V borrow = _mm512_setzero_si512();
  for (int j = 0; j < D; ++j) {
    V d = _mm512_sub_epi64(_mm512_sub_epi64(r[j], c8.N[j]), borrow);
    borrow = _mm512_srli_epi64(d, 63);
    t[j] = _mm512_and_si512(d, mask);
  }
  const __mmask8 ge = _mm512_cmpeq_epi64_mask(borrow, _mm512_setzero_si512());
  for (int j = 0; j < D; ++j) r[j] = _mm512_mask_blend_epi64(ge, r[j], t[j]);
  store8_digits(c, dst, stride, nl, r, D);
}

// Gather per-lane entries: lane l takes the D digits at tbl + off[l] (digit-contiguous entries).
IFMA_TARGET inline void gather8(V* dst, const u64* tbl, const long long* off, int D) {
  V idx = _mm512_loadu_si512((const void*)off);
  const V one = _mm512_set1_epi64(1);
  for (int j = 0; j < D; ++j) {
    dst[j] = _mm512_i64gather_epi64(idx, (const long long*)tbl, 8);
    idx = _mm512_add_epi64(idx, one);
  }
}

}  // namespace
}  // namespace pyimgenc
