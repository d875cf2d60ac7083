// byte_relay: the floor that measure_overhead.py compares the service with.
//
//   byte_relay UPSTREAM_PORT
//
// Listens on an ephemeral loopback port (printed on the first line of stdout), and for each
// connection opens one to 127.0.0.1:UPSTREAM_PORT and copies bytes both ways, a blocking thread
// per direction, 64 KiB at a time. No parsing, no storage, no fan-out: what it adds to a stream
// is what one more process between the fake and the reader costs on this machine (a wake-up,
// a read and a write per batch), which no service can go below.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <thread>

namespace {

void copy(int from, int to) {
  static thread_local char buf[65536];
  for (;;) {
    const ssize_t n = read(from, buf, sizeof buf);
    if (n <= 0) break;
    for (ssize_t off = 0; off < n;) {
      const ssize_t w = write(to, buf + off, static_cast<std::size_t>(n - off));
      if (w <= 0) return;
      off += w;
    }
  }
  shutdown(to, SHUT_WR);
}

sockaddr_in loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: byte_relay UPSTREAM_PORT\n");
    return 2;
  }
  const int upstream = std::atoi(argv[1]);
  const int l = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = loopback(0);
  if (l < 0 || bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(l, 16) != 0) {
    std::perror("byte_relay: listen");
    return 1;
  }
  socklen_t len = sizeof a;
  getsockname(l, reinterpret_cast<sockaddr*>(&a), &len);
  std::printf("%d\n", ntohs(a.sin_port));
  std::fflush(stdout);
  for (;;) {
    const int c = accept(l, nullptr, nullptr);
    if (c < 0) continue;
    const int u = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in b = loopback(upstream);
    if (u < 0 || connect(u, reinterpret_cast<sockaddr*>(&b), sizeof b) != 0) {
      close(c);
      if (u >= 0) close(u);
      continue;
    }
    const int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::thread([c, u] {
      std::thread up([c, u] { copy(c, u); });
      copy(u, c);
      up.join();
      close(c);
      close(u);
    }).detach();
  }
}
