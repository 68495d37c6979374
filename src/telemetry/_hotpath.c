/*
 * telemetry._hotpath: the compiled recording path of TelemetryCollector.
 *
 * collect_metric and collect_event, for the common case only: exact str names, a float or
 * int value, a dict of str tags (or metadata within the key limit), no timestamp, room in
 * the buffer. Everything else -- bad input, a timestamp, a subclass, a full buffer -- is
 * handed, with the very same arguments, to the pure-Python method (the reference), so
 * errors, messages, conversions and overflow policies are the pure path's by construction.
 *
 * The fast path never does I/O, never takes a lock and never formats a string: it reads
 * the collector's state from its __dict__ (so a forked child's fresh buffers are seen),
 * takes an id from the shared ID_POOL, builds the msgspec Struct and appends it. All of
 * it under the GIL, like the pure path, which it must match record for record.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <time.h>

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall; /* how CPython calls it: no tuple, no dict per call */
    PyObject *state;     /* the collector's __dict__ */
    PyObject *collector; /* the collector (for _signal) */
    PyObject *fallback;  /* the pure method, bound to the collector */
    PyObject *record;    /* Metric or Event */
    PyObject *pool;      /* ID_POOL */
    PyObject *buf_key;   /* "_metrics" or "_events" */
    PyObject *info;      /* EventType.INFO (events) */
    PyObject *event_type;/* EventType (events) */
    PyObject *buf;       /* the buffer last appended to, and its bound append: a new */
    PyObject *buf_append;/* buffer (a forked child's) is noticed by identity */
    Py_ssize_t capacity; /* fixed when the collector is made */
    Py_ssize_t max_message;
    Py_ssize_t max_meta;
    int is_event;
} Recorder;

static PyObject *s_capacity, *s_idle, *s_wake_at, *s_signal, *s_append, *s_blocks, *s_empty,
    *s_name, *s_tags, *s_lock, *s_values, *s_acquire, *s_release;
static PyObject *s_metric_kw[5], *s_event_kw[5];

static void
Recorder_dealloc(Recorder *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->state);
    Py_CLEAR(self->collector);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->record);
    Py_CLEAR(self->pool);
    Py_CLEAR(self->buf_key);
    Py_CLEAR(self->info);
    Py_CLEAR(self->event_type);
    Py_CLEAR(self->buf);
    Py_CLEAR(self->buf_append);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
Recorder_traverse(Recorder *self, visitproc visit, void *arg)
{
    Py_VISIT(self->state);
    Py_VISIT(self->collector);
    Py_VISIT(self->fallback);
    Py_VISIT(self->record);
    Py_VISIT(self->pool);
    Py_VISIT(self->info);
    Py_VISIT(self->event_type);
    Py_VISIT(self->buf);
    Py_VISIT(self->buf_append);
    return 0;
}

static int
Recorder_clear(Recorder *self)
{
    Py_CLEAR(self->state);
    Py_CLEAR(self->collector);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->record);
    Py_CLEAR(self->pool);
    Py_CLEAR(self->info);
    Py_CLEAR(self->event_type);
    Py_CLEAR(self->buf);
    Py_CLEAR(self->buf_append);
    return 0;
}

/* The pure method, with the caller's arguments untouched. */
static PyObject *
fallback(Recorder *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
}

/* Sort positional and keyword arguments into out[0..4]; 0 when they are not a plain
 * call (unknown or repeated keyword, too many): the pure method then raises as Python does. */
static int
parse(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, PyObject **names,
      PyObject **out)
{
    if (nargs > 5)
        return 0;
    for (Py_ssize_t i = 0; i < 5; i++)
        out[i] = i < nargs ? args[i] : NULL;
    if (kwnames == NULL)
        return 1;
    Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        int i = 0;
        /* Keyword names are interned by the compiler: identity almost always finds them. */
        while (i < 5 && key != names[i])
            i++;
        if (i == 5) {
            for (i = 0; i < 5; i++) {
                if (PyUnicode_CheckExact(key) && PyUnicode_Compare(key, names[i]) == 0)
                    break;
            }
            if (i == 5)
                return 0;
        }
        if (out[i] != NULL)
            return 0;
        out[i] = args[nargs + k];
    }
    return 1;
}

