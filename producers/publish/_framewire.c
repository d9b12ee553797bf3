/*
 * Avro single-object messages for a batch of telemetry frames, in one C loop.
 *
 * The Python side (`producers/publish/wire.py`) knows the schema: it hands over each car's
 * constant head (marker, fingerprint, VIN) and tail (firmware), and the batch's signals
 * (`producers.sim.signals.Signal`: map, key, a column of values and, for a signal only some
 * frames report, a mask). This file lays each frame's maps out as Avro does (one block:
 * its count, then key and value of each signal the frame reports, then the end marker):
 * zig-zag varints for longs, 8 little-endian bytes for doubles, one byte for booleans,
 * length-prefixed UTF-8 for strings. Every message is sized first and written straight
 * into its bytes object, so nothing is copied twice.
 *
 * Why C: built from columns in Python, a frame cost about 5 us of lookups and joins,
 * more than simulating it; here it is a fraction of a microsecond. The file is optional:
 * where it was not built, `producers/publish/purewire.py` writes the same bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "../_buffers.h"

enum { DOUBLES, LONGS, BOOLEANS, STRINGS, MAPS };

static PyObject *KEY, *VALUE; /* the produce_batch message dict's keys, interned */

typedef struct {
    Py_buffer view;
    int held;
} Column;

/* One signal of the batch, its pointers resolved once per call: the loops per frame
 * read nothing through Python objects but the strings. */
typedef struct {
    int map;                /* DOUBLES, LONGS, BOOLEANS or STRINGS */
    const char *name;       /* the key as Avro writes it (length, UTF-8) */
    Py_ssize_t name_len;
    const char *values;     /* fixed-width maps: the column's first value */
    Py_ssize_t stride;
    PyObject *strings;      /* STRINGS: the column as a list of str (a reference) */
    const char *mask;       /* NULL: every frame reports the signal */
    Py_ssize_t mask_stride;
    Column column, present; /* the buffers behind `values` and `mask` */
} Field;

/* What one frame reports: per field whether it is there, and a string's UTF-8. */
typedef struct {
    const char *text;
    Py_ssize_t len;
    int on;
} Cell;

static inline uint64_t zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }

static inline Py_ssize_t varint_size(uint64_t u) {
    Py_ssize_t n = 1;
    while (u >= 0x80) {
        u >>= 7;
        n++;
    }
    return n;
}

static inline char *put_varint(char *p, uint64_t u) {
    while (u >= 0x80) {
        *p++ = (char)((u & 0x7f) | 0x80);
        u >>= 7;
    }
    *p++ = (char)u;
    return p;
}

static inline char *put_bytes(char *p, PyObject *bytes) {
    Py_ssize_t n = PyBytes_GET_SIZE(bytes);
    memcpy(p, PyBytes_AS_STRING(bytes), (size_t)n);
    return p + n;
}

/* A column's double as Avro writes it: its 8 bytes, little-endian. */
static inline char *put_double(char *p, const char *cell) {
#if PY_LITTLE_ENDIAN
    memcpy(p, cell, 8); /* one 8-byte move: no need to look at the value */
#else
    for (int i = 0; i < 8; i++) {
        p[i] = cell[7 - i];
    }
#endif
    return p + 8;
}

/* A column's format must match its map exactly: the codec would refuse (or round) a
 * value of another type, so a cast here would hide a simulator bug. */
static int open_column(Column *c, PyObject *obj, int map, Py_ssize_t rows) {
    /* map BOOLEANS doubles as the masks' type */
    if (PyObject_GetBuffer(obj, &c->view, PyBUF_STRIDED_RO | PyBUF_FORMAT) < 0) {
        return -1;
    }
    c->held = 1;
    static const int kinds[] = {[DOUBLES] = F64, [LONGS] = I64, [BOOLEANS] = BOOL};
    if (check_kind(&c->view, kinds[map], "a column") < 0) {
        return -1;
    }
    if (c->view.ndim != 1 || c->view.shape[0] != rows) {
        PyErr_Format(PyExc_ValueError, "a column of %zd values was expected", rows);
        return -1;
    }
    return 0;
}

