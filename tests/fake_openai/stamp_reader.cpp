// stamp_reader: the lean client of tests/fake_openai/measure_overhead.py.
//
//   stamp_reader HOST PORT PATH N [BODY]
//
// Sends one HTTP/1.1 request (POST with BODY as JSON when given, else GET for an event stream),
// then reads the response and, for each of the first N `data:` lines that carry a stamp
// `<microseconds>` (CLOCK_MONOTONIC, written by fake_openai), prints the receipt time minus the
// stamp in microseconds, one a line. The receipt time is taken once per recv(), as any client
// sees it. Plain blocking sockets: a Python reader spent ~3 µs a chunk, on the same two cores as
// the service it measures, and its backlog counted as the service's latency.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace {

long long now_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

// The stamp of a `data:` line, or -1.
long long stamp_of(std::string_view line) {
  if (line.substr(0, 5) != "data:") return -1;
  const auto lt = line.find('<');
  if (lt == std::string_view::npos) return -1;
  long long v = 0;
  std::size_t i = lt + 1;
  for (; i < line.size() && line[i] >= '0' && line[i] <= '9'; ++i) v = v * 10 + (line[i] - '0');
  if (i == lt + 1 || i >= line.size() || line[i] != '>') return -1;
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: stamp_reader HOST PORT PATH N [BODY]\n");
    return 2;
  }
  const char* host = argv[1];
  const int port = std::atoi(argv[2]);
  const std::string path = argv[3];
  const long n = std::atol(argv[4]);
  std::string req;
  if (argc > 5) {
    const std::string body = argv[5];
    req = "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
          "Accept: text/event-stream\r\nContent-Length: " + std::to_string(body.size()) +
          "\r\n\r\n" + body;
  } else {
    req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n";
  }

  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (fd < 0 || inet_pton(AF_INET, host, &addr.sin_addr) != 1 ||
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::fprintf(stderr, "stamp_reader: cannot connect to %s:%d: %s\n", host, port,
                 std::strerror(errno));
    return 1;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  for (std::size_t sent = 0; sent < req.size();) {
    const ssize_t w = send(fd, req.data() + sent, req.size() - sent, 0);
    if (w <= 0) {
      std::fprintf(stderr, "stamp_reader: send failed: %s\n", std::strerror(errno));
      return 1;
    }
    sent += static_cast<std::size_t>(w);
  }

  std::vector<long long> lat;
  lat.reserve(static_cast<std::size_t>(n));
  std::string buf;
  std::vector<char> chunk(1 << 18);
  while (static_cast<long>(lat.size()) < n) {
    const ssize_t r = recv(fd, chunk.data(), chunk.size(), 0);
    if (r <= 0) break;
    const long long now = now_us();
    buf.append(chunk.data(), static_cast<std::size_t>(r));
    std::size_t start = 0;
    for (;;) {
      const auto nl = buf.find('\n', start);
      if (nl == std::string::npos) break;
      const long long s = stamp_of(std::string_view(buf).substr(start, nl - start));
      if (s >= 0 && static_cast<long>(lat.size()) < n) lat.push_back(now - s);
      start = nl + 1;
    }
    buf.erase(0, start);
  }
  close(fd);
  std::string out;
  for (long long v : lat) out += std::to_string(v) + "\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  return static_cast<long>(lat.size()) == n ? 0 : 1;
}
