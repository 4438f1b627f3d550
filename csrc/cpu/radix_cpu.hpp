// Radix-n arithmetic modulo N = n^2 on the portable paths (64-bit limbs).
//
// x in [0, n^2) is a pair X = A + B n of K-limb numbers, both fully reduced (< n), in the
// Montgomery domain X = x R mod n^2 with R = 2^(64 K) (K = limbs of n).  As n^2 = 0 here,
// with one Montgomery reduction modulo n that keeps its quotient digits m and reports
// its final subtraction s (A C + m n = (t + s n) R):
//
//   X Y R^-1 = t + n (A D + B C + s R - m) R^-1          (mod n^2)
//
// and n (y mod n) depends only on y mod n, so the second half is REDC(W) for any W in
// [0, n R) congruent to A D + B C + s R - m modulo n (one signed correction by n R;
// see fold() in radix_cpu.cpp).  A squaring is an K-limb square, a K-limb product
// ((2A mod n) B) and two K-limb reductions: ~3.5 K^2 limb products against 6 K^2 for
// Montgomery modulo the 2K-limb n^2; a product ~5 K^2 against 8 K^2.  No branch or
// address depends on the data.
#pragma once
#include "mont_cpu.hpp"

namespace pyimgenc {

struct PairArith {
  const ModCtx& c;
  const ModCtx& rc;  // n itself
  const Kern& k;     // K-limb kernels
  Simd simd;
  int K, W;          // limbs of n; limbs per residue (2K)
  PairArith(const ModCtx& ctx, Simd s)
      : c(ctx), rc(*ctx.root_ctx), k(pick_kernel(ctx.rk64, s)), simd(s), K(ctx.rk64), W(2 * ctx.rk64) {}
  void mul(u64* r, const u64* x, const u64* y) const;
  void sqr(u64* r, const u64* x) const;
  void to_mont(u64* r, const u64* x) const;    // x: L limbs, < N
  void from_mont(u64* r, const u64* x) const;  // r: L limbs, fully reduced
  const u64* one() const { return c.one_pair64.data(); }
  // x (L limbs, < N) -> (x mod n, x div n), not in the Montgomery domain
  void split(u64* pair, const u64* x) const;
};

}  // namespace pyimgenc
