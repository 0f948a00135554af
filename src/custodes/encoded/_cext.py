"""The fast call path of the compiled backend: a generated ``METH_FASTCALL`` CPython extension per kernel.

A ctypes call costs about 1-1.8 us and the Python-side argument checks as much again, several times a small
kernel's plain Python time. The extension does that work in C, in the same translation unit as the kernel:

* Each int argument must be an ``int`` (``PyLong_Check``, as ``isinstance(v, int)``) within the code's functional
  range; each list argument must be a ``list`` of such ints. It is read into an int64 buffer and passed to
  ``custodes_call``, the same entry the ctypes path calls.
* **Anything else goes to the checked Python path** (``CKernel._slow_call``): a wrong argument count, another type
  (an iterable, a float), a value out of range. That path raises exactly what it raised before
  (``EncodedRangeError``, ``TypeError``) or runs the call, so the fast path adds no behaviour of its own.
* After the call, list arguments whose write-back completed are written back in parameter order (new ints, same
  length), then an error status is raised by ``CKernel._raise`` (the same exception, reason and ``where`` as the
  Python form), else the result is decoded by its kind (int, bool, list, None).

The kernel's checks, barriers and fail-stop behaviour are those of the C translation unit; this file adds only
argument marshalling. It is built only for the production build of an encoded kernel (not the instrumented or the
plain baseline build, which keep ctypes).
"""

from __future__ import annotations

from custodes.encoded._cgen import CFunction

__all__ = ["PREAMBLE", "extension_source", "module_name"]

#: Must precede every standard header of the translation unit (CPython's rule for ``Python.h``).
PREAMBLE = "#define PY_SSIZE_T_CLEAN\n#include <Python.h>\n"

_COMMON = r"""
/* ---- fast call path (CPython extension) ---- */
#define FP_SMALL 64
/* shared: the buffer of an earlier parameter to which the caller passed the same list (not owned) */
typedef struct { int64_t *p; int64_t n; int shared; int64_t local[FP_SMALL]; } fp_buf;
static void fp_free(fp_buf *b) { if (b->p && !b->shared && b->p != b->local) PyMem_Free(b->p); b->p = 0; }
static void fp_share(fp_buf *b, const fp_buf *from) { b->p = from->p; b->n = from->n; b->shared = 1; }
/* 1: read; 0: not a list of in-range ints (the caller takes the slow path); -1: error set */
static int fp_list(PyObject *o, fp_buf *b, int64_t lo, int64_t hi) {
    if (!PyList_CheckExact(o)) return 0;
    Py_ssize_t n = PyList_GET_SIZE(o);
    b->n = (int64_t)n;
    b->p = n <= FP_SMALL ? b->local : PyMem_Malloc((size_t)n * sizeof(int64_t));
    if (!b->p) { PyErr_NoMemory(); return -1; }
    for (Py_ssize_t j = 0; j < n; j++) {
        PyObject *item = PyList_GET_ITEM(o, j);
        int overflow = 0;
        long long v;
        if (!PyLong_Check(item)) { fp_free(b); return 0; }
        v = PyLong_AsLongLongAndOverflow(item, &overflow);
        if (overflow || v < lo || v > hi) { fp_free(b); return 0; }
        b->p[j] = (int64_t)v;
    }
    return 1;
}
/* 1: read; 0: slow path */
static int fp_int(PyObject *o, int64_t *out, int64_t lo, int64_t hi) {
    int overflow = 0;
    long long v;
    if (!PyLong_Check(o)) return 0;
    v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow || v < lo || v > hi) return 0;
    *out = (int64_t)v;
    return 1;
}
static int fp_writeback(PyObject *list, const fp_buf *b) {
    if (PyList_GET_SIZE(list) != b->n) {
        PyErr_SetString(PyExc_RuntimeError, "list argument changed size during the call");
        return -1;
    }
    for (int64_t j = 0; j < b->n; j++) {
        PyObject *v = PyLong_FromLongLong((long long)b->p[j]);
        if (!v || PyList_SetItem(list, (Py_ssize_t)j, v) < 0) return -1;
    }
    return 0;
}
static PyObject *fp_result(const int64_t *out, int64_t value) {
    switch (out[1]) {
    case 1: return PyLong_FromLongLong((long long)value);
    case 2: return PyBool_FromLong(value != 0);
    case 3: {
        int64_t *words = (int64_t *)(intptr_t)out[5];
        PyObject *list = PyList_New((Py_ssize_t)out[6]);
        for (int64_t j = 0; list && j < out[6]; j++) {
            PyObject *v = PyLong_FromLongLong((long long)words[j]);
            if (!v) { Py_CLEAR(list); break; }
            PyList_SET_ITEM(list, (Py_ssize_t)j, v);
        }
        free(words);
        return list;
    }
    default: Py_RETURN_NONE;
    }
}
/* self: the tuple (slow_call, raise_status) of the owning CKernel */
static PyObject *fp_error(PyObject *self, const int64_t *out) {
    PyObject *r = PyObject_CallFunction(PyTuple_GET_ITEM(self, 1), "LLL", (long long)out[0], (long long)out[2],
                                        (long long)out[3]);
    Py_XDECREF(r);
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "compiled kernel failed without an error");
    return NULL;
}
static PyObject *fp_slow(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return PyObject_Vectorcall(PyTuple_GET_ITEM(self, 0), args, (size_t)nargs, NULL);
}
"""


