// Generic Montgomery kernels: the per-lane kernels of csrc/lane/lane.hpp (C++ over
// unsigned __int128 on the host; ARM64 compiles mul/umulh from it), wrapped in the
// signatures of kernels.hpp.  LC > 0: the limb count is a compile-time constant and the
// loops can unroll; LC = 0: runtime L.  Same contract as kernels.hpp.
#pragma once
#include "../lane/lane.hpp"
#include "kernels.hpp"

namespace pyimgenc {
namespace generic {

template <int LC>
void mul(u64* t, const u64* a, const u64* b, long L) {
  lane::mul<LC>(t, a, b, (int)L);
}

template <int LC>
void sqr(u64* t, const u64* a, long L) {
  lane::sqr<LC>(t, a, (int)L);
}

template <int LC>
u64 redc(u64* r, u64* t, const u64* n, u64 n0, long L) {
  return lane::redc<LC>(r, t, n, n0, (int)L);
}

}  // namespace generic
}  // namespace pyimgenc