static const char *utf8(PyObject *list, Py_ssize_t row, Py_ssize_t *size) {
    PyObject *s = PyList_GET_ITEM(list, row);
    if (!PyUnicode_Check(s)) {
        PyErr_SetString(PyExc_TypeError, "a strings column holds str values only");
        return NULL;
    }
    return PyUnicode_AsUTF8AndSize(s, size);
}

/* Sizes frame `row`: which fields it reports (into `cells`), each map's entry count
 * (into `counts`), and the bytes its four maps take; -1 on error. */
static Py_ssize_t size_frame(const Field *fields, Py_ssize_t nfields, Py_ssize_t row,
                             Cell *cells, Py_ssize_t *counts) {
    Py_ssize_t size = MAPS; /* the end markers */
    memset(counts, 0, MAPS * sizeof *counts);
    for (Py_ssize_t j = 0; j < nfields; j++) {
        const Field *f = &fields[j];
        Cell *c = &cells[j];
        c->on = f->mask == NULL || f->mask[row * f->mask_stride];
        if (!c->on) {
            continue;
        }
        counts[f->map]++;
        size += f->name_len;
        switch (f->map) {
        case DOUBLES:
            size += 8;
            break;
        case LONGS: {
            int64_t v;
            memcpy(&v, f->values + row * f->stride, 8);
            size += varint_size(zigzag(v));
            break;
        }
        case BOOLEANS:
            size += 1;
            break;
        default:
            c->text = utf8(f->strings, row, &c->len);
            if (c->text == NULL) {
                return -1;
            }
            size += varint_size(zigzag(c->len)) + c->len;
        }
    }
    for (int m = 0; m < MAPS; m++) {
        size += counts[m] ? varint_size(zigzag(counts[m])) : 0;
    }
    return size;
}

/* Writes frame `row`'s four maps as `size_frame` found them. Fields come map by map. */
static char *put_frame(char *p, const Field *fields, Py_ssize_t nfields, Py_ssize_t row,
                       const Cell *cells, const Py_ssize_t *counts) {
    Py_ssize_t j = 0;
    for (int m = 0; m < MAPS; m++) {
        if (counts[m]) {
            p = put_varint(p, zigzag(counts[m])); /* one block holds the whole map */
        }
        for (; j < nfields && fields[j].map == m; j++) {
            const Field *f = &fields[j];
            if (!cells[j].on) {
                continue;
            }
            memcpy(p, f->name, (size_t)f->name_len);
            p += f->name_len;
            switch (m) {
            case DOUBLES:
                p = put_double(p, f->values + row * f->stride);
                break;
            case LONGS: {
                int64_t v;
                memcpy(&v, f->values + row * f->stride, 8);
                p = put_varint(p, zigzag(v));
                break;
            }
            case BOOLEANS:
                *p++ = f->values[row * f->stride] ? 1 : 0;
                break;
            default:
                p = put_varint(p, zigzag(cells[j].len));
                memcpy(p, cells[j].text, (size_t)cells[j].len);
                p += cells[j].len;
            }
        }
        *p++ = 0; /* the map's end (an empty map is this byte alone) */
    }
    return p;
}

