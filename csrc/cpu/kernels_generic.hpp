// Generic Montgomery kernels over unsigned __int128 (ARM64 compiles mul/umulh from it).
// LC > 0: the limb count is a compile-time constant and the loops can unroll; LC = 0:
// runtime L.  Same contract as kernels.hpp.
#pragma once
#include "kernels.hpp"

namespace pyimgenc {
namespace generic {

template <int LC>
void mul(u64* t, const u64* a, const u64* b, long Lrt) {
  const int L = LC ? LC : (int)Lrt;
  for (int j = 0; j < L; ++j) t[j] = 0;
  for (int i = 0; i < L; ++i) {
    const u64 x = a[i];
    u64 carry = 0;
    for (int j = 0; j < L; ++j) {
      const u128 s = (u128)x * b[j] + t[i + j] + carry;
      t[i + j] = (u64)s;
      carry = (u64)(s >> 64);
    }
    t[i + L] = carry;
  }
}

template <int LC>
void sqr(u64* t, const u64* a, long Lrt) {
  const int L = LC ? LC : (int)Lrt;
  for (int j = 0; j < 2 * L; ++j) t[j] = 0;
  for (int i = 0; i + 1 < L; ++i) {  // off-diagonal triangle
    const u64 x = a[i];
    u64 carry = 0;
    for (int j = i + 1; j < L; ++j) {
      const u128 s = (u128)x * a[j] + t[i + j] + carry;
      t[i + j] = (u64)s;
      carry = (u64)(s >> 64);
    }
    t[i + L] = carry;
  }
  u64 shift = 0, carry = 0;  // t = 2 t + diagonal
  for (int i = 0; i < L; ++i) {
    const u128 d = (u128)a[i] * a[i];
    const u64 lo = t[2 * i], hi = t[2 * i + 1];
    const u64 dlo = (lo << 1) | shift, dhi = (hi << 1) | (lo >> 63);
    shift = hi >> 63;
    u128 s = (u128)dlo + (u64)d + carry;
    t[2 * i] = (u64)s;
    s = (u128)dhi + (u64)(d >> 64) + (u64)(s >> 64);
    t[2 * i + 1] = (u64)s;
    carry = (u64)(s >> 64);
  }
}

template <int LC>
u64 redc(u64* r, u64* t, const u64* n, u64 n0, long Lrt) {
  const int L = LC ? LC : (int)Lrt;
  u64 pending = 0;  // carry into t[i + L + 1]
  for (int i = 0; i < L; ++i) {
    const u64 m = t[i] * n0;
    u64 carry = 0;
    for (int j = 0; j < L; ++j) {
      const u128 s = (u128)m * n[j] + t[i + j] + carry;
      t[i + j] = (u64)s;
      carry = (u64)(s >> 64);
    }
    t[i] = m;
    const u128 s = (u128)t[i + L] + carry + pending;
    t[i + L] = (u64)s;
    pending = (u64)(s >> 64);
  }
  const u64* h = t + L;  // h + pending 2^(64L) < 2n
  u64 borrow = 0;
  for (int j = 0; j < L; ++j) {  // r = h - n
    const u128 d = (u128)h[j] - n[j] - borrow;
    r[j] = (u64)d;
    borrow = (u64)(d >> 64) & 1;
  }
  const u64 s = pending | (borrow ^ 1);
  const u64 keep = s - 1;  // all ones: keep h
  for (int j = 0; j < L; ++j) r[j] = (r[j] & ~keep) | (h[j] & keep);
  return s;
}

}  // namespace generic
}  // namespace pyimgenc
