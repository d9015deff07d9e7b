/*
 * pycni's compiled plugin shim: what `pycni install` puts into a CNI bin dir.
 *
 * It is pycni/executor/shim.py's fast path in C (that module's docstring is
 * the contract), so a call forwarded to the warm executor costs no Python
 * start-up:
 *
 * - The socket is $PYCNI_EXECUTOR_SOCKET if set (empty disables forwarding),
 *   else the configured one. ADD DEL CHECK VERSION STATUS GC are forwarded:
 *   stdin is read whole (not for VERSION on a terminal), the request frame
 *   (pycni/executor/protocol.py) goes out with descriptors of our netns, "/",
 *   "/sys" and CNI_NETNS; on "R" we say "G" and relay the outcome (stderr,
 *   stdout, exit code).
 * - Anything before "G" going wrong (no socket, a decline, EOF, a timeout,
 *   limits exceeded) means nothing ran: exec Python to run the plugin
 *   in-process (mode "run"). A connection that breaks after "G" is mode
 *   "died": Python undoes an ADD and fails it with code 11, and re-runs the
 *   other commands. Stdin already read is handed over in a memfd on fd 0.
 * - The environment sent is what Python's posix.environ holds: entries
 *   without "=" or with an empty name are left out, the first of duplicate
 *   names wins, and LC_CTYPE is coerced to C.UTF-8 under the C locale the
 *   way CPython does it at start-up (PEP 538).
 *
 * Configuration: `pycni install` patches the `config` area below (found by
 * its marker, which occurs once in the binary) with lines `type=`, `socket=`,
 * `python=` and `root=` (repeatable), NUL padded. Linux only, libc only.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <locale.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define CONFIG_SIZE 4096
#define CONFIG_MARKER "pycni-shim-config-v1\n"
#define DEFAULT_SOCKET "/run/pycni/executor.sock"
#define MAX_ROOTS 64
#define MAX_TYPE 64u
#define MAX_ENV (1u << 20)
#define MAX_STDIN (16u << 20)
#define READY_TIMEOUT_S 15
#define HEADER_SIZE 13
#define OUTCOME_HEADER_SIZE 10

/* Patched by `pycni install`; volatile and used so the compiler keeps all of it and never folds it. */
__attribute__((used)) static volatile const char config[CONFIG_SIZE] = CONFIG_MARKER;

/* Runs the plugin in-process; argv: type, mode ("run" or "died"), import roots, and when the
 * shim itself got arguments (`dhcp daemon ...`), "--" and those, left in sys.argv for the plugin. */
static const char FALLBACK_CODE[] =
    "import sys;a=sys.argv;i=a.index('--')if'--'in a else len(a);sys.path[:0]=a[3:i];t,m=a[1:3];del a[1:i+1];"
    "from pycni.executor.shim import fallback;fallback(t,m=='died')";

/* The shim's own arguments (after its name), handed on to Python by fallback(). */
static int own_argc;
static char **own_argv;

extern char **environ;

struct shim_config {
    char text[CONFIG_SIZE + 1];
    const char *type;
    const char *socket;
    const char *python;
    const char *roots[MAX_ROOTS];
    size_t nroots;
};

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

enum forward_result { NOT_TAKEN, TAKEN, DIED };

/* -- small helpers --------------------------------------------------------- */

static int buf_reserve(struct buf *b, size_t extra)
{
    if (extra <= b->cap - b->len)
        return 0;
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    char *data = realloc(b->data, cap);
    if (!data)
        return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

static int buf_append(struct buf *b, const void *data, size_t len)
{
    if (buf_reserve(b, len) != 0)
        return -1;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static void write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* like shim._write: a closed stream is not our problem */
        }
        data += n;
        len -= (size_t)n;
    }
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get_be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* A CNI error on stdout, exit 1: for a shim that cannot even start Python. */
static _Noreturn void fail(const char *what, const char *detail)
{
    struct buf out = {0};
    char msg[8192];
    snprintf(msg, sizeof msg, "pycni shim: %s%s%s", what, detail ? ": " : "", detail ? detail : "");
    const char *head = "{\"cniVersion\":\"1.0.0\",\"code\":999,\"msg\":\"";
    if (buf_append(&out, head, strlen(head)) == 0) {
        for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
            char esc[8];
            if (*p == '"' || *p == '\\') {
                esc[0] = '\\';
                esc[1] = (char)*p;
                buf_append(&out, esc, 2);
            } else if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                buf_append(&out, esc, 6);
            } else {
                buf_append(&out, p, 1);
            }
        }
        buf_append(&out, "\"}\n", 3);
        write_all(1, out.data, out.len);
    }
    _exit(1);
}

