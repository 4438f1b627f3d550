// Radix-n arithmetic modulo N = n^2 on 8 IFMA lanes (internal header of ifma_cpu.cpp).
//
// x in [0, n^2) is held as a pair X = A + B n of k-digit numbers (radix 2^52), in
// the Montgomery domain X = x R mod n^2 with R = 2^(52 k).  Because n^2 = 0 here,
// a squaring is one k-digit square A^2, reduced modulo n by Montgomery keeping
// its digits m (A^2 + m n = t R), and one k-digit product 2AB reduced together
// with nR - m:   X^2 R^-1 = t + n REDC(2AB + nR - m)   (mod n^2);  products
// likewise.  That is ~7 k^2 multiply-adds per squaring against ~12 k^2 for
// Montgomery modulo n^2 with 2k digits, all on the fused Montgomery loop.
// A < 2n and B < 3n stay lazily reduced (needs R >= 16 n, i.e. 52 k - bits(n) >= 4);
// canonical only on store.  Loading splits x = a + q n with a Barrett step (HAC
// 14.42, b = 2^52, quotient product truncated below column k, so r < 4n).
#pragma once
#include "ifma_kernels.hpp"

namespace pyimgenc {
namespace {

constexpr int kMaxK = kMaxD / 2 + 2;
#define PYIMGENC_AI __attribute__((always_inline)) inline

struct Radix8 {
  int k;
  std::unique_ptr<V[], AlignedFree> n, mu, n1, n2, n3;  // n: k digits; others k+1
  std::unique_ptr<V[], AlignedFree> nm1;                // n - 1, k digits (n is odd)
  std::unique_ptr<V[], AlignedFree> one, r2, unit;      // pairs: R mod N, R^2 mod N, (1, 0)
  Ctx8 c8n;                                             // Montgomery modulo n itself
  IFMA_TARGET explicit Radix8(const ModCtx& c) : k(c.rk), c8n(*c.root_ctx) {
    n = valloc<V>(k + 1);
    mu = valloc<V>(k + 1);
    n1 = valloc<V>(k + 1);
    n2 = valloc<V>(k + 1);
    n3 = valloc<V>(k + 1);
    nm1 = valloc<V>(k);
    one = valloc<V>(2 * k);
    r2 = valloc<V>(2 * k);
    unit = valloc<V>(2 * k);
    const u64 mask = (1ULL << 52) - 1;
    u64 c2 = 0, c3 = 0;
    for (int j = 0; j <= k; ++j) {
      const u64 d = j < k ? c.root52[j] : 0;
      n[j] = _mm512_set1_epi64((long long)d);
      mu[j] = _mm512_set1_epi64((long long)c.mu52[j]);
      n1[j] = n[j];
      u64 t2 = 2 * d + c2, t3 = 3 * d + c3;
      n2[j] = _mm512_set1_epi64((long long)(t2 & mask));
      n3[j] = _mm512_set1_epi64((long long)(t3 & mask));
      c2 = t2 >> 52;
      c3 = t3 >> 52;
      if (j < k) nm1[j] = _mm512_set1_epi64((long long)(j == 0 ? d - 1 : d));
    }
    for (int j = 0; j < 2 * k; ++j) {
      one[j] = _mm512_set1_epi64((long long)c.one_pair52[j]);
      r2[j] = _mm512_set1_epi64((long long)c.r2_pair52[j]);
      unit[j] = _mm512_set1_epi64(j == 0 ? 1LL : 0LL);
    }
  }
};

IFMA_TARGET __attribute__((always_inline)) inline void normalize8(V* T, int len) {
  const V mask = _mm512_set1_epi64((1LL << 52) - 1);
  V cy = _mm512_setzero_si512();
  for (int j = 0; j < len; ++j) {
    V x = _mm512_add_epi64(T[j], cy);
    T[j] = _mm512_and_si512(x, mask);
    cy = _mm512_srli_epi64(x, 52);
  }
}

// T[c] += column c of x y (nx, ny digits), for columns c in [cmin, cmax] only;
// unnormalised.  Four rows of x per pass, so each load/store of T carries eight
// multiply-adds over four independent accumulators; y is zero-padded by four
// digits on each side (and missing rows are zero) so every column takes the same
// branch-free path.
IFMA_TARGET __attribute__((always_inline)) inline void prod8(V* T, const V* x, int nx, const V* y, int ny, int cmin, int cmax) {
  const V zero = _mm512_setzero_si512();
  alignas(64) V yp[kMaxK + 16];
  for (int j = 0; j < 4; ++j) yp[j] = yp[ny + 4 + j] = zero;
  std::memcpy(yp + 4, y, sizeof(V) * ny);
  const V* Y = yp + 4;
  for (int i = 0; i < nx; i += 4) {
    const V x0 = x[i];
    const V x1 = i + 1 < nx ? x[i + 1] : zero;
    const V x2 = i + 2 < nx ? x[i + 2] : zero;
    const V x3 = i + 3 < nx ? x[i + 3] : zero;
    const int p0 = std::max(0, cmin - i), p1 = std::min(ny + 3, cmax - i);
    for (int P = p0; P <= p1; ++P) {
      V s0 = _mm512_madd52lo_epu64(T[i + P], x0, Y[P]);
      V s1 = _mm512_madd52lo_epu64(zero, x1, Y[P - 1]);
      V s2 = _mm512_madd52lo_epu64(zero, x2, Y[P - 2]);
      V s3 = _mm512_madd52lo_epu64(zero, x3, Y[P - 3]);
      s0 = _mm512_madd52hi_epu64(s0, x0, Y[P - 1]);
      s1 = _mm512_madd52hi_epu64(s1, x1, Y[P - 2]);
      s2 = _mm512_madd52hi_epu64(s2, x2, Y[P - 3]);
      s3 = _mm512_madd52hi_epu64(s3, x3, Y[P - 4]);
      T[i + P] = _mm512_add_epi64(_mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3));
    }
  }
}

// Barrett step on T (2k normalised digits, T < 2^(104 k)): q = q-hat (k+1 digits,
// normalised) and r = T - q n (k+1 digits, normalised) with 0 <= r < 4n, so that
// T = r + q n exactly.  q-hat is at most 3 below floor(T / n); nothing downstream
// needs the exact quotient, only the identity, so no correction step is taken.
template <int KT>
IFMA_TARGET inline void barrett8(const Radix8& R, const V* T, V* r, V* q) {
  const int k = KT ? KT : R.k;
  const V zero = _mm512_setzero_si512();
  const V mask = _mm512_set1_epi64((1LL << 52) - 1);
  const V* q1 = T + (k - 1);  // floor(T / b^(k-1)), k+1 digits
  alignas(64) V P[2 * kMaxK + 8];
  for (int j = k - 1; j <= 2 * k + 3; ++j) P[j] = zero;
  // columns >= k of q1 * mu: the dropped ones sum to < 2 (k+1) b^k, so q-hat
  // loses at most 1.  Row q1_0 only reaches column k through hi(q1_0 mu_{k-1})
  // and lo/hi(q1_0 mu_k): done apart so the block rows stay a multiple of four.
  prod8(P + 1, q1 + 1, k, R.mu.get(), k + 1, k - 1, 2 * k + 1);
  P[k] = _mm512_madd52hi_epu64(P[k], q1[0], R.mu[k - 1]);
  P[k] = _mm512_madd52lo_epu64(P[k], q1[0], R.mu[k]);
  P[k + 1] = _mm512_madd52hi_epu64(P[k + 1], q1[0], R.mu[k]);
  normalize8(P + k, k + 3);
  const V* qh = P + (k + 1);  // k+1 digits
  // low k+1 digits of qh * n
  alignas(64) V Lc[kMaxK + 2];
  for (int j = 0; j <= k; ++j) Lc[j] = zero;
  prod8(Lc, qh, k + 1, R.n.get(), k, 0, k);
  // r = (T - qh n) mod b^(k+1), exact since 0 <= T - qh n < 4n < b^(k+1)
  V cy = zero;
  for (int j = 0; j <= k; ++j) {
    V x = _mm512_add_epi64(_mm512_sub_epi64(T[j], Lc[j]), cy);
    r[j] = _mm512_and_si512(x, mask);
    cy = _mm512_srai_epi64(x, 52);
  }
  if (q) std::memcpy(q, qh, sizeof(V) * (k + 1));
}

// x (k+1 digits, x < 4n) -> x mod n (k digits); if cnt, cnt = floor(x / n)
template <int KT>
IFMA_TARGET inline void canon8(const Radix8& R, V* out, const V* x, V* cnt = nullptr) {
  const int k = KT ? KT : R.k;
  const V zero = _mm512_setzero_si512();
  const V mask = _mm512_set1_epi64((1LL << 52) - 1);
  alignas(64) V t1[kMaxK + 2], t2[kMaxK + 2], t3[kMaxK + 2];
  V b1 = zero, b2 = zero, b3 = zero;
  for (int j = 0; j <= k; ++j) {
    V d1 = _mm512_sub_epi64(_mm512_sub_epi64(x[j], R.n1[j]), b1);
    V d2 = _mm512_sub_epi64(_mm512_sub_epi64(x[j], R.n2[j]), b2);
    V d3 = _mm512_sub_epi64(_mm512_sub_epi64(x[j], R.n3[j]), b3);
    b1 = _mm512_srli_epi64(d1, 63);
    b2 = _mm512_srli_epi64(d2, 63);
    b3 = _mm512_srli_epi64(d3, 63);
    t1[j] = _mm512_and_si512(d1, mask);
    t2[j] = _mm512_and_si512(d2, mask);
    t3[j] = _mm512_and_si512(d3, mask);
  }
  const __mmask8 m1 = _mm512_cmpeq_epi64_mask(b1, zero);
  const __mmask8 m2 = _mm512_cmpeq_epi64_mask(b2, zero);
  const __mmask8 m3 = _mm512_cmpeq_epi64_mask(b3, zero);
  for (int j = 0; j < k; ++j) {
    V y = _mm512_mask_blend_epi64(m1, x[j], t1[j]);
    y = _mm512_mask_blend_epi64(m2, y, t2[j]);
    out[j] = _mm512_mask_blend_epi64(m3, y, t3[j]);
  }
  if (cnt) {
    const V one = _mm512_set1_epi64(1);
    V c = _mm512_maskz_mov_epi64(m1, one);
    c = _mm512_mask_add_epi64(c, m2, c, one);
    *cnt = _mm512_mask_add_epi64(c, m3, c, one);
  }
}

// State: X = A + B n, 2k digits [A | B], in the Montgomery domain X = x R mod n^2
// (R = 2^(52 k)), with A < 2n and B < 3n (lazily reduced; canonical only on store).
// With A^2 + m n = t R (one Montgomery reduction modulo n, keeping its digits m):
//   X^2 R^-1 = t + n (2AB - m) R^-1 = t + n REDC(2AB + nR - m)        (mod n^2)
// and likewise X Y R^-1 = t + n REDC(AD + BC + nR - m) with AC + m n = t R.  Both
// REDCs run the fused two-round Montgomery loop of ams8; needs 2^(52 k) >= 16 n.

// T[i] += digits of n R - m = (R - m) + (n - 1) R: (b - 1 - m_i), +1, then n - 1 above
template <int KT>
IFMA_TARGET PYIMGENC_AI void add_nR_minus_m(const Radix8& R, V* T, const V* m) {
  const int k = KT ? KT : R.k;
  const V mask = _mm512_set1_epi64((1LL << 52) - 1);
  for (int i = 0; i < k; ++i) T[i] = _mm512_add_epi64(T[i], _mm512_sub_epi64(mask, m[i]));
  T[0] = _mm512_add_epi64(T[0], _mm512_set1_epi64(1));
  for (int j = 0; j < k; ++j) T[k + j] = _mm512_add_epi64(T[k + j], R.nm1[j]);
}

// X^2 R^-1 for a Montgomery pair; out may alias x.
template <int KT>
IFMA_TARGET inline void rsqr8(const Radix8& R, V* out, const V* x) {
  const int k = KT ? KT : R.k;
  const V* A = x;
  const V* B = x + k;
  alignas(64) V T[2 * (KT ? KT : kMaxK) + 8], t[(KT ? KT : kMaxK) + 2], m[(KT ? KT : kMaxK) + 2];
  alignas(64) V A2[(KT ? KT : kMaxK) + 2], Bp[(KT ? KT : kMaxK) + 2];
  sqr_product8<KT>(T, A, k);
  mont_reduce8<KT>(R.c8n, t, T, m);  // A^2 + m n = t R, t < 2n
  const V mask = _mm512_set1_epi64((1LL << 52) - 1);
  V cy = _mm512_setzero_si512();
  for (int j = 0; j < k; ++j) {  // 2A < 4n < b^k
    V v = _mm512_add_epi64(_mm512_slli_epi64(A[j], 1), cy);
    A2[j] = _mm512_and_si512(v, mask);
    cy = _mm512_srli_epi64(v, 52);
  }
  for (int j = 0; j < 2 * k + 4; ++j) T[j] = _mm512_setzero_si512();
  prod8(T, A2, k, B, k, 0, 2 * k + 1);
  add_nR_minus_m<KT>(R, T, m);
  mont_reduce8<KT>(R.c8n, Bp, T, nullptr);  // (2AB + nR - m + m' n) / R < 3n
  std::memcpy(out, t, sizeof(V) * k);
  std::memcpy(out + k, Bp, sizeof(V) * k);
}

// X Y R^-1 for Montgomery pairs; out may alias x or y.
template <int KT>
IFMA_TARGET inline void rmul8(const Radix8& R, V* out, const V* x, const V* y) {
  const int k = KT ? KT : R.k;
  alignas(64) V T[2 * (KT ? KT : kMaxK) + 8], t[(KT ? KT : kMaxK) + 2], m[(KT ? KT : kMaxK) + 2];
  alignas(64) V Bp[(KT ? KT : kMaxK) + 2];
  for (int j = 0; j < 2 * k + 4; ++j) T[j] = _mm512_setzero_si512();
  prod8(T, x, k, y, k, 0, 2 * k + 1);
  mont_reduce8<KT>(R.c8n, t, T, m);  // AC + m n = t R
  for (int j = 0; j < 2 * k + 4; ++j) T[j] = _mm512_setzero_si512();
  prod8(T, x, k, y + k, k, 0, 2 * k + 1);
  prod8(T, x + k, k, y, k, 0, 2 * k + 1);
  add_nR_minus_m<KT>(R, T, m);
  mont_reduce8<KT>(R.c8n, Bp, T, nullptr);
  std::memcpy(out, t, sizeof(V) * k);
  std::memcpy(out + k, Bp, sizeof(V) * k);
}

// limbs of x < n^2 -> Montgomery pair of x: split x = a + q n (Barrett), make
// a < n (carry into q), then multiply by the pair of R^2 mod n^2.
template <int KT>
IFMA_TARGET inline void rload8(const ModCtx& c, const Radix8& R, V* out, const u64* src, long stride,
                               int nl) {
  const int k = KT ? KT : R.k;
  alignas(64) V T[2 * (KT ? KT : kMaxK) + 8], r[(KT ? KT : kMaxK) + 2], q[(KT ? KT : kMaxK) + 2];
  alignas(64) V P[2 * (KT ? KT : kMaxK) + 2];
  load8(c, T, src, stride, nl, nullptr, 2 * k);
  barrett8<KT>(R, T, r, q);  // x = r + q n, r < 4n, q < n
  V cnt;
  canon8<KT>(R, P, r, &cnt);
  q[0] = _mm512_add_epi64(q[0], cnt);
  normalize8(q, k + 1);  // q + cnt < n + 4 < 3n
  std::memcpy(P + k, q, sizeof(V) * k);
  rmul8<KT>(R, out, P, R.r2.get());
}

// Pair (A, B), both < 4n (k digits) -> limbs of A + B n mod n^2, fully reduced:
// A = A' + c n (c < 4) carries into B, both canonicalised by candidate subtraction.
template <int KT>
IFMA_TARGET inline void store_pair8(const ModCtx& c, const Radix8& R, u64* dst, long stride, int nl,
                                    const V* A, const V* B) {
  const int k = KT ? KT : R.k;
  alignas(64) V T[2 * (KT ? KT : kMaxK) + 8];
  alignas(64) V a[(KT ? KT : kMaxK) + 2], b[(KT ? KT : kMaxK) + 2], t[(KT ? KT : kMaxK) + 2];
  V cnt;
  std::memcpy(t, A, sizeof(V) * k);
  t[k] = _mm512_setzero_si512();
  canon8<KT>(R, a, t, &cnt);
  std::memcpy(t, B, sizeof(V) * k);
  canon8<KT>(R, b, t);
  std::memcpy(t, b, sizeof(V) * k);
  t[k] = _mm512_setzero_si512();
  t[0] = _mm512_add_epi64(t[0], cnt);
  normalize8(t, k + 1);  // < n + 4
  canon8<KT>(R, b, t);
  for (int j = 0; j < 2 * k + 4; ++j) T[j] = _mm512_setzero_si512();
  prod8(T, b, k, R.n.get(), k, 0, 2 * k + 1);
  for (int j = 0; j < k; ++j) T[j] = _mm512_add_epi64(T[j], a[j]);
  normalize8(T, 2 * k);
  store8_digits(c, dst, stride, nl, T, 2 * k);
}

// Montgomery pair -> limbs of x = X R^-1 mod n^2, fully reduced
template <int KT>
IFMA_TARGET inline void rstore8(const ModCtx& c, const Radix8& R, u64* dst, long stride, int nl,
                                const V* x) {
  const int k = KT ? KT : R.k;
  alignas(64) V Y[2 * (KT ? KT : kMaxK) + 2];
  rmul8<KT>(R, Y, x, R.unit.get());  // (t <= n, B' <= 2n)
  store_pair8<KT>(c, R, dst, stride, nl, Y, Y + k);
}

// One product a b mod n^2 of normal-form inputs, outside the Montgomery domain
// (entering and leaving it would cost two more products): split a = a0 + a1 n
// and b likewise (Barrett, a0 < 4n), then a b = a0 b0 + (a0 b1 + a1 b0) n with
// a0 b0 = u + q n (Barrett):  a b = u + (a0 b1 + a1 b0 + q mod' n) n.
template <int KT>
IFMA_TARGET inline void rmulmod_plain8(const ModCtx& c, const Radix8& R, u64* dst, const u64* a,
                                       const u64* b, long stride, int nl) {
  const int k = KT ? KT : R.k;
  alignas(64) V T[2 * (KT ? KT : kMaxK) + 8];
  alignas(64) V a0[(KT ? KT : kMaxK) + 2], a1[(KT ? KT : kMaxK) + 2];
  alignas(64) V b0[(KT ? KT : kMaxK) + 2], b1[(KT ? KT : kMaxK) + 2];
  alignas(64) V u[(KT ? KT : kMaxK) + 2], q[(KT ? KT : kMaxK) + 2], r2[(KT ? KT : kMaxK) + 2];
  load8(c, T, a, stride, nl, nullptr, 2 * k);
  barrett8<KT>(R, T, a0, a1);
  load8(c, T, b, stride, nl, nullptr, 2 * k);
  barrett8<KT>(R, T, b0, b1);
  for (int j = 0; j < 2 * k + 4; ++j) T[j] = _mm512_setzero_si512();
  prod8(T, a0, k, b0, k, 0, 2 * k + 1);  // < 16 n^2
  normalize8(T, 2 * k);
  barrett8<KT>(R, T, u, q);
  for (int j = 0; j < 2 * k + 4; ++j) T[j] = _mm512_setzero_si512();
  for (int j = 0; j <= k; ++j) T[j] = q[j];
  prod8(T, a0, k, b1, k, 0, 2 * k + 1);  // a1, b1 < n: total < 8 n^2 + 16 n
  prod8(T, a1, k, b0, k, 0, 2 * k + 1);
  normalize8(T, 2 * k);
  barrett8<KT>(R, T, r2, nullptr);
  store_pair8<KT>(c, R, dst, stride, nl, u, r2);
}

}  // namespace
}  // namespace pyimgenc
