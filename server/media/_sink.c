/* The send path of one viewer track, compiled: header, SRTP, socket, for each packet.

   The same object as server/media/sink.py's pure-Python `Sink` (that module says what each
   method does; tests/test_media_sink.py checks that both send the same bytes). Per packet and
   viewer the Python one costs about 15 us on the test machine, most of it in pylibsrtp's
   wrapper around one C call and in socket.sendto's argument handling; here the same work is
   that C call, a memcpy and the system call.

   libsrtp is the one pylibsrtp carries: its srtp_protect's address is handed over once
   (`use_protect`, from the cffi module), and each route hands over its session's context, whose
   pylibsrtp Session the sink keeps alive. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

/* What sink.py expects of this module (it falls back to its pure-Python sink otherwise, so a build
   left from older source does not break a checkout): raise it with each change of its interface. */
#define API 2

#define MTU 1500          /* pylibsrtp's buffer: a packet and its SRTP trailer fit in it */
#define MAX_TRAILER (16 + 128)  /* SRTP_MAX_TRAILER_LEN */
#define SEND_TIME_LEN 8   /* the one-byte extension block holding abs-send-time */

typedef int (*protect_fn)(void *ctx, void *rtp, int *len);

/* A packet sent, kept to answer a NACK: the header is written again from these when it goes out
   again (with the abs-send-time of then, as libwebrtc does); the payload is the publisher's,
   shared by every viewer of the packet. Kept for `keep` seconds after it arrived (see sink.py). */
typedef struct {
    PyObject *payload;  /* NULL: nothing kept here */
    double wall;        /* when it arrived (Unix seconds) */
    uint32_t timestamp;
    uint16_t sequence;
    uint8_t marker;
} Kept;

static protect_fn protect = NULL;

typedef struct {
    PyObject_HEAD
    /* the route */
    PyObject *session;  /* the pylibsrtp Session whose context `ctx` is: kept alive */
    void *ctx;
    PyObject *sock;     /* a socket object: its fileno() at each send (-1 once closed) */
    PyObject *sendto;   /* else a callable(data, address) */
    PyObject *address;
    struct sockaddr_storage addr;
    socklen_t addrlen;  /* 0: `address` is not numeric; sock.sendto is called instead */
    /* What must still hold for `fanout` to send without asking Python (`guard`): the viewer
       track's sender still has this DTLS transport, it is connected, and ICE still has this pair
       nominated. Any change, and the packet takes the Python path, which routes and guards again. */
    PyObject *sender, *dtls, *nominated, *pair, *connected;
    /* the viewer track */
    unsigned int ssrc;
    int payload_type;
    int send_time_id;
    Kept *history;      /* at sequence % capacity; NULL when capacity is 0 (audio: nobody NACKs it) */
    Py_ssize_t capacity;
    double keep;        /* seconds a sent packet stays kept */
    unsigned long oldest;   /* the sequence number the next release of old packets starts from */
    unsigned long long sent, dropped, octets;
    unsigned long long fanned;  /* packets `fanout` placed here itself, without the Python path */
    unsigned int last_timestamp;
    double last_wall;
} Sink;

static PyTypeObject SinkType;

static int
Sink_init(Sink *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"ssrc", "history", NULL};
    unsigned int ssrc;
    Py_ssize_t size;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "In", kwlist, &ssrc, &size))
        return -1;
    if (size < 0 || size > 0x10000) {
        PyErr_SetString(PyExc_ValueError, "history must hold 0 to 65536 packets");
        return -1;
    }
    if (self->history != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "a sink is made once");
        return -1;
    }
    if (size > 0 && (self->history = PyMem_Calloc((size_t)size, sizeof(Kept))) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->capacity = size;
    self->keep = 1.0;
    self->ssrc = ssrc;
    self->payload_type = 0;
    self->send_time_id = 0;
    return 0;
}

static int
Sink_traverse(Sink *self, visitproc visit, void *arg)
{
    Py_VISIT(self->session);
    Py_VISIT(self->sock);
    Py_VISIT(self->sendto);
    Py_VISIT(self->address);
    Py_VISIT(self->sender);
    Py_VISIT(self->dtls);
    Py_VISIT(self->nominated);
    Py_VISIT(self->pair);
    Py_VISIT(self->connected);
    return 0;  /* the kept payloads are bytes: they hold no references */
}

