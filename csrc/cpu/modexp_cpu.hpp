// Batched modular exponentiation, fixed-base exponentiation and
// multi-exponentiation: one entry point per primitive, three CPU paths
// (adx and generic over 64-bit limbs, AVX-512 IFMA 8-lane multi-buffer) with identical results.
#pragma once
#include <cstdint>
#include <vector>

#include "../lane/lane.hpp"
#include "mont_cpu.hpp"

namespace pyimgenc {

// Exponents: E limbs each; `exp_stride` 0 broadcasts one exponent to the batch.
struct ExpView {
  const u64* data;
  int E;
  long stride;  // in limbs between consecutive batch elements (0 = shared)
  // Secret exponent (shared only): fixed windows, every table entry read for every
  // window, no branch on exponent bits (decryption's p-1, q-1).
  bool secret = false;
};

// out[i] = base[i]^exp[i] mod N; bases already reduced (< N), L limbs each.
void powmod_batch(const ModCtx& c, u64* out, const u64* bases, long B, ExpView e, Simd simd,
                  int nthreads);
// out[i] = a[i] * b[i] mod N (normal representation)
void mulmod_batch(const ModCtx& c, u64* out, const u64* a, const u64* b, long B, Simd simd,
                  int nthreads);

// Fixed-base table: g^(d 2^(w i)) for all windows i and digits d, in the
// Montgomery form of the chosen path.
struct FixedBaseTable {
  const ModCtx* ctx;
  int exp_bits, window, nwin;
  Simd simd;
  std::vector<u64> entries;  // (nwin * 2^w) entries: the portable arithmetic's width, or D digits (IFMA)
  int layout = -1;  // portable paths: the ModCtx's rk64 when built (pairs or Montgomery entries)
};
void fixed_base_build(FixedBaseTable& t, const u64* base, int nthreads);
void fixed_base_pow(const FixedBaseTable& t, u64* out, const u64* exps, long B, int E,
                    int nthreads);

// out[m] = prod_t bases[idx[m,t]]^exps[m,t] mod N; negative exponents use inv_bases.
void multiexp_batch(const ModCtx& c, u64* out, const u64* bases, const u64* inv_bases, long K,
                    const int64_t* idx, const int64_t* exps, long M, long T, Simd simd,
                    int nthreads);

// --- internal, implemented per path ---------------------------------------
using lane::exp_bit_length;
using lane::exp_window;  // bits [pos, pos+w) of e without branching on their values
void ifma_powmod(const ModCtx& c, u64* out, const u64* bases, long B, ExpView e, int nthreads);
void ifma_mulmod(const ModCtx& c, u64* out, const u64* a, const u64* b, long B, int nthreads);
void ifma_fixed_base_build(FixedBaseTable& t, const u64* base, int nthreads);
void ifma_fixed_base_pow(const FixedBaseTable& t, u64* out, const u64* exps, long B, int E,
                         int nthreads);
void ifma_multiexp(const ModCtx& c, u64* out, const std::vector<u64>& tables, int w, int nwin,
                   long K, const int64_t* idx, const int64_t* exps, long M,
                   long T, int nthreads);
std::vector<u64> ifma_multiexp_tables(const ModCtx& c, const u64* bases, const u64* inv_bases,
                                      long K, int w, int nthreads);

}  // namespace pyimgenc
