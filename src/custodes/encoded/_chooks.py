"""The C backend's instrumentation points and its unencoded baseline ALU.

``E_<op>`` wraps each ALU operation of ``_calu.py``. In the production build it passes every word operand and the
result through the optimisation barrier; in the instrumented build (``-DCUSTODES_INJECT``) it calls the injection
hook at exactly those positions: count the dynamic event (the Python injector's order), record the trace, enforce
the step budget, and apply the planned fault (bit flips, a random operand, exchanged operands, another operator of
the family, a lost store, an inverted branch). ``PLAIN_ALU`` is ``PlainOps`` in C (32-bit wrapping words, no checks):
the unencoded baseline of campaigns and benchmarks.
"""

from __future__ import annotations

__all__ = ["PLAIN_ALU", "wrappers"]

_BINARY = ("add", "sub", "mul", "div", "mod", "lt", "le", "eq", "ne", "gt", "ge", "land", "lor")
_UNARY = ("mov", "neg", "lnot")
_SHIFT = ("shl", "shr")

# Injection hooks (instrumented build) and their production counterparts (barriers).
_HOOKS = r"""
/* The barriers are in both builds, at the same positions; the instrumented build adds the hook before them. */
#define OPN_1(a) OPAQUE(*(a))
#define OPN_2(a, b) do { OPAQUE(*(a)); OPAQUE(*(b)); } while (0)
#define OPN_3(a, b, c) do { OPAQUE(*(a)); OPAQUE(*(b)); OPAQUE(*(c)); } while (0)
#ifdef CUSTODES_INJECT
static int inj_fire(cx_t *cx, int64_t site, int opk) {
    if (++cx->steps > cx->budget) cx_fail(cx, ST_TIMEOUT, 0, 0, site);
    if (cx->trace) {
        if (cx->trace_len >= cx->trace_cap) cx_fail(cx, ST_TIMEOUT, 0, 0, site);
        cx->trace[cx->trace_len++] = (int32_t)site;
    }
    if (cx->model >= 0 && !cx->fired && cx->elig[opk]) {
        if (cx->seen == cx->event) { cx->fired = 1; return 1; }
        cx->seen++;
    }
    return 0;
}
static void inj_opnds(cx_t *cx, int64_t **p, int n) {
    if (cx->model == M_BITFLIP && cx->slot < n) *p[cx->slot] = WRAPW((int64_t)((uint64_t)*p[cx->slot] ^ cx->mask));
    else if (cx->model == M_RANDOM && n > 0) *p[cx->slot % n] = cx->value;
    else if (cx->model == M_EXCHANGE && n >= 2) { int64_t t = *p[n - 2]; *p[n - 2] = *p[n - 1]; *p[n - 1] = t; }
}
#define FIRE(opk) const int f_ = inj_fire(cx, site, opk)
#define OPN(n, ...) do { if (f_) { int64_t *p_[] = {__VA_ARGS__}; inj_opnds(cx, p_, n); } \
    OPN_##n(__VA_ARGS__); } while (0)
#define RES(r, n) do { if (f_ && cx->model == M_BITFLIP && cx->slot == (n)) \
    r = WRAPW((int64_t)((uint64_t)(r) ^ cx->mask)); OPAQUE(r); } while (0)
#define IS(m) (f_ && cx->model == (m))
#else
#define FIRE(opk) const int f_ = 0
#define OPN(n, ...) OPN_##n(__VA_ARGS__)
#define RES(r, n) OPAQUE(r)
#define IS(m) 0
#endif
"""