static PyObject *
now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return NULL;
    }
    return PyLong_FromLongLong((long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
}

/* Ids as _ids.IdPool makes them (13 hex digits of a block, 3 of the position in it), from
 * blocks drawn from the same ID_POOL._blocks counter as the pure path's, so the two never
 * hand out the same id. Formatted here (no list of 4,096 strings per block). A forked
 * child drops its block (pthread_atfork) and draws one from the pool it reseeded. */
static unsigned long long id_block;
static int id_pos = 4096; /* 4096: no block yet */

static void
forget_block(void)
{
    id_pos = 4096;
}

static PyObject *
take_id(PyObject *pool)
{
    static const char hex[] = "0123456789abcdef";
    if (id_pos >= 4096) {
        PyObject *blocks = PyObject_GetAttr(pool, s_blocks);
        if (blocks == NULL)
            return NULL;
        PyObject *b = PyIter_Next(blocks);
        Py_DECREF(blocks);
        if (b == NULL)
            return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_RuntimeError, "no id block");
        id_block = PyLong_AsUnsignedLongLongMask(b) & ((1ULL << 52) - 1);
        Py_DECREF(b);
        if (PyErr_Occurred())
            return NULL;
        id_pos = 0;
    }
    PyObject *rid = PyUnicode_New(16, 127);
    if (rid == NULL)
        return NULL;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(rid);
    unsigned long long block = id_block;
    for (int i = 12; i >= 0; i--, block >>= 4)
        out[i] = (Py_UCS1)hex[block & 15];
    int pos = id_pos++;
    out[13] = (Py_UCS1)hex[(pos >> 8) & 15];
    out[14] = (Py_UCS1)hex[(pos >> 4) & 15];
    out[15] = (Py_UCS1)hex[pos & 15];
    return rid;
}

/* Room in the buffer? -1: error, 0: full (the pure path applies the overflow policy). */
static int
room(Recorder *self, PyObject *buf, Py_ssize_t *n)
{
    *n = PyObject_Size(buf);
    if (*n < 0)
        return -1;
    return *n < self->capacity;
}

/* Append, then wake the pump if it sleeps and enough records wait (as the pure path). */
static PyObject *
append(Recorder *self, PyObject *buf, Py_ssize_t n, PyObject *record)
{
    if (buf != self->buf) {
        PyObject *bound = PyObject_GetAttr(buf, s_append);
        if (bound == NULL) {
            Py_DECREF(record);
            return NULL;
        }
        Py_XSETREF(self->buf_append, bound);
        Py_XSETREF(self->buf, Py_NewRef(buf));
    }
    PyObject *r = PyObject_CallOneArg(self->buf_append, record);
    if (r == NULL) {
        Py_DECREF(record);
        return NULL;
    }
    Py_DECREF(r);
    PyObject *idle = PyDict_GetItemWithError(self->state, s_idle);
    if (idle == Py_True) {
        PyObject *wake = PyDict_GetItemWithError(self->state, s_wake_at);
        Py_ssize_t wake_at = wake ? PyLong_AsSsize_t(wake) : 0;
        if (wake_at == -1 && PyErr_Occurred()) {
            Py_DECREF(record);
            return NULL;
        }
        if (n >= wake_at - 1) {
            PyObject *s = PyObject_CallMethodNoArgs(self->collector, s_signal);
            if (s == NULL) {
                Py_DECREF(record);
                return NULL;
            }
            Py_DECREF(s);
        }
    } else if (idle == NULL && PyErr_Occurred()) {
        Py_DECREF(record);
        return NULL;
    }
    return record;
}

static int
all_str_items(PyObject *dict)
{
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(dict, &pos, &k, &v)) {
        if (!PyUnicode_CheckExact(k) || !PyUnicode_CheckExact(v))
            return 0;
    }
    return 1;
}

