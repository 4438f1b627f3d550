// Montgomery kernels of the portable CPU paths, one set per limb count:
//   mul:  t[0..2L) = a * b
//   sqr:  t[0..2L) = a * a
//   redc: r = t 2^(-64L) mod n, fully reduced, for t < n 2^(64L); leaves the quotient
//         digits m in t[0..L) (t + m n = (r + s n) 2^(64L)) and returns s (1 when n was
//         subtracted).  No branch or address depends on the data.
// Two families: ADX (x86-64 mulx/adcx/adox, fixed limb counts, generated assembly) and
// generic (C++ over unsigned __int128: fixed-size instances for the same limb counts, a
// runtime-L loop for the rest).  All take the limb count last (fixed ones ignore it).
#pragma once
#include "../common/check.hpp"

namespace pyimgenc {

// The CPU paths: Portable = the best non-IFMA kernels for this CPU (ADX where it has
// BMI2 + ADX, else generic); Adx and Generic force one family (tests, benchmarks); Lane =
// the GPU's per-lane code (csrc/lane/lane.hpp, drivers included) run on the CPU.
enum class Simd { Portable = 0, Ifma = 1, Adx = 2, Generic = 3, Lane = 4 };

using MulFn = void (*)(u64* t, const u64* a, const u64* b, long L);
using SqrFn = void (*)(u64* t, const u64* a, long L);
using RedcFn = u64 (*)(u64* r, u64* t, const u64* n, u64 n0, long L);

struct Kern {
  int L;  // 0: any limb count (the runtime-L generic loops)
  MulFn mul;
  SqrFn sqr;
  RedcFn redc;
  const char* family;  // "adx" or "generic"
};

bool cpu_has_adx();  // BMI2 and ADX (and the kernels are built for this target)
bool cpu_has_ifma();
// The kernels for L limbs under path s (Portable, Adx or Generic); Adx falls back to
// generic for limb counts it has no kernel for.
const Kern& pick_kernel(int L, Simd s);
// Limb counts with dedicated ADX kernels
const int* adx_limb_counts(int* count);

}  // namespace pyimgenc
