/*
 * testbox: the one program of the e2e tests' application image, static so the image is a
 * single file (built by provision.sh; nothing is pulled).
 *
 *   testbox serve PORT TEXT   listen on 0.0.0.0:PORT; every connection gets TEXT and a newline.
 *                             Logs "testbox: serving on PORT" and one line per connection.
 *   testbox get IP PORT       connect (5 s deadline), print what the server sends; exit 1 with
 *                             one line on stderr when it cannot.
 *   testbox connect IP PORT   connect (5 s deadline), print "connected", close: reachability of a
 *                             server that speaks first only after the client does (TLS).
 *   testbox sleep             wait for SIGTERM/SIGINT, exit 0.
 *   testbox cat FILE...       print files (what a pod sees: mounted Secrets, /etc/resolv.conf).
 *   testbox tls-serve PORT DIR [HUP_AFTER]
 *                             TLS on 0.0.0.0:PORT with DIR/tls.crt and DIR/tls.key; every
 *                             connection gets "serial=HEX reloads=N". SIGHUP reloads both files
 *                             (a failed reload keeps the old pair and is logged). With HUP_AFTER
 *                             seconds, the SIGHUP handler is installed only that long after start:
 *                             until then SIGHUP kills it, as it would an application that is slow
 *                             to start.
 *   testbox tls-get IP PORT   TLS handshake (no verification: it reports, it does not trust);
 *                             prints "serial=HEX" of the served certificate and the server's line.
 *
 * Addresses are numeric only: the test node has no DNS, and nothing may look a name up.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

static void on_term(int sig) {
  (void)sig;
  _exit(0);
}

static int port_of(const char *s) {
  char *end = NULL;
  long p = strtol(s, &end, 10);
  if (!end || *end != '\0' || p < 1 || p > 65535) {
    fprintf(stderr, "testbox: bad port %s\n", s);
    exit(2);
  }
  return (int)p;
}

static int serve(int port, const char *text) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = {INADDR_ANY}};
  if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 64) < 0) {
    fprintf(stderr, "testbox: cannot listen on port %d: %s\n", port, strerror(errno));
    return 1;
  }
  printf("testbox: serving on %d\n", port);
  fflush(stdout);
  for (;;) {
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    int c = accept(fd, (struct sockaddr *)&peer, &len);
    if (c < 0) continue;
    printf("testbox: connection from %s\n", inet_ntoa(peer.sin_addr));
    fflush(stdout);
    dprintf(c, "%s\n", text);
    close(c);
  }
}

static void on_alarm(int sig) {
  (void)sig;
  static const char msg[] = "testbox: no answer within 5 s\n";
  if (write(2, msg, sizeof msg - 1) < 0) _exit(1);
  _exit(1);
}

static int get(const char *ip, int port, int read_reply) {
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  if (inet_pton(AF_INET, ip, &addr.sin_addr) != 1) {
    fprintf(stderr, "testbox: %s is not an IPv4 address\n", ip);
    return 2;
  }
  signal(SIGALRM, on_alarm);
  alarm(5);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
    fprintf(stderr, "testbox: cannot connect to %s:%d: %s\n", ip, port, strerror(errno));
    return 1;
  }
  if (!read_reply) {
    puts("connected");
    return 0;
  }
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) {
    if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) return 1;
  }
  return n < 0 ? 1 : 0;
}

static volatile sig_atomic_t hup_pending = 0;

static void on_hup(int sig) {
  (void)sig;
  hup_pending = 1;
}

/* The serial of a certificate in upper-case hex, as `openssl x509 -serial` prints it. */
static void serial_hex(X509 *cert, char *out, size_t len) {
  BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
  char *hex = bn ? BN_bn2hex(bn) : NULL;
  snprintf(out, len, "%s", hex ? hex : "?");
  OPENSSL_free(hex);
  BN_free(bn);
}

