// AVX-512 IFMA multi-buffer path: 8 independent numbers per vector lane group,
// radix 2^52, almost-Montgomery multiplication (results < 2N, 4N < 2^(52 D)).
// Compiled per function with target attributes and chosen at run time; never
// executed on a CPU without IFMA.  Not constant time: table look-ups are indexed
// by exponent windows (fine for public exponents; documented for decryption).
#if defined(__x86_64__)
#include "ifma_kernels.hpp"
#include "ifma_radix.hpp"

namespace pyimgenc {
namespace {

// Arithmetic policies for the 8-lane exponentiation drivers: W digits per lane.
struct MontArith {  // almost-Montgomery modulo any odd N
  const ModCtx& c;
  const Ctx8& c8;
  int W() const { return c.D; }
  IFMA_TARGET void load(V* x, const u64* src, int nl) const {
    load8(c, x, src, c.L, nl, c.one52.data());
    amm8(c8, x, x, c8.R2.get());
  }
  IFMA_TARGET void store(u64* dst, int nl, const V* x) const { store8_from_mont(c, c8, dst, c.L, nl, x); }
  IFMA_TARGET void one(V* x) const { std::memcpy(x, c8.one.get(), sizeof(V) * c.D); }
  IFMA_TARGET void sqr(V* r, const V* a) const { ams8(c8, r, a); }
  IFMA_TARGET void mul(V* r, const V* a, const V* b) const { amm8(c8, r, a, b); }
};

template <int KT>
struct RadixArith {  // radix-n modulo N = n^2 (see ifma_radix.hpp); KT: digits of n, 0 = any
  const ModCtx& c;
  const Radix8& R;
  int W() const { return 2 * R.k; }
  IFMA_TARGET void load(V* x, const u64* src, int nl) const { rload8<KT>(c, R, x, src, c.L, nl); }
  IFMA_TARGET void store(u64* dst, int nl, const V* x) const { rstore8<KT>(c, R, dst, c.L, nl, x); }
  IFMA_TARGET void one(V* x) const { std::memcpy(x, R.one.get(), sizeof(V) * W()); }
  IFMA_TARGET void sqr(V* r, const V* a) const { rsqr8<KT>(R, r, a); }
  IFMA_TARGET void mul(V* r, const V* a, const V* b) const { rmul8<KT>(R, r, a, b); }
};

// 8-lane fixed-window exponentiation of x (internal form) by per-lane exponents.
// Table layout for per-lane look-ups: digit-contiguous entries tbll[(k*8 + l)*W + j].
template <class A>
IFMA_TARGET void pow8(const A& ar, V* acc, const V* x, const u64* const* e, int E, int ebits,
                      u64* tbl_scratch) {
  const int W = ar.W();
  const int w = choose_window(ebits);
  const int nt = 1 << w;
  V* tblv = reinterpret_cast<V*>(tbl_scratch);
  ar.one(tblv);
  std::memcpy(tblv + W, x, sizeof(V) * W);
  for (int k = 2; k < nt; ++k) ar.mul(tblv + (size_t)k * W, tblv + (size_t)(k - 1) * W, x);
  u64* tbll = tbl_scratch + (size_t)nt * W * 8;
  for (int k = 0; k < nt; ++k) {
    alignas(64) u64 tmp[8];
    for (int j = 0; j < W; ++j) {
      _mm512_store_si512((V*)tmp, tblv[(size_t)k * W + j]);
      for (int l = 0; l < 8; ++l) tbll[((size_t)k * 8 + l) * W + j] = tmp[l];
    }
  }
  const int nwin = (ebits + w - 1) / w;
  alignas(64) V sel[kMaxD + 4];
  alignas(64) long long off[8];
  for (int i = nwin - 1; i >= 0; --i) {
    if (i != nwin - 1)
      for (int s = 0; s < w; ++s) ar.sqr(acc, acc);
    for (int l = 0; l < 8; ++l)
      off[l] = (long long)(((size_t)exp_window(e[l], E, i * w, w) * 8 + l) * W);
    gather8(sel, tbll, off, W);
    if (i == nwin - 1)
      std::memcpy(acc, sel, sizeof(V) * W);
    else
      ar.mul(acc, acc, sel);
  }
}

// 8-lane left-to-right sliding-window exponentiation by one exponent shared by
// all lanes (e.g. p-1 in CRT decryption): odd powers only, no gathers.
template <class A>
IFMA_TARGET void pow8_shared(const A& ar, V* acc, const V* x, const u64* e, int ebits, V* tbl) {
  const int W = ar.W();
  const int w = std::min(choose_window(ebits), 7);
  const int nt = 1 << (w - 1);  // x^1, x^3, ..., x^(2^w - 1)
  alignas(64) V x2[kMaxD + 4];
  std::memcpy(tbl, x, sizeof(V) * W);
  if (nt > 1) ar.sqr(x2, x);
  for (int k = 1; k < nt; ++k) ar.mul(tbl + (size_t)k * W, tbl + (size_t)(k - 1) * W, x2);
  auto bit = [&](int b) { return (unsigned)((e[b / 64] >> (b % 64)) & 1); };
  bool started = false;
  int i = ebits - 1;
  while (i >= 0) {
    if (!bit(i)) {
      if (started) ar.sqr(acc, acc);
      --i;
      continue;
    }
    int j = std::max(i - w + 1, 0);
    while (!bit(j)) ++j;  // window [j, i] ends in a 1 bit
    unsigned val = 0;
    for (int b = i; b >= j; --b) val = (val << 1) | bit(b);
    const V* m = tbl + (size_t)(val >> 1) * W;
    if (!started) {
      std::memcpy(acc, m, sizeof(V) * W);
      started = true;
    } else {
      for (int b = i; b >= j; --b) ar.sqr(acc, acc);
      ar.mul(acc, acc, m);
    }
    i = j - 1;
  }
}

// Constant-time variant of pow8_shared for a secret exponent: fixed 5-bit windows
// over a fixed number of windows, and each window's table entry selected by
// reading all 32 entries and blending under a mask, so neither branches nor
// memory addresses depend on the exponent.
template <class A>
IFMA_TARGET void pow8_shared_ct(const A& ar, V* acc, const V* x, const u64* e, int E, int ebits, V* tbl) {
  const int W = ar.W();
  constexpr int w = 5, nt = 1 << w;
  ar.one(tbl);
  std::memcpy(tbl + W, x, sizeof(V) * W);
  for (int k = 2; k < nt; ++k) ar.mul(tbl + (size_t)k * W, tbl + (size_t)(k - 1) * W, x);
  const int nwin = (ebits + w - 1) / w;
  alignas(64) V sel[kMaxD + 4];
  ar.one(acc);
  for (int i = nwin - 1; i >= 0; --i) {
    for (int s = 0; s < w; ++s) ar.sqr(acc, acc);
    const V d = _mm512_set1_epi64((long long)exp_window(e, E, i * w, w));
    for (int j = 0; j < W; ++j) sel[j] = _mm512_setzero_si512();
    for (int k = 0; k < nt; ++k) {
      const __mmask8 m = _mm512_cmpeq_epi64_mask(d, _mm512_set1_epi64(k));
      const V* t = tbl + (size_t)k * W;
      for (int j = 0; j < W; ++j) sel[j] = _mm512_mask_mov_epi64(sel[j], m, t[j]);
    }
    ar.mul(acc, acc, sel);
  }
}

template <class A>
IFMA_TARGET void powmod_groups(const A& ar, u64* out, const u64* bases, long B, ExpView e,
                               int ebits, int nthreads) {
  const int L = ar.c.L, W = ar.W();
  const long groups = (B + 7) / 8;
  const bool shared = e.stride == 0;
  const int w = choose_window(std::max(ebits, 1));
  const size_t scratch = std::max<size_t>((size_t)(1 << w) * W * 8 * 2, (size_t)32 * W * 8);
  static const u64 zero_exp[kMaxLimbs] = {0};
#pragma omp parallel num_threads(nthreads)
  {
    auto tbl = valloc<u64>(scratch);
    alignas(64) V x[kMaxD + 4], acc[kMaxD + 4];
#pragma omp for schedule(dynamic, 1)
    for (long g = 0; g < groups; ++g) {
      const int nl = (int)std::min<long>(8, B - g * 8);
      const u64* eptr[8];
      for (int l = 0; l < 8; ++l) eptr[l] = l < nl ? e.data + (g * 8 + l) * e.stride : zero_exp;
      if (ebits == 0) {
        ar.one(acc);
      } else {
        ar.load(x, bases + g * 8 * L, nl);
        if (shared && e.secret)
          pow8_shared_ct(ar, acc, x, eptr[0], e.E, 64 * e.E, reinterpret_cast<V*>(tbl.get()));
        else if (shared)
          pow8_shared(ar, acc, x, eptr[0], ebits, reinterpret_cast<V*>(tbl.get()));
        else
          pow8(ar, acc, x, eptr, e.E, ebits, tbl.get());
      }
      ar.store(out + g * 8 * L, nl, acc);
    }
  }
}

// Runs `body(arith)` with the radix-n policy when the modulus has one, else Montgomery.
template <class F>
IFMA_TARGET void with_arith(const ModCtx& c, F&& body) {
  if (c.rk > 0) {
    const Radix8 R(c);
    switch (c.rk) {  // common key sizes get fully specialised kernels
      case 20: return body(RadixArith<20>{c, R});   // p^2, 2048-bit keys
      case 30: return body(RadixArith<30>{c, R});   // p^2, 3072-bit keys
      case 40: return body(RadixArith<40>{c, R});   // n^2, 2048-bit keys
      case 60: return body(RadixArith<60>{c, R});   // n^2, 3072-bit keys
      default: return body(RadixArith<0>{c, R});
    }
  } else {
    const Ctx8 c8(c);
    body(MontArith{c, c8});
  }
}

// lane-interleaved W digits of lane l -> digit-contiguous entry
IFMA_TARGET inline void lane_out(u64* dst, const V* x, int W, int l) {
  alignas(64) u64 tmp[8];
  for (int j = 0; j < W; ++j) {
    _mm512_store_si512((V*)tmp, x[j]);
    dst[j] = tmp[l];
  }
}

}  // namespace

IFMA_TARGET void ifma_powmod(const ModCtx& c, u64* out, const u64* bases, long B, ExpView e,
                             int nthreads) {
  int ebits = 0;
  for (long b = 0; b < (e.stride == 0 ? 1 : B); ++b)
    ebits = std::max(ebits, exp_bit_length(e.data + b * e.stride, e.E));
  with_arith(c, [&](const auto& ar) { powmod_groups(ar, out, bases, B, e, ebits, nthreads); });
}

IFMA_TARGET void ifma_mulmod(const ModCtx& c, u64* out, const u64* a, const u64* b, long B,
                             int nthreads) {
  const int L = c.L;
  const long groups = (B + 7) / 8;
  if (c.rk > 0) {
    const Radix8 R(c);
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (long g = 0; g < groups; ++g) {
      const int nl = (int)std::min<long>(8, B - g * 8);
      rmulmod_plain8<0>(c, R, out + g * 8 * L, a + g * 8 * L, b + g * 8 * L, L, nl);
    }
    return;
  }
  const Ctx8 c8(c);
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (long g = 0; g < groups; ++g) {
    const int nl = (int)std::min<long>(8, B - g * 8);
    alignas(64) V x[kMaxD], y[kMaxD];
    load8(c, x, a + g * 8 * L, L, nl, c.one52.data());
    load8(c, y, b + g * 8 * L, L, nl, c.one52.data());
    amm8(c8, x, x, y);            // a b R^-1
    amm8(c8, x, x, c8.R2.get());  // a b (< 2N)
    store8_from_mont(c, c8, out + g * 8 * L, L, nl, x, /*normal=*/true);
  }
}

// Table rows: entries[(i * 2^w + d) * W + j] = digits of g^(d 2^(w i)) in the
// policy's internal form (W = D for Montgomery, 2k for radix-n).
IFMA_TARGET void ifma_fixed_base_build(FixedBaseTable& t, const u64* base, int nthreads) {
  const ModCtx& c = *t.ctx;
  with_arith(c, [&](const auto& ar) {
    const int W = ar.W(), w = t.window, nd = 1 << w;
    t.entries.assign((size_t)t.nwin * nd * W, 0);
    // g_i = base^(2^(w i)) serially in lane 0 (w squarings per window) ...
    std::vector<u64> gi((size_t)t.nwin * W);
    {
      alignas(64) V x[kMaxD + 4];
      ar.load(x, base, 1);
      for (int i = 0; i < t.nwin; ++i) {
        lane_out(&gi[(size_t)i * W], x, W, 0);
        for (int s = 0; s < w; ++s) ar.sqr(x, x);
      }
    }
    // ... then lane l of group g fills row i = 8 g + l
    const int groups = (t.nwin + 7) / 8;
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
    for (int g = 0; g < groups; ++g) {
      alignas(64) V gv[kMaxD + 4], acc[kMaxD + 4];
      alignas(64) long long off[8];
      for (int l = 0; l < 8; ++l) off[l] = (long long)std::min(g * 8 + l, t.nwin - 1) * W;
      gather8(gv, gi.data(), off, W);
      for (int d = 0; d < nd; ++d) {
        if (d == 0) ar.one(acc);
        else if (d == 1) std::memcpy(acc, gv, sizeof(V) * W);
        else ar.mul(acc, acc, gv);
        for (int l = 0; l < 8 && g * 8 + l < t.nwin; ++l)
          lane_out(&t.entries[(((size_t)(g * 8 + l)) * nd + d) * W], acc, W, l);
      }
    }
  });
}

IFMA_TARGET void ifma_fixed_base_pow(const FixedBaseTable& t, u64* out, const u64* exps, long B,
                                     int E, int nthreads) {
  const ModCtx& c = *t.ctx;
  with_arith(c, [&](const auto& ar) {
    const int L = c.L, W = ar.W(), w = t.window, nd = 1 << w;
    const long groups = (B + 7) / 8;
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
    for (long g = 0; g < groups; ++g) {
      const int nl = (int)std::min<long>(8, B - g * 8);
      alignas(64) V acc[kMaxD + 4], sel[kMaxD + 4];
      alignas(64) long long off[8];
      for (int i = 0; i < t.nwin; ++i) {
        for (int l = 0; l < 8; ++l) {
          unsigned d = l < nl ? exp_window(exps + (g * 8 + l) * E, E, i * w, w) : 0;
          off[l] = (long long)(((size_t)i * nd + d) * W);
        }
        gather8(i == 0 ? acc : sel, t.entries.data(), off, W);
        if (i) ar.mul(acc, acc, sel);
      }
      ar.store(out + g * 8 * L, nl, acc);
    }
  });
}

IFMA_TARGET std::vector<u64> ifma_multiexp_tables(const ModCtx& c, const u64* bases,
                                                  const u64* inv_bases, long K, int w,
                                                  int nthreads) {
  std::vector<u64> tables;
  with_arith(c, [&](const auto& ar) {
    const int W = ar.W(), nd = 1 << w;
    const long total = (inv_bases ? 2 : 1) * K;
    tables.assign((size_t)total * nd * W, 0);
    const long groups = (total + 7) / 8;
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
    for (long g = 0; g < groups; ++g) {
      const int nl = (int)std::min<long>(8, total - g * 8);
      alignas(64) V x[kMaxD + 4], acc[kMaxD + 4];
      // bases and their inverses are two separate arrays: load lanes one by one
      // through a small contiguous staging buffer
      std::vector<u64> stage((size_t)8 * c.L, 0);
      for (int l = 0; l < nl; ++l) {
        long k = g * 8 + l;
        const u64* src = k < K ? bases + k * c.L : inv_bases + (k - K) * c.L;
        std::memcpy(&stage[(size_t)l * c.L], src, sizeof(u64) * c.L);
      }
      ar.load(x, stage.data(), nl);
      for (int d = 0; d < nd; ++d) {
        if (d == 0) ar.one(acc);
        else if (d == 1) std::memcpy(acc, x, sizeof(V) * W);
        else ar.mul(acc, acc, x);
        for (int l = 0; l < nl; ++l) lane_out(&tables[(((size_t)(g * 8 + l)) * nd + d) * W], acc, W, l);
      }
    }
  });
  return tables;
}

IFMA_TARGET void ifma_multiexp(const ModCtx& c, u64* out, const std::vector<u64>& tables, int w,
                               int nwin, long K, const int64_t* idx,
                               const int64_t* exps, long M, long T, int nthreads) {
  with_arith(c, [&](const auto& ar) {
    const int L = c.L, W = ar.W(), nd = 1 << w;
    const long groups = (M + 7) / 8;
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
    for (long g = 0; g < groups; ++g) {
      const int nl = (int)std::min<long>(8, M - g * 8);
      alignas(64) V acc[kMaxD + 4], sel[kMaxD + 4];
      alignas(64) long long off[8];
      ar.one(acc);
      bool is_one = true;
      for (int i = nwin - 1; i >= 0; --i) {
        if (!is_one)
          for (int s = 0; s < w; ++s) ar.sqr(acc, acc);
        for (long t = 0; t < T; ++t) {
          bool any = false;
          for (int l = 0; l < 8; ++l) {
            unsigned d = 0;
            long k = 0;
            if (l < nl) {
              int64_t e = exps[(g * 8 + l) * T + t];
              u64 a = (u64)(e < 0 ? -e : e);
              d = (unsigned)((a >> (i * w)) & (nd - 1));
              k = idx[(g * 8 + l) * T + t] + (e < 0 ? K : 0);
            }
            any |= d != 0;
            off[l] = (long long)(((size_t)k * nd + d) * W);
          }
          if (!any) continue;
          gather8(sel, tables.data(), off, W);
          ar.mul(acc, acc, sel);
          is_one = false;
        }
      }
      ar.store(out + g * 8 * L, nl, acc);
    }
  });
}

}  // namespace pyimgenc
#else  // not x86-64: no IFMA path (cpu_has_ifma() is false, so nothing below is reached)
#include "modexp_cpu.hpp"

namespace pyimgenc {
namespace {
[[noreturn]] void no_ifma() { PYIMGENC_CHECK(false, "the AVX-512 IFMA path exists on x86-64 only"); throw 0; }
}  // namespace
void ifma_powmod(const ModCtx&, u64*, const u64*, long, ExpView, int) { no_ifma(); }
void ifma_mulmod(const ModCtx&, u64*, const u64*, const u64*, long, int) { no_ifma(); }
void ifma_fixed_base_build(FixedBaseTable&, const u64*, int) { no_ifma(); }
void ifma_fixed_base_pow(const FixedBaseTable&, u64*, const u64*, long, int, int) { no_ifma(); }
void ifma_multiexp(const ModCtx&, u64*, const std::vector<u64>&, int, int, long, const int64_t*,
                   const int64_t*, long, long, int) {
  no_ifma();
}
std::vector<u64> ifma_multiexp_tables(const ModCtx&, const u64*, const u64*, long, int, int) {
  no_ifma();
}
}  // namespace pyimgenc
#endif
