// Known-answer and property test program of the portable kernels, built without Python
// (so it also runs cross-compiled, e.g. aarch64 under qemu-user; see .ci/run):
//   1. every kernel family here (generic fixed-size, generic any-size, ADX where the CPU
//      has it) against the contract checked with schoolbook arithmetic: t = a b exactly,
//      and t + m n == (r + s n) 2^(64 L) with r < n for the reduction;
//   2. modular exponentiation (Montgomery and radix-n pairs, public and secret exponents;
//      also on the lane path, the GPU engine's per-lane code)
//      against known answers from Python (kat_vectors.hpp).
// Exit status 0 when everything matches; prints one line per failure.
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/modexp_cpu.hpp"
#include "kat_vectors.hpp"

using namespace pyimgenc;

namespace {

int failures = 0;
void fail(const std::string& what) {
  ++failures;
  std::printf("FAIL %s\n", what.c_str());
}

std::vector<u64> hex_limbs(const char* h, int L) {
  std::vector<u64> x(L, 0);
  const int n = (int)std::strlen(h);
  for (int i = 0; i < n; ++i) {
    const char c = h[n - 1 - i];
    const u64 v = c <= '9' ? c - '0' : c - 'a' + 10;
    if (i / 16 < L) x[i / 16] |= v << (4 * (i % 16));
  }
  return x;
}

int limbs_for_hex(const char* h) { return ((int)std::strlen(h) + 15) / 16; }

// schoolbook x * y (xl, yl limbs) into z (xl + yl limbs)
void school(u64* z, const u64* x, int xl, const u64* y, int yl) {
  std::memset(z, 0, sizeof(u64) * (xl + yl));
  for (int i = 0; i < xl; ++i) {
    u64 carry = 0;
    for (int j = 0; j < yl; ++j) {
      const u128 s = (u128)x[i] * y[j] + z[i + j] + carry;
      z[i + j] = (u64)s;
      carry = (u64)(s >> 64);
    }
    z[i + yl] = carry;
  }
}

u64 neg_inv(u64 n0) {
  u64 inv = 1;
  for (int i = 0; i < 7; ++i) inv *= 2 - n0 * inv;
  return (u64)0 - inv;
}

void check_kernels(const Kern& k, int L, std::mt19937_64& rng, const char* path) {
  const std::string tag = std::string(path) + "/" + k.family + " L=" + std::to_string(L);
  for (int it = 0; it < 300; ++it) {
    std::vector<u64> a(L), b(L), n(L), t(2 * L), want(2 * L), r(L);
    for (int j = 0; j < L; ++j) a[j] = rng(), b[j] = rng(), n[j] = rng();
    if (it % 3 == 1)
      for (int j = 0; j < L; ++j) a[j] = b[j] = n[j] = ~(u64)0;  // carries everywhere
    n[0] |= 1;
    if (it % 3 == 1) n[0] -= 2;
    k.mul(t.data(), a.data(), b.data(), L);
    school(want.data(), a.data(), L, b.data(), L);
    if (t != want) fail(tag + " mul");
    k.sqr(t.data(), a.data(), L);
    school(want.data(), a.data(), L, a.data(), L);
    if (t != want) fail(tag + " sqr");
    // reduction of t = a b with a, b < n (so t < n R)
    for (int j = 0; j < L; ++j) a[j] = j == L - 1 ? a[j] % n[j] : a[j], b[j] = j == L - 1 ? b[j] % n[j] : b[j];
    school(t.data(), a.data(), L, b.data(), L);
    const std::vector<u64> t0 = t;
    const u64 s = k.redc(r.data(), t.data(), n.data(), neg_inv(n[0]), L);
    // t0 + m n  ==  (r + s n) R   and   r < n
    std::vector<u64> lhs(2 * L + 1, 0), mn(2 * L), rhs(2 * L + 1, 0);
    school(mn.data(), t.data(), L, n.data(), L);
    u64 c = 0;
    for (int j = 0; j < 2 * L; ++j) {
      const u128 v = (u128)t0[j] + mn[j] + c;
      lhs[j] = (u64)v;
      c = (u64)(v >> 64);
    }
    lhs[2 * L] = c;
    c = 0;
    for (int j = 0; j <= L; ++j) {
      const u128 v = (u128)(j < L ? r[j] : 0) + (j < L ? n[j] & ((u64)0 - s) : 0) + c;
      rhs[L + j] = (u64)v;
      c = (u64)(v >> 64);
    }
    if (lhs != rhs) fail(tag + " redc identity");
    bool below = false;
    for (int j = L - 1; j >= 0; --j)
      if (r[j] != n[j]) { below = r[j] < n[j]; break; }
    if (!below) fail(tag + " redc not reduced");
  }
}

void check_kat(Simd path, const char* name) {
  int row = 0;
  for (const KatRow& kr : kKat) {
    const int L = limbs_for_hex(kr.N);
    ModCtx c(hex_limbs(kr.N, L).data(), L);
    if (kr.radix) {
      const int rl = limbs_for_hex(kr.root);
      c.set_root(hex_limbs(kr.root, rl).data(), rl, nullptr, 0, 1 << 20, {});  // no IFMA constants
      if (c.rk64 != rl) fail(std::string(name) + " KAT row " + std::to_string(row) + ": pairs not enabled");
    }
    const std::vector<u64> base = hex_limbs(kr.base, L), want = hex_limbs(kr.want, L);
    const int E = limbs_for_hex(kr.exp);
    const std::vector<u64> e = hex_limbs(kr.exp, E);
    std::vector<u64> out(L);
    ExpView ev{e.data(), E, 0, kr.secret != 0};
    powmod_batch(c, out.data(), base.data(), 1, ev, path, 1);
    if (out != want) fail(std::string(name) + " KAT row " + std::to_string(row) + " powmod");
    ++row;
  }
}

}  // namespace

int main() {
  std::mt19937_64 rng(7);
  const int sizes[] = {1, 2, 5, 8, 12, 16, 24, 32, 33, 48, 64, 96, 128};
  struct P { Simd s; const char* name; };
  std::vector<P> paths = {{Simd::Generic, "generic"}, {Simd::Lane, "lane"}};  // lane: the GPU's code
  if (cpu_has_adx()) paths.push_back({Simd::Adx, "adx"});
  for (const P& p : paths) {
    for (int L : sizes) check_kernels(pick_kernel(L, p.s), L, rng, p.name);
    check_kat(p.s, p.name);
  }
  std::printf("%s: kernels of %d limb counts and %d known answers on path(s):", failures ? "FAILED" : "ok",
              (int)(sizeof(sizes) / sizeof(sizes[0])), (int)(sizeof(kKat) / sizeof(kKat[0])));
  for (const P& p : paths) std::printf(" %s", p.name);
  std::printf(" (%d failures)\n", failures);
  return failures ? 1 : 0;
}