static PyObject *
collect_metric(Recorder *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *a[5];
    if (!parse(args, nargs, kwnames, s_metric_kw, a))
        return fallback(self, args, nargsf, kwnames);
    PyObject *name = a[0], *value = a[1], *unit = a[2], *tags = a[3], *ts = a[4];
    if (name == NULL || value == NULL || !PyUnicode_CheckExact(name) ||
        PyUnicode_GET_LENGTH(name) == 0 || (ts != NULL && ts != Py_None))
        return fallback(self, args, nargsf, kwnames);
    if (unit == NULL)
        unit = s_empty;
    else if (!PyUnicode_CheckExact(unit))
        return fallback(self, args, nargsf, kwnames);
    double v;
    if (PyFloat_CheckExact(value)) {
        v = PyFloat_AS_DOUBLE(value);
    } else if (PyLong_CheckExact(value)) {
        v = PyLong_AsDouble(value);
        if (v == -1.0 && PyErr_Occurred()) {
            PyErr_Clear(); /* too large: the pure path says so */
            return fallback(self, args, nargsf, kwnames);
        }
    } else {
        return fallback(self, args, nargsf, kwnames);
    }
    if (!isfinite(v))
        return fallback(self, args, nargsf, kwnames);
    v += 0.0; /* value + 0.0, as the pure path: -0.0 becomes 0.0 */
    int own_tags = 0;
    if (tags == NULL || tags == Py_None) {
        tags = PyDict_New();
        if (tags == NULL)
            return NULL;
        own_tags = 1;
    } else if (!PyDict_CheckExact(tags) || !all_str_items(tags)) {
        return fallback(self, args, nargsf, kwnames);
    } else if (PyObject_GC_IsTracked(tags)) {
        /* Only strings inside: it cannot be part of a cycle, so the collector need not
         * visit it while it waits in the buffer (CPython tracks it again if a container
         * is ever put in it). */
        PyObject_GC_UnTrack(tags);
    }
    PyObject *buf = PyDict_GetItemWithError(self->state, self->buf_key);
    Py_ssize_t n = 0;
    int ok = buf == NULL ? (PyErr_Occurred() ? -1 : 0) : room(self, buf, &n);
    if (ok <= 0) {
        if (own_tags)
            Py_DECREF(tags);
        return ok < 0 ? NULL : fallback(self, args, nargsf, kwnames);
    }
    Py_INCREF(buf); /* the pure path holds it too: a fork's reset cannot free it under us */
    /* The caller's float itself when value + 0.0 would be equal to it (all but -0.0). */
    PyObject *vf = PyFloat_CheckExact(value) && !(v == 0.0 && signbit(PyFloat_AS_DOUBLE(value)))
                       ? Py_NewRef(value)
                       : PyFloat_FromDouble(v);
    PyObject *t = vf ? now_ns() : NULL;
    PyObject *rid = t ? take_id(self->pool) : NULL;
    PyObject *record = NULL;
    if (rid != NULL) {
        PyObject *fields[6] = {name, vf, unit, tags, t, rid};
        record = PyObject_Vectorcall(self->record, fields, 6, NULL);
    }
    Py_XDECREF(vf);
    Py_XDECREF(t);
    Py_XDECREF(rid);
    if (own_tags)
        Py_DECREF(tags);
    if (record != NULL)
        record = append(self, buf, n, record);
    Py_DECREF(buf);
    return record;
}