static int
Sink_clear(Sink *self)
{
    Py_CLEAR(self->session);
    Py_CLEAR(self->sock);
    Py_CLEAR(self->sendto);
    Py_CLEAR(self->address);
    Py_CLEAR(self->sender);
    Py_CLEAR(self->dtls);
    Py_CLEAR(self->nominated);
    Py_CLEAR(self->pair);
    Py_CLEAR(self->connected);
    self->ctx = NULL;
    return 0;
}

static void
Sink_dealloc(Sink *self)
{
    PyObject_GC_UnTrack(self);
    Sink_clear(self);
    for (Py_ssize_t i = 0; i < self->capacity; i++)
        Py_XDECREF(self->history[i].payload);
    PyMem_Free(self->history);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A numeric (host, port) as a sockaddr; 0 if it is not one (a name, a scoped IPv6 address). */
static socklen_t
numeric_address(PyObject *address, struct sockaddr_storage *out)
{
    if (!PyTuple_Check(address) || PyTuple_GET_SIZE(address) < 2
        || !PyUnicode_Check(PyTuple_GET_ITEM(address, 0)) || !PyLong_Check(PyTuple_GET_ITEM(address, 1)))
        return 0;
    const char *host = PyUnicode_AsUTF8(PyTuple_GET_ITEM(address, 0));
    long port = PyLong_AsLong(PyTuple_GET_ITEM(address, 1));
    if (host == NULL || port < 0 || port > 0xFFFF) {
        PyErr_Clear();
        return 0;
    }
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        return sizeof(*v4);
    }
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        return sizeof(*v6);
    }
    return 0;
}

static PyObject *
Sink_route(Sink *self, PyObject *args)
{
    PyObject *session, *ctx, *sock, *sendto, *address;
    if (!PyArg_ParseTuple(args, "OOOOO:route", &session, &ctx, &sock, &sendto, &address))
        return NULL;
    void *context = PyLong_AsVoidPtr(ctx);
    if (context == NULL && PyErr_Occurred())
        return NULL;
    if (sock == Py_None && sendto == Py_None) {
        PyErr_SetString(PyExc_ValueError, "a route needs a socket or a sendto");
        return NULL;
    }
    Py_INCREF(session);
    Py_XSETREF(self->session, session);
    self->ctx = context;
    Py_XSETREF(self->sock, sock == Py_None ? NULL : Py_NewRef(sock));
    Py_XSETREF(self->sendto, sendto == Py_None ? NULL : Py_NewRef(sendto));
    Py_XSETREF(self->address, Py_NewRef(address));
    self->addrlen = sock == Py_None ? 0 : numeric_address(address, &self->addr);
    if (self->sock != NULL && self->addrlen == 0) {  /* not numeric: the socket's own sendto resolves it */
        PyObject *method = PyObject_GetAttrString(self->sock, "sendto");
        if (method == NULL)
            return NULL;
        Py_XSETREF(self->sendto, method);
        Py_CLEAR(self->sock);
    }
    Py_RETURN_NONE;
}

/* A failed send (a full buffer, an ICMP error, a closed socket): the packet is lost. */
static PyObject *
dropped(Sink *self)
{
    self->dropped++;
    Py_RETURN_FALSE;
}

