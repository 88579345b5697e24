/* Host port (Linux, macOS): the firmware as a process, its serial link a pseudo-terminal.
 *
 * On start it prints one line, `SQZ-PTY <path>`, on stdout and then serves the protocol on the
 * master side of the pty; a client opens <path> like any serial port. The counter is
 * CLOCK_MONOTONIC in nanoseconds. The process exits cleanly on SIGTERM, SIGINT or SIGHUP, when
 * its stdin reaches end of file (run it with `--ignore-stdin` to disable that) and when its
 * parent dies, so a test harness never leaves it behind.
 */
#define _XOPEN_SOURCE 600

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include "model.h"
#include "sqz/port.h"
#include "sqz_target.h"

#define WAIT_MS 200

static uint8_t arena[SQZ_MODEL_ARENA_BYTES + 16u] __attribute__((aligned(16)));

static int master_fd = -1;
static int slave_fd = -1; /* held open so the master never sees a hang-up between clients */
static int watch_stdin = 1;
static pid_t parent_pid;
static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void die(const char *what)
{
    fprintf(stderr, "port_host: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void make_raw(int fd)
{
    struct termios t;
    if (tcgetattr(fd, &t) != 0) {
        die("tcgetattr");
    }
    t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON |
                             IXOFF | IXANY);
    t.c_oflag &= ~(tcflag_t)OPOST;
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
    t.c_cflag |= CS8 | CREAD | CLOCAL;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(fd, TCSANOW, &t) != 0) {
        die("tcsetattr");
    }
}

/* True when the parent that started us is gone (we were re-parented). */
static int orphaned(void)
{
    return getppid() != parent_pid;
}

void sqz_port_init(void)
{
    master_fd = posix_openpt(O_RDWR | O_NOCTTY);
    if (master_fd < 0) {
        die("posix_openpt");
    }
    if (grantpt(master_fd) != 0 || unlockpt(master_fd) != 0) {
        die("grantpt/unlockpt");
    }
    const char *name = ptsname(master_fd);
    if (!name) {
        die("ptsname");
    }
    slave_fd = open(name, O_RDWR | O_NOCTTY);
    if (slave_fd < 0) {
        die("open pty slave");
    }
    make_raw(slave_fd);
    const int flags = fcntl(master_fd, F_GETFL);
    if (flags < 0 || fcntl(master_fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        die("fcntl O_NONBLOCK");
    }
    printf("SQZ-PTY %s\n", name);
    fflush(stdout);
}

int32_t sqz_port_read(uint8_t *buf, int32_t max)
{
    if (max <= 0) {
        return 0;
    }
    const ssize_t n = read(master_fd, buf, (size_t)max);
    return n > 0 ? (int32_t)n : 0;
}

void sqz_port_write(const uint8_t *buf, int32_t n)
{
    int32_t done = 0;
    while (done < n && !stop_requested) {
        const ssize_t w = write(master_fd, buf + done, (size_t)(n - done));
        if (w > 0) {
            done += (int32_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            return; /* the link is gone; the main loop notices */
        }
        /* The pty is full (nobody reads): wait, but stay stoppable. */
        struct pollfd p = {master_fd, POLLOUT, 0};
        (void)poll(&p, 1, WAIT_MS);
        if (orphaned()) {
            stop_requested = 1;
        }
    }
}

uint64_t sqz_port_counter(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint8_t *sqz_port_arena(uint32_t bytes)
{
    return bytes <= sizeof arena ? arena : NULL;
}

/* Blocks until the pty has data, stdin has news, a signal arrives or WAIT_MS pass. */
static void wait_for_input(void)
{
    struct pollfd p[2];
    nfds_t n = 1;
    p[0].fd = master_fd;
    p[0].events = POLLIN;
    p[0].revents = 0;
    if (watch_stdin) {
        p[1].fd = STDIN_FILENO;
        p[1].events = POLLIN;
        p[1].revents = 0;
        n = 2;
    }
    if (poll(p, n, WAIT_MS) <= 0) {
        return;
    }
    if (watch_stdin && p[1].revents) {
        char sink[256];
        const ssize_t r = read(STDIN_FILENO, sink, sizeof sink);
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
            stop_requested = 1; /* stdin closed: whoever started us is done */
        }
    }
    if ((p[0].revents & (POLLHUP | POLLERR | POLLNVAL)) && !(p[0].revents & POLLIN)) {
        (void)poll(NULL, 0, WAIT_MS / 4); /* no spinning on a hung-up master */
    }
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--ignore-stdin") == 0) {
            watch_stdin = 0;
        } else {
            fprintf(stderr, "usage: %s [--ignore-stdin]\n", argv[0]);
            return 2;
        }
    }
    parent_pid = getppid();
#if defined(__linux__)
    (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
    if (orphaned()) {
        return 0; /* the parent died before prctl took effect */
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    sqz_port_init();
    sqz_app_init();
    while (!stop_requested) {
        wait_for_input();
        if (stop_requested || orphaned()) {
            break;
        }
        sqz_app_poll();
    }
    close(slave_fd);
    close(master_fd);
    return 0;
}