PLAIN_ALU = r"""
#define WRAPW(v) w32(v)
static inline int64_t w32(int64_t v) { return (int64_t)(int32_t)(uint32_t)(uint64_t)v; }
#define P2(name, expr) static inline int64_t alu_##name(CXA, int64_t x, int64_t bx, int64_t y, int64_t by, int64_t k) \
    { return (expr); }
P2(add, w32(x + y)) P2(sub, w32(x - y)) P2(mul, w32(x * y))
P2(lt, x < y) P2(le, x <= y) P2(eq, x == y) P2(ne, x != y) P2(gt, x > y) P2(ge, x >= y)
P2(land, x != 0 && y != 0) P2(lor, x != 0 || y != 0)
static inline int64_t alu_div(CXA, int64_t x, int64_t bx, int64_t y, int64_t by, int64_t k) {
    if (y == 0) cx_fail(cx, ST_ZERODIV, 0, W_div, site);
    return w32(fdiv64(x, y));
}
static inline int64_t alu_mod(CXA, int64_t x, int64_t bx, int64_t y, int64_t by, int64_t k) {
    if (y == 0) cx_fail(cx, ST_ZERODIV, 0, W_mod, site);
    return w32(fmod64(x, y));
}
static inline int64_t alu_enc(CXA, int64_t x, int64_t b) { return w32(x); }
static inline int64_t alu_dec(CXA, int64_t c, int64_t b) { return c; }
static inline int64_t alu_mov(CXA, int64_t x, int64_t bx, int64_t k) { return x; }
static inline int64_t alu_neg(CXA, int64_t x, int64_t bx, int64_t k) { return w32(-x); }
static inline int64_t alu_lnot(CXA, int64_t x, int64_t bx, int64_t k) { return x == 0; }
static inline int64_t alu_shl(CXA, int64_t x, int64_t bx, int64_t n, int64_t k) {
    return w32((int64_t)((uint64_t)x << (n & 63)));
}
static inline int64_t alu_shr(CXA, int64_t x, int64_t bx, int64_t n, int64_t k) {
    return x >> (n & 63);
}
static inline int64_t alu_select(CXA, int64_t c, int64_t bc, int64_t x, int64_t bx, int64_t y, int64_t by, int64_t bz) {
    return c != 0 ? x : y;
}
static inline int alu_branch(CXA, int64_t c, int64_t bc) { return c != 0; }
static inline void alu_expect(CXA, int64_t c, int64_t bc, int64_t v) { }
static inline int64_t pindex(CXA, earr *a, int64_t i, int64_t w) {
    if (i < 0) i += a->n;
    if (i < 0 || i >= a->n) cx_fail(cx, ST_INDEX, 0, w, site);
    return i;
}
static inline int64_t alu_load(CXA, earr *a, int64_t i, int64_t bi, int64_t bout) {
    int64_t word = a->w[pindex(cx, site, a, i, W_load)]; OPAQUE(word); return word;
}
static inline void alu_store(CXA, earr *a, int64_t i, int64_t bi, int64_t v, int64_t bv, int lost) {
    int64_t iv = pindex(cx, site, a, i, W_store); if (!lost) a->w[iv] = v;
}
static inline int64_t alloc_size(int64_t n, int64_t bn) { return n; }
static inline earr *alu_new_array(CXA, int64_t n, int64_t bn, int64_t fill, int64_t sig) {
    earr *a = cx_array(cx, n, sig, site);
    for (int64_t i = 0; i < a->n; i++) a->w[i] = w32(fill);
    return a;
}
static inline int64_t alu_length(CXA, earr *a, int64_t bout) { return a->n; }
static earr *alu_enc_array(cx_t *cx, const int64_t *vals, int64_t n, int64_t sig, int64_t site) {
    earr *a = cx_array(cx, n, sig, site);
    for (int64_t i = 0; i < n; i++) a->w[i] = w32(vals[i]);
    return a;
}
static void alu_dec_array(cx_t *cx, earr *a, int64_t *out, int64_t site) {
    for (int64_t i = 0; i < a->n; i++) out[i] = a->w[i];
}
"""


