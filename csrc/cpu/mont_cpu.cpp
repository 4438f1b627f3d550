// Portable Montgomery arithmetic (CIOS, 64-bit limbs) and the modulus context.
#include "mont_cpu.hpp"
#include "radix_cpu.hpp"

#include <algorithm>
#include <cstring>

namespace pyimgenc {
namespace {

// a >= b over n limbs
bool geq(const u64* a, const u64* b, int n) {
  for (int i = n - 1; i >= 0; --i) {
    if (a[i] != b[i]) return a[i] > b[i];
  }
  return true;
}

// x = 2x mod N (x < N), without branching on x or N (N may be a secret p^2)
void dbl_mod(std::vector<u64>& x, const std::vector<u64>& N) {
  const int L = (int)N.size();
  u64 carry = 0, borrow = 0;
  std::vector<u64> d(L);
  for (int i = 0; i < L; ++i) {
    const u64 nc = x[i] >> 63;
    x[i] = (x[i] << 1) | carry;
    carry = nc;
    const u128 v = (u128)x[i] - N[i] - borrow;
    d[i] = (u64)v;
    borrow = (u64)(v >> 64) & 1;
  }
  const u64 take = (u64)0 - (carry | (borrow ^ 1));
  for (int i = 0; i < L; ++i) x[i] = (d[i] & take) | (x[i] & ~take);
}

// 2^k mod N by doubling from 1 (N > 1 odd)
std::vector<u64> pow2_mod(const std::vector<u64>& N, long k) {
  std::vector<u64> x(N.size(), 0);
  x[0] = 1;
  if (N.size() == 1 && N[0] == 1) x[0] = 0;
  for (long i = 0; i < k; ++i) dbl_mod(x, N);
  return x;
}

u64 neg_inv64(u64 n0) {
  u64 inv = 1;  // Newton iteration for n0^{-1} mod 2^64
  for (int i = 0; i < 7; ++i) inv *= 2 - n0 * inv;
  return (u64)0 - inv;
}

}  // namespace

int choose_window(int ebits) {
  if (ebits <= 6) return 1;
  if (ebits <= 24) return 3;
  if (ebits <= 80) return 4;
  if (ebits <= 240) return 5;
  if (ebits <= 700) return 6;
  return 7;
}

bool less_than_modulus(const ModCtx& c, const u64* a) {
  // every limb, no early exit (N may be a secret p^2 in decryption)
  u64 borrow = 0;
  for (int i = 0; i < c.L; ++i) borrow = (u64)(((u128)a[i] - c.N[i] - borrow) >> 64) & 1;
  return borrow != 0;
}

void limbs_to_digits52(u64* d, int D, const u64* x, int L) {
  const u64 mask = (1ULL << 52) - 1;
  for (int j = 0; j < D; ++j) {
    const long bit = 52L * j;
    const int w = (int)(bit >> 6), s = (int)(bit & 63);
    u64 lo = w < L ? x[w] : 0, hi = (w + 1) < L ? x[w + 1] : 0;
    u64 v = s ? ((lo >> s) | (hi << (64 - s))) : lo;
    d[j] = v & mask;
  }
}

ModCtx::ModCtx(const u64* modulus, int nlimbs) {
  PYIMGENC_CHECK(nlimbs >= 1 && nlimbs <= kMaxLimbs, "modulus: too many limbs");
  L = nlimbs;
  while (L > 1 && modulus[L - 1] == 0) --L;
  N.assign(modulus, modulus + L);
  PYIMGENC_CHECK((N[0] & 1) == 1, "modulus must be odd");
  PYIMGENC_CHECK(L > 1 || N[0] > 1, "modulus must be greater than 1");
  bits = 64 * (L - 1) + (64 - __builtin_clzll(N[L - 1]));
  PYIMGENC_CHECK(bits <= kMaxModulusBits, "modulus has more than 16384 bits");
  n0inv = neg_inv64(N[0]);
  R1 = pow2_mod(N, 64L * L);
  R2 = R1;
  for (long i = 0; i < 64L * L; ++i) dbl_mod(R2, N);
  // radix 2^52: 4N < 2^(52 D)
  D = (bits + 2 + 51) / 52;
  N52.resize(D);
  limbs_to_digits52(N52.data(), D, N.data(), L);
  k0_52 = neg_inv64(N[0]) & ((1ULL << 52) - 1);
  std::vector<u64> r52 = pow2_mod(N, 52L * D);
  std::vector<u64> r52sq = r52;
  for (long i = 0; i < 52L * D; ++i) dbl_mod(r52sq, N);
  one52.resize(D);
  R2_52.resize(D);
  limbs_to_digits52(one52.data(), D, r52.data(), L);
  limbs_to_digits52(R2_52.data(), D, r52sq.data(), L);
}

void ModCtx::set_root(const u64* root, int root_limbs, const u64* mu, int mu_limbs, int min_digits,
                      const std::vector<std::vector<u64>>& pairs) {
  // Tables built for one layout must never meet the other: only a fresh context may get a root.
  PYIMGENC_CHECK(rk == 0 && !root_ctx, "set_root: this modulus already has a root");
  int rl = root_limbs;
  while (rl > 1 && root[rl - 1] == 0) --rl;
  PYIMGENC_CHECK(2 * rl >= L && rl <= L, "root: wrong size for this modulus");
  // root^2 == N, schoolbook over 64-bit limbs
  std::vector<u64> sq(2 * rl + 1, 0);
  for (int i = 0; i < rl; ++i) {
    u64 carry = 0;
    for (int j = 0; j < rl; ++j) {
      u128 t = (u128)root[i] * root[j] + sq[i + j] + carry;
      sq[i + j] = (u64)t;
      carry = (u64)(t >> 64);
    }
    sq[i + rl] += carry;
  }
  for (int i = 0; i < (int)sq.size(); ++i)
    PYIMGENC_CHECK(sq[i] == (i < L ? N[i] : 0), "root: root^2 != modulus");
  root_ctx = std::make_shared<ModCtx>(root, rl);
  // Portable paths: pairs over 64-bit limbs, R = 2^(64 rl) (needs R > n + 1, i.e. n is not
  // all ones; small n gains nothing)
  bool all_ones = true;
  for (int i = 0; i < rl; ++i) all_ones = all_ones && root[i] == ~(u64)0;
  if (rl >= 4 && !all_ones) {
    rk64 = rl;
    one_pair64.resize(2 * rl);  // sized before pa points into them
    r2_pair64.resize(2 * rl);
    const PairArith pa(*this, Simd::Portable);
    pa.split(one_pair64.data(), pow2_mod(N, 64L * rl).data());
    pa.split(r2_pair64.data(), pow2_mod(N, 128L * rl).data());
  }
  const int rbits = 64 * (rl - 1) + (64 - __builtin_clzll(root[rl - 1]));
  const int k = (rbits + 51) / 52;
  // IFMA path, 52-bit digits.  Margin 2^(52 k) >= 16 n missing (Barrett and Montgomery
  // bounds of the radix-n kernels), or n too small for the representation to pay: keep
  // Montgomery modulo N there
  if (52 * k - rbits < 4 || k < std::max(2, min_digits)) return;
  PYIMGENC_CHECK(pairs.size() == 4, "set_root: four pair constants expected");
  PYIMGENC_CHECK(mu_limbs * 64 >= 52 * (k + 1) - 51, "mu: too few limbs");
  root52.resize(k);
  limbs_to_digits52(root52.data(), k, root, rl);
  mu52.resize(k + 1);
  limbs_to_digits52(mu52.data(), k + 1, mu, mu_limbs);
  one_pair52.assign(2 * k, 0);
  r2_pair52.assign(2 * k, 0);
  for (int h = 0; h < 2; ++h) {
    PYIMGENC_CHECK(!pairs[h].empty() && !pairs[2 + h].empty(), "set_root: empty pair constant");
    limbs_to_digits52(one_pair52.data() + h * k, k, pairs[h].data(), (int)pairs[h].size());
    limbs_to_digits52(r2_pair52.data() + h * k, k, pairs[2 + h].data(), (int)pairs[2 + h].size());
  }
  PYIMGENC_CHECK(root_ctx->D == k, "set_root: digit count mismatch");
  rk = k;
}


void MontArith::mul_normal(u64* r, const u64* a, const u64* b) const {
  const int L = c.L, slack = 64 * L - c.bits;
  if (slack > 2) {  // R > 8 N: two Montgomery products
    u64 t[kMaxLimbs];
    mul(t, a, b);              // a b R^-1
    mul(r, t, c.R2.data());    // a b
    return;
  }
  // a b = h R + l with h < N: a b mod N = (l + REDC(h R^2)) mod N, and l < R < 2^(slack+1) N,
  // so 2^(slack+1) masked subtractions of N finish it (three products of L^2 instead of four)
  u64 t[2 * kMaxLimbs], u[2 * kMaxLimbs], y[kMaxLimbs + 1], d[kMaxLimbs + 1];
  k.mul(t, a, b, L);
  k.mul(u, t + L, c.R2.data(), L);
  k.redc(y, u, c.N.data(), c.n0inv, L);
  u64 carry = 0;
  for (int j = 0; j < L; ++j) {
    const u128 s = (u128)y[j] + t[j] + carry;
    y[j] = (u64)s;
    carry = (u64)(s >> 64);
  }
  y[L] = carry;  // y < (2^(slack+1) + 1) N
  for (int round = 0; round < (2 << slack); ++round) {
    u64 borrow = 0;
    for (int j = 0; j <= L; ++j) {
      const u128 v = (u128)y[j] - (j < L ? c.N[j] : 0) - borrow;
      d[j] = (u64)v;
      borrow = (u64)(v >> 64) & 1;
    }
    const u64 keep = (u64)0 - borrow;  // y < N: keep y
    for (int j = 0; j <= L; ++j) y[j] = (y[j] & keep) | (d[j] & ~keep);
  }
  std::memcpy(r, y, sizeof(u64) * L);
}

void MontArith::redc_wide(u64* r, const u64* x, int xl) const {
  u64 t[2 * kMaxLimbs] = {0};
  std::memcpy(t, x, sizeof(u64) * xl);
  k.redc(r, t, c.N.data(), c.n0inv, c.L);
}

void mont_mul(const ModCtx& c, u64* r, const u64* a, const u64* b) {
  MontArith(c, Simd::Portable).mul(r, a, b);
}

void reduce_wide(const ModCtx& c, u64* r, const u64* x, int xl) {
  PYIMGENC_CHECK(xl <= 2 * c.L, "value has more than twice the modulus' limbs");
  if (xl == 2 * c.L) {
    // x < N*R is required for REDC's bound: check the top half against N.
    PYIMGENC_CHECK(!geq(x + c.L, c.N.data(), c.L), "value is not below N * 2^(64 L)");
  }
  const MontArith m(c, Simd::Portable);
  u64 t[kMaxLimbs];
  m.redc_wide(t, x, xl);                    // x R^-1
  m.mul(r, t, c.R2.data());                 // x R^-1 R^2 R^-1 = x mod N
}

}  // namespace pyimgenc
