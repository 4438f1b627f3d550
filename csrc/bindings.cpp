// pybind11 bindings of the private native module pyimgenc._core: argument
// checks and GIL release only, no arithmetic here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <vector>

#include <pybind11/stl.h>

#include "cpu/modexp_cpu.hpp"

namespace py = pybind11;
using namespace pyimgenc;

using Arr = py::array_t<u64, py::array::c_style>;
using IArr = py::array_t<int64_t, py::array::c_style>;

namespace {

struct PyModulus {
  std::shared_ptr<ModCtx> ctx;
};

void check_2d(const py::array& a, const char* name) {
  PYIMGENC_CHECK(a.ndim() == 2, std::string(name) + " must be a 2-D array (batch, limbs)");
}

void check_reduced(const ModCtx& c, const u64* x, long B, const char* name) {
  for (long i = 0; i < B; ++i)
    PYIMGENC_CHECK(less_than_modulus(c, x + i * c.L),
                   std::string(name) + ": value at index " + std::to_string(i) +
                       " is not reduced modulo N");
}

int threads(int n) {
  PYIMGENC_CHECK(n >= 1 && n <= 4096, "nthreads must be in 1..4096");
  return n;
}

Simd to_simd(int s) {
  PYIMGENC_CHECK(s >= 0 && s <= 4, "simd must be 0 (portable), 1 (ifma), 2 (adx), 3 (generic) or 4 (lane)");
  PYIMGENC_CHECK(s != 1 || cpu_has_ifma(), "the AVX-512 IFMA path was requested but this CPU lacks it");
  PYIMGENC_CHECK(s != 2 || cpu_has_adx(), "the ADX path was requested but this CPU (or build) lacks BMI2/ADX");
  return (Simd)s;
}

Arr new_out(long B, int L) { return Arr({(py::ssize_t)B, (py::ssize_t)L}); }

Arr py_powmod(const PyModulus& m, Arr bases, Arr exps, int simd, int nthreads, bool secret) {
  const ModCtx& c = *m.ctx;
  check_2d(bases, "bases");
  check_2d(exps, "exps");
  PYIMGENC_CHECK(bases.shape(1) == c.L, "bases must have as many limbs as the modulus");
  const long B = bases.shape(0);
  PYIMGENC_CHECK(exps.shape(0) == B || exps.shape(0) == 1, "exps must have one row per base, or one row");
  PYIMGENC_CHECK(exps.shape(1) >= 1 && exps.shape(1) <= kMaxLimbs, "exps: 1 to 256 limbs");
  check_reduced(c, bases.data(), B, "bases");
  Simd s = to_simd(simd);
  Arr out = new_out(B, c.L);
  ExpView e{exps.data(), (int)exps.shape(1), exps.shape(0) == 1 && B != 1 ? 0L : (long)exps.shape(1)};
  if (B == 1) e.stride = exps.shape(0) == 1 ? 0 : exps.shape(1);
  PYIMGENC_CHECK(!secret || exps.shape(0) == 1, "a secret exponent must be one exponent shared by the batch");
  e.secret = secret;
  const int nt = threads(nthreads);
  {
    py::gil_scoped_release nogil;
    if (B) powmod_batch(c, out.mutable_data(), bases.data(), B, e, s, nt);
  }
  return out;
}

Arr py_mulmod(const PyModulus& m, Arr a, Arr b, int simd, int nthreads) {
  const ModCtx& c = *m.ctx;
  check_2d(a, "a");
  check_2d(b, "b");
  PYIMGENC_CHECK(a.shape(1) == c.L && b.shape(1) == c.L, "operands must have as many limbs as the modulus");
  PYIMGENC_CHECK(a.shape(0) == b.shape(0), "operands must have the same batch size");
  const long B = a.shape(0);
  check_reduced(c, a.data(), B, "a");
  check_reduced(c, b.data(), B, "b");
  Simd s = to_simd(simd);
  Arr out = new_out(B, c.L);
  const int nt = threads(nthreads);
  {
    py::gil_scoped_release nogil;
    if (B) mulmod_batch(c, out.mutable_data(), a.data(), b.data(), B, s, nt);
  }
  return out;
}

Arr py_reduce(const PyModulus& m, Arr x) {
  const ModCtx& c = *m.ctx;
  check_2d(x, "x");
  const int xl = (int)x.shape(1);
  PYIMGENC_CHECK(xl >= 1 && xl <= 2 * c.L, "x must have at most twice the modulus' limbs");
  const long B = x.shape(0);
  Arr out = new_out(B, c.L);
  u64* o = out.mutable_data();
  const u64* xp = x.data();
  for (long i = 0; i < B; ++i) reduce_wide(c, o + i * c.L, xp + i * xl, xl);
  return out;
}

struct PyFixedBase {
  std::shared_ptr<ModCtx> ctx;
  FixedBaseTable t;
};

std::shared_ptr<PyFixedBase> make_fixed_base(const PyModulus& m, Arr base, int exp_bits, int window,
                                             int simd, int nthreads) {
  const ModCtx& c = *m.ctx;
  PYIMGENC_CHECK(base.ndim() == 1 && base.shape(0) == c.L, "base must have as many limbs as the modulus");
  check_reduced(c, base.data(), 1, "base");
  PYIMGENC_CHECK(exp_bits >= 1 && exp_bits <= 64 * kMaxLimbs, "exp_bits out of range");
  PYIMGENC_CHECK(window >= 1 && window <= 12, "window must be 1..12");
  auto fb = std::make_shared<PyFixedBase>();
  fb->ctx = m.ctx;
  fb->t.ctx = fb->ctx.get();
  fb->t.exp_bits = exp_bits;
  fb->t.window = window;
  fb->t.nwin = (exp_bits + window - 1) / window;
  fb->t.simd = to_simd(simd);
  const int nt = threads(nthreads);
  {
    py::gil_scoped_release nogil;
    fixed_base_build(fb->t, base.data(), nt);
  }
  return fb;
}

Arr py_fixed_base_pow(const PyFixedBase& fb, Arr exps, int nthreads) {
  check_2d(exps, "exps");
  const long B = exps.shape(0);
  const int E = (int)exps.shape(1);
  PYIMGENC_CHECK(E >= 1 && E <= kMaxLimbs, "exps: 1 to 256 limbs");
  for (long i = 0; i < B; ++i)
    PYIMGENC_CHECK(exp_bit_length(exps.data() + i * E, E) <= fb.t.exp_bits,
                   "exponent at index " + std::to_string(i) + " exceeds the table's exp_bits");
  Arr out = new_out(B, fb.ctx->L);
  const int nt = threads(nthreads);
  {
    py::gil_scoped_release nogil;
    if (B) fixed_base_pow(fb.t, out.mutable_data(), exps.data(), B, E, nt);
  }
  return out;
}

Arr py_multiexp(const PyModulus& m, Arr bases, py::object inv_obj, IArr idx, IArr exps, int simd,
                int nthreads) {
  const ModCtx& c = *m.ctx;
  check_2d(bases, "bases");
  check_2d(idx, "idx");
  check_2d(exps, "exps");
  PYIMGENC_CHECK(bases.shape(1) == c.L, "bases must have as many limbs as the modulus");
  PYIMGENC_CHECK(idx.shape(0) == exps.shape(0) && idx.shape(1) == exps.shape(1),
                 "idx and exps must have the same shape (outputs, terms)");
  const long K = bases.shape(0), M = idx.shape(0), T = idx.shape(1);
  check_reduced(c, bases.data(), K, "bases");
  const u64* inv = nullptr;
  Arr inv_arr;
  if (!inv_obj.is_none()) {
    inv_arr = inv_obj.cast<Arr>();
    check_2d(inv_arr, "inv_bases");
    PYIMGENC_CHECK(inv_arr.shape(0) == K && inv_arr.shape(1) == c.L, "inv_bases must match bases' shape");
    check_reduced(c, inv_arr.data(), K, "inv_bases");
    inv = inv_arr.data();
  }
  Simd s = to_simd(simd);
  Arr out = new_out(M, c.L);
  // index/exponent validation happens before any parallel work starts
  for (long i = 0; i < M * T; ++i) {
    PYIMGENC_CHECK(idx.data()[i] >= 0 && idx.data()[i] < K, "multiexp: index out of range of the bases");
    PYIMGENC_CHECK(exps.data()[i] != INT64_MIN, "multiexp: exponent -2^63 is not supported");
    PYIMGENC_CHECK(exps.data()[i] >= 0 || inv, "multiexp: negative exponent needs inv_bases");
  }
  const int nt = threads(nthreads);
  {
    py::gil_scoped_release nogil;
    if (M) multiexp_batch(c, out.mutable_data(), bases.data(), inv, K, idx.data(), exps.data(), M, T, s, nt);
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_core, mod) {
  mod.doc() = "pyimgenc private native core (do not import directly)";
  mod.def("has_ifma", &cpu_has_ifma);
  mod.def("has_adx", &cpu_has_adx);
  mod.def("adx_limb_counts", []() {
    int n = 0;
    const int* p = adx_limb_counts(&n);
    return std::vector<int>(p, p + n);
  });
  mod.def("kernel_family", [](int L, int simd) {
    PYIMGENC_CHECK(L >= 1 && L <= kMaxLimbs, "limbs: 1 to 256");
    const Kern& k = pick_kernel(L, to_simd(simd));
    return std::string(k.family) + (k.L ? "" : "-any-size");
  });
  // window rules of the per-lane drivers (the CUDA engine sizes its workspace with them)
  mod.def("sliding_window", [](int ebits) { return lane::sliding_window(ebits); });
  mod.def("multiexp_window", [](int ebits, long K, long uses) { return lane::multiexp_window(ebits, K, uses); });
  py::class_<PyModulus>(mod, "Modulus")
      .def(py::init([](Arr limbs) {
        PYIMGENC_CHECK(limbs.ndim() == 1, "modulus limbs must be 1-D");
        return PyModulus{std::make_shared<ModCtx>(limbs.data(), (int)limbs.shape(0))};
      }))
      .def_property_readonly("bits", [](const PyModulus& m) { return m.ctx->bits; })
      .def_property_readonly("nlimbs", [](const PyModulus& m) { return m.ctx->L; })
      .def_property_readonly("ndigits52", [](const PyModulus& m) { return m.ctx->D; })
      .def_property_readonly("radix_digits", [](const PyModulus& m) { return m.ctx->rk; })
      .def_property_readonly("radix_limbs", [](const PyModulus& m) { return m.ctx->rk64; })
      // The constants of the lane arithmetic in csrc/cuda/paillier.cu's layout, and -N^-1 mod 2^64:
      // pair=False: N | R mod N | R^2 mod N;  pair=True (needs radix_limbs > 0): n | R mod n |
      // R^2 mod n | (R mod N as a pair) | (R^2 mod N as a pair), R = 2^(64 radix_limbs)
      .def("lane_constants", [](const PyModulus& m, bool pair) {
        const ModCtx& c = *m.ctx;
        PYIMGENC_CHECK(!pair || c.rk64 > 0, "lane_constants: this modulus has no radix-n pairs");
        std::vector<const std::vector<u64>*> parts;
        if (pair)
          parts = {&c.root_ctx->N, &c.root_ctx->R1, &c.root_ctx->R2, &c.one_pair64, &c.r2_pair64};
        else
          parts = {&c.N, &c.R1, &c.R2};
        size_t n = 0;
        for (auto* v : parts) n += v->size();
        Arr out((py::ssize_t)n);
        u64* o = out.mutable_data();
        for (auto* v : parts) o = std::copy(v->begin(), v->end(), o);
        return py::make_tuple(out, pair ? c.root_ctx->n0inv : c.n0inv);
      })
      .def("set_root", [](PyModulus& m, Arr root, Arr mu, int min_digits, std::vector<Arr> pairs) {
        PYIMGENC_CHECK(root.ndim() == 1 && mu.ndim() == 1, "root and mu must be 1-D limb arrays");
        std::vector<std::vector<u64>> pv;
        for (auto& a : pairs) {
          PYIMGENC_CHECK(a.ndim() == 1, "pair constants must be 1-D limb arrays");
          pv.emplace_back(a.data(), a.data() + a.shape(0));
        }
        m.ctx->set_root(root.data(), (int)root.shape(0), mu.data(), (int)mu.shape(0), min_digits, pv);
      });
  // the native core's input check, for engines without one of their own (CUDA)
  mod.def("check_reduced", [](const PyModulus& m, Arr x, const std::string& name) {
    check_2d(x, name.c_str());
    PYIMGENC_CHECK(x.shape(1) == m.ctx->L, name + " must have as many limbs as the modulus");
    check_reduced(*m.ctx, x.data(), x.shape(0), name.c_str());
  });
  mod.def("powmod", &py_powmod, py::arg("modulus"), py::arg("bases"), py::arg("exps"), py::arg("simd"),
          py::arg("nthreads"), py::arg("secret") = false);
  mod.def("mulmod", &py_mulmod);
  mod.def("reduce", &py_reduce);
  py::class_<PyFixedBase, std::shared_ptr<PyFixedBase>>(mod, "FixedBase")
      .def(py::init(&make_fixed_base))
      .def("pow", &py_fixed_base_pow)
      .def_property_readonly("table_bytes", [](const PyFixedBase& f) { return f.t.entries.size() * 8; });
  mod.def("multiexp", &py_multiexp);
  // An uninitialised bytes object and a writable view of its storage, for building a large
  // envelope in place (one allocation, no copy). The caller fills it completely before the
  // bytes object is shared or hashed, and drops the view; this is what C code does with
  // PyBytes_FromStringAndSize(NULL, n).
  mod.def("new_bytes", [](py::ssize_t n) {
    PYIMGENC_CHECK(n >= 0, "new_bytes: negative size");
    PyObject* raw = PyBytes_FromStringAndSize(nullptr, n);
    if (raw == nullptr) throw py::error_already_set();
    py::bytes out = py::reinterpret_steal<py::bytes>(raw);
    py::memoryview view = py::memoryview::from_memory(PyBytes_AS_STRING(raw), n, /*readonly=*/false);
    return py::make_tuple(out, view);
  });
}
