/*
 * What a tick computes for every driving car, as C loops over the fleet's state arrays:
 * the per-car noise (`uniforms`), the driving step (`begin`, `step`), the every-tick
 * signals the driving cars report (`render`, `locate`) and the numbers of the slower
 * groups (`dashboard`: battery, ADAS, cabin, vehicle state, diagnostics).
 *
 * `producers/sim/fleetstep.py` owns the state (one NumPy array per `Car` field) and the rare
 * per-car events, which draw from each car's own `random.Random`: a new road segment, an
 * emergency stop starting, a tyre starting to leak, a trouble code, parking. A tick is
 *   begin: count down the timers; name the cars due an event (Python runs them), then
 *   step:  brake/throttle, steering, moving, energy, the dashboard flags, tyre wear;
 *          name the cars that came to rest at the end of their trip (Python parks them).
 * `producers/sim/frames.py` then turns the cars' numbers into their frames' signals:
 * `render` and `locate` for the driving and location groups, `dashboard` for the others
 * (it names them and builds the string columns). Constants come from
 * `producers.sim.physics` (passed in as `fleetstep.PHYSICS`, `frames.RENDER`,
 * `frames.BATTERY`, not repeated here).
 *
 * This file is optional: where it was not built, `producers/sim/purestep.py` runs the same
 * formulas in Python, and must give the same numbers to the last bit (a test compares
 * whole runs). Change a formula in both. The arithmetic is plain IEEE double, evaluated in
 * the order written and never contracted (-ffp-contract=off), so a car's numbers do not
 * depend on how many cars step with it or on the compiler; rounding is half to even
 * (nearbyint), as NumPy's and Python's.
 *
 * Why C: as NumPy over ~700 cars a tick, the step and the driving group were ~250 array
 * operations (a gather, the maths, a scatter per field), about half of simulating, and the
 * slower groups ~100 more; here they are a few hundredths of a microsecond per car.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../_buffers.h"

/* The state's fields the step reads or writes, in the order `FIELDS` names them. */
enum {
    SPEED, ACCEL, CURVATURE, TARGET, SEGMENT_LEFT, TRIP_LEFT, HIGHWAY, HARD_BRAKE_LEFT,
    LAT, LON, HEADING, HOME_LAT, HOME_LON, RADIUS_M, ALTITUDE, ODOMETER_KM, POWER_W, SOC,
    MOTOR_C, CRUISE, LANE_WARNING, FATIGUE, CABIN_C, LEAKING_TYRE, NFIELDS
};
static const char *FIELDS[NFIELDS] = {
    "speed", "accel", "curvature", "target", "segment_left", "trip_left", "highway",
    "hard_brake_left", "lat", "lon", "heading", "home_lat", "home_lon", "radius_m",
    "altitude", "odometer_km", "power_w", "soc", "motor_c", "cruise", "lane_warning",
    "fatigue", "cabin_c", "leaking_tyre",
};
static const char KIND[NFIELDS] = {
    [HIGHWAY] = BOOL, [CRUISE] = BOOL, [LANE_WARNING] = BOOL, [LEAKING_TYRE] = I64,
};

/* `producers.sim.physics`'s constants, in the order `fleetstep.PHYSICS` lists them. */
typedef struct {
    double mass_kg, drag_n_per_v2, rolling_n, aux_w, pack_wh, hard_brake, max_brake,
        max_accel, max_lateral, metres_per_deg_lat, half_width;
} Physics;

/* The noise columns (`producers.sim.noise.Draw`), in the order `fleetstep.DRAWS` lists them. */
enum { D_HARD_BRAKE, D_THROTTLE, D_STEER, D_CLIMB, D_CRUISE, D_LANE, D_LEAK, D_FAULT, NDRAWS };

#define MAX_BUFFERS (NFIELDS + 4)
/* Sideways acceleration (m/s²) beyond which an emergency stop engages ESC; the same as
 * ESC_LATERAL of the pure twin (producers/sim/purestep.py). */
#define ESC_LATERAL 2.0

/* The buffers a call holds, released at its end. */
typedef struct {
    Py_buffer view[MAX_BUFFERS];
    int n;
} Held;

static void release(Held *h) {
    for (int j = 0; j < h->n; j++) {
        PyBuffer_Release(&h->view[j]);
    }
    h->n = 0;
}

/* Everything a call reads, its pointers resolved once. */
typedef struct {
    Held held;
    Py_ssize_t cars, n; /* fleet size; driving cars this tick */
    const int64_t *idx;
    const double *noise;
    Py_ssize_t noise_width;
    long draw[NDRAWS];
    double *f[NFIELDS]; /* F64 fields; BOOL and I64 ones through `b` and `i` */
    char *b[NFIELDS];
    int64_t *i[NFIELDS];
    double *tyres; /* (cars, 4) */
    double *force; /* (cars,) the wheel force of each car's last step */
    double dt;
    Physics k;
} Tick;

