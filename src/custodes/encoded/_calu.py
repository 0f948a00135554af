"""The C99 runtime of the compiled backend: context, memory, failure, and the encoded ALU.

The generated function body (``_cgen.py``) calls one ``E_<op>`` wrapper per ALU call of the ALU-call form, with
the same signatures and correction constants. Each wrapper runs the ALU operation, which is a line-by-line port of
``EncodedOps(checks="deferred")`` on signed 64-bit words, with ``__int128`` for the product and the range tests.
Every word operand and every result passes through an empty ``asm volatile`` barrier (``OPAQUE``): the compiler
must treat the value as unknown, so no check on it can be folded away. The instrumented build
(``-DCUSTODES_INJECT``) runs the injection hook, which may change the value, just before each barrier: both builds
compile the same checks on values the optimiser cannot see through. A failed check stores status, reason, op and
site in the context and ``longjmp``s back to the entry point, which returns the status to the Python wrapper
(fail-stop, no unwinding through Python). The wrappers, the injection hooks and the plain baseline ALU (``PlainOps``
in C) are in ``_chooks.py``.
"""

from __future__ import annotations

from custodes.encoded._chooks import PLAIN_ALU

__all__ = ["OPS", "REASONS", "STATUS", "WHERE", "alu_header", "runtime"]

#: ALU operations, in the order of their ``OPK_`` numbers (the injection plan refers to them by number).
OPS: tuple[str, ...] = (
    "add", "sub", "mul", "div", "mod", "lt", "le", "eq", "ne", "gt", "ge", "land", "lor",
    "mov", "neg", "lnot", "shl", "shr", "enc", "dec", "select", "branch", "expect",
    "load", "store", "new_array", "length",
)  # fmt: skip
#: The ``where`` of a FaultDetectedError, as the Python ALU names it.
WHERE: tuple[str, ...] = (*OPS, "check")
REASONS: tuple[str, ...] = ("", "RESIDUE", "RANGE", "VERSION", "CONTROL_FLOW", "VERIFY")
STATUS: tuple[str, ...] = ("OK", "FAULT", "OVERFLOW", "ZERODIV", "INDEX", "NOMEM", "TIMEOUT", "CRASH", "UNBOUND")


_RUNTIME = r"""
#include <stdint.h>
#include <stdlib.h>
#include <setjmp.h>

typedef __int128 i128;
typedef struct cx {
    int64_t status, reason, where, site;
    int64_t ret_kind, ret_val, ret_len, wb_done;
    int64_t *ret_words;
    int64_t model, event, slot, value, alt, fired;
    uint64_t mask;
    int64_t budget, steps, seen, trace_cap, trace_len;
    int32_t *trace;
    const int8_t *elig;
    void *jb;
    void *allocs;
} cx_t;
typedef struct { int64_t *w; int64_t *v; int64_t sig; int64_t n; } earr;
typedef struct anode { struct anode *next; int64_t pad; } anode;

#define NORET __attribute__((noreturn, noinline, cold))
#define CXA cx_t *cx, int64_t site
enum { ST_OK, ST_FAULT, ST_OVERFLOW, ST_ZERODIV, ST_INDEX, ST_NOMEM, ST_TIMEOUT, ST_CRASH, ST_UNBOUND };
enum { R_NONE, R_RESIDUE, R_RANGE, R_VERSION, R_CONTROL_FLOW, R_VERIFY };
enum { M_BITFLIP, M_RANDOM, M_EXCHANGE, M_FAULTY, M_LOST, M_WRONG };

static NORET void cx_fail(cx_t *cx, int64_t st, int64_t reason, int64_t where, int64_t site) {
    cx->status = st; cx->reason = reason; cx->where = where; cx->site = site;
    longjmp(*(jmp_buf *)cx->jb, 1);
}
static void *cx_alloc(cx_t *cx, int64_t words, int64_t site) {
    if (words < 0 || words > (INT64_C(1) << 40)) cx_fail(cx, ST_NOMEM, 0, 0, site);
    anode *a = malloc(sizeof(anode) + (size_t)words * sizeof(int64_t));
    if (!a) cx_fail(cx, ST_NOMEM, 0, 0, site);
    a->next = cx->allocs; cx->allocs = a;
    return (void *)(a + 1);
}
void custodes_release(cx_t *cx) {
    anode *a = cx->allocs;
    while (a) { anode *n = a->next; free(a); a = n; }
    cx->allocs = 0;
}
int64_t custodes_ctx_size(void) { return (int64_t)sizeof(cx_t); }
static inline int64_t wadd(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
static inline int64_t wsub(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }
static inline int64_t fdiv64(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}
static inline int64_t fmod64(int64_t a, int64_t b) { return a - fdiv64(a, b) * b; }
static earr *cx_array(cx_t *cx, int64_t n, int64_t sig, int64_t site) {
    if (n < 0) n = 0;
    earr *a = cx_alloc(cx, 4 + 2 * n, site);
    a->w = (int64_t *)(a + 1); a->v = a->w + n; a->sig = sig; a->n = n;
    for (int64_t i = 0; i < n; i++) a->v[i] = 0;
    return a;
}
#ifdef CUSTODES_PLAIN  /* the unencoded baseline is ordinary code: the compiler may fold it freely */
#define OPAQUE(v) ((void)0)
#else
#define OPAQUE(v) __asm__ __volatile__("" : "+r"(v))
#endif
#define PASS(c) (c)  /* every check condition; benchmarks/encoded.py rewrites this line in a measurement copy */
"""