/* -- configuration ---------------------------------------------------------- */

static int load_config(struct shim_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < CONFIG_SIZE; i++)
        cfg->text[i] = config[i];
    cfg->text[CONFIG_SIZE] = '\0';
    /* sizeof, not strcmp: a second copy of the marker in the binary would confuse `pycni install` */
    char *line = cfg->text + sizeof CONFIG_MARKER - 1;
    if (line[-1] != '\n')
        return -1;
    while (*line) {
        char *end = strchr(line, '\n');
        if (!end)
            return -1; /* every line ends with a newline */
        *end = '\0';
        if (strncmp(line, "type=", 5) == 0)
            cfg->type = line + 5;
        else if (strncmp(line, "socket=", 7) == 0)
            cfg->socket = line + 7;
        else if (strncmp(line, "python=", 7) == 0)
            cfg->python = line + 7;
        else if (strncmp(line, "root=", 5) == 0 && cfg->nroots < MAX_ROOTS)
            cfg->roots[cfg->nroots++] = line + 5;
        line = end + 1;
    }
    if (!cfg->socket)
        cfg->socket = DEFAULT_SOCKET;
    return cfg->type && *cfg->type && cfg->python && *cfg->python ? 0 : -1;
}

/* -- stdin ------------------------------------------------------------------ */

/* All of stdin into *in; -1 to leave it to Python (VERSION on a terminal, an unreadable fd). */
static int read_stdin(const char *command, struct buf *in)
{
    if (strcmp(command, "VERSION") == 0 && isatty(0))
        return -1;
    for (;;) {
        if (buf_reserve(in, 1 << 16) != 0) {
            buf_free(in);
            return -1;
        }
        ssize_t n = read(0, in->data + in->len, in->cap - in->len);
        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            buf_free(in);
            return -1;
        }
        in->len += (size_t)n;
    }
}

/* -- the environment, as CPython's posix.environ would hold it --------------- */

/* The LC_CTYPE value CPython's start-up would set (PEP 538 locale coercion), or NULL. */
static const char *coerced_ctype(void)
{
    static const char *const targets[] = {"C.UTF-8", "C.utf8", "UTF-8"};
    const char *all = getenv("LC_ALL");
    if (all && *all)
        return NULL;
    setlocale(LC_CTYPE, "");
    const char *current = setlocale(LC_CTYPE, NULL);
    if (!current || strcmp(current, "C") != 0)
        return NULL;
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        if (setlocale(LC_CTYPE, targets[i])) {
            const char *codeset = nl_langinfo(CODESET);
            if (codeset && *codeset)
                return targets[i];
            setlocale(LC_CTYPE, "");
        }
    }
    return NULL;
}

static uint64_t name_hash(const char *name, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)name[i]) * 1099511628211ull;
    return h;
}