static int long_at(PyObject *list, Py_ssize_t i, int64_t *out) {
    long long v = PyLong_AsLongLong(PyList_GET_ITEM(list, i));
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

static PyObject *fixed_piece(PyObject *list, Py_ssize_t car, const char *what) {
    if (car < 0 || car >= PyList_GET_SIZE(list)) {
        PyErr_Format(PyExc_IndexError, "car %zd has no %s", car, what);
        return NULL;
    }
    PyObject *piece = PyList_GET_ITEM(list, car);
    if (!PyBytes_Check(piece)) {
        PyErr_Format(PyExc_TypeError, "a car's %s must be bytes", what);
        return NULL;
    }
    return piece;
}

/* Resolves one signal (a `producers.sim.signals.Signal`: field, key, values, present) into
 * `f`, for a batch of `rows` frames. */
static int open_field(Field *f, PyObject *signal, PyObject *names, Py_ssize_t rows) {
    if (!PyTuple_Check(signal) || PyTuple_GET_SIZE(signal) != 4) {
        PyErr_SetString(PyExc_TypeError, "a signal is a (field, key, values, present) tuple");
        return -1;
    }
    long map = PyLong_AsLong(PyTuple_GET_ITEM(signal, 0));
    if (map < DOUBLES || map > STRINGS) {
        if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_ValueError, "no map %ld", map);
        }
        return -1;
    }
    f->map = (int)map;
    /* `names` makes a missing key's bytes itself (`wire._Names.__missing__`) and keeps
     * them, so the pointer stays valid after this reference is dropped. */
    PyObject *name = PyObject_GetItem(names, PyTuple_GET_ITEM(signal, 1));
    if (name == NULL) {
        return -1;
    }
    int ok = PyBytes_Check(name);
    if (ok) {
        f->name = PyBytes_AS_STRING(name);
        f->name_len = PyBytes_GET_SIZE(name);
    }
    Py_DECREF(name);
    if (!ok) {
        PyErr_SetString(PyExc_TypeError, "names must map each key to bytes");
        return -1;
    }
    PyObject *values = PyTuple_GET_ITEM(signal, 2), *mask = PyTuple_GET_ITEM(signal, 3);
    if (mask != Py_None) {
        if (open_column(&f->present, mask, BOOLEANS, rows) < 0) {
            return -1;
        }
        f->mask = f->present.view.buf;
        f->mask_stride = f->present.view.strides[0];
    }
    if (map == STRINGS) {
        /* NumPy's fixed-width UTF-32 strings become str objects once, here. */
        f->strings = PyList_Check(values) ? Py_NewRef(values)
                                          : PyObject_CallMethod(values, "tolist", NULL);
        if (f->strings == NULL) {
            return -1;
        }
        if (!PyList_Check(f->strings) || PyList_GET_SIZE(f->strings) != rows) {
            PyErr_Format(PyExc_ValueError, "a strings column of %zd str was expected", rows);
            return -1;
        }
        return 0;
    }
    if (open_column(&f->column, values, (int)map, rows) < 0) {
        return -1;
    }
    f->values = f->column.view.buf;
    f->stride = f->column.view.strides[0];
    return 0;
}

PyDoc_STRVAR(encode_doc,
    "encode(heads, tails, cars, seqs, event_time, signals, names, kafka_keys, start, stop)\n\n"
    "One message for each frame start:stop of a batch. Frame k is car cars[k]: heads[car],\n"
    "seqs[k], event_time, the four maps of the signals frame k reports, then tails[car].\n"
    "signals: the batch's Signal tuples (field, key, values, present), each column one\n"
    "value per frame (float64 / int64 / bool buffers, str for strings; present None or\n"
    "a bool buffer). names: a dict of each key's encoded bytes. Returns bytes, or\n"
    "with kafka_keys (bytes per car) dicts {'key': kafka_keys[car], 'value': message},\n"
    "the form Producer.produce_batch takes.");

