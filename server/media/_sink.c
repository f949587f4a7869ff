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

#define MTU 1500          /* pylibsrtp's buffer: a packet and its SRTP trailer fit in it */
#define MAX_TRAILER (16 + 128)  /* SRTP_MAX_TRAILER_LEN */
#define SEND_TIME_LEN 8   /* the one-byte extension block holding abs-send-time */

typedef int (*protect_fn)(void *ctx, void *rtp, int *len);

/* A packet sent, kept to answer a NACK: the header is written again from these when it goes out
   again (with the abs-send-time of then, as libwebrtc does); the payload is the publisher's,
   shared by every viewer of the packet. */
typedef struct {
    PyObject *payload;  /* NULL: nothing kept here */
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
    /* the viewer track */
    unsigned int ssrc;
    int payload_type;
    int send_time_id;
    Kept *history;      /* at sequence % capacity; NULL when capacity is 0 (audio: nobody NACKs it) */
    Py_ssize_t capacity;
    unsigned long long sent, dropped, octets;
    unsigned int last_timestamp;
    double last_wall;
} Sink;

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
    return 0;  /* the kept payloads are bytes: they hold no references */
}

static int
Sink_clear(Sink *self)
{
    Py_CLEAR(self->session);
    Py_CLEAR(self->sock);
    Py_CLEAR(self->sendto);
    Py_CLEAR(self->address);
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
    int sent = put(self, marker, sequence, timestamp, payload, wall);
    if (sent < 0)
        return NULL;
    if (!sent)
        Py_RETURN_FALSE;
    if (self->capacity) {
        Kept *kept = &self->history[sequence % (unsigned long)self->capacity];
        Py_INCREF(payload);
        Py_XSETREF(kept->payload, payload);
        kept->timestamp = (uint32_t)timestamp;
        kept->sequence = (uint16_t)sequence;
        kept->marker = (uint8_t)marker;
    }
    self->sent++;
    self->octets += (unsigned long long)PyBytes_GET_SIZE(payload);
    self->last_timestamp = (unsigned int)timestamp;
    self->last_wall = wall;
    Py_RETURN_TRUE;
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
    PyObject *payload = Py_NewRef(kept->payload);  /* the call below may run Python code */
    int sent = put(self, kept->marker, kept->sequence, kept->timestamp, payload, wall);
    Py_DECREF(payload);
    if (sent < 0)
        return NULL;
    return PyBool_FromLong(sent);
}

static PyMethodDef Sink_methods[] = {
    {"route", (PyCFunction)Sink_route, METH_VARARGS,
     "route(session, context, sock, sendto, address): where packets go from now on"},
    {"send", (PyCFunction)(void (*)(void))Sink_send, METH_FASTCALL,
     "send(marker, sequence, timestamp, payload, wall) -> bool: protect and send one packet"},
    {"kept", (PyCFunction)Sink_kept, METH_O,
     "kept(sequence) -> (marker, timestamp, payload) | None: what a NACK of it would send"},
    {"resend", (PyCFunction)(void (*)(void))Sink_resend, METH_FASTCALL,
     "resend(sequence, wall) -> bool: send a kept packet again (a NACK), not counted as sent"},
    {NULL}
};

static PyMemberDef Sink_members[] = {
    {"ssrc", T_UINT, offsetof(Sink, ssrc), READONLY, NULL},
    {"payload_type", T_INT, offsetof(Sink, payload_type), 0, NULL},
    {"send_time_id", T_INT, offsetof(Sink, send_time_id), 0, NULL},
    {"capacity", T_PYSSIZET, offsetof(Sink, capacity), READONLY, NULL},
    {"sent", T_ULONGLONG, offsetof(Sink, sent), READONLY, NULL},
    {"dropped", T_ULONGLONG, offsetof(Sink, dropped), READONLY, NULL},
    {"octets", T_ULONGLONG, offsetof(Sink, octets), READONLY, NULL},
    {"last_timestamp", T_UINT, offsetof(Sink, last_timestamp), READONLY, NULL},
    {"last_wall", T_DOUBLE, offsetof(Sink, last_wall), READONLY, NULL},
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
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Sink", (PyObject *)&SinkType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