/* Write, protect and send one packet; 1 sent, 0 lost (counted as dropped), -1 an exception. */
static int
put(Sink *self, int marker, unsigned long sequence, unsigned long timestamp, PyObject *payload, double wall)
{
    if (self->session == NULL || protect == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "no route, or srtp_protect not given");
        return -1;
    }
    unsigned char packet[MTU];
    Py_ssize_t length = PyBytes_GET_SIZE(payload);
    int head = 12;
    packet[0] = self->send_time_id ? 0x90 : 0x80;
    packet[1] = (unsigned char)((marker << 7) | (self->payload_type & 0x7F));
    packet[2] = (unsigned char)(sequence >> 8);
    packet[3] = (unsigned char)sequence;
    uint32_t value = htonl((uint32_t)timestamp);
    memcpy(packet + 4, &value, 4);
    value = htonl(self->ssrc);
    memcpy(packet + 8, &value, 4);
    if (self->send_time_id) {
        uint32_t send_time = (uint32_t)((uint64_t)(wall * 262144.0) & 0xFFFFFF);
        value = htonl(((uint32_t)self->send_time_id << 28) | (2u << 24) | send_time);
        packet[12] = 0xBE;
        packet[13] = 0xDE;
        packet[14] = 0;
        packet[15] = 1;
        memcpy(packet + 16, &value, 4);
        head += SEND_TIME_LEN;
    }
    if (head + length > MTU - MAX_TRAILER) {
        PyErr_SetString(PyExc_ValueError, "packet is too long");
        return -1;
    }
    memcpy(packet + head, PyBytes_AS_STRING(payload), length);
    int size = head + (int)length;
    int status = protect(self->ctx, packet, &size);
    if (status != 0) {
        PyErr_Format(PyExc_RuntimeError, "srtp_protect failed (%d)", status);
        return -1;
    }
    if (self->sock != NULL) {
        int fd = PyObject_AsFileDescriptor(self->sock);
        if (fd < 0) {  /* closed */
            PyErr_Clear();
            self->dropped++;
            return 0;
        }
        ssize_t n;
        do {
            n = sendto(fd, packet, (size_t)size, 0, (struct sockaddr *)&self->addr, self->addrlen);
        } while (n < 0 && errno == EINTR);
        if (n < 0) {  /* a full buffer (EAGAIN) or an ICMP error back: the packet is lost */
            self->dropped++;
            return 0;
        }
        return 1;
    }
    PyObject *data = PyBytes_FromStringAndSize((const char *)packet, size);
    if (data == NULL)
        return -1;
    PyObject *result = PyObject_CallFunctionObjArgs(self->sendto, data, self->address, NULL);
    Py_DECREF(data);
    if (result == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_OSError))
            return -1;
        PyErr_Clear();
        self->dropped++;
        return 0;
    }
    Py_DECREF(result);
    return 1;
}

/* Release the kept payloads that arrived before `cutoff`, oldest first, up to `newest` (just
   kept): sequence numbers go out in order, so the walk stops at the first young enough. Only the
   last `capacity` numbers can still be kept; an older packet left in a slot a gap skipped is old. */
static void
release_old(Sink *self, unsigned long newest, double cutoff)
{
    unsigned long capacity = (unsigned long)self->capacity, sequence = self->oldest;
    if (((newest - sequence) & 0xFFFF) >= capacity)
        sequence = (newest - capacity + 1) & 0xFFFF;
    while (sequence != newest) {
        Kept *kept = &self->history[sequence % capacity];
        if (kept->payload != NULL && kept->wall < cutoff)
            Py_CLEAR(kept->payload);
        else if (kept->payload != NULL && kept->sequence == sequence)
            break;
        sequence = (sequence + 1) & 0xFFFF;
    }
    self->oldest = sequence;
}

/* A new packet (not a retransmission): `put`, then, if it went, kept for NACKs and counted for
   the sender reports. Returns what `put` does. */
static int
send_new(Sink *self, int marker, unsigned long sequence, unsigned long timestamp, PyObject *payload, double wall)
{
    int sent = put(self, marker, sequence, timestamp, payload, wall);
    if (sent <= 0)
        return sent;
    if (self->capacity) {
        Kept *kept = &self->history[sequence % (unsigned long)self->capacity];
        Py_INCREF(payload);
        Py_XSETREF(kept->payload, payload);
        kept->wall = wall;
        kept->timestamp = (uint32_t)timestamp;
        kept->sequence = (uint16_t)sequence;
        kept->marker = (uint8_t)marker;
        if (self->sent == 0)
            self->oldest = sequence;
        release_old(self, sequence, wall - self->keep);
    }
    self->sent++;
    self->octets += (unsigned long long)PyBytes_GET_SIZE(payload);
    self->last_timestamp = (unsigned int)timestamp;
    self->last_wall = wall;
    return 1;
}

