// Kernel selection for the portable CPU paths (ADX where the CPU has it, generic elsewhere).
#include "kernels.hpp"

#include "adx_kernels.hpp"
#include "kernels_generic.hpp"

namespace pyimgenc {
namespace {

constexpr int kFixed[] = {8, 12, 16, 24, 32, 48, 64, 96, 128};

#define PYIMGENC_GENERIC(L) \
  Kern { L, generic::mul<L>, generic::sqr<L>, generic::redc<L>, "generic" }
const Kern kGenericFixed[] = {PYIMGENC_GENERIC(8),  PYIMGENC_GENERIC(12), PYIMGENC_GENERIC(16),
                              PYIMGENC_GENERIC(24), PYIMGENC_GENERIC(32), PYIMGENC_GENERIC(48),
                              PYIMGENC_GENERIC(64), PYIMGENC_GENERIC(96), PYIMGENC_GENERIC(128)};
#undef PYIMGENC_GENERIC
const Kern kGenericAny{0, generic::mul<0>, generic::sqr<0>, generic::redc<0>, "generic"};

#if PYIMGENC_HAVE_ADX_KERNELS
// a^2 for 2H limbs from squares and one product of the halves: the same H(2H+1)
// limb products as the triangle, with a code size of the H-limb kernels.
template <int H, void (*SQR)(u64*, const u64*, long), void (*MUL)(u64*, const u64*, const u64*, long)>
void sqr_halves(u64* t, const u64* a, long) {
  u64 c[2 * H];
  SQR(t, a, H);
  SQR(t + 2 * H, a + H, H);
  MUL(c, a, a + H, H);
  // t += 2 c 2^(64 H) in one pass (c shifted left by one bit); the total fits 4H limbs
  u64 carry = 0, shifted_out = 0;
  for (int j = 0; j < 3 * H; ++j) {
    u64 x = 0;
    if (j < 2 * H) {
      x = (c[j] << 1) | shifted_out;
      shifted_out = c[j] >> 63;
    } else if (j == 2 * H) {
      x = shifted_out;
    }
    const u128 v = (u128)t[H + j] + x + carry;
    t[H + j] = (u64)v;
    carry = (u64)(v >> 64);
  }
}

#define PYIMGENC_ADX(L, SQR) \
  Kern { L, pyimgenc_adx_mul##L, SQR, pyimgenc_adx_redc##L, "adx" }
const Kern kAdx[] = {
    PYIMGENC_ADX(8, pyimgenc_adx_sqr8),
    PYIMGENC_ADX(12, pyimgenc_adx_sqr12),
    PYIMGENC_ADX(16, pyimgenc_adx_sqr16),
    PYIMGENC_ADX(24, pyimgenc_adx_sqr24),
    PYIMGENC_ADX(32, pyimgenc_adx_sqr32),
    PYIMGENC_ADX(48, (sqr_halves<24, pyimgenc_adx_sqr24, pyimgenc_adx_mul24>)),
    PYIMGENC_ADX(64, (sqr_halves<32, pyimgenc_adx_sqr32, pyimgenc_adx_mul32>)),
    PYIMGENC_ADX(96, (sqr_halves<48, sqr_halves<24, pyimgenc_adx_sqr24, pyimgenc_adx_mul24>,
                                 pyimgenc_adx_mul48>)),
    PYIMGENC_ADX(128, (sqr_halves<64, sqr_halves<32, pyimgenc_adx_sqr32, pyimgenc_adx_mul32>,
                                  pyimgenc_adx_mul64>)),
};
#undef PYIMGENC_ADX
#endif

int fixed_index(int L) {
  for (int i = 0; i < (int)(sizeof(kFixed) / sizeof(kFixed[0])); ++i)
    if (kFixed[i] == L) return i;
  return -1;
}

}  // namespace

bool cpu_has_adx() {
#if PYIMGENC_HAVE_ADX_KERNELS
  static const bool has = __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("adx");
  return has;
#else
  return false;
#endif
}

bool cpu_has_ifma() {
#if defined(__x86_64__)
  static const bool has = __builtin_cpu_supports("avx512f") &&
                          __builtin_cpu_supports("avx512ifma") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
  return has;
#else
  return false;
#endif
}

const Kern& pick_kernel(int L, Simd s) {
  const int i = fixed_index(L);
#if PYIMGENC_HAVE_ADX_KERNELS
  if (i >= 0 && s != Simd::Generic && s != Simd::Lane && cpu_has_adx()) return kAdx[i];
#endif
  (void)s;
  return i >= 0 ? kGenericFixed[i] : kGenericAny;
}

const int* adx_limb_counts(int* count) {
  *count = PYIMGENC_HAVE_ADX_KERNELS ? (int)(sizeof(kFixed) / sizeof(kFixed[0])) : 0;
  return kFixed;
}

}  // namespace pyimgenc