static PyObject *
collect_event(Recorder *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *a[5];
    if (!parse(args, nargs, kwnames, s_event_kw, a))
        return fallback(self, args, nargsf, kwnames);
    PyObject *source = a[0], *message = a[1], *etype = a[2], *meta = a[3], *ts = a[4];
    if (source == NULL || message == NULL || !PyUnicode_CheckExact(source) ||
        !PyUnicode_CheckExact(message) || PyUnicode_GET_LENGTH(message) > self->max_message ||
        (ts != NULL && ts != Py_None))
        return fallback(self, args, nargsf, kwnames);
    if (etype == NULL)
        etype = self->info;
    else if ((PyObject *)Py_TYPE(etype) != self->event_type)
        return fallback(self, args, nargsf, kwnames);
    int own_meta = 0;
    if (meta == NULL || meta == Py_None) {
        meta = PyDict_New();
        if (meta == NULL)
            return NULL;
        own_meta = 1;
    } else if (!PyDict_CheckExact(meta) || PyDict_GET_SIZE(meta) > self->max_meta) {
        return fallback(self, args, nargsf, kwnames);
    }
    PyObject *buf = PyDict_GetItemWithError(self->state, self->buf_key);
    Py_ssize_t n = 0;
    int ok = buf == NULL ? (PyErr_Occurred() ? -1 : 0) : room(self, buf, &n);
    if (ok <= 0) {
        if (own_meta)
            Py_DECREF(meta);
        return ok < 0 ? NULL : fallback(self, args, nargsf, kwnames);
    }
    Py_INCREF(buf);
    PyObject *t = now_ns();
    PyObject *rid = t ? take_id(self->pool) : NULL;
    PyObject *record = NULL;
    if (rid != NULL) {
        PyObject *fields[6] = {source, message, etype, meta, t, rid};
        record = PyObject_Vectorcall(self->record, fields, 6, NULL);
    }
    Py_XDECREF(t);
    Py_XDECREF(rid);
    if (own_meta)
        Py_DECREF(meta);
    if (record != NULL)
        record = append(self, buf, n, record);
    Py_DECREF(buf);
    return record;
}

static PyObject *
Recorder_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Recorder *r = (Recorder *)self;
    return r->is_event ? collect_event(r, args, nargsf, kwnames)
                       : collect_metric(r, args, nargsf, kwnames);
}

static PyObject *Recorder_vectorcall(PyObject *, PyObject *const *, size_t, PyObject *);
static PyTypeObject RecorderType;

/* recorder(collector, kind, fallback, record_type, pool, event_type, info, max_message,
 * max_meta): the fast callable the collector puts in place of its method. */
static PyObject *
make_recorder(PyObject *module, PyObject *args)
{
    PyObject *collector, *kind, *fb, *record, *pool, *event_type, *info;
    Py_ssize_t max_message, max_meta;
    if (!PyArg_ParseTuple(args, "OUOOOOOnn", &collector, &kind, &fb, &record, &pool,
                          &event_type, &info, &max_message, &max_meta))
        return NULL;
    PyObject *state = PyObject_GenericGetDict(collector, NULL);
    if (state == NULL)
        return NULL;
    Recorder *self = PyObject_GC_New(Recorder, &RecorderType);
    if (self == NULL) {
        Py_DECREF(state);
        return NULL;
    }
    self->vectorcall = Recorder_vectorcall;
    self->is_event = PyUnicode_CompareWithASCIIString(kind, "event") == 0;
    self->state = state;
    self->collector = Py_NewRef(collector);
    self->fallback = Py_NewRef(fb);
    self->record = Py_NewRef(record);
    self->pool = Py_NewRef(pool);
    self->event_type = Py_NewRef(event_type);
    self->info = Py_NewRef(info);
    self->buf_key = PyUnicode_InternFromString(self->is_event ? "_events" : "_metrics");
    self->buf = NULL;
    self->buf_append = NULL;
    PyObject *cap = PyObject_GetAttr(collector, s_capacity);
    self->capacity = cap ? PyLong_AsSsize_t(cap) : -1;
    Py_XDECREF(cap);
    self->max_message = max_message;
    self->max_meta = max_meta;
    PyObject_GC_Track(self);
    if (self->buf_key == NULL || (self->capacity == -1 && PyErr_Occurred())) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyTypeObject RecorderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "telemetry._hotpath.Recorder",
    .tp_doc = "The compiled collect_metric / collect_event of one collector.",
    .tp_basicsize = sizeof(Recorder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_dealloc = (destructor)Recorder_dealloc,
    .tp_traverse = (traverseproc)Recorder_traverse,
    .tp_clear = (inquiry)Recorder_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Recorder, vectorcall),
};

