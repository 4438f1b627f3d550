"""Generate csrc/cpu/adx_kernels.{hpp,cpp}: x86-64 BMI2/ADX Montgomery kernels for fixed limb counts.

    python csrc/cpu/gen_adx_kernels.py            # rewrite both files
    python csrc/cpu/gen_adx_kernels.py --check    # exit 1 if the committed files are stale

One row of a schoolbook product or of a Montgomery reduction, ``T[0..L] += x * B[0..L-1]``,
is L blocks of ``mulx`` (x in rdx) with two independent carry chains: the low halves go
through ``adcx`` (CF) into T, the high halves through ``adox`` (OF) into the next block.
Rows are unrolled completely (the inner loop); the row loop stays a loop. Squarings of up
to 32 limbs are unrolled completely (triangle of off-diagonal products, then one pass that
doubles and adds the diagonal). No branch or address depends on the data: the final
subtraction of the reduction is selected with ``cmov``.

Functions (SysV ABI, every one takes a trailing ``long L`` it ignores, so the C++ side can
hold the fixed kernels and the generic ones behind one signature):

    void     pyimgenc_adx_mul<L>(u64 t[2L], const u64 a[L], const u64 b[L], long)   t = a*b
    void     pyimgenc_adx_sqr<L>(u64 t[2L], const u64 a[L], long)                    t = a*a
    uint64_t pyimgenc_adx_redc<L>(u64 r[L], u64 t[2L], const u64 n[L], u64 n0, long)
        r = t * 2^(-64L) mod n fully reduced, for t < n 2^(64L); t[0..L) receives the quotient
        digits m (t + m n = (r + s n) 2^(64L)); returns s, 1 when n was subtracted.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

MUL_SIZES = (8, 12, 16, 24, 32, 48, 64, 96, 128)   # rows loop: code grows with L
SQR_SIZES = (8, 12, 16, 24, 32)           # fully unrolled: code grows with L^2 / 2
HERE = pathlib.Path(__file__).parent
GUARD = "defined(__x86_64__) && defined(__ELF__) && !defined(PYIMGENC_NO_ADX)"


def fn(name: str, body: list[str]) -> list[str]:
    # endbr64: the kernels are called through function pointers, and the object may be marked
    # IBT-compatible (-fcf-protection); it is a no-op on CPUs without CET
    return ["", f".globl {name}", f".hidden {name}", f".type {name}, @function", ".p2align 5",
            f"{name}:", "\t.cfi_startproc", "\tendbr64", *("\t" + line for line in body),
            "\t.cfi_endproc", f".size {name}, .-{name}"]


def row(B: str, T: str, L: int, boff: int = 0, toff: int = 0) -> list[str]:
    """T[toff..toff+L) += rdx * B[boff..boff+L) with carries left in CF/OF; returns code whose
    last high half is in the register named by the final element's comment."""
    out = []
    hi = ("%r10", "%r11")
    for j in range(L):
        h = hi[j % 2]
        out.append(f"mulx {8 * (boff + j)}({B}), %r9, {h}")
        if j:
            out.append(f"adox {hi[(j - 1) % 2]}, %r9")
        out.append(f"adcx {8 * (toff + j)}({T}), %r9")
        out.append(f"mov %r9, {8 * (toff + j)}({T})")
    return out


def last_hi(L: int) -> str:
    return ("%r10", "%r11")[(L - 1) % 2]


def gen_mul(L: int) -> list[str]:
    # rdi = t, rsi = a, rdx = b; row i accumulates a[i] * b into t[i..i+L) and writes t[i+L]
    body = ["mov %rdx, %rcx", "xor %eax, %eax"]
    body += [f"mov %rax, {8 * j}(%rdi)" for j in range(L)]
    body += [f"mov ${L}, %r8d", "1:", "mov (%rsi), %rdx", "xor %eax, %eax"]
    body += row("%rcx", "%rdi", L)
    h = last_hi(L)
    body += [f"adox %rax, {h}", f"adcx %rax, {h}", f"mov {h}, {8 * L}(%rdi)",
             "lea 8(%rsi), %rsi", "lea 8(%rdi), %rdi", "dec %r8d", "jnz 1b", "ret"]
    return fn(f"pyimgenc_adx_mul{L}", body)


def gen_sqr(L: int) -> list[str]:
    # rdi = t, rsi = a.  Off-diagonal triangle: row i adds a[i] * a[i+1..L) at t[2i+1..),
    # writing t[i+L]; then t = 2 t + sum a[i]^2 2^(128 i) in one pass (two carry chains).
    body = ["xor %eax, %eax"]
    body += [f"mov %rax, {8 * j}(%rdi)" for j in range(L)]
    body.append(f"mov %rax, {8 * (2 * L - 1)}(%rdi)")
    for i in range(L - 1):
        n = L - 1 - i
        body += [f"mov {8 * i}(%rsi), %rdx", "xor %eax, %eax"]
        body += row("%rsi", "%rdi", n, boff=i + 1, toff=2 * i + 1)
        h = last_hi(n)
        body += [f"adox %rax, {h}", f"adcx %rax, {h}", f"mov {h}, {8 * (i + L)}(%rdi)"]
    body.append("xor %eax, %eax")
    for i in range(L):
        body += [f"mov {8 * i}(%rsi), %rdx", "mulx %rdx, %r9, %r10",
                 f"mov {16 * i}(%rdi), %r8", f"mov {16 * i + 8}(%rdi), %r11",
                 "adox %r8, %r8", "adox %r11, %r11", "adcx %r9, %r8", "adcx %r10, %r11",
                 f"mov %r8, {16 * i}(%rdi)", f"mov %r11, {16 * i + 8}(%rdi)"]
    body.append("ret")
    return fn(f"pyimgenc_adx_sqr{L}", body)


