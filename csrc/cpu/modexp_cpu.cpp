// Portable paths of the batched primitives, and dispatch to the IFMA path.
#include "modexp_cpu.hpp"


#include <algorithm>
#include <cstring>

namespace pyimgenc {

bool cpu_has_ifma() {
  static const bool has = __builtin_cpu_supports("avx512f") &&
                          __builtin_cpu_supports("avx512ifma") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
  return has;
}

int exp_bit_length(const u64* e, int E) {
  for (int i = E - 1; i >= 0; --i)
    if (e[i]) return 64 * i + 64 - __builtin_clzll(e[i]);
  return 0;
}

namespace {

// Montgomery form -> normal form
void from_mont(const ModCtx& c, u64* r, const u64* a) {
  u64 one[kMaxLimbs] = {0};
  one[0] = 1;
  mont_mul(c, r, a, one);
}

void powmod_one(const ModCtx& c, u64* out, const u64* base, const u64* e, int E,
                std::vector<u64>& tbl) {
  const int L = c.L;
  const int ebits = exp_bit_length(e, E);
  if (ebits == 0) {
    from_mont(c, out, c.R1.data());
    return;
  }
  const int w = choose_window(ebits);
  const int nt = 1 << w;
  tbl.resize((size_t)nt * L);
  std::memcpy(&tbl[0], c.R1.data(), sizeof(u64) * L);
  mont_mul(c, &tbl[L], base, c.R2.data());
  for (int k = 2; k < nt; ++k) mont_mul(c, &tbl[(size_t)k * L], &tbl[(size_t)(k - 1) * L], &tbl[L]);
  const int nwin = (ebits + w - 1) / w;
  u64 acc[kMaxLimbs];
  std::memcpy(acc, &tbl[(size_t)exp_window(e, E, (nwin - 1) * w, w) * L], sizeof(u64) * L);
  for (int i = nwin - 2; i >= 0; --i) {
    for (int s = 0; s < w; ++s) mont_mul(c, acc, acc, acc);
    unsigned d = exp_window(e, E, i * w, w);
    if (d) mont_mul(c, acc, acc, &tbl[(size_t)d * L]);
  }
  from_mont(c, out, acc);
}

// Constant-time variant for a secret exponent: fixed 5-bit windows, every table
// entry read and masked in for every window, a multiplication every window.
void powmod_one_ct(const ModCtx& c, u64* out, const u64* base, const u64* e, int E, int ebits,
                   std::vector<u64>& tbl) {
  const int L = c.L;
  constexpr int w = 5, nt = 1 << w;
  tbl.resize((size_t)nt * L);
  std::memcpy(&tbl[0], c.R1.data(), sizeof(u64) * L);
  mont_mul(c, &tbl[L], base, c.R2.data());
  for (int k = 2; k < nt; ++k) mont_mul(c, &tbl[(size_t)k * L], &tbl[(size_t)(k - 1) * L], &tbl[L]);
  u64 acc[kMaxLimbs], sel[kMaxLimbs];
  std::memcpy(acc, c.R1.data(), sizeof(u64) * L);
  for (int i = (ebits + w - 1) / w - 1; i >= 0; --i) {
    for (int s = 0; s < w; ++s) mont_mul(c, acc, acc, acc);
    const unsigned d = exp_window(e, E, i * w, w);
    std::memset(sel, 0, sizeof(u64) * L);
    for (int k = 0; k < nt; ++k) {
      const u64 m = (u64)0 - (u64)((unsigned)k == d);
      const u64* t = &tbl[(size_t)k * L];
      for (int j = 0; j < L; ++j) sel[j] |= t[j] & m;
    }
    mont_mul(c, acc, acc, sel);
  }
  from_mont(c, out, acc);
}

}  // namespace

void powmod_batch(const ModCtx& c, u64* out, const u64* bases, long B, ExpView e, Simd simd,
                  int nthreads) {
  if (simd == Simd::Ifma) return ifma_powmod(c, out, bases, B, e, nthreads);
  const int L = c.L;
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<u64> tbl;
#pragma omp for schedule(dynamic, 4)
    for (long i = 0; i < B; ++i) {
      if (e.secret)
        powmod_one_ct(c, out + i * L, bases + i * L, e.data + i * e.stride, e.E, 64 * e.E, tbl);
      else
        powmod_one(c, out + i * L, bases + i * L, e.data + i * e.stride, e.E, tbl);
    }
  }
}