/* skip_known(metrics, start, names, known, encode): the index of the first point at or
 * after start that is not of a series already let through (its name in names, and
 * (name, encode(tags)) in known; no tags at all counts as known), or len(metrics). The
 * dispatch thread's series limit runs its Python logic only from there. */
static PyObject *
skip_known(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || !PyList_Check(args[0]) || !PySet_Check(args[2]) || !PySet_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "skip_known(list, int, set, set, encode)");
        return NULL;
    }
    PyObject *metrics = args[0], *names = args[2], *known = args[3], *encode = args[4];
    Py_ssize_t i = PyLong_AsSsize_t(args[1]);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(metrics);
    for (; i < n; i++) {
        PyObject *m = PyList_GET_ITEM(metrics, i);
        PyObject *name = PyObject_GetAttr(m, s_name);
        if (name == NULL)
            return NULL;
        int has = PySet_Contains(names, name);
        if (has <= 0) {
            Py_DECREF(name);
            if (has < 0)
                return NULL;
            break;
        }
        PyObject *tags = PyObject_GetAttr(m, s_tags);
        if (tags == NULL) {
            Py_DECREF(name);
            return NULL;
        }
        int empty = PyDict_Check(tags) && PyDict_GET_SIZE(tags) == 0;
        PyObject *encoded = empty ? NULL : PyObject_CallOneArg(encode, tags);
        Py_DECREF(tags);
        if (empty) {
            Py_DECREF(name);
            continue;
        }
        if (encoded == NULL) {
            Py_DECREF(name);
            return NULL;
        }
        PyObject *key = PyTuple_Pack(2, name, encoded);
        Py_DECREF(name);
        Py_DECREF(encoded);
        if (key == NULL)
            return NULL;
        has = PySet_Contains(known, key);
        Py_DECREF(key);
        if (has <= 0) {
            if (has < 0)
                return NULL;
            break;
        }
    }
    return PyLong_FromSsize_t(i);
}

/* Histogram.observe: the lock, the append, the release, in one C call. The pure method
 * (set by setup_observe) takes what is not a finite float or int, and the observation that
 * fills the list to FOLD_AT (the hand-over to the dispatch thread). */
static PyObject *observe_fallback;
static Py_ssize_t fold_at;

static PyObject *
setup_observe(PyObject *module, PyObject *args)
{
    PyObject *fb;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "On", &fb, &n))
        return NULL;
    Py_XSETREF(observe_fallback, Py_NewRef(fb));
    fold_at = n;
    Py_RETURN_NONE;
}

static PyObject *
observe(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || observe_fallback == NULL)
        return PyObject_Vectorcall(observe_fallback ? observe_fallback : Py_None, args, nargs, NULL);
    PyObject *self = args[0], *value = args[1];
    double v;
    if (PyFloat_CheckExact(value))
        v = PyFloat_AS_DOUBLE(value);
    else if (PyLong_CheckExact(value)) {
        v = PyLong_AsDouble(value);
        if (v == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            return PyObject_Vectorcall(observe_fallback, args, nargs, NULL);
        }
    } else
        return PyObject_Vectorcall(observe_fallback, args, nargs, NULL);
    if (!isfinite(v))
        return PyObject_Vectorcall(observe_fallback, args, nargs, NULL);
    PyObject *lock = PyObject_GetAttr(self, s_lock);
    if (lock == NULL)
        return NULL;
    PyObject *r = PyObject_CallMethodNoArgs(lock, s_acquire);
    if (r == NULL) {
        Py_DECREF(lock);
        return NULL;
    }
    Py_DECREF(r);
    /* 1: appended; 0: the pure method must take it; -1: an error, raised after the
     * release (the lock is never left held). */
    PyObject *values = PyObject_GetAttr(self, s_values);
    PyObject *et = NULL, *ev = NULL, *tb = NULL;
    int state = 0;
    if (values == NULL) {
        state = -1;
    } else if (PyList_CheckExact(values) && PyList_GET_SIZE(values) + 1 < fold_at) {
        PyObject *f = PyFloat_CheckExact(value) && !(v == 0.0 && signbit(v))
                          ? Py_NewRef(value)
                          : PyFloat_FromDouble(v + 0.0);
        state = (f != NULL && PyList_Append(values, f) == 0) ? 1 : -1;
        Py_XDECREF(f);
    }
    Py_XDECREF(values);
    if (state < 0)
        PyErr_Fetch(&et, &ev, &tb);
    r = PyObject_CallMethodNoArgs(lock, s_release);
    Py_DECREF(lock);
    if (state < 0) {
        Py_XDECREF(r);
        PyErr_Restore(et, ev, tb);
        return NULL;
    }
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    if (state == 0) /* not a plain list, or this one fills it: the pure method hands it over */
        return PyObject_Vectorcall(observe_fallback, args, nargs, NULL);
    Py_RETURN_NONE;
}