/* `KEY=VALUE\0` for every variable protocol.encode_env would send; -1 past MAX_ENV or out of memory. */
static int encode_env(struct buf *env)
{
    size_t count = 0;
    while (environ && environ[count])
        count++;
    size_t slots = 16;
    while (slots < count * 2)
        slots *= 2;
    const char **seen = calloc(slots, sizeof *seen); /* open addressing on names: the first one wins */
    if (!seen)
        return -1;
    const char *ctype = coerced_ctype();
    int ctype_done = 0, status = 0;
    for (size_t i = 0; i < count && status == 0; i++) {
        const char *entry = environ[i];
        const char *eq = strchr(entry, '=');
        if (!eq || eq == entry)
            continue;
        size_t name_len = (size_t)(eq - entry);
        size_t slot = (size_t)name_hash(entry, name_len) & (slots - 1);
        int duplicate = 0;
        for (; seen[slot]; slot = (slot + 1) & (slots - 1)) {
            if (strncmp(seen[slot], entry, name_len + 1) == 0) {
                duplicate = 1;
                break;
            }
        }
        if (duplicate)
            continue;
        seen[slot] = entry;
        if (ctype && name_len == 8 && memcmp(entry, "LC_CTYPE", 8) == 0) {
            ctype_done = 1;
            status = buf_append(env, "LC_CTYPE=", 9) | buf_append(env, ctype, strlen(ctype) + 1);
        } else {
            status = buf_append(env, entry, strlen(entry) + 1);
        }
        if (env->len > MAX_ENV)
            status = -1;
    }
    if (status == 0 && ctype && !ctype_done) /* setenv appends a new variable */
        status = buf_append(env, "LC_CTYPE=", 9) | buf_append(env, ctype, strlen(ctype) + 1);
    if (env->len > MAX_ENV)
        status = -1;
    free(seen);
    return status;
}

/* -- the socket --------------------------------------------------------------- */