static PyObject *encode(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "encode() takes 10 arguments");
        return NULL;
    }
    PyObject *heads = args[0], *tails = args[1], *cars = args[2], *seqs = args[3];
    PyObject *signals = args[5], *names = args[6], *kafka_keys = args[7];
    if (!PyList_Check(heads) || !PyList_Check(tails) || !PyList_Check(cars) ||
        !PyList_Check(seqs) || !PyList_Check(signals) || !PyDict_Check(names)) {
        PyErr_SetString(PyExc_TypeError,
                        "heads, tails, cars, seqs and signals must be lists, names a dict");
        return NULL;
    }
    if (kafka_keys != Py_None && !PyList_Check(kafka_keys)) {
        PyErr_SetString(PyExc_TypeError, "kafka_keys must be None or a list");
        return NULL;
    }
    Py_ssize_t rows = PyList_GET_SIZE(cars);
    if (PyList_GET_SIZE(seqs) != rows) {
        PyErr_SetString(PyExc_ValueError, "one seq per car is needed");
        return NULL;
    }
    long long event_time = PyLong_AsLongLong(args[4]);
    Py_ssize_t start = PyLong_AsSsize_t(args[8]), stop = PyLong_AsSsize_t(args[9]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    start = start < 0 ? 0 : start > rows ? rows : start;
    stop = stop < start ? start : stop > rows ? rows : stop;

    /* The fields map by map (each map's signals in batch order), each with a Cell of
     * scratch for the frame at hand. */
    Py_ssize_t nfields = PyList_GET_SIZE(signals);
    Field *fields = PyMem_Calloc((size_t)nfields + 1, sizeof(Field));
    Cell *cells = PyMem_Calloc((size_t)nfields + 1, sizeof(Cell));
    PyObject *out = NULL;
    if (fields == NULL || cells == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t j = 0;
    for (int m = 0; m < MAPS; m++) {
        for (Py_ssize_t i = 0; i < nfields; i++) {
            PyObject *signal = PyList_GET_ITEM(signals, i);
            PyObject *field = PyTuple_Check(signal) && PyTuple_GET_SIZE(signal) > 0
                                  ? PyTuple_GET_ITEM(signal, 0)
                                  : NULL;
            long map = field ? PyLong_AsLong(field) : m;
            if (map == -1 && PyErr_Occurred()) {
                goto done;
            }
            if (map == m && open_field(&fields[j++], signal, names, rows) < 0) {
                goto done;
            }
        }
    }
    if (j != nfields) {
        PyErr_SetString(PyExc_ValueError, "a signal's field must be a map (0 to 3)");
        goto done;
    }

    out = PyList_New(stop - start);
    if (out == NULL) {
        goto done;
    }
    for (Py_ssize_t i = start; i < stop; i++) {
        int64_t car, seq;
        if (long_at(cars, i, &car) < 0 || long_at(seqs, i, &seq) < 0) {
            goto fail;
        }
        PyObject *head = fixed_piece(heads, (Py_ssize_t)car, "head");
        PyObject *tail = head ? fixed_piece(tails, (Py_ssize_t)car, "tail") : NULL;
        if (tail == NULL) {
            goto fail;
        }
        Py_ssize_t counts[MAPS];
        Py_ssize_t body = size_frame(fields, nfields, i, cells, counts);
        if (body < 0) {
            goto fail;
        }
        uint64_t zseq = zigzag(seq);
        Py_ssize_t size = PyBytes_GET_SIZE(head) + varint_size(zseq) +
                          varint_size(zigzag(event_time)) + body + PyBytes_GET_SIZE(tail);
        PyObject *message = PyBytes_FromStringAndSize(NULL, size);
        if (message == NULL) {
            goto fail;
        }
        char *p = PyBytes_AS_STRING(message);
        p = put_bytes(p, head);
        p = put_varint(p, zseq);
        p = put_varint(p, zigzag(event_time));
        p = put_frame(p, fields, nfields, i, cells, counts);
        p = put_bytes(p, tail);
        assert(p == PyBytes_AS_STRING(message) + size);
        if (kafka_keys != Py_None) {
            PyObject *key = fixed_piece(kafka_keys, (Py_ssize_t)car, "key");
            PyObject *dict = key ? PyDict_New() : NULL;
            if (dict == NULL || PyDict_SetItem(dict, KEY, key) < 0 ||
                PyDict_SetItem(dict, VALUE, message) < 0) {
                Py_XDECREF(dict);
                Py_DECREF(message);
                goto fail;
            }
            Py_DECREF(message);
            message = dict;
        }
        PyList_SET_ITEM(out, i - start, message);
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    for (Py_ssize_t i = 0; fields != NULL && i < nfields; i++) {
        if (fields[i].column.held) {
            PyBuffer_Release(&fields[i].column.view);
        }
        if (fields[i].present.held) {
            PyBuffer_Release(&fields[i].present.view);
        }
        Py_XDECREF(fields[i].strings);
    }
    PyMem_Free(fields);
    PyMem_Free(cells);
    return out;
}

static PyMethodDef methods[] = {
    {"encode", (PyCFunction)(void (*)(void))encode, METH_FASTCALL, encode_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_framewire",
    "Avro messages for a batch of telemetry frames, written in C (see producers/publish/wire.py).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__framewire(void) {
    KEY = PyUnicode_InternFromString("key");
    VALUE = PyUnicode_InternFromString("value");
    if (KEY == NULL || VALUE == NULL) {
        return NULL;
    }
    return PyModule_Create(&module);
}