static PyObject *
Sink_send(Sink *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "send(marker, sequence, timestamp, payload, wall)");
        return NULL;
    }
    int marker = PyObject_IsTrue(args[0]);
    unsigned long sequence = PyLong_AsUnsignedLong(args[1]);
    unsigned long timestamp = PyLong_AsUnsignedLong(args[2]);
    PyObject *payload = args[3];
    double wall = PyFloat_AsDouble(args[4]);
    if (marker < 0 || PyErr_Occurred())
        return NULL;
    if (sequence > 0xFFFF || timestamp > 0xFFFFFFFFUL) {
        PyErr_SetString(PyExc_ValueError, "sequence or timestamp out of range");
        return NULL;
    }
    if (!PyBytes_Check(payload)) {
        PyErr_SetString(PyExc_TypeError, "payload must be bytes");
        return NULL;
    }
    int sent = send_new(self, marker, sequence, timestamp, payload, wall);
    if (sent < 0)
        return NULL;
    return PyBool_FromLong(sent);
}

/* The packet kept under this sequence number, or NULL. */
static Kept *
find(Sink *self, PyObject *arg)
{
    unsigned long sequence = PyLong_AsUnsignedLong(arg);
    if (PyErr_Occurred())
        return NULL;
    if (self->capacity == 0 || sequence > 0xFFFF)
        return NULL;
    Kept *kept = &self->history[sequence % (unsigned long)self->capacity];
    return kept->payload != NULL && kept->sequence == sequence ? kept : NULL;
}

static PyObject *
Sink_kept(Sink *self, PyObject *arg)
{
    Kept *kept = find(self, arg);
    if (kept == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(IIO)", (unsigned int)kept->marker, (unsigned int)kept->timestamp, kept->payload);
}

static PyObject *
Sink_resend(Sink *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "resend(sequence, wall)");
        return NULL;
    }
    double wall = PyFloat_AsDouble(args[1]);
    if (PyErr_Occurred())
        return NULL;
    Kept *kept = find(self, args[0]);
    if (kept == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_FALSE;
    }
    if (kept->wall < wall - self->keep)
        Py_RETURN_FALSE;  /* older than kept (not released yet: no packet was sent since) */
    PyObject *payload = Py_NewRef(kept->payload);  /* the call below may run Python code */
    int sent = put(self, kept->marker, kept->sequence, kept->timestamp, payload, wall);
    Py_DECREF(payload);
    if (sent < 0)
        return NULL;
    return PyBool_FromLong(sent);
}

static PyObject *
Sink_forgotten(Sink *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "forgotten(sequence, wall)");
        return NULL;
    }
    unsigned long sequence = PyLong_AsUnsignedLong(args[0]);
    double wall = PyFloat_AsDouble(args[1]);
    if (PyErr_Occurred())
        return NULL;
    if (self->capacity == 0 || self->sent == 0 || sequence > 0xFFFF)
        Py_RETURN_FALSE;
    Kept *kept = &self->history[sequence % (unsigned long)self->capacity];
    if (kept->payload != NULL && kept->sequence == sequence)
        return PyBool_FromLong(kept->wall < wall - self->keep);
    unsigned long before = (self->oldest - sequence) & 0xFFFF;  /* how far it precedes the oldest kept */
    return PyBool_FromLong(before > 0 && before < 0x8000);
}

static PyObject *
Sink_guard(Sink *self, PyObject *args)
{
    PyObject *sender, *dtls, *nominated, *pair, *connected;
    if (!PyArg_ParseTuple(args, "OOO!OO:guard", &sender, &dtls, &PyDict_Type, &nominated, &pair, &connected))
        return NULL;
    Py_XSETREF(self->sender, Py_NewRef(sender));
    Py_XSETREF(self->dtls, Py_NewRef(dtls));
    Py_XSETREF(self->nominated, Py_NewRef(nominated));
    Py_XSETREF(self->pair, Py_NewRef(pair));
    Py_XSETREF(self->connected, Py_NewRef(connected));
    Py_RETURN_NONE;
}

static PyObject *
Sink_unguard(Sink *self, PyObject *Py_UNUSED(ignored))
{
    Py_CLEAR(self->sender);
    Py_CLEAR(self->dtls);
    Py_CLEAR(self->nominated);
    Py_CLEAR(self->pair);
    Py_CLEAR(self->connected);
    Py_RETURN_NONE;
}