/* A new context with DIR's pair, or NULL with the reason logged. */
static SSL_CTX *load_pair(const char *dir, char *serial, size_t len) {
  char crt[4096], key[4096];
  snprintf(crt, sizeof crt, "%s/tls.crt", dir);
  snprintf(key, sizeof key, "%s/tls.key", dir);
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, crt) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    char err[256];
    ERR_error_string_n(ERR_get_error(), err, sizeof err);
    printf("testbox: cannot load %s and %s: %s\n", crt, key, err);
    fflush(stdout);
    SSL_CTX_free(ctx);
    return NULL;
  }
  serial_hex(SSL_CTX_get0_certificate(ctx), serial, len);
  return ctx;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int tls_serve(int port, const char *dir, int hup_after) {
  signal(SIGPIPE, SIG_IGN);
  /* Until the handler is installed, SIGHUP does what it does to a process that has none. */
  signal(SIGHUP, SIG_DFL);
  char serial[128];
  SSL_CTX *ctx = load_pair(dir, serial, sizeof serial);
  if (!ctx) return 1;
  int reloads = 0;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = {INADDR_ANY}};
  if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 64) < 0) {
    fprintf(stderr, "testbox: cannot listen on port %d: %s\n", port, strerror(errno));
    return 1;
  }
  printf("testbox: serving TLS on %d, serial %s\n", port, serial);
  fflush(stdout);
  double started = now_seconds();
  int handler = 0;
  for (;;) {
    if (!handler && now_seconds() - started >= hup_after) {
      struct sigaction sa = {0};
      sa.sa_handler = on_hup; /* no SA_RESTART: a SIGHUP ends accept() at once */
      sigaction(SIGHUP, &sa, NULL);
      handler = 1;
      printf("testbox: SIGHUP handler installed\n");
      fflush(stdout);
    }
    if (hup_pending) {
      hup_pending = 0;
      char next_serial[128];
      SSL_CTX *next = load_pair(dir, next_serial, sizeof next_serial);
      if (next) {
        SSL_CTX_free(ctx);
        ctx = next;
        reloads++;
        snprintf(serial, sizeof serial, "%s", next_serial);
        printf("testbox: SIGHUP: reloaded, serial %s\n", serial);
      } else {
        printf("testbox: SIGHUP: reload failed, still serving serial %s\n", serial);
      }
      fflush(stdout);
    }
    if (!handler) {
      /* Wake up to install the handler on time (to within 50 ms). */
      struct itimerval tick = {.it_value = {.tv_sec = 0, .tv_usec = 50000}};
      setitimer(ITIMER_REAL, &tick, NULL);
    }
    int c = accept(fd, NULL, NULL);
    if (!handler) {
      struct itimerval off = {0};
      setitimer(ITIMER_REAL, &off, NULL);
    }
    if (c < 0) continue;
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, c);
    if (SSL_accept(ssl) == 1) {
      char line[256];
      int n = snprintf(line, sizeof line, "serial=%s reloads=%d\n", serial, reloads);
      SSL_write(ssl, line, n);
      SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    close(c);
  }
}

static int tls_get(const char *ip, int port) {
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  if (inet_pton(AF_INET, ip, &addr.sin_addr) != 1) {
    fprintf(stderr, "testbox: %s is not an IPv4 address\n", ip);
    return 2;
  }
  signal(SIGALRM, on_alarm);
  alarm(5);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
    fprintf(stderr, "testbox: cannot connect to %s:%d: %s\n", ip, port, strerror(errno));
    return 1;
  }
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL *ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  if (SSL_connect(ssl) != 1) {
    char err[256];
    ERR_error_string_n(ERR_get_error(), err, sizeof err);
    fprintf(stderr, "testbox: TLS handshake with %s:%d failed: %s\n", ip, port, err);
    return 1;
  }
  X509 *cert = SSL_get1_peer_certificate(ssl);
  char serial[128] = "none";
  if (cert) serial_hex(cert, serial, sizeof serial);
  printf("serial=%s\n", serial);
  char buf[4096];
  int n;
  while ((n = SSL_read(ssl, buf, sizeof buf)) > 0) fwrite(buf, 1, (size_t)n, stdout);
  return 0;
}

static int cat(int n, char **files) {
  for (int i = 0; i < n; i++) {
    FILE *f = fopen(files[i], "r");
    if (!f) {
      fprintf(stderr, "testbox: cannot read %s: %s\n", files[i], strerror(errno));
      return 1;
    }
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, got, stdout);
    fclose(f);
  }
  return 0;
}

static void on_wakeup(int sig) { (void)sig; }

int main(int argc, char **argv) {
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  if (argc == 4 && strcmp(argv[1], "serve") == 0) return serve(port_of(argv[2]), argv[3]);
  if (argc == 4 && strcmp(argv[1], "get") == 0) return get(argv[2], port_of(argv[3]), 1);
  if (argc == 4 && strcmp(argv[1], "connect") == 0) return get(argv[2], port_of(argv[3]), 0);
  if (argc >= 3 && strcmp(argv[1], "cat") == 0) return cat(argc - 2, argv + 2);
  if ((argc == 4 || argc == 5) && strcmp(argv[1], "tls-serve") == 0) {
    struct sigaction wake = {0};
    wake.sa_handler = on_wakeup; /* no SA_RESTART: the alarm ends accept() */
    sigaction(SIGALRM, &wake, NULL);
    return tls_serve(port_of(argv[2]), argv[3], argc == 5 ? atoi(argv[4]) : 0);
  }
  if (argc == 4 && strcmp(argv[1], "tls-get") == 0) return tls_get(argv[2], port_of(argv[3]));
  if (argc == 2 && strcmp(argv[1], "sleep") == 0) {
    for (;;) pause();
  }
  fprintf(stderr, "usage: testbox serve PORT TEXT | get IP PORT | connect IP PORT | sleep | cat FILE... | "
                  "tls-serve PORT DIR [HUP_AFTER] | tls-get IP PORT\n");
  return 2;
}
