// Radix-n pairs modulo n^2 on the portable paths; see radix_cpu.hpp.
#include "radix_cpu.hpp"

namespace pyimgenc {

namespace {
const ModCtx& root_of(const ModCtx& c) {
  PYIMGENC_CHECK(c.rk64 > 0 && c.root_ctx, "radix-n pairs need the modulus' root");
  return *c.root_ctx;
}
}  // namespace

PairArith::PairArith(const ModCtx& c, Simd s)
    : lane::Pair<0, FnKernels>(
          lane::Mont<0, FnKernels>(root_of(c).N.data(), c.root_ctx->R1.data(), c.root_ctx->R2.data(),
                                   c.root_ctx->n0inv, c.rk64, FnKernels{&pick_kernel(c.rk64, s)}),
          c.one_pair64.data(), c.r2_pair64.data(), c.L) {}

lane::Mont<0> lane_mont(const ModCtx& c) {
  return lane::Mont<0>(c.N.data(), c.R1.data(), c.R2.data(), c.n0inv, c.L);
}

lane::Pair<0> lane_pair(const ModCtx& c) {
  const ModCtx& r = root_of(c);
  return lane::Pair<0>(lane::Mont<0>(r.N.data(), r.R1.data(), r.R2.data(), r.n0inv, c.rk64),
                       c.one_pair64.data(), c.r2_pair64.data(), c.L);
}

}  // namespace pyimgenc