_ENCODED_ALU = r"""
/* An injected word is an NBITS_-bit word (the Python injector's width), sign-extended into its register */
#define WRAPW(v) wrapn(v)
static inline int64_t wrapn(int64_t v) {
    if (NBITS_ >= 64) return v;
    uint64_t h = UINT64_C(1) << ((NBITS_ - 1) & 63);
    return (int64_t)((((uint64_t)v + h) & ((h << 1) - 1)) - h);
}
static inline int64_t pmod(int64_t a) { int64_t r = a % A_; return r < 0 ? r + A_ : r; }
/* (x - b) mod A != 0, on the signed value, without a 128-bit division */
static inline int cres(int64_t x, int64_t b) { return (x % A_ - b % A_) % A_ != 0; }
static inline int crng(int64_t x, int64_t b) { i128 u = (i128)x - b; return u >= LO_ && u <= HI_; }
/* Valid word (residue and range) and its value, by one multiplication (Kolditz et al.): w = x - b as an n-bit
   word, t = w * A^-1 mod 2^64 lies in [KMIN, KMAX] iff w = A*t. Exact: when x - b wraps, |w| > 2^63 - A > HI. */
static inline int fastok(int64_t x, int64_t b, int64_t *t) {
    *t = (int64_t)(((uint64_t)x - (uint64_t)b) * AINV_);
    return PASS(*t >= KMIN64_ && *t <= KMAX64_);
}
static inline int cok(int64_t x, int64_t b) { int64_t t; return fastok(x, b, &t); }
/* z - off within [LO, HI], on wrapping words (LO + off and HI + off fit: off is a small signature term) */
static inline int inrange(int64_t z, int64_t off) {
    return PASS((uint64_t)z - (uint64_t)(LO64_ + off) <= (uint64_t)(HI64_ - LO64_));
}
/* (x - b) / A, exact for a word with a zero residue */
static inline int64_t equot(int64_t x, int64_t b) { return x / A_ + (x % A_ - b) / A_; }
static NORET void efault(CXA, int64_t x, int64_t b, int64_t where) {
    cx_fail(cx, ST_FAULT, cres(x, b) ? R_RESIDUE : R_RANGE, where, site);
}
static inline void eoperand(CXA, int64_t x, int64_t b, int64_t where) { if (!cok(x, b)) efault(cx, site, x, b, where); }
#define OVERFLOW(where) cx_fail(cx, ST_OVERFLOW, 0, where, site)

static inline int64_t alu_enc(CXA, int64_t x, int64_t b) { return A_ * x + b * S_; }
static inline int64_t alu_dec(CXA, int64_t c, int64_t b) {
    int64_t t;
    if (!fastok(c, b, &t)) efault(cx, site, c, b, W_check);
    return t;
}
static inline int64_t alu_mov(CXA, int64_t x, int64_t bx, int64_t k) { return wadd(x, k); }
static inline int64_t additive(CXA, int64_t z, int64_t off, int64_t x, int64_t bx, int64_t y, int64_t by, int n,
                               int64_t w) {
    if (__builtin_expect(!inrange(z, off), 0)) {
        eoperand(cx, site, x, bx, w);
        if (n > 1) eoperand(cx, site, y, by, w);
        OVERFLOW(w);
    }
    return z;
}
static inline int64_t alu_add(CXA, int64_t x, int64_t bx, int64_t y, int64_t by, int64_t k) {
    return wadd(additive(cx, site, wadd(x, y), bx + by, x, bx, y, by, 2, W_add), k);
}
static inline int64_t alu_sub(CXA, int64_t x, int64_t bx, int64_t y, int64_t by, int64_t k) {
    return wadd(additive(cx, site, wsub(x, y), bx - by, x, bx, y, by, 2, W_sub), k);
}
static inline int64_t alu_neg(CXA, int64_t x, int64_t bx, int64_t k) {
    return wadd(additive(cx, site, wsub(0, x), -bx, x, bx, 0, 0, 1, W_neg), k);
}
static inline int64_t alu_mul(CXA, int64_t x, int64_t bx, int64_t y, int64_t by, int64_t k) {
    int64_t tx, ty;
    if (__builtin_expect(fastok(x, bx, &tx) & fastok(y, by, &ty), 1)) {
        i128 q = (i128)tx * ty;     /* (A^2 x y) / A = A x y: the 128-bit intermediate */
        if (__builtin_expect(q >= KMIN_ && q <= KMAX_, 1)) return A_ * (int64_t)q + pmod(bx * by) * S_ + k;
    }
    /* slow path: the exact port of EncodedOps.mul (residues only; diagnosis as in Python) */
    int rx = cres(x, bx), ry = cres(y, by);
    if (rx | ry) {
        if (rx || !crng(x, bx)) efault(cx, site, x, bx, W_mul);
        efault(cx, site, y, by, W_mul);
    }
    i128 p = (i128)equot(x, bx) * equot(y, by);     /* the 128-bit intermediate: (A^2 x y) / A = A x y */
    if (p < KMIN_ || p > KMAX_) { eoperand(cx, site, x, bx, W_mul); eoperand(cx, site, y, by, W_mul); OVERFLOW(W_mul); }
    return A_ * (int64_t)p + pmod(bx * by) * S_ + k;
}
static inline void edivmod(CXA, int64_t x, int64_t bx, int64_t y, int64_t by, int64_t w, int64_t *qo, int64_t *ro) {
    int64_t xv, yv;
    int okx = fastok(x, bx, &xv), oky = fastok(y, by, &yv);
    if (!(okx & oky)) {
        if (!okx) efault(cx, site, x, bx, w);
        efault(cx, site, y, by, w);
    }
    if (yv == 0) cx_fail(cx, ST_ZERODIV, 0, w, site);
    int64_t q = fdiv64(xv, yv), r = xv - q * yv;
    /* multiply-back check in the code domain */
    if (!PASS(A_ * (q * yv + r) == wsub(x, bx) && (yv > 0 ? (0 <= r && r < yv) : (yv < r && r <= 0))))
        cx_fail(cx, ST_FAULT, R_VERIFY, w, site);
    *qo = q; *ro = r;
}
static inline int64_t alu_div(CXA, int64_t x, int64_t bx, int64_t y, int64_t by, int64_t k) {
    int64_t q, r;
    edivmod(cx, site, x, bx, y, by, W_div, &q, &r);
    if (q < KMIN_ || q > KMAX_) OVERFLOW(W_div);
    return A_ * q + pmod(bx + 2 * by + 11) * S_ + k;
}
static inline int64_t alu_mod(CXA, int64_t x, int64_t bx, int64_t y, int64_t by, int64_t k) {
    int64_t q, r;
    edivmod(cx, site, x, bx, y, by, W_mod, &q, &r);
    return A_ * r + pmod(2 * bx + by + 13) * S_ + k;
}
static inline int64_t alu_shl(CXA, int64_t x, int64_t bx, int64_t n, int64_t k) {
    /* the exact product, range-checked before it could wrap (a wrapped word may land in range: Python's exact
       check). |x - bx| < 2^64, so a shift by at most 62 fits i128; a larger shift is in range only for 0, too. */
    i128 z = ((i128)x - bx) * ((i128)1 << (n < 0 ? 0 : (n > 62 ? 62 : n)));
    if (!PASS(z >= LO_ && z <= HI_)) { eoperand(cx, site, x, bx, W_shl); OVERFLOW(W_shl); }
    return (int64_t)z + pmod(bx + 1009) * S_ + k;
}
static inline int64_t alu_shr(CXA, int64_t x, int64_t bx, int64_t n, int64_t k) {
    int64_t xv;
    if (!fastok(x, bx, &xv)) efault(cx, site, x, bx, W_shr);
    int64_t q = xv >> (n & 63), rem = xv - q * (INT64_C(1) << (n & 63));
    if (!PASS(0 <= rem && rem < (INT64_C(1) << (n & 63)))) cx_fail(cx, ST_FAULT, R_VERIFY, W_shr, site);
    return A_ * q + pmod(bx + 1103) * S_ + k;
}
/* deferred comparison: the checked n-bit difference decides */
static inline int64_t ediff(CXA, int64_t x, int64_t bx, int64_t y, int64_t by, int64_t w) {
    int64_t zw = wsub(x, y), off = bx - by, dw, t;
    /* d = (x - y) - off must be A*t with |t| <= KMAX - KMIN; sign(d) = sign(t) */
    int bad = __builtin_sub_overflow(zw, off, &dw);
    t = (int64_t)((uint64_t)dw * AINV_);
    if (__builtin_expect(!PASS(!(bad || t < KMIN64_ - KMAX64_ || t > KMAX64_ - KMIN64_)), 0)) {
        eoperand(cx, site, x, bx, w); eoperand(cx, site, y, by, w);
        cx_fail(cx, ST_FAULT, R_RESIDUE, w, site);
    }
    return t;
}
#define CMP(name, test, salt) \
static inline int64_t alu_##name(CXA, int64_t x, int64_t bx, int64_t y, int64_t by, int64_t k) { \
    int64_t d = ediff(cx, site, x, bx, y, by, W_##name); \
    return ((test) ? A_ : 0) + pmod(bx + 2 * by + salt) * S_ + k; }
CMP(lt, d < 0, 101) CMP(le, d <= 0, 211) CMP(eq, d == 0, 307)
CMP(ne, d != 0, 401) CMP(gt, d > 0, 503) CMP(ge, d >= 0, 601)
static inline void ebools(CXA, int64_t x, int64_t bx, int64_t y, int64_t by, int64_t w) {
    if (!PASS((x == bx || x == bx + A_) && (y == by || y == by + A_))) cx_fail(cx, ST_FAULT, R_RESIDUE, w, site);
}
static inline int64_t alu_land(CXA, int64_t x, int64_t bx, int64_t y, int64_t by, int64_t k) {
    ebools(cx, site, x, bx, y, by, W_land);
    return ((x - bx) * (y - by)) / A_ + pmod(bx + 2 * by + 701) * S_ + k;
}
static inline int64_t alu_lor(CXA, int64_t x, int64_t bx, int64_t y, int64_t by, int64_t k) {
    ebools(cx, site, x, bx, y, by, W_lor);
    int64_t u = x - bx, w = y - by;
    return u + w - (u * w) / A_ + pmod(bx + 2 * by + 809) * S_ + k;
}
static inline int64_t alu_lnot(CXA, int64_t x, int64_t bx, int64_t k) {
    ebools(cx, site, x, bx, bx, bx, W_lnot);
    return A_ - (x - bx) + pmod(bx + 907) * S_ + k;
}
static inline int64_t alu_select(CXA, int64_t c, int64_t bc, int64_t x, int64_t bx, int64_t y, int64_t by, int64_t bz) {
    ebools(cx, site, c, bc, c, bc, W_select);
    return wadd(c != bc ? wsub(x, bx) : wsub(y, by), bz);
}
static inline int alu_branch(CXA, int64_t c, int64_t bc) {
    if (c == A_ + bc) return 1;
    if (PASS(c == bc)) return 0;
    cx_fail(cx, ST_FAULT, R_RESIDUE, W_branch, site);
}
static inline void alu_expect(CXA, int64_t c, int64_t bc, int64_t v) {
    if (!PASS(c == A_ * v + bc)) cx_fail(cx, ST_FAULT, R_CONTROL_FLOW, W_branch, site);
}
static NORET void eload_fault(CXA, int64_t word, int64_t s) {
    i128 u = (i128)word - s;
    int stale = VERS_ && (u + 1) % A_ == 0;
    cx_fail(cx, ST_FAULT, stale ? R_VERSION : R_RESIDUE, W_load, site);
}
static inline int64_t eindex(CXA, earr *a, int64_t i, int64_t bi, int64_t w) {
    int64_t iv;
    if (!fastok(i, bi, &iv)) efault(cx, site, i, bi, w);
    if (iv < 0) iv += a->n;
    if (iv < 0 || iv >= a->n) cx_fail(cx, ST_INDEX, 0, w, site);
    return iv;
}
static inline int64_t alu_load(CXA, earr *a, int64_t i, int64_t bi, int64_t bout) {
    int64_t iv = eindex(cx, site, a, i, bi, W_load);
    int64_t word = a->w[iv], s = a->sig + a->v[iv];
    OPAQUE(word);
    int64_t t;
    if (!fastok(word, s, &t)) eload_fault(cx, site, word, s);
    return word - s + bout;
}
static inline void alu_store(CXA, earr *a, int64_t i, int64_t bi, int64_t v, int64_t bv, int lost) {
    int64_t iv = eindex(cx, site, a, i, bi, W_store);
    if (!cok(v, bv)) efault(cx, site, v, bv, W_store);
    int64_t d = 0;
    if (VERS_) { d = (a->v[iv] + 1) % A_; a->v[iv] = d; }
    if (!lost) a->w[iv] = v - bv + a->sig + d;
}
static inline int64_t alloc_size(int64_t n, int64_t bn) {
    i128 u = (i128)n - bn;
    return (u % A_ == 0) ? (int64_t)(u / A_) : 0;
}
static inline earr *alu_new_array(CXA, int64_t n, int64_t bn, int64_t fill, int64_t sig) {
    if (!cok(n, bn)) efault(cx, site, n, bn, W_new_array);
    earr *a = cx_array(cx, equot(n, bn), sig, site);
    int64_t word = A_ * fill + sig;
    for (int64_t i = 0; i < a->n; i++) a->w[i] = word;
    return a;
}
static inline int64_t alu_length(CXA, earr *a, int64_t bout) { return A_ * a->n + bout; }
static earr *alu_enc_array(cx_t *cx, const int64_t *vals, int64_t n, int64_t sig, int64_t site) {
    earr *a = cx_array(cx, n, sig, site);
    for (int64_t i = 0; i < n; i++) a->w[i] = A_ * vals[i] + sig;
    return a;
}
static void alu_dec_array(cx_t *cx, earr *a, int64_t *out, int64_t site) {
    for (int64_t i = 0; i < a->n; i++) {
        int64_t word = a->w[i], s = a->sig + a->v[i];
        if (!cok(word, s)) eload_fault(cx, site, word, s);
        out[i] = equot(word, s);
    }
}
"""


