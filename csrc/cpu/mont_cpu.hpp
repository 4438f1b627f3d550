// Montgomery arithmetic over fixed-width 64-bit limbs (portable paths) and the
// shared modulus context used by every CPU path (adx, generic and AVX-512 IFMA).
#pragma once
#include <memory>
#include <vector>

#include "../lane/lane.hpp"
#include "kernels.hpp"

namespace pyimgenc {

// Everything the CPU paths need to know about one odd modulus N.
struct ModCtx {
  int bits = 0;
  int L = 0;               // 64-bit limbs of N
  std::vector<u64> N;      // L limbs
  u64 n0inv = 0;           // -N^{-1} mod 2^64
  std::vector<u64> R1;     // R mod N, R = 2^(64L)   (Montgomery one)
  std::vector<u64> R2;     // R^2 mod N
  // AVX-512 IFMA radix-2^52 constants (R52 = 2^(52 D), with 4N < R52 for almost-Montgomery)
  int D = 0;
  std::vector<u64> N52;    // D digits
  u64 k0_52 = 0;           // -N^{-1} mod 2^52
  std::vector<u64> R2_52;  // R52^2 mod N, as D digits
  std::vector<u64> one52;  // R52 mod N, as D digits

  // Optional radix-n representation for N = n^2 (x = a + b n, a, b in [0, n)):
  // squaring costs about 3.5 k^2 digit products instead of 4.5 (2k)^2 / 2.
  int rk = 0;               // 52-bit digits of n (0: not available)
  std::vector<u64> root52;  // n, rk digits
  std::vector<u64> mu52;    // floor(2^(104 rk) / n), rk + 1 digits (Barrett)
  // Montgomery domain of the radix-n pairs (R = 2^(52 rk)): pairs (a, b) of R mod N
  // and R^2 mod N, each 2 rk digits [a | b] with x = a + b n
  std::vector<u64> one_pair52, r2_pair52;
  std::shared_ptr<ModCtx> root_ctx;  // constants of n itself (Montgomery modulo n)
  // The same representation on the portable paths, over 64-bit limbs (R = 2^(64 rk64)),
  // pairs kept fully reduced: R mod N and R^2 mod N as pairs [a | b], 2 rk64 limbs each.
  int rk64 = 0;             // limbs of n (0: Montgomery modulo N instead)
  std::vector<u64> one_pair64, r2_pair64;

  explicit ModCtx(const u64* modulus, int nlimbs);
  // Enables the radix-n path when n has at least min_digits 52-bit digits (below
  // that Montgomery is as fast); checks root^2 == N and the digit-size margin.
  // pairs: limbs of (R mod N) mod n, (R mod N) div n, (R^2 mod N) mod n, (R^2 mod N) div n.
  void set_root(const u64* root, int root_limbs, const u64* mu, int mu_limbs, int min_digits,
                const std::vector<std::vector<u64>>& pairs);
};

// The kernels of one CPU path, in the policy interface of lane::Mont / lane::Pair
struct FnKernels {
  const Kern* k;
  void mul(u64* t, const u64* a, const u64* b, int L) const { k->mul(t, a, b, L); }
  void sqr(u64* t, const u64* a, int L) const { k->sqr(t, a, L); }
  u64 redc(u64* r, u64* t, const u64* n, u64 n0, int L) const { return k->redc(r, t, n, n0, L); }
};

// Montgomery arithmetic modulo N on the portable paths: lane::Mont (mul, sqr, to_mont,
// from_mont, one) over the path's kernels, plus a cheaper product in the normal
// representation and wide reduction.  Residues of L limbs, fully reduced; outputs may
// alias inputs.
struct MontArith : lane::Mont<0, FnKernels> {
  const ModCtx& c;
  const Kern& k;
  MontArith(const ModCtx& ctx, Simd s)
      : lane::Mont<0, FnKernels>(ctx.N.data(), ctx.R1.data(), ctx.R2.data(), ctx.n0inv, ctx.L,
                                 FnKernels{&pick_kernel(ctx.L, s)}),
        c(ctx), k(*kp.k) {}
  // r = a b mod N in the normal representation (a, b < N)
  void mul_normal(u64* r, const u64* a, const u64* b) const;
  // r = x R^-1 mod N for a wide x of xl <= 2L limbs with x < N R
  void redc_wide(u64* r, const u64* x, int xl) const;
};

// r = a*b*R^{-1} mod N, fully reduced; a, b < N. r may alias a or b (best portable kernels).
void mont_mul(const ModCtx& c, u64* r, const u64* a, const u64* b);
// r = x mod N for x of xl <= 2L limbs (x < N*R).
void reduce_wide(const ModCtx& c, u64* r, const u64* x, int xl);
// 1 if a < N (a has L limbs).
bool less_than_modulus(const ModCtx& c, const u64* a);

// radix conversion helper (shared with the IFMA path's constants)
void limbs_to_digits52(u64* d, int D, const u64* x, int L);

// Window width for fixed-window exponentiation of e-bit exponents.
int choose_window(int ebits);

}  // namespace pyimgenc