static int recv_exact(int sock, void *data, size_t len)
{
    char *p = data;
    while (len > 0) {
        ssize_t n = recv(sock, p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1; /* error, timeout, or the executor closed the connection */
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* sendmsg the iovecs whole, the descriptors with the first bytes; -1 on error or timeout. */
static int send_all(int sock, struct iovec *iov, int iovcnt, const int *fds, size_t nfds)
{
    union {
        char buf[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
    if (nfds > 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(cmsg), fds, nfds * sizeof(int));
    }
    while (msg.msg_iovlen > 0) {
        ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) /* nothing was sent, the descriptors neither */
                continue;
            return -1;
        }
        msg.msg_control = NULL; /* the descriptors went with the first bytes */
        msg.msg_controllen = 0;
        size_t sent = (size_t)n;
        while (msg.msg_iovlen > 0 && sent >= msg.msg_iov[0].iov_len) {
            sent -= msg.msg_iov[0].iov_len;
            msg.msg_iov++;
            msg.msg_iovlen--;
        }
        if (msg.msg_iovlen > 0) {
            msg.msg_iov[0].iov_base = (char *)msg.msg_iov[0].iov_base + sent;
            msg.msg_iov[0].iov_len -= sent;
        }
    }
    return 0;
}

static int set_timeout(int sock, int seconds)
{
    struct timeval tv = {.tv_sec = seconds, .tv_usec = 0};
    if (setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0)
        return -1;
    return setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/*
 * connect() without waiting for room in a full backlog, as CPython's connect on a socket with a timeout does
 * (a unix socket answers EAGAIN, never EINPROGRESS): an executor that busy is not waited for.
 */
static int connect_now(int sock, const struct sockaddr *addr, socklen_t addr_len)
{
    int flags = fcntl(sock, F_GETFL);
    if (flags < 0 || fcntl(sock, F_SETFL, flags | O_NONBLOCK) != 0)
        return -1;
    if (connect(sock, addr, addr_len) != 0)
        return -1;
    return fcntl(sock, F_SETFL, flags);
}

/* Append `data` to `out` as Python's bytes.decode("utf-8", "replace") would show it. */
static void append_utf8_replaced(struct buf *out, const unsigned char *s, size_t n)
{
    static const char replacement[] = "\xef\xbf\xbd";
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t need;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c < 0x80) {
            buf_append(out, s + i, 1);
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            need = 1;
        else if (c >= 0xe0 && c <= 0xef)
            need = 2, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        else if (c >= 0xf0 && c <= 0xf4)
            need = 3, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        else {
            buf_append(out, replacement, 3);
            i++;
            continue;
        }
        size_t j = i + 1;
        int valid = 1;
        for (size_t k = 0; k < need; k++, j++) {
            if (j >= n || s[j] < (k == 0 ? lo : 0x80) || s[j] > (k == 0 ? hi : 0xbf)) {
                valid = 0;
                break;
            }
        }
        if (valid)
            buf_append(out, s + i, j - i);
        else
            buf_append(out, replacement, 3); /* one for the maximal invalid subpart, as CPython does */
        i = j;
    }
}

/* shim._report_decline: with PYCNI_DEBUG=1, say why the executor did not take the call. */
static void report_decline(int sock, char answer)
{
    const char *debug = getenv("PYCNI_DEBUG");
    if (!debug || strcmp(debug, "1") != 0)
        return;
    struct buf line = {0};
    unsigned char size[2];
    unsigned char reason[65536];
    const char *head = "pycni: executor did not take the call (";
    const char *tail = "); running it in-process\n";
    buf_append(&line, head, strlen(head));
    size_t len = 0;
    int have_reason = answer == 'D' && recv_exact(sock, size, 2) == 0;
    if (have_reason) {
        len = ((size_t)size[0] << 8) | size[1];
        have_reason = recv_exact(sock, reason, len) == 0;
    }
    if (have_reason)
        append_utf8_replaced(&line, reason, len);
    else
        buf_append(&line, "connection closed", 17);
    buf_append(&line, tail, strlen(tail));
    write_all(2, line.data, line.len);
    buf_free(&line);
}

/* Open the descriptors the executor needs; the count, or -1 (nothing left open). */
static int open_descriptors(int fds[4])
{
    int n = 0;
    fds[n] = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (fds[n] < 0)
        return -1;
    n++;
    const char *const paths[] = {"/", "/sys"};
    for (size_t i = 0; i < 2; i++) {
        fds[n] = open(paths[i], O_PATH | O_CLOEXEC);
        if (fds[n] < 0) {
            while (n > 0)
                close(fds[--n]);
            return -1;
        }
        n++;
    }
    const char *netns = getenv("CNI_NETNS");
    if (netns && *netns) {
        fds[n] = open(netns, O_PATH | O_CLOEXEC);
        if (fds[n] >= 0) /* absent here (DEL after the netns went): the executor must not see it either */
            n++;
    }
    return n;
}

/* shim._hand_over: send the request; 1 once the executor is ready and has been told to go. */
static int hand_over(int sock, const char *path, const struct shim_config *cfg, const struct buf *in)
{
    size_t type_len = strlen(cfg->type);
    if (type_len == 0 || type_len > MAX_TYPE || in->len > MAX_STDIN)
        return 0; /* protocol.encode_request would refuse it */
    struct buf env = {0};
    if (encode_env(&env) != 0) {
        buf_free(&env);
        return 0;
    }
    int fds[4];
    int nfds = open_descriptors(fds);
    int ready = 0;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t path_len = strlen(path);
    if (nfds > 0 && path_len <= sizeof addr.sun_path && set_timeout(sock, READY_TIMEOUT_S) == 0) {
        memcpy(addr.sun_path, path, path_len); /* like CPython: no NUL needed when it is full */
        socklen_t addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len);
        unsigned char header[HEADER_SIZE];
        memcpy(header, "PCX1", 4);
        header[4] = (unsigned char)type_len;
        put_be32(header + 5, (uint32_t)env.len);
        put_be32(header + 9, (uint32_t)in->len);
        struct iovec iov[4] = {
            {.iov_base = header, .iov_len = HEADER_SIZE},
            {.iov_base = (void *)cfg->type, .iov_len = type_len},
            {.iov_base = env.data, .iov_len = env.len},
            {.iov_base = in->data, .iov_len = in->len},
        };
        char answer;
        if (connect_now(sock, (struct sockaddr *)&addr, addr_len) == 0 &&
            send_all(sock, iov, 4, fds, (size_t)nfds) == 0 && recv_exact(sock, &answer, 1) == 0) {
            if (answer != 'R') {
                report_decline(sock, answer);
            } else {
                struct iovec go = {.iov_base = "G", .iov_len = 1};
                ready = send_all(sock, &go, 1, NULL, 0) == 0;
            }
        }
    }
    while (nfds > 0)
        close(fds[--nfds]);
    buf_free(&env);
    return ready;
}

/* shim.forward: the executor's outcome in *outcome (TAKEN), NOT_TAKEN, or DIED after "go". */
static enum forward_result forward(const struct shim_config *cfg, const char *path, const struct buf *in,
                                   unsigned char header[OUTCOME_HEADER_SIZE], struct buf *body)
{
    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0)
        return NOT_TAKEN;
    enum forward_result result = NOT_TAKEN;
    if (hand_over(sock, path, cfg, in)) {
        result = DIED;
        if (set_timeout(sock, 0) == 0 && /* the executor enforces the call's timeout */
            recv_exact(sock, header, OUTCOME_HEADER_SIZE) == 0 && header[0] == 'O') {
            uint64_t size = (uint64_t)get_be32(header + 2) + get_be32(header + 6);
            if (size <= SIZE_MAX - 1 && buf_reserve(body, (size_t)size + 1) == 0 &&
                recv_exact(sock, body->data, (size_t)size) == 0) {
                body->len = (size_t)size;
                result = TAKEN;
            }
        }
    }
    close(sock);
    return result;
}