def alu_header(A: int, kmin: int, kmax: int, signed: bool, versioned: bool, *, plain: bool, nbits: int = 64) -> str:
    """Constants, op and where numbers, and the ALU (encoded or plain) for one code.

    Words live in int64 registers for every ``nbits``: valid words of a narrower code are the same values, and
    every operation range-checks its exact result, as the Python ALU does. ``nbits`` is the width the injector
    corrupts (a flipped or random word is sign-extended from bit ``nbits - 1``, as ``faults.Injector`` does).
    """
    lines = [f"#define OPK_{op} {i}" for i, op in enumerate(OPS)]
    lines += [f"#define W_{w} {i}" for i, w in enumerate(WHERE)]
    if plain:
        return "\n".join(lines) + "\n" + PLAIN_ALU
    lines += [
        f"#define A_ INT64_C({A})",
        f"#define NBITS_ {nbits}",
        f"#define S_ {1 if signed else 0}",
        f"#define VERS_ {1 if versioned else 0}",
        f"#define KMIN_ ((i128)INT64_C({kmin}))",
        f"#define KMAX_ ((i128)INT64_C({kmax}))",
        f"#define LO_ ((i128)INT64_C({A * kmin}))",
        f"#define HI_ ((i128)INT64_C({A * kmax}))",
        f"#define LO64_ INT64_C({A * kmin})",
        f"#define HI64_ INT64_C({A * kmax})",
        f"#define KMIN64_ INT64_C({kmin})",
        f"#define KMAX64_ INT64_C({kmax})",
        f"#define AINV_ UINT64_C({pow(A, -1, 1 << 64)})",
    ]
    return "\n".join(lines) + "\n" + _ENCODED_ALU


def runtime() -> str:
    """The context, allocation and failure machinery (shared by both ALUs)."""
    return _RUNTIME