enum { ONE_D = -1 };

/* A C-contiguous array of `kind`: `rows` values (width ONE_D), or `rows` rows of at least
 * `width` columns. */
static void *open_array(Held *held, PyObject *obj, int kind, Py_ssize_t rows, Py_ssize_t width,
                        int writable, const char *what) {
    Py_buffer *view = &held->view[held->n];
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (obj == NULL) {
        PyErr_Format(PyExc_KeyError, "the fleet state has no '%s'", what);
        return NULL;
    }
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        return NULL;
    }
    held->n++;
    if (check_kind(view, kind, what) < 0) {
        return NULL;
    }
    int shaped = width == ONE_D ? view->ndim == 1 && view->shape[0] == rows
                            : view->ndim == 2 && view->shape[0] == rows && view->shape[1] >= width;
    if (!shaped) {
        if (width != ONE_D) {
            PyErr_Format(PyExc_ValueError, "'%s' must be %zd rows of at least %zd columns",
                         what, rows, width);
        } else {
            PyErr_Format(PyExc_ValueError, "'%s' must be %zd values", what, rows);
        }
        return NULL;
    }
    return view->buf;
}

/* `rows` rows of exactly `n` values of `kind`, writable (an output, or the tyres);
 * NULL on error. */
static void *open_rows(Held *held, PyObject *obj, int kind, Py_ssize_t rows, Py_ssize_t n,
                       const char *what) {
    void *p = open_array(held, obj, kind, rows, n, 1, what);
    if (p != NULL && held->view[held->n - 1].shape[1] != n) {
        PyErr_Format(PyExc_ValueError, "'%s' must be %zd rows of %zd values", what, rows, n);
        return NULL;
    }
    return p;
}

/* idx (int64, n values, each a car of the fleet); NULL on error. */
static const int64_t *open_cars(Held *held, PyObject *idx, Py_ssize_t cars, Py_ssize_t *n) {
    *n = PyObject_Length(idx);
    if (*n < 0) {
        return NULL;
    }
    const int64_t *car = open_array(held, idx, I64, *n, ONE_D, 0, "idx");
    for (Py_ssize_t j = 0; car != NULL && j < *n; j++) {
        if (car[j] < 0 || car[j] >= cars) {
            PyErr_Format(PyExc_IndexError, "car %lld is not in a fleet of %zd",
                         (long long)car[j], cars);
            return NULL;
        }
    }
    return car;
}

static Py_ssize_t fleet_size(PyObject *state) {
    PyObject *speed = PyDict_Check(state) ? PyDict_GetItemString(state, "speed") : NULL;
    Py_ssize_t cars = speed ? PyObject_Length(speed) : -1;
    if (cars < 0) {
        PyErr_Clear();
        PyErr_SetString(PyExc_TypeError, "state must be a dict of arrays, 'speed' among them");
    }
    return cars;
}

/* Resolves the arguments `begin` and `step` share: state (a dict of arrays), idx, noise, dt,
 * physics and draws; -1 on error (with `t` released). */
