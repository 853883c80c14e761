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
#include <unistd.h>

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

int main(int argc, char **argv) {
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  if (argc == 4 && strcmp(argv[1], "serve") == 0) return serve(port_of(argv[2]), argv[3]);
  if (argc == 4 && strcmp(argv[1], "get") == 0) return get(argv[2], port_of(argv[3]), 1);
  if (argc == 4 && strcmp(argv[1], "connect") == 0) return get(argv[2], port_of(argv[3]), 0);
  if (argc == 2 && strcmp(argv[1], "sleep") == 0) {
    for (;;) pause();
  }
  fprintf(stderr, "usage: testbox serve PORT TEXT | get IP PORT | connect IP PORT | sleep\n");
  return 2;
}
