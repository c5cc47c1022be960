#pragma once
// Test support: a real `redis-server` on a free 127.0.0.1 port, started by the test and killed
// when the object goes away (or with the test process: PR_SET_PDEATHSIG). Plus a blocking
// one-command client for test setup and inspection (INFO), independent of the client under
// test. The test thread may block; workers never do.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace sluice::test {

class RedisServer {
 public:
  // Starts on a free port; ok() says whether it answers PING.
  RedisServer() {
    for (int attempt = 0; attempt < 5 && !ok_; ++attempt) {  // another process may take the port
      port_ = free_port();
      ok_ = port_ != 0 && start();
    }
  }
  ~RedisServer() { stop(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  bool ok() const { return ok_; }
  uint16_t port() const { return port_; }

  // (Re)starts on the same port and waits, bounded, until it answers PING.
  bool start() {
    stop();
    const std::string binary = find_binary();
    if (binary.empty()) return false;
    const std::string port = std::to_string(port_);
    std::vector<std::string> args = {binary,   "--port", port,           "--bind", "127.0.0.1",
                                     "--save", "",       "--appendonly", "no",     "--daemonize",
                                     "no",     "--dir",  "/tmp"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      // Only async-signal-safe calls between fork and exec.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      const int devnull = open("/dev/null", O_RDWR);
      if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
      }
      execv(argv[0], argv.data());
      _exit(127);
    }
    if (pid_ < 0) return false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (command("PING\r\n") == "+PONG") return true;
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {  // exited: e.g. the port was taken
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);  // works on a stopped process too
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  void pause() {
    if (pid_ > 0) kill(pid_, SIGSTOP);
  }
  void resume() {
    if (pid_ > 0) kill(pid_, SIGCONT);
  }

  // Sends one inline command ("INFO stats\r\n") on a new blocking connection and returns the
  // first reply: "+OK", "-ERR ...", ":1", or a bulk string's contents. "" on any failure.
  std::string command(std::string_view inline_command) const {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return "";
    timeval tv{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port_);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string in;
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        send(fd, inline_command.data(), inline_command.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(inline_command.size())) {
      char buf[4096];
      for (;;) {
        const size_t eol = in.find("\r\n");
        if (eol != std::string::npos) {
          if (in[0] != '$') {
            in.resize(eol);
            break;
          }
          const long len = std::strtol(in.c_str() + 1, nullptr, 10);
          if (len < 0) {
            in.clear();
            break;
          }
          if (in.size() >= eol + 2 + static_cast<size_t>(len)) {
            in = in.substr(eol + 2, len);
            break;
          }
        }
        const ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
          in.clear();
          break;
        }
        in.append(buf, n);
      }
    }
    ::close(fd);
    return in;
  }

  // The integer value of `field` in an INFO section ("total_connections_received"), or -1.
  long long info_field(std::string_view section, std::string_view field) const {
    const std::string info = command("INFO " + std::string(section) + "\r\n");
    const std::string key = "\n" + std::string(field) + ":";
    const size_t at = ("\n" + info).find(key);
    if (at == std::string::npos) return -1;
    return std::strtoll(info.c_str() + at + key.size() - 1, nullptr, 10);
  }

 private:
  static uint16_t free_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    uint16_t port = 0;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    ::close(fd);
    return port;
  }

  static std::string find_binary() {
    if (access("/usr/bin/redis-server", X_OK) == 0) return "/usr/bin/redis-server";
    const char* path = std::getenv("PATH");
    std::string_view rest = path ? path : "";
    while (!rest.empty()) {
      const size_t colon = rest.find(':');
      std::string candidate = std::string(rest.substr(0, colon)) + "/redis-server";
      if (access(candidate.c_str(), X_OK) == 0) return candidate;
      rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
    }
    return "";
  }

  uint16_t port_ = 0;
  pid_t pid_ = -1;
  bool ok_ = false;
};

}  // namespace sluice::test