void mulmod_batch(const ModCtx& c, u64* out, const u64* a, const u64* b, long B, Simd simd,
                  int nthreads) {
  if (simd == Simd::Ifma) return ifma_mulmod(c, out, a, b, B, nthreads);
  const int L = c.L;
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (long i = 0; i < B; ++i) {
    u64 t[kMaxLimbs];
    mont_mul(c, t, a + i * L, b + i * L);          // a b R^-1
    mont_mul(c, out + i * L, t, c.R2.data());      // a b
  }
}

void fixed_base_build(FixedBaseTable& t, const u64* base, int nthreads) {
  if (t.simd == Simd::Ifma) return ifma_fixed_base_build(t, base, nthreads);
  const ModCtx& c = *t.ctx;
  const int L = c.L, w = t.window, nd = 1 << w;
  t.entries.assign((size_t)t.nwin * nd * L, 0);
  std::vector<u64> g(L);
  mont_mul(c, g.data(), base, c.R2.data());  // g_i = base^(2^(w i)), Montgomery form
  for (int i = 0; i < t.nwin; ++i) {
    u64* row = &t.entries[(size_t)i * nd * L];
    std::memcpy(row, c.R1.data(), sizeof(u64) * L);
    std::memcpy(row + L, g.data(), sizeof(u64) * L);
    for (int d = 2; d < nd; ++d) mont_mul(c, row + (size_t)d * L, row + (size_t)(d - 1) * L, g.data());
    mont_mul(c, g.data(), row + (size_t)(nd - 1) * L, g.data());  // g^(2^w)
  }
  (void)nthreads;
}

void fixed_base_pow(const FixedBaseTable& t, u64* out, const u64* exps, long B, int E,
                    int nthreads) {
  PYIMGENC_CHECK(E * 64 >= 1, "exponent limbs");
  if (t.simd == Simd::Ifma) return ifma_fixed_base_pow(t, out, exps, B, E, nthreads);
  const ModCtx& c = *t.ctx;
  const int L = c.L, w = t.window, nd = 1 << w;
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 4)
  for (long b = 0; b < B; ++b) {
    const u64* e = exps + b * E;
    u64 acc[kMaxLimbs];
    std::memcpy(acc, c.R1.data(), sizeof(u64) * L);
    for (int i = 0; i < t.nwin; ++i) {
      unsigned d = exp_window(e, E, i * w, w);
      if (d) mont_mul(c, acc, acc, &t.entries[((size_t)i * nd + d) * L]);
    }
    from_mont(c, out + b * L, acc);
  }
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
  // tables[s][k][d]: (bases or inverses)[k]^d in Montgomery form
  const int nsign = inv_bases ? 2 : 1;
  std::vector<u64> tables((size_t)nsign * K * nd * L);
#pragma omp parallel for num_threads(nthreads) schedule(static) collapse(2)
  for (int s = 0; s < nsign; ++s)
    for (long k = 0; k < K; ++k) {
      u64* row = &tables[(((size_t)s * K) + k) * nd * L];
      const u64* b = (s ? inv_bases : bases) + k * L;
      std::memcpy(row, c.R1.data(), sizeof(u64) * L);
      if (nd > 1) mont_mul(c, row + L, b, c.R2.data());
      for (int d = 2; d < nd; ++d) mont_mul(c, row + (size_t)d * L, row + (size_t)(d - 1) * L, row + L);
    }
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
  for (long m = 0; m < M; ++m) {
    u64 acc[kMaxLimbs];
    std::memcpy(acc, c.R1.data(), sizeof(u64) * L);
    bool is_one = true;
    for (int i = nwin - 1; i >= 0; --i) {
      if (!is_one)
        for (int sq = 0; sq < w; ++sq) mont_mul(c, acc, acc, acc);
      for (long t = 0; t < T; ++t) {
        int64_t e = exps[m * T + t];
        u64 a = (u64)(e < 0 ? -e : e);
        unsigned d = (unsigned)((a >> (i * w)) & (nd - 1));
        if (!d) continue;
        const u64* ent = &tables[(((size_t)(e < 0) * K) + idx[m * T + t]) * nd * L + (size_t)d * L];
        mont_mul(c, acc, acc, ent);
        is_one = false;
      }
    }
    from_mont(c, out + m * L, acc);
  }
}

}  // namespace pyimgenc