def gen_redc(L: int) -> list[str]:
    # rdi = r, rsi = t, rdx = n, rcx = n0.  r12: carry pending into t[i+L+1]; r13: rows left.
    body = ["push %r12", "\t.cfi_adjust_cfa_offset 8", "\t.cfi_offset %r12, -16",
            "push %r13", "\t.cfi_adjust_cfa_offset 8", "\t.cfi_offset %r13, -24",
            "mov %rcx, %r8", "mov %rdx, %rcx", "xor %r12d, %r12d", f"mov ${L}, %r13d",
            "1:", "mov (%rsi), %rdx", "imul %r8, %rdx", "xor %eax, %eax"]
    r = row("%rcx", "%rsi", L)
    # block 0 leaves t[0] == 0; keep the quotient digit m there instead
    r[2:3] = ["mov %rdx, 0(%rsi)"]
    body += r
    h = last_hi(L)
    body += [f"adox %rax, {h}",            # h + OF: no overflow (a high half is <= 2^64 - 2)
             f"adcx %r12, {h}",            # + pending carry + CF
             "mov $0, %r12d", "adcx %rax, %r12",
             f"add {h}, {8 * L}(%rsi)", "adc %rax, %r12",
             "lea 8(%rsi), %rsi", "dec %r13d", "jnz 1b"]
    # rsi = t + L: candidate d = t[L..2L) - n into r, select with cmov
    body += ["mov 0(%rsi), %rax", "sub 0(%rcx), %rax", "mov %rax, 0(%rdi)"]
    for j in range(1, L):
        body += [f"mov {8 * j}(%rsi), %rax", f"sbb {8 * j}(%rcx), %rax", f"mov %rax, {8 * j}(%rdi)"]
    body += ["mov $0, %eax", "setnc %al", "or %r12d, %eax", "test %eax, %eax"]
    for j in range(L):
        body += [f"mov {8 * j}(%rdi), %rdx", f"cmovz {8 * j}(%rsi), %rdx", f"mov %rdx, {8 * j}(%rdi)"]
    body += ["pop %r13", "\t.cfi_adjust_cfa_offset -8", "pop %r12", "\t.cfi_adjust_cfa_offset -8",
             "ret"]
    return fn(f"pyimgenc_adx_redc{L}", body)


def render() -> dict[str, str]:
    asm = [".pushsection .text"]
    for L in MUL_SIZES:
        asm += gen_mul(L) + gen_redc(L)
    for L in SQR_SIZES:
        asm += gen_sqr(L)
    asm += [".popsection"]
    decl = []
    for L in MUL_SIZES:
        decl.append(f"void pyimgenc_adx_mul{L}(u64* t, const u64* a, const u64* b, long L);")
        decl.append(f"u64 pyimgenc_adx_redc{L}(u64* r, u64* t, const u64* n, u64 n0, long L);")
    for L in SQR_SIZES:
        decl.append(f"void pyimgenc_adx_sqr{L}(u64* t, const u64* a, long L);")
    head = "// GENERATED by csrc/cpu/gen_adx_kernels.py -- do not edit; run the generator instead."
    hpp = "\n".join([
        head,
        "// x86-64 BMI2 + ADX (mulx, adcx, adox) Montgomery kernels for fixed limb counts;",
        "// contract in kernels.hpp.  Only built for x86-64 ELF targets.",
        "#pragma once",
        '#include "kernels.hpp"',
        "",
        f"#if {GUARD}",
        "#define PYIMGENC_HAVE_ADX_KERNELS 1",
        "#else",
        "#define PYIMGENC_HAVE_ADX_KERNELS 0",
        "#endif",
        "",
        "#if PYIMGENC_HAVE_ADX_KERNELS",
        'extern "C" {',
        "using pyimgenc::u64;",
        *decl,
        "}",
        "#endif",
        "",
    ])
    cpp = "\n".join([
        head,
        '#include "adx_kernels.hpp"',
        "",
        "#if PYIMGENC_HAVE_ADX_KERNELS",
        "__asm__(R\"ASM(",
        *asm,
        ")ASM\");",
        "#endif",
        "",
    ])
    return {"adx_kernels.hpp": hpp, "adx_kernels.cpp": cpp}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="fail if the committed files differ")
    args = p.parse_args()
    stale = []
    for name, text in render().items():
        path = HERE / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale: {', '.join(stale)}: run python {pathlib.Path(__file__).name}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
