// Portable paths of the batched primitives (Montgomery modulo N, or radix-n pairs when
// N = n^2), generic over the arithmetic, and dispatch to the IFMA path.
#include "modexp_cpu.hpp"

#include "radix_cpu.hpp"

#include <algorithm>
#include <cstring>

namespace pyimgenc {

int exp_bit_length(const u64* e, int E) {
  for (int i = E - 1; i >= 0; --i)
    if (e[i]) return 64 * i + 64 - __builtin_clzll(e[i]);
  return 0;
}

namespace {

// Runs f with the arithmetic of the portable path s for modulus c.
template <class F>
void with_arith(const ModCtx& c, Simd s, F&& f) {
  if (c.rk64)
    f(PairArith(c, s));
  else
    f(MontArith(c, s));
}

inline unsigned exp_bit(const u64* e, int b) { return (unsigned)(e[b >> 6] >> (b & 63)) & 1; }

// Sliding window over odd powers: 2^(w-1) table products against ebits/(w+1) others.
int sliding_window(int ebits) {
  int best = 1;
  double best_cost = 1e300;
  for (int w = 1; w <= 8; ++w) {
    const double cost = (double)(1 << (w - 1)) + (double)ebits / (w + 1);
    if (cost < best_cost) best_cost = cost, best = w;
  }
  return best;
}

// Public exponent: left-to-right sliding window (branches and table indices follow the
// exponent's bits).
template <class A>
void powmod_one(const A& ar, u64* out, const u64* base, const u64* e, int E, std::vector<u64>& tbl) {
  const int W = ar.W;
  const int ebits = exp_bit_length(e, E);
  if (ebits == 0) return ar.from_mont(out, ar.one());
  const int w = sliding_window(ebits);
  tbl.resize((size_t)(1 << (w - 1)) * W + W);
  u64* g2 = &tbl[(size_t)(1 << (w - 1)) * W];
  ar.to_mont(&tbl[0], base);
  ar.sqr(g2, &tbl[0]);
  for (int k = 1; k < (1 << (w - 1)); ++k) ar.mul(&tbl[(size_t)k * W], &tbl[(size_t)(k - 1) * W], g2);
  u64 acc[2 * kMaxLimbs];
  bool started = false;
  for (int i = ebits - 1; i >= 0;) {
    if (!exp_bit(e, i)) {
      ar.sqr(acc, acc);  // started: the top bit is 1
      --i;
      continue;
    }
    int j = std::max(i - w + 1, 0);
    while (!exp_bit(e, j)) ++j;
    unsigned v = 0;
    for (int b = i; b >= j; --b) v = (v << 1) | exp_bit(e, b);
    const u64* entry = &tbl[(size_t)(v >> 1) * W];
    if (started) {
      for (int b = i; b >= j; --b) ar.sqr(acc, acc);
      ar.mul(acc, acc, entry);
    } else {
      std::memcpy(acc, entry, sizeof(u64) * W);
      started = true;
    }
    i = j - 1;
  }
  ar.from_mont(out, acc);
}

// Secret exponent: fixed 5-bit windows over all 64 E bits, every table entry read and
// masked in for every window, a multiplication every window.
template <class A>
void powmod_one_ct(const A& ar, u64* out, const u64* base, const u64* e, int E, int ebits,
                   std::vector<u64>& tbl) {
  const int W = ar.W;
  constexpr int w = 5, nt = 1 << w;
  tbl.resize((size_t)nt * W);
  std::memcpy(&tbl[0], ar.one(), sizeof(u64) * W);
  ar.to_mont(&tbl[W], base);
  for (int k = 2; k < nt; ++k) ar.mul(&tbl[(size_t)k * W], &tbl[(size_t)(k - 1) * W], &tbl[W]);
  u64 acc[2 * kMaxLimbs], sel[2 * kMaxLimbs];
  std::memcpy(acc, ar.one(), sizeof(u64) * W);
  for (int i = (ebits + w - 1) / w - 1; i >= 0; --i) {
    for (int s = 0; s < w; ++s) ar.sqr(acc, acc);
    const unsigned d = exp_window(e, E, i * w, w);
    std::memset(sel, 0, sizeof(u64) * W);
    for (int k = 0; k < nt; ++k) {
      const u64 m = (u64)0 - (u64)((unsigned)k == d);
      const u64* t = &tbl[(size_t)k * W];
      for (int j = 0; j < W; ++j) sel[j] |= t[j] & m;
    }
    ar.mul(acc, acc, sel);
  }
  ar.from_mont(out, acc);
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
        if (e.secret)
          powmod_one_ct(ar, out + i * L, bases + i * L, e.data + i * e.stride, e.E, 64 * e.E, tbl);
        else
          powmod_one(ar, out + i * L, bases + i * L, e.data + i * e.stride, e.E, tbl);
      }
    }
  });
}

