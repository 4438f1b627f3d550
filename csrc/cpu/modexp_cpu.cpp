// Portable and lane paths of the batched primitives (Montgomery modulo N, or radix-n pairs
// when N = n^2) and dispatch to the IFMA path.  The per-element drivers are the GPU's
// (csrc/lane/lane.hpp); here they run over the CPU path's arithmetic, one element per
// OpenMP iteration.
#include "modexp_cpu.hpp"

#include "radix_cpu.hpp"

#include <algorithm>
#include <cstring>

namespace pyimgenc {

namespace {

// Runs f with the arithmetic of path s for modulus c: the lane path gets the GPU's
// arithmetic (lane kernels), the others MontArith / PairArith over their kernels.
template <class F>
void with_arith(const ModCtx& c, Simd s, F&& f) {
  if (s == Simd::Lane) {
    if (c.rk64)
      f(lane_pair(c));
    else
      f(lane_mont(c));
  } else if (c.rk64) {
    f(PairArith(c, s));
  } else {
    f(MontArith(c, s));
  }
}

}  // namespace

void powmod_batch(const ModCtx& c, u64* out, const u64* bases, long B, ExpView e, Simd simd,
                  int nthreads) {
  if (simd == Simd::Ifma) return ifma_powmod(c, out, bases, B, e, nthreads);
  const int L = c.L;
  with_arith(c, simd, [&](const auto& ar) {
#pragma omp parallel num_threads(nthreads)
    {
      std::vector<u64> tbl;
#pragma omp for schedule(dynamic, 4)
      for (long i = 0; i < B; ++i) {
        const u64* ei = e.data + i * e.stride;
        if (e.secret) {
          tbl.resize(lane::powmod_ct_ws_limbs(ar.W));
          lane::powmod_one_ct(ar, out + i * L, bases + i * L, ei, e.E, 64 * e.E, tbl.data());
        } else {
          tbl.resize(lane::powmod_ws_limbs(lane::exp_bit_length(ei, e.E), ar.W));
          lane::powmod_one(ar, out + i * L, bases + i * L, ei, e.E, tbl.data());
        }
      }
    }
  });
}

void mulmod_batch(const ModCtx& c, u64* out, const u64* a, const u64* b, long B, Simd simd,
                  int nthreads) {
  if (simd == Simd::Ifma) return ifma_mulmod(c, out, a, b, B, nthreads);
  const int L = c.L;
  auto run = [&](const auto& ar) {
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (long i = 0; i < B; ++i) ar.mul_normal(out + i * L, a + i * L, b + i * L);
  };
  if (simd == Simd::Lane)
    run(lane_mont(c));
  else
    run(MontArith(c, simd));
}

void fixed_base_build(FixedBaseTable& t, const u64* base, int nthreads) {
  if (t.simd == Simd::Ifma) return ifma_fixed_base_build(t, base, nthreads);
  t.layout = t.ctx->rk64;
  with_arith(*t.ctx, t.simd, [&](const auto& ar) {
    const int W = ar.W, nd = 1 << t.window;
    t.entries.assign((size_t)t.nwin * nd * W, 0);
    if (t.simd == Simd::Lane) {
      // the GPU's way: every row on its own (w i squarings, then its powers)
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
      for (int i = 0; i < t.nwin; ++i)
        lane::fixed_base_row_at(ar, &t.entries[(size_t)i * nd * W], base, i, t.window);
      return;
    }
    std::vector<u64> g(W);
    ar.to_mont(g.data(), base);  // g_i = base^(2^(w i)), one row after the other
    for (int i = 0; i < t.nwin; ++i) {
      u64* row = &t.entries[(size_t)i * nd * W];
      lane::powers_row(ar, row, g.data(), nd);
      ar.mul(g.data(), row + (size_t)(nd - 1) * W, g.data());  // g^(2^w)
    }
  });
}

void fixed_base_pow(const FixedBaseTable& t, u64* out, const u64* exps, long B, int E,
                    int nthreads) {
  PYIMGENC_CHECK(E * 64 >= 1, "exponent limbs");
  if (t.simd == Simd::Ifma) return ifma_fixed_base_pow(t, out, exps, B, E, nthreads);
  const ModCtx& c = *t.ctx;
  // a root set on the modulus after the table was built changes the layout: refuse
  PYIMGENC_CHECK(t.layout == c.rk64, "fixed-base table was built before the modulus got its root");
  with_arith(c, t.simd, [&](const auto& ar) {
    const int L = c.L;
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 4)
    for (long b = 0; b < B; ++b)
      lane::fixed_base_one(ar, out + b * L, t.entries.data(), t.nwin, t.window, exps + b * E, E);
  });
}

void multiexp_batch(const ModCtx& c, u64* out, const u64* bases, const u64* inv_bases, long K,
                    const int64_t* idx, const int64_t* exps, long M, long T, Simd simd,
                    int nthreads) {
  const int L = c.L;
  u64 maxabs = 0;
  for (long i = 0; i < M * T; ++i) {
    int64_t e = exps[i];  // validated by the caller (bindings)
    maxabs = std::max(maxabs, (u64)(e < 0 ? -e : e));
  }
  const int ebits = maxabs ? 64 - __builtin_clzll(maxabs) : 0;
  const int w = ebits <= 1 ? 1 : lane::multiexp_window(ebits, K * (inv_bases ? 2 : 1), M * T);
  const int nwin = ebits ? (ebits + w - 1) / w : 0;
  const int nd = 1 << w;
  if (simd == Simd::Ifma) {
    std::vector<u64> tables = ifma_multiexp_tables(c, bases, inv_bases, K, w, nthreads);
    return ifma_multiexp(c, out, tables, w, nwin, K, idx, exps, M, T, nthreads);
  }
  // tables[s][k][d]: (bases or inverses)[k]^d in the arithmetic's Montgomery form
  const int nsign = inv_bases ? 2 : 1;
  with_arith(c, simd, [&](const auto& ar) {
    const int W = ar.W;
    std::vector<u64> tables((size_t)nsign * K * nd * W);
#pragma omp parallel for num_threads(nthreads) schedule(static) collapse(2)
    for (int s = 0; s < nsign; ++s)
      for (long k = 0; k < K; ++k) {
        u64 g[2 * kMaxLimbs];
        ar.to_mont(g, (s ? inv_bases : bases) + k * L);
        lane::powers_row(ar, &tables[(((size_t)s * K) + k) * nd * W], g, nd);
      }
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
    for (long m = 0; m < M; ++m)
      lane::multiexp_one(ar, out + m * L, tables.data(), K, w, nwin, idx + m * T, exps + m * T, T);
  });
}

}  // namespace pyimgenc