static int open_tick(Tick *t, PyObject *state, PyObject *idx, PyObject *noise, PyObject *dt,
                     PyObject *physics, PyObject *draws) {
    memset(t, 0, sizeof(*t));
    if (!PyArg_ParseTuple(physics, "ddddddddddd;physics: 11 floats", &t->k.mass_kg,
                          &t->k.drag_n_per_v2, &t->k.rolling_n, &t->k.aux_w, &t->k.pack_wh,
                          &t->k.hard_brake, &t->k.max_brake, &t->k.max_accel,
                          &t->k.max_lateral, &t->k.metres_per_deg_lat, &t->k.half_width) ||
        !PyArg_ParseTuple(draws, "llllllll;draws: 8 column numbers", &t->draw[0], &t->draw[1],
                          &t->draw[2], &t->draw[3], &t->draw[4], &t->draw[5], &t->draw[6],
                          &t->draw[7])) {
        return -1;
    }
    t->dt = PyFloat_AsDouble(dt);
    if (t->dt == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    if (!(t->dt > 0.0)) {
        PyErr_SetString(PyExc_ValueError, "dt must be positive");
        return -1;
    }
    t->cars = fleet_size(state);
    if (t->cars < 0) {
        return -1;
    }
    for (int j = 0; j < NFIELDS; j++) {
        PyObject *field = PyDict_GetItemString(state, FIELDS[j]);
        void *p = open_array(&t->held, field, KIND[j], t->cars, ONE_D, 1, FIELDS[j]);
        if (p == NULL) {
            goto fail;
        }
        t->f[j] = p;
        t->b[j] = p;
        t->i[j] = p;
    }
    t->idx = open_cars(&t->held, idx, t->cars, &t->n);
    if (t->idx == NULL) {
        goto fail;
    }
    long widest = 0;
    for (int j = 0; j < NDRAWS; j++) {
        if (t->draw[j] < 0) {
            PyErr_SetString(PyExc_ValueError, "a draw's column must not be negative");
            goto fail;
        }
        widest = t->draw[j] > widest ? t->draw[j] : widest;
    }
    t->noise = open_array(&t->held, noise, F64, t->n, widest + 1, 0, "noise");
    if (t->noise == NULL) {
        goto fail;
    }
    t->noise_width = t->held.view[t->held.n - 1].shape[1];
    return 0;
fail:
    release(&t->held);
    return -1;
}

static inline double draw(const Tick *t, Py_ssize_t j, int which) {
    return t->noise[j * t->noise_width + t->draw[which]];
}

/* NumPy's maximum, minimum and float remainder (`%`), which the step was written in. */
static inline double maximum(double a, double b) { return a >= b ? a : b; }
static inline double minimum(double a, double b) { return a <= b ? a : b; }
static inline double clip(double x, double lo, double hi) { return minimum(maximum(x, lo), hi); }
static inline double py_remainder(double a, double b) {
    double mod = fmod(a, b);
    if (mod != 0.0) {
        if ((b < 0) != (mod < 0)) {
            mod += b;
        }
    } else {
        mod = copysign(0.0, b);
    }
    return mod;
}
static inline double radians(double deg) { return deg * (M_PI / 180.0); }
static inline double degrees(double rad) { return rad * (180.0 / M_PI); }

/* `list` with `car` appended; on error NULL, and the list is dropped. */
static PyObject *append(PyObject *list, int64_t car) {
    PyObject *value = PyLong_FromLongLong(car);
    if (value == NULL || PyList_Append(list, value) < 0) {
        Py_XDECREF(value);
        Py_DECREF(list);
        return NULL;
    }
    Py_DECREF(value);
    return list;
}

PyDoc_STRVAR(begin_doc,
    "begin(state, idx, noise, dt, physics, draws) -> (new_segment, hard_brake, leak, fault)\n\n"
    "Counts the trip and segment timers of the cars idx down by dt, and names (as lists of\n"
    "car indexes) the cars due a new road segment, an emergency stop, a leaking tyre and\n"
    "a trouble code this tick. state: a dict of the fleet's arrays by Car field; noise:\n"
    "float64 (len(idx), draws), row j for car idx[j].");

static PyObject *begin(PyObject *self, PyObject *args) {
    PyObject *state, *idx, *noise, *dt, *physics, *draws;
    if (!PyArg_ParseTuple(args, "OOOOOO:begin", &state, &idx, &noise, &dt, &physics, &draws)) {
        return NULL;
    }
    Tick t;
    if (open_tick(&t, state, idx, noise, dt, physics, draws) < 0) {
        return NULL;
    }
    PyObject *lists[4] = {PyList_New(0), PyList_New(0), PyList_New(0), PyList_New(0)};
    PyObject *out = NULL;
    for (int j = 0; j < 4; j++) {
        if (lists[j] == NULL) {
            goto done;
        }
    }
    double **f = t.f, dt_ = t.dt;
    for (Py_ssize_t j = 0; j < t.n; j++) {
        int64_t i = t.idx[j];
        f[TRIP_LEFT][i] -= dt_;
        f[SEGMENT_LEFT][i] -= dt_;
        int due[4] = {
            f[SEGMENT_LEFT][i] <= 0.0 || (f[TRIP_LEFT][i] <= 0.0 && f[TARGET][i] > 0.0),
            /* Something ran into the road: a rare emergency stop, unless one is on. */
            !(f[HARD_BRAKE_LEFT][i] > 0.0) && f[SPEED][i] > 12.0 &&
                draw(&t, j, D_HARD_BRAKE) < 0.0005 * dt_,
            t.i[LEAKING_TYRE][i] < 0 && draw(&t, j, D_LEAK) < 0.0002 * dt_,
            draw(&t, j, D_FAULT) < 0.0001 * dt_,
        };
        for (int e = 0; e < 4; e++) {
            if (due[e] && (lists[e] = append(lists[e], i)) == NULL) {
                goto done;
            }
        }
    }
    out = PyTuple_Pack(4, lists[0], lists[1], lists[2], lists[3]);
done:
    for (int j = 0; j < 4; j++) {
        Py_XDECREF(lists[j]);
    }
    release(&t.held);
    return out;
}

PyDoc_STRVAR(step_doc,
    "step(state, tyres, force, idx, noise, dt, physics, draws) -> parked\n\n"
    "Advances the driving cars idx by dt in place: speed and acceleration, steering and\n"
    "position, energy, the dashboard flags, a leaking tyre's pressure; sets force[car]\n"
    "to the car's wheel force. Returns the cars (a list) at rest at their trip's end.\n"
    "Cars whose emergency stop is on (hard_brake_left > 0) brake hard and count it down.");

static PyObject *step(PyObject *self, PyObject *args) {
    PyObject *state, *tyres, *force, *idx, *noise, *dt, *physics, *draws;
    if (!PyArg_ParseTuple(args, "OOOOOOOO:step", &state, &tyres, &force, &idx, &noise, &dt,
                          &physics, &draws)) {
        return NULL;
    }
    Tick t;
    if (open_tick(&t, state, idx, noise, dt, physics, draws) < 0) {
        return NULL;
    }
    PyObject *parked = NULL;
    t.tyres = open_rows(&t.held, tyres, F64, t.cars, 4, "tyres");
    t.force = t.tyres ? open_array(&t.held, force, F64, t.cars, ONE_D, 1, "force") : NULL;
    if (t.force == NULL || (parked = PyList_New(0)) == NULL) {
        goto done;
    }
    const Physics *k = &t.k;
    double **f = t.f, dt_ = t.dt, sqrt_dt = sqrt(dt_);
    double cabin_rate = minimum(1.0, 0.01 * dt_), motor_rate = minimum(1.0, 0.02 * dt_);
    for (Py_ssize_t j = 0; j < t.n; j++) {
        int64_t i = t.idx[j];
        /* Brake and throttle: the driver closes on the target speed, bounded. */
        double speed = f[SPEED][i];
        int braking = f[HARD_BRAKE_LEFT][i] > 0.0;
        if (braking) {
            f[HARD_BRAKE_LEFT][i] -= dt_;
        }
        double wanted = 0.6 * (f[TARGET][i] - speed) +
                        (draw(&t, j, D_THROTTLE) - 0.5) * 0.1 * k->half_width;
        wanted = braking ? -k->hard_brake : clip(wanted, -k->max_brake, k->max_accel);
        double now = maximum(0.0, speed + wanted * dt_);
        double accel = (now - speed) / dt_;
        double mean = 0.5 * (speed + now);
        f[ACCEL][i] = accel;
        f[SPEED][i] = now;

        /* Steering: a wandering curvature, within what the speed allows sideways. */
        double fastest = maximum(mean, now); /* reported at the step's end speed too */
        double limit = minimum(0.02, k->max_lateral / maximum(fastest * fastest, 1.0));
        double lat = f[LAT][i], heading = f[HEADING][i];
        double dx = (lat - f[HOME_LAT][i]) * k->metres_per_deg_lat;
        double dy = (f[LON][i] - f[HOME_LON][i]) * k->metres_per_deg_lat * cos(radians(lat));
        double radius = f[RADIUS_M][i];
        double curvature = f[CURVATURE][i] +
                           (draw(&t, j, D_STEER) - 0.5) * 0.004 * k->half_width * sqrt_dt;
        if (dx * dx + dy * dy > radius * radius) {
            /* Outside the city's radius: turn back towards the centre (clockwise = right). */
            double home = py_remainder(degrees(atan2(-dy, -dx)), 360.0);
            double off = py_remainder(home - heading + 540.0, 360.0) - 180.0;
            curvature = off > 0 ? -limit : limit;
        }
        curvature = clip(curvature, -limit, limit);
        f[CURVATURE][i] = curvature;
        heading = py_remainder(heading - degrees(curvature * mean * dt_), 360.0);
        f[HEADING][i] = heading;

        /* Moving along the heading. */
        double distance = mean * dt_;
        double h = radians(heading);
        lat = f[LAT][i] + distance * cos(h) / k->metres_per_deg_lat;
        f[LAT][i] = lat;
        f[LON][i] += distance * sin(h) / (k->metres_per_deg_lat * cos(radians(lat)));
        double altitude =
            f[ALTITUDE][i] + (draw(&t, j, D_CLIMB) - 0.5) * 0.04 * k->half_width;
        f[ALTITUDE][i] = clip(altitude, 0.0, 60.0);
        f[ODOMETER_KM][i] += distance / 1000.0;

        /* Energy: force at the wheels (inertia, drag, rolling), 90 % efficient, 70 % regen. */
        double wheel_force = k->mass_kg * accel + k->drag_n_per_v2 * now * now +
                             (now > 0.0 ? k->rolling_n : 0.0);
        t.force[i] = wheel_force;
        double wheel_w = wheel_force * mean;
        double battery_w = wheel_w >= 0.0 ? wheel_w / 0.9 : wheel_w * 0.7;
        double power = -(battery_w + k->aux_w);
        f[POWER_W][i] = power;
        f[SOC][i] = maximum(0.0, f[SOC][i] + power * dt_ / 3600.0 / k->pack_wh * 100.0);
        double motor = f[MOTOR_C][i];
        f[MOTOR_C][i] = motor + (35.0 + fabs(wheel_w) / 2000.0 - motor) * motor_rate;

        /* The dashboard: cruise control holds on a highway, lane warnings, fatigue, cabin. */
        int cruise = t.b[HIGHWAY][i] && now > 16.0 && accel > -1.5;
        t.b[CRUISE][i] = cruise && (t.b[CRUISE][i] || draw(&t, j, D_CRUISE) < 0.02 * dt_);
        t.b[LANE_WARNING][i] = now > 15.0 && draw(&t, j, D_LANE) < 0.002 * dt_;
        f[FATIGUE][i] = minimum(100.0, f[FATIGUE][i] + 0.002 * dt_);
        f[CABIN_C][i] += (22.0 - f[CABIN_C][i]) * cabin_rate;

        /* A leaking tyre loses pressure down to what the warning light needs. */
        int64_t tyre = t.i[LEAKING_TYRE][i];
        if (tyre >= 0) {
            if (tyre > 3) {
                PyErr_Format(PyExc_ValueError, "car %lld leaks from tyre %lld of 4",
                             (long long)i, (long long)tyre);
                Py_CLEAR(parked);
                goto done;
            }
            double *kpa = &t.tyres[i * 4 + tyre];
            *kpa = maximum(120.0, *kpa - 0.05 * dt_);
        }
        /* Low battery: head for a charger. At rest at the trip's end: park. */
        if (f[SOC][i] < 10.0) {
            f[TRIP_LEFT][i] = minimum(f[TRIP_LEFT][i], 0.0);
        }
        if (f[TRIP_LEFT][i] <= 0.0 && now == 0.0 && append(parked, i) == NULL) {
            parked = NULL;
            goto done;
        }
    }
done:
    release(&t.held);
    return parked;
}

PyDoc_STRVAR(uniforms_doc,
    "uniforms(keys, tick, out)\n\n"
    "Fills out (float64, len(keys) rows) with uniforms in [0, 1): out[j, d] is SplitMix64's\n"
    "finaliser of keys[j] + (tick * width + d) * golden, its top 53 bits scaled, for width\n"
    "the number of out's columns (see producers/sim/noise.py).");

static PyObject *uniforms(PyObject *self, PyObject *args) {
    PyObject *keys, *tick, *out;
    if (!PyArg_ParseTuple(args, "OOO:uniforms", &keys, &tick, &out)) {
        return NULL;
    }
    /* Wrapping 64-bit arithmetic is the point: the tick's counter too. */
    uint64_t counter = PyLong_AsUnsignedLongLongMask(tick);
    Py_ssize_t n = PyObject_Length(keys);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Held held = {.n = 0};
    const uint64_t *key = open_array(&held, keys, U64, n, ONE_D, 0, "keys");
    double *u = key ? open_array(&held, out, F64, n, 1, 1, "out") : NULL;
    if (u == NULL) {
        release(&held);
        return NULL;
    }
    uint64_t width = (uint64_t)held.view[1].shape[1];
    counter *= width;
    for (Py_ssize_t j = 0; j < n; j++) {
        for (uint64_t d = 0; d < width; d++) {
            uint64_t x = key[j] + (counter + d) * UINT64_C(0x9E3779B97F4A7C15);
            x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
            x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
            x ^= x >> 31;
            *u++ = (double)(x >> 11) * 0x1p-53;
        }
    }
    release(&held);
    Py_RETURN_NONE;
}

/* The float64 fields `render` and `locate` read, by name, into `out`; -1 on error.
 * `state` is a dict (`fleet_size` checked it). */
static int open_fields(Held *held, PyObject *state, const char *const *names, int count,
                       Py_ssize_t cars, const double **out) {
    for (int j = 0; j < count; j++) {
        out[j] = open_array(held, PyDict_GetItemString(state, names[j]), F64, cars, ONE_D, 0,
                            names[j]);
        if (out[j] == NULL) {
            return -1;
        }
    }
    return 0;
}

enum { L_LAT, L_LON, L_HEADING, L_ALTITUDE, L_SPEED, NLOCATION };
static const char *const LOCATION[NLOCATION] = {"lat", "lon", "heading", "altitude", "speed"};

PyDoc_STRVAR(locate_doc,
    "locate(state, idx, out)\n\n"
    "The location group of the cars idx into out (float64, 5 rows of len(idx)): latitude,\n"
    "longitude, heading, altitude, and the horizontal accuracy, worse the faster a car goes.");

static PyObject *locate(PyObject *self, PyObject *args) {
    PyObject *state, *idx, *out;
    if (!PyArg_ParseTuple(args, "OOO:locate", &state, &idx, &out)) {
        return NULL;
    }
    Held held = {.n = 0};
    const double *f[NLOCATION];
    Py_ssize_t cars = fleet_size(state), n = 0;
    const int64_t *car = NULL;
    double *rows = NULL;
    if (cars < 0 || open_fields(&held, state, LOCATION, NLOCATION, cars, f) < 0 ||
        (car = open_cars(&held, idx, cars, &n)) == NULL ||
        (rows = open_rows(&held, out, F64, NLOCATION, n, "out")) == NULL) {
        release(&held);
        return NULL;
    }
    for (Py_ssize_t j = 0; j < n; j++) {
        int64_t i = car[j];
        for (int r = 0; r < L_SPEED; r++) {
            rows[r * n + j] = f[r][i];
        }
        rows[L_SPEED * n + j] = 2.5 + f[L_SPEED][i] * 0.05;
    }
    release(&held);
    Py_RETURN_NONE;
}

/* `producers.sim.physics`'s constants the driving group needs, in `frames.RENDER`'s order. */
typedef struct {
    double hard_brake, coast_band, abs_threshold, wheel_radius_m, gear_ratio, wheelbase_m,
        steering_ratio, rpm_per_ms;
} Dashboard;

enum { R_SPEED, R_ACCEL, R_CURVATURE, R_HARD_BRAKE_LEFT, NRENDER };
static const char *const RENDER[NRENDER] = {"speed", "accel", "curvature", "hard_brake_left"};
enum { NDOUBLES = 6, NLONGS = 7, NBOOLEANS = 5 }; /* the rows of render's outputs */

PyDoc_STRVAR(render_doc,
    "render(state, force, idx, vertical, dashboard, doubles, longs, booleans)\n\n"
    "The driving group of the cars idx (all driving), one row per signal in the order of\n"
    "frames.DRIVING_*: doubles (float64, 6 rows of len(idx); the location group is\n"
    "locate's), longs (int64, 7 rows), booleans (bool, 5 rows). vertical: each car's\n"
    "noise for the vertical acceleration; force: the wheel force of the cars' last step.\n"
    "Values are rounded half to even, as NumPy and Python round.");

static PyObject *render(PyObject *self, PyObject *args) {
    PyObject *state, *force_obj, *idx, *vertical_obj, *dashboard, *dobj, *lobj, *bobj;
    Dashboard k;
    if (!PyArg_ParseTuple(args, "OOOOOOOO:render", &state, &force_obj, &idx, &vertical_obj,
                          &dashboard, &dobj, &lobj, &bobj) ||
        !PyArg_ParseTuple(dashboard, "dddddddd;dashboard: 8 floats", &k.hard_brake,
                          &k.coast_band, &k.abs_threshold, &k.wheel_radius_m, &k.gear_ratio,
                          &k.wheelbase_m, &k.steering_ratio, &k.rpm_per_ms)) {
        return NULL;
    }
    Held held = {.n = 0};
    const double *f[NRENDER], *force = NULL, *vertical = NULL;
    Py_ssize_t cars = fleet_size(state), n = 0;
    const int64_t *car = NULL;
    double *d = NULL;
    int64_t *l = NULL;
    char *b = NULL;
    if (cars < 0 || open_fields(&held, state, RENDER, NRENDER, cars, f) < 0 ||
        (force = open_array(&held, force_obj, F64, cars, ONE_D, 0, "force")) == NULL ||
        (car = open_cars(&held, idx, cars, &n)) == NULL ||
        (vertical = open_array(&held, vertical_obj, F64, n, ONE_D, 0, "vertical")) == NULL ||
        (d = open_rows(&held, dobj, F64, NDOUBLES, n, "doubles")) == NULL ||
        (l = open_rows(&held, lobj, I64, NLONGS, n, "longs")) == NULL ||
        (b = open_rows(&held, bobj, BOOL, NBOOLEANS, n, "booleans")) == NULL) {
        release(&held);
        return NULL;
    }
    for (Py_ssize_t j = 0; j < n; j++) {
        int64_t i = car[j];
        double speed = f[R_SPEED][i], accel = f[R_ACCEL][i], curvature = f[R_CURVATURE][i];
        double wheel_force = force[i];
        /* Pedals: never both pressed; the brake only when slowing beyond what regeneration
         * gives (coasting), or holding the car at a light. */
        int braking = accel < -k.coast_band;
        double brake = braking ? clip(nearbyint(-accel / k.hard_brake * 100.0), 1, 100)
                               : (speed == 0.0 ? 25 : 0);
        int pressing = !braking && speed != 0.0 && accel >= -0.05;
        double accelerator =
            pressing ? clip(nearbyint(maximum(wheel_force, 0.0) / 60.0), 1, 100) : 0;
        double lateral = speed * speed * curvature;
        double torque = wheel_force * k.wheel_radius_m / k.gear_ratio;
        if (brake > 0) {
            torque = maximum(torque, -150.0); /* regeneration's limit; friction does the rest */
        }
        int emergency = f[R_HARD_BRAKE_LEFT][i] > 0.0;
        double row[NDOUBLES] = {
            speed * 3.6,
            accel,
            lateral,
            speed != 0.0 ? (vertical[j] - 0.5) * 0.5 : 0.0,
            degrees(speed * curvature),
            brake * 100.0,
        };
        int64_t longs[NLONGS] = {
            (int64_t)accelerator,
            (int64_t)brake,
            (int64_t)nearbyint(degrees(atan(k.wheelbase_m * curvature)) * k.steering_ratio),
            (int64_t)nearbyint(clip(torque, -400.0, 500.0)),
            (int64_t)nearbyint(speed * k.rpm_per_ms),
            127, /* D selected */
            1,   /* the single-speed gear engaged */
        };
        char flags[NBOOLEANS] = {
            (char)emergency,
            0, /* parking brake: off while driving */
            accel < -k.abs_threshold,
            /* ESC intervenes rarely: in an emergency stop taken while cornering. */
            emergency && fabs(lateral) > ESC_LATERAL,
            (char)emergency,
        };
        for (int r = 0; r < NDOUBLES; r++) {
            d[r * n + j] = row[r];
        }
        for (int r = 0; r < NLONGS; r++) {
            l[r * n + j] = longs[r];
        }
        for (int r = 0; r < NBOOLEANS; r++) {
            b[r * n + j] = flags[r];
        }
    }
    release(&held);
    Py_RETURN_NONE;
}

/* What `dashboard` reads, by name and kind. */
enum {
    S_SOC, S_POWER_W, S_AMBIENT_C, S_CHARGING_KW, S_CHARGE_TO, S_CRUISE, S_TARGET,
    S_LANE_WARNING, S_HARD_BRAKE_LEFT, S_CABIN_C, S_DRIVING, S_PASSENGER, S_DRIVER_BELTED,
    S_PASSENGER_BELTED, S_FATIGUE, S_ODOMETER_KM, S_SPEED, S_SOH, S_MOTOR_C, NSTATE
};
static const char *const STATE[NSTATE] = {
    "soc", "power_w", "ambient_c", "charging_kw", "charge_to", "cruise", "target",
    "lane_warning", "hard_brake_left", "cabin_c", "driving", "passenger", "driver_belted",
    "passenger_belted", "fatigue", "odometer_km", "speed", "soh", "motor_c",
};
static const char STATE_KIND[NSTATE] = {
    [S_CRUISE] = BOOL, [S_LANE_WARNING] = BOOL, [S_DRIVING] = BOOL, [S_PASSENGER] = BOOL,
    [S_DRIVER_BELTED] = BOOL, [S_PASSENGER_BELTED] = BOOL,
};
/* Its rows, in the order of `frames.DASHBOARD`. */
enum {
    O_SOC, O_SOC_DISPLAYED, O_VOLTAGE, O_CURRENT, O_POWER, O_BATTERY_C, O_SPEED_SET, O_CABIN_C,
    O_FATIGUE, O_ODOMETER_KM, O_AMBIENT_C, O_TO_SERVICE_KM, O_SOH, O_LOW_VOLTAGE, O_MOTOR_C,
    NDASH_DOUBLES
};
enum { O_RANGE_M, O_TO_FULL_S, O_KPA, NDASH_LONGS = O_KPA + 4 };
enum {
    O_CHARGING, O_CRUISE, O_LANE_WARNING, O_OBSTACLE, O_DRIVING, O_DRIVER_BELTED, O_PASSENGER,
    O_PASSENGER_BELTED, O_EYES_ON_ROAD, O_MOVING, O_SERVICE_DUE, O_ALWAYS, O_NEVER,
    NDASH_BOOLEANS
};

/* A rounded value as int64: half to even; beyond int64 (never from a sane state), the
 * nearest end rather than undefined behaviour. */
static inline int64_t to_int(double x) {
    double r = nearbyint(x);
    if (!(r > -9223372036854775808.0)) {
        return INT64_MIN;
    }
    return r < 9223372036854775808.0 ? (int64_t)r : INT64_MAX;
}

PyDoc_STRVAR(dashboard_doc,
    "dashboard(state, tyres, idx, constants, doubles, longs, booleans)\n\n"
    "What the slower groups (battery, ADAS, cabin, vehicle state, diagnostics) report for\n"
    "the cars idx, one row per quantity in the order of frames.DASHBOARD: doubles\n"
    "(float64, 15 rows of len(idx)), longs (int64, 6), booleans (bool, 13). constants:\n"
    "(PACK_WH, WH_PER_KM). Values are rounded half to even, as NumPy and Python round.");

static PyObject *dashboard(PyObject *self, PyObject *args) {
    PyObject *state, *tyres_obj, *idx, *constants, *dobj, *lobj, *bobj;
    double pack_wh, wh_per_km;
    if (!PyArg_ParseTuple(args, "OOOOOOO:dashboard", &state, &tyres_obj, &idx, &constants,
                          &dobj, &lobj, &bobj) ||
        !PyArg_ParseTuple(constants, "dd;constants: (PACK_WH, WH_PER_KM)", &pack_wh,
                          &wh_per_km)) {
        return NULL;
    }
    Held held = {.n = 0};
    const char *f[NSTATE];
    const double *tyres = NULL;
    Py_ssize_t cars = fleet_size(state), n = 0;
    const int64_t *car = NULL;
    double *d = NULL;
    int64_t *l = NULL;
    char *b = NULL;
    for (int j = 0; cars >= 0 && j < NSTATE; j++) {
        f[j] = open_array(&held, PyDict_GetItemString(state, STATE[j]), STATE_KIND[j], cars,
                          ONE_D, 0, STATE[j]);
        if (f[j] == NULL) {
            cars = -1;
        }
    }
    if (cars < 0 || (tyres = open_rows(&held, tyres_obj, F64, cars, 4, "tyres")) == NULL ||
        (car = open_cars(&held, idx, cars, &n)) == NULL ||
        (d = open_rows(&held, dobj, F64, NDASH_DOUBLES, n, "doubles")) == NULL ||
        (l = open_rows(&held, lobj, I64, NDASH_LONGS, n, "longs")) == NULL ||
        (b = open_rows(&held, bobj, BOOL, NDASH_BOOLEANS, n, "booleans")) == NULL) {
        release(&held);
        return NULL;
    }
#define F(field) (((const double *)f[field])[i])
#define B(field) (f[field][i] != 0)
    for (Py_ssize_t j = 0; j < n; j++) {
        int64_t i = car[j];
        double soc = F(S_SOC), power = F(S_POWER_W), voltage = 330.0 + 0.8 * soc;
        double to_service = 20000.0 - py_remainder(F(S_ODOMETER_KM), 20000.0);
        int charging = F(S_CHARGING_KW) > 0.0, driving = B(S_DRIVING);
        double row[NDASH_DOUBLES] = {
            [O_SOC] = soc,
            [O_SOC_DISPLAYED] = floor(soc),
            [O_VOLTAGE] = voltage,
            [O_CURRENT] = power / voltage,
            [O_POWER] = power,
            [O_BATTERY_C] = F(S_AMBIENT_C) + 5.0 + fabs(power) / 10000.0,
            [O_SPEED_SET] = F(S_TARGET) * 3.6,
            [O_CABIN_C] = F(S_CABIN_C),
            [O_FATIGUE] = F(S_FATIGUE),
            [O_ODOMETER_KM] = F(S_ODOMETER_KM),
            [O_AMBIENT_C] = F(S_AMBIENT_C),
            [O_TO_SERVICE_KM] = to_service,
            [O_SOH] = F(S_SOH),
            [O_LOW_VOLTAGE] = driving ? 14.2 : 12.6,
            [O_MOTOR_C] = F(S_MOTOR_C),
        };
        int64_t longs[NDASH_LONGS] = {
            [O_RANGE_M] = to_int(soc / 100.0 * pack_wh / wh_per_km * 1000.0),
            [O_TO_FULL_S] = charging ? to_int((F(S_CHARGE_TO) - soc) / 100.0 * pack_wh /
                                              maximum(power, 1.0) * 3600.0)
                                     : 0,
        };
        for (int k = 0; k < 4; k++) {
            longs[O_KPA + k] = to_int(tyres[i * 4 + k]);
        }
        char flags[NDASH_BOOLEANS] = {
            [O_CHARGING] = (char)charging,
            [O_CRUISE] = B(S_CRUISE),
            [O_LANE_WARNING] = B(S_LANE_WARNING),
            [O_OBSTACLE] = F(S_HARD_BRAKE_LEFT) > 0.0,
            [O_DRIVING] = (char)driving,
            [O_DRIVER_BELTED] = driving && B(S_DRIVER_BELTED),
            [O_PASSENGER] = driving && B(S_PASSENGER),
            [O_PASSENGER_BELTED] = driving && B(S_PASSENGER) && B(S_PASSENGER_BELTED),
            [O_EYES_ON_ROAD] = !B(S_LANE_WARNING),
            [O_MOVING] = F(S_SPEED) > 0.0,
            [O_SERVICE_DUE] = to_service < 1000.0,
            [O_ALWAYS] = 1,
            [O_NEVER] = 0,
        };
        for (int r = 0; r < NDASH_DOUBLES; r++) {
            d[r * n + j] = row[r];
        }
        for (int r = 0; r < NDASH_LONGS; r++) {
            l[r * n + j] = longs[r];
        }
        for (int r = 0; r < NDASH_BOOLEANS; r++) {
            b[r * n + j] = flags[r];
        }
    }
#undef F
#undef B
    release(&held);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"dashboard", dashboard, METH_VARARGS, dashboard_doc},
    {"locate", locate, METH_VARARGS, locate_doc},
    {"render", render, METH_VARARGS, render_doc},
    {"uniforms", uniforms, METH_VARARGS, uniforms_doc},
    {"begin", begin, METH_VARARGS, begin_doc},
    {"step", step, METH_VARARGS, step_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fleetstep",
    "What a tick computes for every driving car, in C (see producers/sim/fleetstep.py).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__fleetstep(void) { return PyModule_Create(&module); }