void mulmod_batch(const ModCtx& c, u64* out, const u64* a, const u64* b, long B, Simd simd,
                  int nthreads) {
  if (simd == Simd::Ifma) return ifma_mulmod(c, out, a, b, B, nthreads);
  const int L = c.L;
  const MontArith ar(c, simd);
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (long i = 0; i < B; ++i) ar.mul_normal(out + i * L, a + i * L, b + i * L);
}

void fixed_base_build(FixedBaseTable& t, const u64* base, int nthreads) {
  if (t.simd == Simd::Ifma) return ifma_fixed_base_build(t, base, nthreads);
  t.layout = t.ctx->rk64;
  with_arith(*t.ctx, t.simd, [&](const auto& ar) {
    const int W = ar.W, nd = 1 << t.window;
    t.entries.assign((size_t)t.nwin * nd * W, 0);
    std::vector<u64> g(W);
    ar.to_mont(g.data(), base);  // g_i = base^(2^(w i))
    for (int i = 0; i < t.nwin; ++i) {
      u64* row = &t.entries[(size_t)i * nd * W];
      std::memcpy(row, ar.one(), sizeof(u64) * W);
      std::memcpy(row + W, g.data(), sizeof(u64) * W);
      for (int d = 2; d < nd; ++d) ar.mul(row + (size_t)d * W, row + (size_t)(d - 1) * W, g.data());
      ar.mul(g.data(), row + (size_t)(nd - 1) * W, g.data());  // g^(2^w)
    }
  });
  (void)nthreads;
}

void fixed_base_pow(const FixedBaseTable& t, u64* out, const u64* exps, long B, int E,
                    int nthreads) {
  PYIMGENC_CHECK(E * 64 >= 1, "exponent limbs");
  if (t.simd == Simd::Ifma) return ifma_fixed_base_pow(t, out, exps, B, E, nthreads);
  const ModCtx& c = *t.ctx;
  // a root set on the modulus after the table was built changes the layout: refuse
  PYIMGENC_CHECK(t.layout == c.rk64, "fixed-base table was built before the modulus got its root");
  with_arith(c, t.simd, [&](const auto& ar) {
    const int L = c.L, W = ar.W, w = t.window, nd = 1 << w;
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 4)
    for (long b = 0; b < B; ++b) {
      const u64* e = exps + b * E;
      u64 acc[2 * kMaxLimbs];
      std::memcpy(acc, ar.one(), sizeof(u64) * W);
      for (int i = 0; i < t.nwin; ++i) {
        unsigned d = exp_window(e, E, i * w, w);
        if (d) ar.mul(acc, acc, &t.entries[((size_t)i * nd + d) * W]);
      }
      ar.from_mont(out + b * L, acc);
    }
  });
}

namespace {

int multiexp_window(int ebits, long K, long uses) {
  // minimise table cost K 2^w against uses * ceil(ebits / w) multiplications
  int best = 1;
  double best_cost = 1e300;
  for (int w = 1; w <= 8; ++w) {
    double cost = (double)K * (1 << w) + (double)uses * ((ebits + w - 1) / w);
    if (cost < best_cost) best_cost = cost, best = w;
  }
  return best;
}

}  // namespace

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
  const int w = ebits <= 1 ? 1 : multiexp_window(ebits, K * (inv_bases ? 2 : 1), M * T);
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
        u64* row = &tables[(((size_t)s * K) + k) * nd * W];
        const u64* b = (s ? inv_bases : bases) + k * L;
        std::memcpy(row, ar.one(), sizeof(u64) * W);
        if (nd > 1) ar.to_mont(row + W, b);
        for (int d = 2; d < nd; ++d) ar.mul(row + (size_t)d * W, row + (size_t)(d - 1) * W, row + W);
      }
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
    for (long m = 0; m < M; ++m) {
      u64 acc[2 * kMaxLimbs];
      std::memcpy(acc, ar.one(), sizeof(u64) * W);
      bool is_one = true;
      for (int i = nwin - 1; i >= 0; --i) {
        if (!is_one)
          for (int sq = 0; sq < w; ++sq) ar.sqr(acc, acc);
        for (long t = 0; t < T; ++t) {
          int64_t e = exps[m * T + t];
          u64 a = (u64)(e < 0 ? -e : e);
          unsigned d = (unsigned)((a >> (i * w)) & (nd - 1));
          if (!d) continue;
          const u64* ent = &tables[(((size_t)(e < 0) * K) + idx[m * T + t]) * nd * W + (size_t)d * W];
          ar.mul(acc, acc, ent);
          is_one = false;
        }
      }
      ar.from_mont(out + m * L, acc);
    }
  });
}

}  // namespace pyimgenc