/* -- the fallback: Python, in-process ------------------------------------------ */

/* Put the stdin already read back on fd 0, as a file that reads from its start. */
static void restore_stdin(const struct buf *in)
{
    int fd = memfd_create("pycni-stdin", MFD_CLOEXEC);
    if (fd < 0)
        fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
        fail("cannot keep stdin for the in-process fallback", strerror(errno));
    size_t done = 0;
    while (done < in->len) {
        ssize_t n = write(fd, in->data + done, in->len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail("cannot keep stdin for the in-process fallback", strerror(errno));
        done += (size_t)n;
    }
    if (lseek(fd, 0, SEEK_SET) != 0 || dup2(fd, 0) != 0) /* dup2 leaves fd 0 without CLOEXEC */
        fail("cannot keep stdin for the in-process fallback", strerror(errno));
    close(fd);
}

static _Noreturn void fallback(const struct shim_config *cfg, const struct buf *in, int executor_died)
{
    if (in)
        restore_stdin(in);
    const char **argv = malloc((8 + MAX_ROOTS + (size_t)own_argc + 1) * sizeof *argv);
    if (!argv)
        fail("cannot run python", "out of memory");
    size_t argc = 0;
    argv[argc++] = cfg->python;
    argv[argc++] = "-I";
    argv[argc++] = "-S";
    argv[argc++] = "-c";
    argv[argc++] = FALLBACK_CODE;
    argv[argc++] = cfg->type;
    argv[argc++] = executor_died ? "died" : "run";
    for (size_t i = 0; i < cfg->nroots; i++)
        argv[argc++] = cfg->roots[i];
    if (own_argc > 0) {
        argv[argc++] = "--";
        for (int i = 0; i < own_argc; i++)
            argv[argc++] = own_argv[i];
    }
    argv[argc] = NULL;
    execv(cfg->python, (char *const *)argv);
    char detail[4096 + 256];
    snprintf(detail, sizeof detail, "%s: %s", cfg->python, strerror(errno));
    fail("cannot run python", detail);
}

int main(int argc, char **argv)
{
    static struct shim_config cfg;
    own_argc = argc > 1 ? argc - 1 : 0;
    own_argv = argv + 1;
    if (load_config(&cfg) != 0)
        fail("this file was not configured by 'pycni install'", NULL);
    const char *command = getenv("CNI_COMMAND");
    const char *path = getenv("PYCNI_EXECUTOR_SOCKET");
    if (!command)
        command = "";
    if (!path)
        path = cfg.socket;
    static const char *const forwarded[] = {"ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC"};
    int forward_it = 0;
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        forward_it |= strcmp(command, forwarded[i]) == 0;
    if (!forward_it || !*path)
        fallback(&cfg, NULL, 0);

    struct buf in = {0};
    if (read_stdin(command, &in) != 0)
        fallback(&cfg, NULL, 0);
    unsigned char header[OUTCOME_HEADER_SIZE];
    struct buf body = {0};
    enum forward_result result = forward(&cfg, path, &in, header, &body);
    if (result != TAKEN)
        fallback(&cfg, &in, result == DIED);

    size_t out_len = get_be32(header + 2);
    signal(SIGPIPE, SIG_IGN); /* as in Python: a reader that went away is an EPIPE, not a signal */
    if (body.len > out_len)
        write_all(2, body.data + out_len, body.len - out_len);
    write_all(1, body.data, out_len);
    _exit(header[1]);
}
