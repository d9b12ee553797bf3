/*
 * The one check of a NumPy array's element type, for both C modules (`_framewire.c`,
 * `_fleetstep.c`): a buffer's format must be exactly the wanted type, in the machine's
 * byte order. A cast would hide a simulator bug, so any other type is refused.
 */
#ifndef VDP_BUFFERS_H
#define VDP_BUFFERS_H

#include <Python.h>
#include <string.h>

enum { F64, BOOL, I64, U64 }; /* float64, bool, int64, uint64 */

/* 0 when `view` holds `kind`; else -1 with a TypeError naming `what`. */
static inline int check_kind(const Py_buffer *view, int kind, const char *what) {
    static const char *const wanted[] = {"float64", "bool", "int64", "uint64"};
    const char *format = view->format ? view->format : "B";
    const char *f = format;
    /* Values are read in the machine's byte order: only a native one will do. */
    if (*f == '=' || *f == '@' || *f == (PY_LITTLE_ENDIAN ? '<' : '>')) {
        f++;
    }
    int ok;
    switch (kind) {
    case F64:
        ok = strcmp(f, "d") == 0 && view->itemsize == 8;
        break;
    case I64:
        ok = (strcmp(f, "q") == 0 || strcmp(f, "l") == 0) && view->itemsize == 8;
        break;
    case U64:
        ok = (strcmp(f, "Q") == 0 || strcmp(f, "L") == 0) && view->itemsize == 8;
        break;
    default:
        ok = strcmp(f, "?") == 0 && view->itemsize == 1;
        break;
    }
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "%s must be %s, got format '%s'", what, wanted[kind],
                     format);
        return -1;
    }
    return 0;
}

#endif