static PyObject *
Sink_get_guarded(Sink *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->sender != NULL);
}

static PyObject *str_rewriter, *str_outlet, *str_sink, *str_transport, *str_state, *str_held, *str_ssrc,
    *str_highest, *str_span, *str_seq_offset, *str_ts_offset, *str_last_seq, *str_last_ts, *str_last_at,
    *str_video, *one;

/* 1: the guard holds; 0: it does not (the Python path decides); -1: an exception. */
static int
guarded(Sink *sink)
{
    if (sink->sender == NULL)
        return 0;
    PyObject *dtls = PyObject_GetAttr(sink->sender, str_transport);
    if (dtls == NULL)
        return -1;
    Py_DECREF(dtls);  /* only its identity is compared */
    if (dtls != sink->dtls)
        return 0;
    PyObject *state = PyObject_GetAttr(dtls, str_state);
    if (state == NULL)
        return -1;
    Py_DECREF(state);
    if (state != sink->connected)
        return 0;
    PyObject *pair = PyDict_GetItemWithError(sink->nominated, one);  /* borrowed */
    if (pair == NULL && PyErr_Occurred())
        return -1;
    return pair == sink->pair;
}

/* An int attribute of a rewriter, as a C long long (it holds one: its fields are ints). */
static int
get_ll(PyObject *obj, PyObject *name, long long *out)
{
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL)
        return -1;
    *out = PyLong_AsLongLong(value);
    Py_DECREF(value);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

static int
set_ll(PyObject *obj, PyObject *name, long long value)
{
    PyObject *boxed = PyLong_FromLongLong(value);
    if (boxed == NULL)
        return -1;
    int rc = PyObject_SetAttr(obj, name, boxed);
    Py_DECREF(boxed);
    return rc;
}

/* One packet to one viewer track the fast way, as tracks.Forward.send would: 1 done (sent, lost
   or dropped by the rewriter's rules), 0 the Python path must decide, -1 an exception. */
static int
forward_one(PyObject *forward, long long sequence, long long timestamp, PyObject *ssrc, int marker,
            double now, PyObject *payload, double wall)
{
    int rc = -1;
    PyObject *rewriter = NULL, *outlet = NULL, *sink_obj = NULL, *value = NULL;
    if ((rewriter = PyObject_GetAttr(forward, str_rewriter)) == NULL)
        goto done;
    if ((value = PyObject_GetAttr(rewriter, str_held)) == NULL)
        goto done;
    int held = PyObject_IsTrue(value);
    Py_CLEAR(value);
    if (held < 0)
        goto done;
    if (held) {  /* Rewriter.place: a held track forwards nothing */
        rc = 1;
        goto done;
    }
    if ((value = PyObject_GetAttr(rewriter, str_ssrc)) == NULL)
        goto done;
    int same = value != Py_None && PyObject_RichCompareBool(value, ssrc, Py_EQ);
    Py_CLEAR(value);
    if (same < 0)
        goto done;
    if (!same) {  /* no run, or a run of another SSRC: starting one is the Python path's */
        rc = 0;
        goto done;
    }
    if ((outlet = PyObject_GetAttr(forward, str_outlet)) == NULL || (sink_obj = PyObject_GetAttr(outlet, str_sink)) == NULL)
        goto done;
    if (Py_TYPE(sink_obj) != &SinkType) {
        rc = 0;
        goto done;
    }
    Sink *sink = (Sink *)sink_obj;
    int ok = guarded(sink);
    if (ok <= 0) {
        rc = ok;
        goto done;
    }
    long long highest, span, seq_offset, ts_offset, last_seq;
    if (get_ll(rewriter, str_highest, &highest) < 0 || get_ll(rewriter, str_span, &span) < 0
        || get_ll(rewriter, str_seq_offset, &seq_offset) < 0 || get_ll(rewriter, str_ts_offset, &ts_offset) < 0
        || get_ll(rewriter, str_last_seq, &last_seq) < 0)
        goto done;
    /* Rewriter.place, within a run */
    long long ahead = (sequence - highest) & 0xFFFF;
    if (ahead < 0x8000) {
        if (set_ll(rewriter, str_highest, sequence) < 0 || set_ll(rewriter, str_span, span + ahead) < 0)
            goto done;
    } else if (0x10000 - ahead > span) {
        rc = 1;  /* from before this run started: it has no place here */
        goto done;
    }
    sink->fanned++;
    long long out_seq = (sequence + seq_offset) & 0xFFFF;
    long long out_ts = (timestamp + ts_offset) & 0xFFFFFFFFLL;
    int sent = send_new(sink, marker, (unsigned long)out_seq, (unsigned long)out_ts, payload, wall);
    if (sent < 0)
        goto done;
    /* Rewriter.sent (and Rewriter.lost, whose number is used all the same): a retransmission of an
       earlier packet changes nothing */
    if (((out_seq - last_seq) & 0xFFFF) < 0x8000) {
        PyObject *at = PyFloat_FromDouble(now);
        if (at == NULL)
            goto done;
        int failed = set_ll(rewriter, str_last_seq, out_seq) < 0 || set_ll(rewriter, str_last_ts, out_ts) < 0
                     || PyObject_SetAttr(rewriter, str_last_at, at) < 0;
        Py_DECREF(at);
        if (failed)
            goto done;
    }
    if (!sent) {  /* Rewriter.lost: video stops until its next keyframe; audio carries on */
        if ((value = PyObject_GetAttr(rewriter, str_video)) == NULL)
            goto done;
        int video = PyObject_IsTrue(value);
        Py_CLEAR(value);
        if (video < 0 || (video && PyObject_SetAttr(rewriter, str_ssrc, Py_None) < 0))
            goto done;
    }
    rc = 1;
done:
    Py_XDECREF(value);
    Py_XDECREF(sink_obj);
    Py_XDECREF(outlet);
    Py_XDECREF(rewriter);
    return rc;
}

