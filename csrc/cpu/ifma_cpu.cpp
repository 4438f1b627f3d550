// AVX-512 IFMA multi-buffer path: 8 independent numbers per vector lane group,
// radix 2^52, almost-Montgomery multiplication (results < 2N, 4N < 2^(52 D)).
// Compiled per function with target attributes and chosen at run time; never
// executed on a CPU without IFMA.  Not constant time: table look-ups are indexed
// by exponent windows (fine for public exponents; documented for decryption).
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
template <int DT>
IFMA_TARGET inline void ams8_t(const Ctx8& c, V* r, const V* a) {
  const int D = DT ? DT : c.D;
  const V* N = c.N.get();
  alignas(64) V T[2 * (DT ? DT : kMaxD) + 2];
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
  // reduction: two rounds per pass
  int i = 0;
  for (; i + 1 < D; i += 2) {
    const V m0 = _mm512_madd52lo_epu64(zero, T[i], c.k0);
    V t0 = _mm512_madd52lo_epu64(T[i], N[0], m0);
    V t1 = _mm512_add_epi64(T[i + 1], _mm512_srli_epi64(t0, 52));
    t1 = _mm512_madd52lo_epu64(t1, N[1], m0);
    t1 = _mm512_madd52hi_epu64(t1, N[0], m0);
    const V m1 = _mm512_madd52lo_epu64(zero, t1, c.k0);
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
                       const u64* fill_digits) {
  const int L = c.L, D = c.D;
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
    dst[j] = _mm512_mask_blend_epi64(valid, _mm512_set1_epi64((long long)fill_digits[j]), v);
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
  // digits -> 64-bit limbs: limb i takes bits [64 i, 64 i + 64), spanning up to 3 digits
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

// Gather per-lane entries: lane l takes the D digits at tbl + off[l] (digit-contiguous entries).
IFMA_TARGET inline void gather8(V* dst, const u64* tbl, const long long* off, int D) {
  V idx = _mm512_loadu_si512((const void*)off);
  const V one = _mm512_set1_epi64(1);
  for (int j = 0; j < D; ++j) {
    dst[j] = _mm512_i64gather_epi64(idx, (const long long*)tbl, 8);
    idx = _mm512_add_epi64(idx, one);
  }
}

// 8-lane fixed-window exponentiation of x (Montgomery form) by per-lane exponents.
IFMA_TARGET void pow8(const ModCtx& c, const Ctx8& c8, V* acc, const V* xm, const u64* const* e,
                      int E, bool shared, int ebits, u64* tbl_scratch) {
  const int D = c.D;
  const int w = choose_window(ebits);
  const int nt = 1 << w;
  // lane-contiguous table for per-lane look-ups: tbl[(k*8 + l)*D + j]; for shared
  // exponents, an interleaved one tblv[k*D + j].
  V* tblv = reinterpret_cast<V*>(tbl_scratch);
  std::memcpy(tblv, c8.one.get(), sizeof(V) * D);
  std::memcpy(tblv + D, xm, sizeof(V) * D);
  for (int k = 2; k < nt; ++k) amm8(c8, tblv + (size_t)k * D, tblv + (size_t)(k - 1) * D, xm);
  u64* tbll = tbl_scratch + (size_t)nt * D * 8;
  if (!shared) {
    // transpose to digit-contiguous entries per (k, lane)
    for (int k = 0; k < nt; ++k) {
      alignas(64) u64 tmp[8];
      for (int j = 0; j < D; ++j) {
        _mm512_store_si512((V*)tmp, tblv[(size_t)k * D + j]);
        for (int l = 0; l < 8; ++l) tbll[((size_t)k * 8 + l) * D + j] = tmp[l];
      }
    }
  }
  const int nwin = (ebits + w - 1) / w;
  alignas(64) V sel[kMaxD];
  alignas(64) long long off[8];
  for (int i = nwin - 1; i >= 0; --i) {
    if (i != nwin - 1)
      for (int s = 0; s < w; ++s) ams8(c8, acc, acc);
    const V* m;
    if (shared) {
      m = tblv + (size_t)exp_window(e[0], E, i * w, w) * D;
    } else {
      for (int l = 0; l < 8; ++l)
        off[l] = (long long)(((size_t)exp_window(e[l], E, i * w, w) * 8 + l) * D);
      gather8(sel, tbll, off, D);
      m = sel;
    }
    if (i == nwin - 1)
      std::memcpy(acc, m, sizeof(V) * D);
    else
      amm8(c8, acc, acc, m);
  }
}

// 8-lane left-to-right sliding-window exponentiation by one exponent shared by
// all lanes (e.g. p-1 in CRT decryption): odd powers only, no gathers.
IFMA_TARGET void pow8_shared(const Ctx8& c8, V* acc, const V* xm, const u64* e, int E, int ebits,
                             V* tbl) {
  const int D = c8.D;
  const int w = std::min(choose_window(ebits), 7);
  const int nt = 1 << (w - 1);  // x^1, x^3, ..., x^(2^w - 1)
  alignas(64) V x2[kMaxD];
  std::memcpy(tbl, xm, sizeof(V) * D);
  if (nt > 1) ams8(c8, x2, xm);
  for (int k = 1; k < nt; ++k) amm8(c8, tbl + (size_t)k * D, tbl + (size_t)(k - 1) * D, x2);
  auto bit = [&](int b) { return (unsigned)((e[b / 64] >> (b % 64)) & 1); };
  bool started = false;
  int i = ebits - 1;
  while (i >= 0) {
    if (!bit(i)) {
      if (started) ams8(c8, acc, acc);
      --i;
      continue;
    }
    int j = std::max(i - w + 1, 0);
    while (!bit(j)) ++j;  // window [j, i] ends in a 1 bit
    unsigned val = 0;
    for (int b = i; b >= j; --b) val = (val << 1) | bit(b);
    const V* m = tbl + (size_t)(val >> 1) * D;
    if (!started) {
      std::memcpy(acc, m, sizeof(V) * D);
      started = true;
    } else {
      for (int b = i; b >= j; --b) ams8(c8, acc, acc);
      amm8(c8, acc, acc, m);
    }
    i = j - 1;
  }
}

}  // namespace

IFMA_TARGET void ifma_powmod(const ModCtx& c, u64* out, const u64* bases, long B, ExpView e,
                             int nthreads) {
  const Ctx8 c8(c);
  const int L = c.L, D = c.D;
  const long groups = (B + 7) / 8;
  const bool shared = e.stride == 0;
  int ebits = 0;
  for (long b = 0; b < (shared ? 1 : B); ++b)
    ebits = std::max(ebits, exp_bit_length(e.data + b * e.stride, e.E));
  const int w = choose_window(std::max(ebits, 1));
  const size_t scratch = (size_t)(1 << w) * D * 8 * 2;
  static const u64 zero_exp[kMaxLimbs] = {0};
#pragma omp parallel num_threads(nthreads)
  {
    auto tbl = valloc<u64>(scratch);
    alignas(64) V x[kMaxD], acc[kMaxD];
#pragma omp for schedule(dynamic, 1)
    for (long g = 0; g < groups; ++g) {
      const int nl = (int)std::min<long>(8, B - g * 8);
      const u64* eptr[8];
      for (int l = 0; l < 8; ++l)
        eptr[l] = l < nl ? e.data + (g * 8 + l) * e.stride : zero_exp;
      const int E = e.E;
      if (ebits == 0) {
        store8_from_mont(c, c8, out + g * 8 * L, L, nl, c8.one.get());
        continue;
      }
      load8(c, x, bases + g * 8 * L, L, nl, c.one52.data());
      amm8(c8, x, x, c8.R2.get());  // to Montgomery form
      if (shared)
        pow8_shared(c8, acc, x, eptr[0], E, ebits, reinterpret_cast<V*>(tbl.get()));
      else
        pow8(c, c8, acc, x, eptr, E, shared, ebits, tbl.get());
      store8_from_mont(c, c8, out + g * 8 * L, L, nl, acc);
    }
  }
}

IFMA_TARGET void ifma_mulmod(const ModCtx& c, u64* out, const u64* a, const u64* b, long B,
                             int nthreads) {
  const Ctx8 c8(c);
  const int L = c.L, D = c.D;
  const long groups = (B + 7) / 8;
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (long g = 0; g < groups; ++g) {
    const int nl = (int)std::min<long>(8, B - g * 8);
    alignas(64) V x[kMaxD], y[kMaxD];
    load8(c, x, a + g * 8 * L, L, nl, c.one52.data());
    load8(c, y, b + g * 8 * L, L, nl, c.one52.data());
    amm8(c8, x, x, y);           // a b R^-1
    amm8(c8, x, x, c8.R2.get()); // a b (< 2N)
    store8_from_mont(c, c8, out + g * 8 * L, L, nl, x, /*normal=*/true);
  }
  (void)D;
}

IFMA_TARGET void ifma_fixed_base_build(FixedBaseTable& t, const u64* base, int nthreads) {
  const ModCtx& c = *t.ctx;
  const Ctx8 c8(c);
  const int D = c.D, w = t.window, nd = 1 << w;
  t.entries.assign((size_t)t.nwin * nd * D, 0);
  // lane l of group g handles windows i = 8 g + l: first g_i = base^(2^(w i)) serially
  // (cheap: w squarings per window), then each lane fills its row.
  std::vector<u64> gi((size_t)t.nwin * D);
  {
    alignas(64) V x[kMaxD];
    load8(c, x, base, 0, 1, c.one52.data());
    amm8(c8, x, x, c8.R2.get());
    alignas(64) u64 lanes[8];
    for (int i = 0; i < t.nwin; ++i) {
      for (int j = 0; j < D; ++j) {
        _mm512_store_si512((V*)lanes, x[j]);
        gi[(size_t)i * D + j] = lanes[0];
      }
      for (int s = 0; s < w; ++s) amm8(c8, x, x, x);
    }
  }
  const int groups = (t.nwin + 7) / 8;
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
  for (int g = 0; g < groups; ++g) {
    alignas(64) V gv[kMaxD], acc[kMaxD];
    alignas(64) u64 lanes[8];
    for (int j = 0; j < D; ++j) {
      for (int l = 0; l < 8; ++l) {
        int i = std::min(g * 8 + l, t.nwin - 1);
        lanes[l] = gi[(size_t)i * D + j];
      }
      gv[j] = _mm512_load_si512((const V*)lanes);
    }
    std::memcpy(acc, c8.one.get(), sizeof(V) * D);
    for (int d = 0; d < nd; ++d) {
      if (d == 1) std::memcpy(acc, gv, sizeof(V) * D);
      else if (d > 1) amm8(c8, acc, acc, gv);
      for (int j = 0; j < D; ++j) {
        _mm512_store_si512((V*)lanes, acc[j]);
        for (int l = 0; l < 8 && g * 8 + l < t.nwin; ++l)
          t.entries[(((size_t)(g * 8 + l)) * nd + d) * D + j] = lanes[l];
      }
    }
  }
}

IFMA_TARGET void ifma_fixed_base_pow(const FixedBaseTable& t, u64* out, const u64* exps, long B,
                                     int E, int nthreads) {
  const ModCtx& c = *t.ctx;
  const Ctx8 c8(c);
  const int L = c.L, D = c.D, w = t.window, nd = 1 << w;
  const long groups = (B + 7) / 8;
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
  for (long g = 0; g < groups; ++g) {
    const int nl = (int)std::min<long>(8, B - g * 8);
    alignas(64) V acc[kMaxD], sel[kMaxD];
    alignas(64) long long off[8];
    for (int i = 0; i < t.nwin; ++i) {
      for (int l = 0; l < 8; ++l) {
        unsigned d = l < nl ? exp_window(exps + (g * 8 + l) * E, E, i * w, w) : 0;
        off[l] = (long long)(((size_t)i * nd + d) * D);
      }
      gather8(i == 0 ? acc : sel, t.entries.data(), off, D);
      if (i) amm8(c8, acc, acc, sel);
    }
    store8_from_mont(c, c8, out + g * 8 * L, L, nl, acc);
  }
}

IFMA_TARGET std::vector<u64> ifma_multiexp_tables(const ModCtx& c, const u64* bases,
                                                  const u64* inv_bases, long K, int w,
                                                  int nthreads) {
  const Ctx8 c8(c);
  const int D = c.D, nd = 1 << w;
  const int nsign = inv_bases ? 2 : 1;
  const long total = nsign * K;
  std::vector<u64> tables((size_t)total * nd * D);
  const long groups = (total + 7) / 8;
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
  for (long g = 0; g < groups; ++g) {
    const int nl = (int)std::min<long>(8, total - g * 8);
    alignas(64) V x[kMaxD], acc[kMaxD];
    alignas(64) u64 dig[8][kMaxD];
    for (int l = 0; l < 8; ++l) {
      long k = g * 8 + std::min(l, nl - 1);
      const u64* src = k < K ? bases + k * c.L : inv_bases + (k - K) * c.L;
      limbs_to_digits52(dig[l], D, src, c.L);
    }
    for (int j = 0; j < D; ++j)
      x[j] = _mm512_set_epi64((long long)dig[7][j], (long long)dig[6][j], (long long)dig[5][j],
                              (long long)dig[4][j], (long long)dig[3][j], (long long)dig[2][j],
                              (long long)dig[1][j], (long long)dig[0][j]);
    amm8(c8, x, x, c8.R2.get());
    alignas(64) u64 lanes[8];
    for (int d = 0; d < nd; ++d) {
      if (d == 0) std::memcpy(acc, c8.one.get(), sizeof(V) * D);
      else if (d == 1) std::memcpy(acc, x, sizeof(V) * D);
      else amm8(c8, acc, acc, x);
      for (int j = 0; j < D; ++j) {
        _mm512_store_si512((V*)lanes, acc[j]);
        for (int l = 0; l < nl; ++l) tables[(((size_t)(g * 8 + l)) * nd + d) * D + j] = lanes[l];
      }
    }
  }
  return tables;
}

IFMA_TARGET void ifma_multiexp(const ModCtx& c, u64* out, const std::vector<u64>& tables, int w,
                               int nwin, bool has_inv, long K, const int64_t* idx,
                               const int64_t* exps, long M, long T, int nthreads) {
  const Ctx8 c8(c);
  const int L = c.L, D = c.D, nd = 1 << w;
  const long groups = (M + 7) / 8;
  (void)has_inv;
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
  for (long g = 0; g < groups; ++g) {
    const int nl = (int)std::min<long>(8, M - g * 8);
    alignas(64) V acc[kMaxD], sel[kMaxD];
    alignas(64) long long off[8];
    std::memcpy(acc, c8.one.get(), sizeof(V) * D);
    bool is_one = true;
    for (int i = nwin - 1; i >= 0; --i) {
      if (!is_one)
        for (int s = 0; s < w; ++s) ams8(c8, acc, acc);
      for (long t = 0; t < T; ++t) {
        bool any = false;
        for (int l = 0; l < 8; ++l) {
          unsigned d = 0;
          long k = 0;
          if (l < nl) {
            int64_t e = exps[(g * 8 + l) * T + t];
            u64 a = (u64)(e < 0 ? -e : e);
            d = (unsigned)((a >> (i * w)) & (nd - 1));
            k = idx[(g * 8 + l) * T + t] + (e < 0 ? K : 0);
          }
          any |= d != 0;
          off[l] = (long long)(((size_t)k * nd + d) * D);
        }
        if (!any) continue;
        gather8(sel, tables.data(), off, D);
        amm8(c8, acc, acc, sel);
        is_one = false;
      }
    }
    store8_from_mont(c, c8, out + g * 8 * L, L, nl, acc);
  }
}

}  // namespace pyimgenc
