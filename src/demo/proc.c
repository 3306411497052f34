/* infergate demo: child processes (own process group, killed with the demo) and small blocking
 * loopback helpers. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "demo.h"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

void ig_demo_signals_install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: a signal cuts sleeps and blocking calls short */
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
}

int ig_demo_interrupted(void) {
  return interrupted != 0;
}

void ig_demo_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int ig_demo_spawn(ig_demo_child_t *c, const char *name, char *const argv[], const char *logpath) {
  memset(c, 0, sizeof *c);
  snprintf(c->name, sizeof c->name, "%s", name);
  snprintf(c->log, sizeof c->log, "%s", logpath);
  int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return IG_EIO;
  pid_t parent = getpid();
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    close(fd);
    return IG_EIO;
  }
  if (pid == 0) {
    setpgid(0, 0);
    /* if the demo dies without cleaning up (SIGKILL), the child still gets SIGTERM */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    int in = open("/dev/null", O_RDONLY);
    if (in >= 0) dup2(in, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    execv(argv[0], argv);
    dprintf(2, "infergate demo: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  setpgid(pid, pid); /* also here, so the group exists before we may signal it */
  close(fd);
  c->pid = pid;
  return 0;
}

int ig_demo_alive(ig_demo_child_t *c) {
  if (c->pid <= 0) return 0;
  int st;
  pid_t r = waitpid(c->pid, &st, WNOHANG);
  if (r == 0) return 1;
  if (r == c->pid) c->status = st;
  c->pid = 0;
  /* the group may still hold grandchildren (nginx workers): make sure they go too */
  return 0;
}

void ig_demo_stop(ig_demo_child_t **cs, size_t n, int grace_ms) {
  pid_t groups[64];
  size_t ng = 0;
  for (size_t i = 0; i < n && ng < 64; i++) {
    if (!cs[i] || cs[i]->pid <= 0) continue;
    groups[ng++] = cs[i]->pid;
    kill(-cs[i]->pid, SIGTERM);
  }
  uint64_t deadline = ig_now_ms() + (uint64_t)grace_ms;
  for (;;) {
    int left = 0;
    for (size_t i = 0; i < n; i++)
      if (cs[i] && ig_demo_alive(cs[i])) left = 1;
    if (!left || ig_now_ms() >= deadline) break;
    ig_demo_sleep_ms(10);
  }
  for (size_t i = 0; i < n; i++) {
    if (!cs[i] || cs[i]->pid <= 0) continue;
    kill(-cs[i]->pid, SIGKILL);
    int st;
    if (waitpid(cs[i]->pid, &st, 0) == cs[i]->pid) cs[i]->status = st;
    cs[i]->pid = 0;
  }
  /* whatever is left in the groups (a worker whose master exited) gets SIGKILL as well */
  for (size_t g = 0; g < ng; g++)
    kill(-groups[g], SIGKILL);
}

/* ---------------------------------------------------------------- loopback helpers */

/* 127.0.0.1:port. */
static struct sockaddr_in loopback_addr(int port) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sa;
}

static int loopback_socket(int port, int timeout_ms) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  struct sockaddr_in sa = loopback_addr(port);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int ig_demo_port_open(int port) {
  int fd = loopback_socket(port, 500);
  if (fd < 0) return 0;
  close(fd);
  return 1;
}

static int bind_port(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  /* as libuv's listeners do: TIME_WAIT leftovers of earlier connections do not make a port taken */
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = loopback_addr(port);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Finds n consecutive free ports below the kernel's ephemeral range (32768 and up), where the
 * client side of the benchmark's many connections cannot collide with them; returns the first. */
int ig_demo_free_ports(int n) {
  if (n < 1 || n > 256) return IG_EINVAL;
  /* one generator per process, and never the same range twice in a row: ports handed out but not
   * bound yet would look free again */
  static ig_rng_t rng;
  static int seeded, given_base[16], given_n[16], n_given;
  if (!seeded) {
    ig_rng_seed(&rng, ig_now_us() ^ (uint64_t)getpid());
    seeded = 1;
  }
  for (int attempt = 0; attempt < 500; attempt++) {
    int base = 15000 + (int)(ig_rng_next(&rng) % (uint64_t)(32000 - 15000 - n));
    int clash = 0;
    for (int g = 0; g < n_given && g < 16; g++)
      if (base < given_base[g] + given_n[g] && base + n > given_base[g]) clash = 1;
    if (clash) continue;
    int fds[256], ok = 1, k;
    for (k = 0; k < n; k++)
      if ((fds[k] = bind_port(base + k)) < 0) {
        ok = 0;
        break;
      }
    for (int j = 0; j < k; j++)
      close(fds[j]);
    if (ok) {
      given_base[n_given % 16] = base;
      given_n[n_given % 16] = n;
      n_given++;
      return base;
    }
  }
  return IG_EFULL;
}

int ig_demo_http_get(int port, const char *path, ig_buf_t *out) {
  int fd = loopback_socket(port, 3000);
  if (fd < 0) return IG_ECONNECT;
  ig_buf_t req, resp;
  ig_buf_init(&req);
  ig_buf_init(&resp);
  int rc = IG_EIO;
  ig_buf_printf(&req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", path, port);
  if (send(fd, req.data, req.len, MSG_NOSIGNAL) != (ssize_t)req.len) goto out;
  char chunk[16384];
  for (;;) {
    ssize_t k = recv(fd, chunk, sizeof chunk, 0);
    if (k < 0 && errno == EINTR && !ig_demo_interrupted()) continue;
    if (k < 0) goto out;
    if (k == 0) break;
    ig_buf_append(&resp, chunk, (size_t)k);
    if (resp.len > (16u << 20)) {
      rc = IG_ETOOBIG;
      goto out;
    }
  }
  const char *body = resp.data ? strstr(resp.data, "\r\n\r\n") : NULL;
  if (!body || resp.len < 12 || strncmp(resp.data + 9, "200", 3) != 0) {
    rc = IG_EPARSE;
    goto out;
  }
  body += 4;
  /* the sim closes the connection after a Connection: close answer; a chunked body would need
   * decoding, but the counters we look for survive chunk-size lines anyway */
  ig_buf_append(out, body, resp.len - (size_t)(body - resp.data));
  rc = 0;
out:
  close(fd);
  ig_buf_free(&req);
  ig_buf_free(&resp);
  return rc;
}