static PyObject *
fanout(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8 || !PyList_Check(args[0]) || !PyBytes_Check(args[6])) {
        PyErr_SetString(PyExc_TypeError,
                        "fanout(forwards: list, sequence, timestamp, ssrc, marker, now, payload: bytes, wall)");
        return NULL;
    }
    long long sequence = PyLong_AsLongLong(args[1]);
    long long timestamp = PyLong_AsLongLong(args[2]);
    int marker = PyObject_IsTrue(args[4]);
    double now = PyFloat_AsDouble(args[5]);
    double wall = PyFloat_AsDouble(args[7]);
    if (marker < 0 || PyErr_Occurred())
        return NULL;
    if (sequence < 0 || sequence > 0xFFFF || timestamp < 0 || timestamp > 0xFFFFFFFFLL) {
        PyErr_SetString(PyExc_ValueError, "sequence or timestamp out of range");
        return NULL;
    }
    PyObject *forwards = Py_NewRef(args[0]);  /* the list may change while Python code runs */
    PyObject *left = PyList_New(0);
    if (left == NULL) {
        Py_DECREF(forwards);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(forwards); i++) {
        PyObject *forward = Py_NewRef(PyList_GET_ITEM(forwards, i));
        int done = forward_one(forward, sequence, timestamp, args[3], marker, now, args[6], wall);
        if (done < 0)
            PyErr_Clear();  /* the Python path does it again, and reports what went wrong */
        if (done <= 0 && PyList_Append(left, forward) < 0) {
            Py_DECREF(forward);
            Py_DECREF(forwards);
            Py_DECREF(left);
            return NULL;
        }
        Py_DECREF(forward);
    }
    Py_DECREF(forwards);
    return left;
}

