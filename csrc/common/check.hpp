// One throwing check macro for the whole native core: failures surface in Python
// as ValueError (std::invalid_argument) or TypeError, with file and line.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace pyimgenc {

using u64 = std::uint64_t;
using u128 = unsigned __int128;

#define PYIMGENC_CHECK(cond, msg)                                                    \
  do {                                                                               \
    if (!(cond))                                                                     \
      throw std::invalid_argument(std::string(msg) + " [" + __FILE__ + ":" +         \
                                  std::to_string(__LINE__) + "]");                   \
  } while (0)

// Largest modulus the core accepts: n^2 for an 8192-bit Paillier key.
constexpr int kMaxModulusBits = 16384;
constexpr int kMaxLimbs = kMaxModulusBits / 64;  // 256

}  // namespace pyimgenc