def module_name(key: str) -> str:
    """The extension's module name: unique per generated program (``key`` is a hex digest of it)."""
    return f"_custodes_kernel_{key[:24]}"


def extension_source(cfn: CFunction, module: str, lo: int, hi: int) -> str:
    """The extension part of the translation unit: ``PyInit_<module>`` and a ``make(slow, raise)`` factory."""
    n = len(cfn.params)
    lists = [i for i, (_, is_list) in enumerate(cfn.params) if is_list]
    lo_c, hi_c = f"INT64_C({lo})", f"INT64_C({hi})"
    body = [
        "static PyObject *fp_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {",
        f"    if (nargs != {n}) return fp_slow(self, args, nargs);",
        "    int64_t out[8] = {0};",
    ]
    for i, (_, is_list) in enumerate(cfn.params):
        body.append(f"    fp_buf b{i} = {{0}};" if is_list else f"    int64_t p{i} = 0;")
    for i, (_, is_list) in enumerate(cfn.params):
        if is_list:
            release = " ".join(f"fp_free(&b{j});" for j in lists if j < i)
            # One list passed for two parameters: one buffer, so the kernel shares one encoded array (as Python).
            share = "".join(f"if (args[{i}] == args[{j}]) fp_share(&b{i}, &b{j}); else " for j in lists if j < i)
            body += [
                f"    {share}switch (fp_list(args[{i}], &b{i}, {lo_c}, {hi_c})) {{",
                f"    case 0: {release} return fp_slow(self, args, nargs);",
                f"    case -1: {release} return NULL;",
                "    default: break;",
                "    }",
            ]
        else:
            release = " ".join(f"fp_free(&b{j});" for j in lists if j < i)
            body.append(
                f"    if (!fp_int(args[{i}], &p{i}, {lo_c}, {hi_c})) {{ {release} return fp_slow(self, args, nargs); }}"
            )
    call_args = ["out"]
    for i, (_, is_list) in enumerate(cfn.params):
        call_args += [f"b{i}.p", f"b{i}.n"] if is_list else [f"p{i}"]
    release_all = " ".join(f"fp_free(&b{j});" for j in lists)
    body += [
        f"    int64_t value = custodes_call({', '.join(call_args)});",
        "    int failed = 0;",
        *(
            f"    if (!failed && (out[4] >> {i} & 1) && fp_writeback(args[{i}], &b{i}) < 0) failed = 1;"
            for i in lists
        ),
        f"    {release_all}",
        "    if (failed) { if (out[1] == 3) free((void *)(intptr_t)out[5]); return NULL; }",
        "    if (out[0]) { if (out[1] == 3) free((void *)(intptr_t)out[5]); return fp_error(self, out); }",
        "    return fp_result(out, value);",
        "}",
    ]
    return "\n".join(
        [
            _COMMON,
            *body,
            "static PyMethodDef fp_def = {\"call\", (PyCFunction)(void (*)(void))fp_call, METH_FASTCALL,",
            "                             \"the compiled encoded kernel (fast path)\"};",
            "static PyObject *fp_make(PyObject *mod, PyObject *args) {",
            "    (void)mod;",
            "    if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) != 2) {",
            "        PyErr_SetString(PyExc_TypeError, \"make(slow_call, raise_status)\");",
            "        return NULL;",
            "    }",
            "    return PyCFunction_NewEx(&fp_def, args, NULL);",
            "}",
            "static PyMethodDef fp_methods[] = {",
            "    {\"make\", fp_make, METH_VARARGS, \"bind the fast path to its slow path and error mapping\"},",
            "    {NULL, NULL, 0, NULL},",
            "};",
            "static struct PyModuleDef fp_module = {",
            f"    PyModuleDef_HEAD_INIT, \"{module}\", NULL, -1, fp_methods, NULL, NULL, NULL, NULL",
            "};",
            f"PyMODINIT_FUNC PyInit_{module}(void) {{ return PyModule_Create(&fp_module); }}",
            "",
        ]
    )