static PyMethodDef Sink_methods[] = {
    {"route", (PyCFunction)Sink_route, METH_VARARGS,
     "route(session, context, sock, sendto, address): where packets go from now on"},
    {"send", (PyCFunction)(void (*)(void))Sink_send, METH_FASTCALL,
     "send(marker, sequence, timestamp, payload, wall) -> bool: protect and send one packet"},
    {"kept", (PyCFunction)Sink_kept, METH_O,
     "kept(sequence) -> (marker, timestamp, payload) | None: what a NACK of it would send"},
    {"guard", (PyCFunction)Sink_guard, METH_VARARGS,
     "guard(sender, dtls, nominated, pair, connected): what must hold for `fanout` to send itself"},
    {"unguard", (PyCFunction)Sink_unguard, METH_NOARGS, "unguard(): `fanout` leaves this viewer track to Python"},
    {"resend", (PyCFunction)(void (*)(void))Sink_resend, METH_FASTCALL,
     "resend(sequence, wall) -> bool: send a kept packet again (a NACK), not counted as sent"},
    {"forgotten", (PyCFunction)(void (*)(void))Sink_forgotten, METH_FASTCALL,
     "forgotten(sequence, wall) -> bool: a packet no longer kept for its age (or one before it)"},
    {NULL}
};

static PyMemberDef Sink_members[] = {
    {"ssrc", T_UINT, offsetof(Sink, ssrc), READONLY, NULL},
    {"payload_type", T_INT, offsetof(Sink, payload_type), 0, NULL},
    {"send_time_id", T_INT, offsetof(Sink, send_time_id), 0, NULL},
    {"capacity", T_PYSSIZET, offsetof(Sink, capacity), READONLY, NULL},
    {"keep", T_DOUBLE, offsetof(Sink, keep), 0, NULL},
    {"sent", T_ULONGLONG, offsetof(Sink, sent), READONLY, NULL},
    {"dropped", T_ULONGLONG, offsetof(Sink, dropped), READONLY, NULL},
    {"octets", T_ULONGLONG, offsetof(Sink, octets), READONLY, NULL},
    {"fanned", T_ULONGLONG, offsetof(Sink, fanned), READONLY, NULL},
    {"last_timestamp", T_UINT, offsetof(Sink, last_timestamp), READONLY, NULL},
    {"last_wall", T_DOUBLE, offsetof(Sink, last_wall), READONLY, NULL},
    {NULL}
};

static PyGetSetDef Sink_getset[] = {
    {"guarded", (getter)Sink_get_guarded, NULL, "whether `fanout` may send for this viewer track", NULL},
    {NULL}
};

static PyTypeObject SinkType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "server.media._sink.Sink",
    .tp_doc = "The compiled send path of one viewer track (server/media/sink.py).",
    .tp_basicsize = sizeof(Sink),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Sink_init,
    .tp_dealloc = (destructor)Sink_dealloc,
    .tp_traverse = (traverseproc)Sink_traverse,
    .tp_clear = (inquiry)Sink_clear,
    .tp_methods = Sink_methods,
    .tp_members = Sink_members,
    .tp_getset = Sink_getset,
};

static PyObject *
use_protect(PyObject *module, PyObject *address)
{
    void *function = PyLong_AsVoidPtr(address);
    if (function == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "srtp_protect's address is 0");
        return NULL;
    }
    protect = (protect_fn)function;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"use_protect", use_protect, METH_O, "use_protect(address): libsrtp's srtp_protect, from pylibsrtp"},
    {"fanout", (PyCFunction)(void (*)(void))fanout, METH_FASTCALL,
     "fanout(forwards, sequence, timestamp, ssrc, marker, now, payload, wall) -> the forwards left to Python"},
    {NULL}
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_sink", "The compiled send path of a viewer track.", -1, module_methods,
};

PyMODINIT_FUNC
PyInit__sink(void)
{
    if (PyType_Ready(&SinkType) < 0)
        return NULL;
#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL;
    INTERN(str_rewriter, "rewriter") INTERN(str_outlet, "outlet") INTERN(str_sink, "sink")
    INTERN(str_transport, "_RTCRtpSender__transport") INTERN(str_state, "_state") INTERN(str_held, "held")
    INTERN(str_ssrc, "ssrc") INTERN(str_highest, "highest") INTERN(str_span, "span")
    INTERN(str_seq_offset, "seq_offset") INTERN(str_ts_offset, "ts_offset") INTERN(str_last_seq, "last_seq")
    INTERN(str_last_ts, "last_ts") INTERN(str_last_at, "last_at") INTERN(str_video, "video")
#undef INTERN
    if ((one = PyLong_FromLong(1)) == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Sink", (PyObject *)&SinkType) < 0 || PyModule_AddIntConstant(m, "API", API) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