def wrappers() -> str:
    """``E_<op>``: the injection points (instrumented build) or optimisation barriers (production build)."""
    out = [_HOOKS, _BINOP]
    for op in _BINARY:
        out.append(
            f"static inline int64_t E_{op}(CXA, int64_t x, int64_t bx, int64_t y, int64_t by, int64_t k) {{\n"
            f"    FIRE(OPK_{op}); OPN(2, &x, &y);\n"
            f"    int64_t r = IS(M_FAULTY) ? alu_binop(cx, site, cx->alt, x, bx, y, by, k)"
            f" : alu_{op}(cx, site, x, bx, y, by, k);\n"
            "    RES(r, 2); return r;\n}"
        )
    for op in _UNARY:
        out.append(
            f"static inline int64_t E_{op}(CXA, int64_t x, int64_t bx, int64_t k) {{\n"
            f"    FIRE(OPK_{op}); OPN(1, &x);\n"
            f"    int64_t r = alu_{op}(cx, site, x, bx, k);\n    RES(r, 1); return r;\n}}"
        )
    for op in _SHIFT:
        out.append(
            f"static inline int64_t E_{op}(CXA, int64_t x, int64_t bx, int64_t n, int64_t k) {{\n"
            f"    FIRE(OPK_{op}); OPN(1, &x);\n"
            f"    int64_t r = IS(M_FAULTY) ? (cx->alt == OPK_shl ? alu_shl(cx, site, x, bx, n, k)"
            f" : alu_shr(cx, site, x, bx, n, k)) : alu_{op}(cx, site, x, bx, n, k);\n"
            "    RES(r, 1); return r;\n}"
        )
    out.append(_FIXED_WRAPPERS)
    return "\n".join(out)


_DISPATCH = "\n".join(
    f"    case OPK_{op}: return alu_{op}(cx, site, x, bx, y, by, k);" for op in ("add", "sub", "mul", "div", "mod")
) + "\n" + "\n".join(
    f"    case OPK_{op}: return alu_{op}(cx, site, x, bx, y, by, k);"
    for op in ("lt", "le", "eq", "ne", "gt", "ge", "land", "lor")
)

_BINOP = (
    "__attribute__((unused)) static int64_t alu_binop(CXA, int64_t opk, int64_t x, int64_t bx, int64_t y, "
    "int64_t by, int64_t k) {\n    switch (opk) {\n"
    + _DISPATCH
    + "\n    }\n    cx_fail(cx, ST_CRASH, 0, 0, site);\n}\n"
)
_FIXED_WRAPPERS = (
    r"""
static inline int64_t E_enc(CXA, int64_t x, int64_t b) {
    FIRE(OPK_enc); int64_t r = alu_enc(cx, site, x, b); RES(r, 0); return r;
}
static inline int64_t E_dec(CXA, int64_t c, int64_t b) {
    FIRE(OPK_dec); OPN(1, &c); return alu_dec(cx, site, c, b);
}
static inline int64_t E_select(CXA, int64_t c, int64_t bc, int64_t x, int64_t bx, int64_t y, int64_t by, int64_t bz) {
    FIRE(OPK_select); OPN(3, &c, &x, &y);
    int64_t r = alu_select(cx, site, c, bc, x, bx, y, by, bz); RES(r, 3); return r;
}
static inline int E_branch(CXA, int64_t c, int64_t bc) {
    FIRE(OPK_branch); OPN(1, &c);
    int r = alu_branch(cx, site, c, bc);
    return IS(M_WRONG) ? !r : r;
}
static inline void E_expect(CXA, int64_t c, int64_t bc, int64_t v) {
    FIRE(OPK_expect); OPN(1, &c); alu_expect(cx, site, c, bc, v);
}
static inline int64_t E_load(CXA, earr *a, int64_t i, int64_t bi, int64_t bout) {
    FIRE(OPK_load); OPN(1, &i); int64_t r = alu_load(cx, site, a, i, bi, bout); RES(r, 1); return r;
}
static inline void E_store(CXA, earr *a, int64_t i, int64_t bi, int64_t v, int64_t bv) {
    FIRE(OPK_store); OPN(2, &i, &v); alu_store(cx, site, a, i, bi, v, bv, IS(M_LOST));
}
static inline earr *E_new_array(CXA, int64_t n, int64_t bn, int64_t fill, int64_t sig) {
    FIRE(OPK_new_array); OPN(1, &n);
#ifdef CUSTODES_INJECT
    int64_t size = alloc_size(n, bn);
    if (size > (INT64_C(1) << 24)) cx_fail(cx, ST_CRASH, 0, W_new_array, site);
    cx->steps += size > 0 ? size : 0;
    if (cx->steps > cx->budget) cx_fail(cx, ST_TIMEOUT, 0, W_new_array, site);
#endif
    return alu_new_array(cx, site, n, bn, fill, sig);
}
static inline int64_t E_length(CXA, earr *a, int64_t bout) {
    FIRE(OPK_length); int64_t r = alu_length(cx, site, a, bout); RES(r, 0); return r;
}
"""
)
