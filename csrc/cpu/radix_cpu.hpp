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
// see lane::fold).  A squaring is an K-limb square, a K-limb product ((2A mod n) B) and
// two K-limb reductions: ~3.5 K^2 limb products against 6 K^2 for Montgomery modulo the
// 2K-limb n^2; a product ~5 K^2 against 8 K^2.  No branch or address depends on the data.
//
// The arithmetic itself is lane::Pair (csrc/lane/lane.hpp, shared with the GPU); here it
// runs over the CPU path's kernels (ADX or generic) through a function-pointer policy.
#pragma once
#include "../lane/lane.hpp"
#include "mont_cpu.hpp"

namespace pyimgenc {

// Pairs modulo c.N over path s's kernels; the context must have its root (rk64 > 0) and
// must outlive this (it points into the context's constants).
struct PairArith : lane::Pair<0, FnKernels> {
  PairArith(const ModCtx& c, Simd s);
};

// The lane path (Simd::Lane): the GPU's arithmetic on the CPU
lane::Mont<0> lane_mont(const ModCtx& c);
lane::Pair<0> lane_pair(const ModCtx& c);

}  // namespace pyimgenc