static PyObject *
instancemethod(PyObject *module, PyObject *func)
{
    return PyInstanceMethod_New(func);
}

static PyMethodDef methods[] = {
    {"setup_observe", (PyCFunction)setup_observe, METH_VARARGS,
     "setup_observe(fallback, fold_at): the pure Histogram.observe and FOLD_AT."},
    {"observe", (PyCFunction)(void (*)(void))observe, METH_FASTCALL,
     "Record one observation (finite): the compiled Histogram.observe."},
    {"instancemethod", (PyCFunction)instancemethod, METH_O,
     "instancemethod(f): f as a method of the class it is put in (binds self)."},
    {"skip_known", (PyCFunction)(void (*)(void))skip_known, METH_FASTCALL,
     "skip_known(metrics, start, names, known, encode): the first point not of a known series."},
    {"recorder", (PyCFunction)make_recorder, METH_VARARGS,
     "recorder(collector, kind, fallback, record_type, pool, event_type, info, max_message, "
     "max_meta): the compiled collect_metric (kind 'metric') or collect_event ('event')."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_hotpath",
    "The compiled recording path of TelemetryCollector (see collector.py).", -1, methods,
};

static int
intern_all(void)
{
    const char *metric[5] = {"name", "value", "unit", "tags", "timestamp"};
    const char *event[5] = {"source", "message", "event_type", "metadata", "timestamp"};
    for (int i = 0; i < 5; i++) {
        if (!(s_metric_kw[i] = PyUnicode_InternFromString(metric[i])))
            return -1;
        if (!(s_event_kw[i] = PyUnicode_InternFromString(event[i])))
            return -1;
    }
    return (s_capacity = PyUnicode_InternFromString("_capacity")) &&
                   (s_idle = PyUnicode_InternFromString("_idle")) &&
                   (s_wake_at = PyUnicode_InternFromString("_wake_at")) &&
                   (s_signal = PyUnicode_InternFromString("_signal")) &&
                   (s_append = PyUnicode_InternFromString("append")) &&
                   (s_blocks = PyUnicode_InternFromString("_blocks")) &&
                   (s_name = PyUnicode_InternFromString("name")) &&
                   (s_tags = PyUnicode_InternFromString("tags")) &&
                   (s_lock = PyUnicode_InternFromString("_lock")) &&
                   (s_values = PyUnicode_InternFromString("_values")) &&
                   (s_acquire = PyUnicode_InternFromString("acquire")) &&
                   (s_release = PyUnicode_InternFromString("release")) &&
                   (s_empty = PyUnicode_New(0, 0))
               ? 0
               : -1;
}

PyMODINIT_FUNC
PyInit__hotpath(void)
{
    if (intern_all() < 0 || PyType_Ready(&RecorderType) < 0)
        return NULL;
    if (pthread_atfork(NULL, NULL, forget_block) != 0)
        return PyErr_Format(PyExc_OSError, "pthread_atfork failed");
    return PyModule_Create(&module);
}
