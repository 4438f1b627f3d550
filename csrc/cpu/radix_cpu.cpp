// Radix-n pairs modulo n^2 on the portable paths; see radix_cpu.hpp.
#include "radix_cpu.hpp"

#include <cstring>

namespace pyimgenc {
namespace {

inline u64 mask_if(u64 bit) { return (u64)0 - bit; }  // bit 0/1 -> all zeros / all ones

// x (2K limbs) += y, returns the carry out
u64 add_n(u64* x, const u64* y, int n) {
  u64 carry = 0;
  for (int j = 0; j < n; ++j) {
    const u128 s = (u128)x[j] + y[j] + carry;
    x[j] = (u64)s;
    carry = (u64)(s >> 64);
  }
  return carry;
}

// U (2K limbs) + uc R^2 - m + s R, a value in [-R, 2 n^2 + R), brought into [0, n R) by
// adding or subtracting n R once (2 n^2 + R - n R < n R as R > n + 1); in place.
void fold(u64* U, u64 uc, const u64* m, u64 s, const u64* n, int K) {
  u64 borrow = 0;
  for (int j = 0; j < 2 * K; ++j) {
    const u128 d = (u128)U[j] - (j < K ? m[j] : 0) - borrow;
    U[j] = (u64)d;
    borrow = (u64)(d >> 64) & 1;
  }
  u64 carry = s;
  for (int j = K; j < 2 * K; ++j) {
    const u128 t = (u128)U[j] + carry;
    U[j] = (u64)t;
    carry = (u64)(t >> 64);
  }
  const int64_t top = (int64_t)uc - (int64_t)borrow + (int64_t)carry;  // -1, 0 or 1
  u64* h = U + K;  // V = (top : h) R
  u64 d[kMaxLimbs], e[kMaxLimbs];
  borrow = 0;
  carry = 0;
  for (int j = 0; j < K; ++j) {
    const u128 x = (u128)h[j] - n[j] - borrow;
    d[j] = (u64)x;
    borrow = (u64)(x >> 64) & 1;
    const u128 y = (u128)h[j] + n[j] + carry;
    e[j] = (u64)y;
    carry = (u64)(y >> 64);
  }
  const u64 take_d = mask_if((u64)((top - (int64_t)borrow) >= 0));  // V >= n R
  const u64 take_e = mask_if((u64)(top < 0));                       // V < 0
  for (int j = 0; j < K; ++j)
    h[j] = (d[j] & take_d) | (e[j] & take_e) | (h[j] & ~(take_d | take_e));
}

}  // namespace

void PairArith::mul(u64* r, const u64* x, const u64* y) const {
  const u64* n = rc.N.data();
  u64 T[2 * kMaxLimbs], U[2 * kMaxLimbs], V[2 * kMaxLimbs], t[kMaxLimbs];
  k.mul(T, x, y, K);                                  // A C
  const u64 s = k.redc(t, T, n, rc.n0inv, K);         // A C + m n = (t + s n) R
  k.mul(U, x, y + K, K);                              // A D
  k.mul(V, x + K, y, K);                              // B C
  const u64 uc = add_n(U, V, 2 * K);
  fold(U, uc, T, s, n, K);
  k.redc(r + K, U, n, rc.n0inv, K);
  std::memcpy(r, t, sizeof(u64) * K);
}

void PairArith::sqr(u64* r, const u64* x) const {
  const u64* n = rc.N.data();
  u64 T[2 * kMaxLimbs], U[2 * kMaxLimbs], t[kMaxLimbs], a2[kMaxLimbs];
  k.sqr(T, x, K);                                     // A^2
  const u64 s = k.redc(t, T, n, rc.n0inv, K);
  u64 carry = 0, borrow = 0;                          // a2 = 2A mod n
  for (int j = 0; j < K; ++j) {
    const u64 v = (x[j] << 1) | carry;
    carry = x[j] >> 63;
    const u128 d = (u128)v - n[j] - borrow;
    a2[j] = v;
    U[j] = (u64)d;
    borrow = (u64)(d >> 64) & 1;
  }
  const u64 sub = mask_if(carry | (borrow ^ 1));
  for (int j = 0; j < K; ++j) a2[j] = (U[j] & sub) | (a2[j] & ~sub);
  k.mul(U, a2, x + K, K);                             // (2A mod n) B
  fold(U, 0, T, s, n, K);
  k.redc(r + K, U, n, rc.n0inv, K);
  std::memcpy(r, t, sizeof(u64) * K);
}

void PairArith::split(u64* pair, const u64* x) const {
  const MontArith m(rc, simd);
  u64 X[2 * kMaxLimbs] = {0}, t[kMaxLimbs];
  std::memcpy(X, x, sizeof(u64) * c.L);
  m.redc_wide(t, X, 2 * K);                           // x R^-1 mod n   (x < n^2 < n R)
  m.mul(pair, t, rc.R2.data());                       // a = x mod n
  u64 borrow = 0;                                     // X = x - a = b n
  for (int j = 0; j < 2 * K; ++j) {
    const u128 d = (u128)X[j] - (j < K ? pair[j] : 0) - borrow;
    X[j] = (u64)d;
    borrow = (u64)(d >> 64) & 1;
  }
  k.redc(t, X, rc.N.data(), rc.n0inv, K);             // b n + m n = 0 (mod R): b = -m mod R
  u64 carry = 1;
  for (int j = 0; j < K; ++j) {
    const u128 v = (u128)(~X[j]) + carry;
    pair[K + j] = (u64)v;
    carry = (u64)(v >> 64);
  }
}

void PairArith::to_mont(u64* r, const u64* x) const {
  u64 p[2 * kMaxLimbs];
  split(p, x);
  mul(r, p, c.r2_pair64.data());
}

void PairArith::from_mont(u64* r, const u64* x) const {
  u64 unit[2 * kMaxLimbs] = {0}, p[2 * kMaxLimbs], T[2 * kMaxLimbs];
  unit[0] = 1;
  mul(p, x, unit);                                    // (t, y), x = t + y n
  k.mul(T, p + K, rc.N.data(), K);
  u64 carry = 0;
  for (int j = 0; j < 2 * K; ++j) {
    const u128 s = (u128)T[j] + (j < K ? p[j] : 0) + carry;
    T[j] = (u64)s;
    carry = (u64)(s >> 64);
  }
  std::memcpy(r, T, sizeof(u64) * c.L);
}

}  // namespace pyimgenc
