#include "upstream/dns/resolver.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <boost/asio/steady_timer.hpp>

extern char** environ;

namespace sluice::upstream::dns {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using std::chrono::milliseconds;
using std::chrono::steady_clock;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

// Generous: the machine is shared and noisy. Only the timeout tests bound elapsed time, and
// only from above, with a wide margin.
constexpr milliseconds kLimit{10000};

asio::ip::address ip(const char* text) { return asio::ip::make_address(text); }

// Runs `ioc` until `done()` or `limit` has passed; false on the latter.
bool run_until(asio::io_context& ioc, const std::function<bool()>& done,
               milliseconds limit = kLimit) {
  const auto deadline = steady_clock::now() + limit;
  while (!done()) {
    if (steady_clock::now() >= deadline) return false;
    ioc.restart();
    ioc.run_for(2ms);
  }
  return true;
}

// Runs `ioc` for `d`, whether or not it has work (events that must not happen get their chance).
void run_for(asio::io_context& ioc, milliseconds d) {
  asio::steady_timer timer(ioc, d);
  bool fired = false;
  timer.async_wait([&](boost::system::error_code) { fired = true; });
  run_until(
      ioc, [&] { return fired; }, d + kLimit);
}

struct Outcome {
  int calls = 0;
  Resolution resolution;
  std::string error;
};

// Starts a resolution; the outcome fills in when its callback runs.
std::shared_ptr<Outcome> start(Resolver& resolver, const std::string& host) {
  auto outcome = std::make_shared<Outcome>();
  resolver.resolve(host, [outcome](const Resolution& resolution, const std::string& error) {
    ++outcome->calls;
    outcome->resolution = resolution;
    outcome->error = error;
  });
  EXPECT_EQ(outcome->calls, 0) << "the callback ran inside resolve()";
  return outcome;
}

Outcome resolve(asio::io_context& ioc, Resolver& resolver, const std::string& host) {
  auto outcome = start(resolver, host);
  EXPECT_TRUE(run_until(ioc, [&] { return outcome->calls > 0; })) << "no answer for " << host;
  EXPECT_EQ(outcome->calls, 1);
  return *outcome;
}

// A UDP socket on 127.0.0.1:<ephemeral> that never answers: a DNS server that is down but whose
// host still accepts packets. It counts the queries it swallowed.
class BlackHole {
 public:
  BlackHole() {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "black hole socket: " << std::strerror(errno);
      return;
    }
    port_ = ntohs(addr.sin_port);
  }
  ~BlackHole() {
    if (fd_ >= 0) close(fd_);
  }
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }
  int drain() {
    int n = 0;
    char buf[1500];
    while (recv(fd_, buf, sizeof(buf), MSG_DONTWAIT) >= 0) ++n;
    return n;
  }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// A loopback port (UDP and TCP) nothing listens on, for now.
uint16_t free_port() {
  for (int attempt = 0; attempt < 20; ++attempt) {
    int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    uint16_t port = 0;
    if (bind(udp, reinterpret_cast<sockaddr*>(&addr), len) == 0 &&
        getsockname(udp, reinterpret_cast<sockaddr*>(&addr), &len) == 0 &&
        bind(tcp, reinterpret_cast<sockaddr*>(&addr), len) == 0) {
      port = ntohs(addr.sin_port);
    }
    close(udp);
    close(tcp);
    if (port != 0) return port;
  }
  ADD_FAILURE() << "no free loopback port";
  return 0;
}

std::string find_dnsmasq() {
  std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
  // Debian installs it in /usr/sbin, which a normal user's PATH may lack.
  path += ":/usr/sbin:/sbin";
  std::stringstream dirs(path);
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/dnsmasq";
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A DNS query for `name` (type A) with id 0x5151.
std::string dns_query(const std::string& name) {
  std::string q("\x51\x51\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", 12);
  std::stringstream labels(name);
  for (std::string label; std::getline(labels, label, '.');) {
    q += static_cast<char>(label.size());
    q += label;
  }
  q += std::string("\x00\x00\x01\x00\x01", 5);
  return q;
}

// A real dnsmasq on 127.0.0.1:<free port>, answering from a hosts file of the test's, every
// other name NXDOMAIN (--local=/#/: no upstream). Started in SetUp, killed in TearDown.
class DnsmasqTest : public ::testing::Test {
 protected:
  static constexpr int kTtl = 42;

  void SetUp() override {
    binary_ = find_dnsmasq();
    if (binary_.empty()) {
      GTEST_SKIP() << "dnsmasq is not installed (Debian: apt-get install dnsmasq-base); "
                      "skipping the tests against a real DNS server";
    }
    char tmpl[] = "/tmp/sluice-dns-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    write_hosts("10.1.2.3 api.sluice.test\nfd00::1 api.sluice.test\n");
    // A port can be taken between free_port() and dnsmasq's bind: try a few.
    for (int attempt = 0; attempt < 3 && pid_ <= 0; ++attempt) start_dnsmasq();
    ASSERT_GT(pid_, 0) << "dnsmasq did not start:\n" << read_file(dir_ / "dnsmasq.log");
  }

  void TearDown() override {
    resolver_.reset();
    if (pid_ > 0) stop(pid_);
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // Writes the hosts file whole (rename), so dnsmasq never reads half of it.
  void write_hosts(const std::string& content) {
    {
      std::ofstream out(dir_ / "hosts.new");
      out << content;
    }
    fs::rename(dir_ / "hosts.new", dir_ / "hosts");
  }

  void reload() { ASSERT_EQ(kill(pid_, SIGHUP), 0); }

  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }

  Resolver& make_resolver(std::vector<std::string> servers, milliseconds timeout = 2000ms) {
    std::string error = "unset";
    resolver_ = std::make_unique<Resolver>(ioc_, std::move(servers), timeout, &error);
    EXPECT_EQ(error, "");
    return *resolver_;
  }

  asio::io_context ioc_;
  std::unique_ptr<Resolver> resolver_;

 private:
  void start_dnsmasq() {
    port_ = free_port();
    std::vector<std::string> args = {
        binary_,
        "--no-daemon",  // foreground, logs to stderr
        "--port=" + std::to_string(port_),
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--addn-hosts=" + (dir_ / "hosts").string(),
        "--local-ttl=" + std::to_string(kTtl),
        "--local=/#/",  // every name not in the hosts file: NXDOMAIN, nothing forwarded
        "--conf-file=/dev/null",
        "--pid-file=",  // none
        "--log-queries",
        "--log-facility=-",
    };
    // As root dnsmasq would switch to "nobody", which cannot read the test's 0700 directory.
    if (geteuid() == 0) args.push_back("--user=root");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    const std::string log = (dir_ / "dnsmasq.log").string();
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, binary_.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      ADD_FAILURE() << "posix_spawn " << binary_ << ": " << std::strerror(rc);
      return;
    }
    if (wait_ready(pid)) {
      pid_ = pid;
    } else {
      stop(pid);
    }
  }

  // True once dnsmasq answers a query; false if it exited or did not answer in time.
  bool wait_ready(pid_t pid) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    timeval tv{0, 100000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port_);
    const std::string query = dns_query("api.sluice.test");
    const auto deadline = steady_clock::now() + kLimit;
    bool ready = false;
    while (!ready && steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        close(fd);
        return false;  // exited (port taken?)
      }
      sendto(fd, query.data(), query.size(), 0, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
      char buf[512];
      ready = recv(fd, buf, sizeof(buf), 0) > 0;
      if (!ready) std::this_thread::sleep_for(20ms);  // refused at once before it binds
    }
    close(fd);
    return ready;
  }

  static void stop(pid_t pid) {
    kill(pid, SIGTERM);
    const auto deadline = steady_clock::now() + 5s;
    while (waitpid(pid, nullptr, WNOHANG) == 0) {
      if (steady_clock::now() >= deadline) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        return;
      }
      std::this_thread::sleep_for(10ms);
    }
  }

  std::string binary_;
  fs::path dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

TEST_F(DnsmasqTest, ResolvesIpv4AndIpv6WithTheirTtl) {
  Resolver& resolver = make_resolver({server()});
  Outcome out = resolve(ioc_, resolver, "api.sluice.test");
  EXPECT_EQ(out.error, "");
  EXPECT_THAT(out.resolution.addresses, UnorderedElementsAre(ip("10.1.2.3"), ip("fd00::1")));
  EXPECT_EQ(out.resolution.ttl, std::chrono::seconds(kTtl));
}

TEST_F(DnsmasqTest, SeesTheNewAddressAfterTheServerReloads) {
  Resolver& resolver = make_resolver({server()});
  Outcome before = resolve(ioc_, resolver, "api.sluice.test");
  ASSERT_EQ(before.error, "");
  ASSERT_THAT(before.resolution.addresses, UnorderedElementsAre(ip("10.1.2.3"), ip("fd00::1")));

  write_hosts("10.1.2.4 api.sluice.test\n");
  reload();
  // dnsmasq re-reads the file after the signal, at its own pace: ask until it answers anew.
  Outcome after;
  const auto deadline = steady_clock::now() + kLimit;
  do {
    after = resolve(ioc_, resolver, "api.sluice.test");
  } while (after.resolution.addresses != std::vector{ip("10.1.2.4")} &&
           steady_clock::now() < deadline);
  EXPECT_EQ(after.error, "");
  EXPECT_THAT(after.resolution.addresses, UnorderedElementsAre(ip("10.1.2.4")));
  EXPECT_EQ(after.resolution.ttl, std::chrono::seconds(kTtl));
}

TEST_F(DnsmasqTest, UnknownNameIsAnErrorNamingTheHost) {
  Resolver& resolver = make_resolver({server()});
  Outcome out = resolve(ioc_, resolver, "nope.sluice.test");
  EXPECT_EQ(out.error, "cannot resolve nope.sluice.test: Domain name not found");
  EXPECT_TRUE(out.resolution.addresses.empty());
}

TEST_F(DnsmasqTest, ManyQueriesAtOnceEachGetTheirAnswer) {
  Resolver& resolver = make_resolver({server()});
  std::vector<std::shared_ptr<Outcome>> outcomes;
  for (int i = 0; i < 20; ++i) {
    outcomes.push_back(start(resolver, i % 2 ? "api.sluice.test" : "nope.sluice.test"));
  }
  ASSERT_TRUE(run_until(ioc_, [&] {
    for (auto& o : outcomes) {
      if (o->calls == 0) return false;
    }
    return true;
  }));
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(outcomes[i]->calls, 1);
    if (i % 2) {
      EXPECT_EQ(outcomes[i]->error, "");
      EXPECT_EQ(outcomes[i]->resolution.addresses.size(), 2u);
    } else {
      EXPECT_THAT(outcomes[i]->error, HasSubstr("cannot resolve nope.sluice.test: "));
    }
  }
}

TEST_F(DnsmasqTest, AServerThatDoesNotAnswerIsSkippedForTheNext) {
  BlackHole down;
  Resolver& resolver = make_resolver({down.server(), server()}, 3000ms);
  Outcome out = resolve(ioc_, resolver, "api.sluice.test");
  EXPECT_EQ(out.error, "");
  EXPECT_THAT(out.resolution.addresses, UnorderedElementsAre(ip("10.1.2.3"), ip("fd00::1")));
  EXPECT_EQ(down.drain(), 2);  // A and AAAA, once
}

// A server that swallows queries: the error comes within the configured timeout (c-ares's two
// tries per server), never sooner than the tries take.
TEST(Resolver, SilentServerTimesOutWithinTheTimeout) {
  BlackHole down;
  asio::io_context ioc;
  std::string error;
  const milliseconds timeout = 600ms;
  Resolver resolver(ioc, {down.server()}, timeout, &error);
  ASSERT_EQ(error, "");
  const auto started = steady_clock::now();
  Outcome out = resolve(ioc, resolver, "api.sluice.test");
  const auto elapsed = steady_clock::now() - started;
  EXPECT_EQ(out.error, "cannot resolve api.sluice.test: Timeout while contacting DNS servers");
  EXPECT_TRUE(out.resolution.addresses.empty());
  // 200ms, then 400ms: never earlier than the bound; later only by scheduling delay.
  EXPECT_GE(elapsed, timeout);
  EXPECT_LT(elapsed, timeout + 2000ms);
  EXPECT_EQ(down.drain(), 4);  // A and AAAA, each tried twice
}

TEST(Resolver, TwoSilentServersShareTheTimeout) {
  BlackHole a, b;
  asio::io_context ioc;
  std::string error;
  const milliseconds timeout = 600ms;
  Resolver resolver(ioc, {a.server(), b.server()}, timeout, &error);
  ASSERT_EQ(error, "");
  const auto started = steady_clock::now();
  Outcome out = resolve(ioc, resolver, "api.sluice.test");
  const auto elapsed = steady_clock::now() - started;
  EXPECT_THAT(out.error, HasSubstr("Timeout while contacting DNS servers"));
  EXPECT_GE(elapsed, timeout);
  EXPECT_LT(elapsed, timeout + 2000ms);
  EXPECT_EQ(a.drain(), 4);
  EXPECT_EQ(b.drain(), 4);
}

// Nothing listens: the kernel refuses the packets (ICMP port unreachable) or, where it does not
// report that, they go unanswered. Either way an error naming the host, within the timeout.
TEST(Resolver, ClosedPortFailsWithinTheTimeout) {
  const uint16_t port = free_port();
  asio::io_context ioc;
  std::string error;
  const milliseconds timeout = 600ms;
  Resolver resolver(ioc, {"127.0.0.1:" + std::to_string(port)}, timeout, &error);
  ASSERT_EQ(error, "");
  const auto started = steady_clock::now();
  Outcome out = resolve(ioc, resolver, "api.sluice.test");
  EXPECT_LT(steady_clock::now() - started, timeout + 2000ms);
  EXPECT_THAT(
      out.error,
      ::testing::AnyOf("cannot resolve api.sluice.test: Could not contact DNS servers",
                       "cannot resolve api.sluice.test: Timeout while contacting DNS servers"));
}

TEST(Resolver, IpLiteralResolvesLaterWithoutAQuery) {
  BlackHole down;
  asio::io_context ioc;
  std::string error;
  Resolver resolver(ioc, {down.server()}, 1000ms, &error);
  ASSERT_EQ(error, "");
  for (const char* literal : {"10.0.0.7", "::1", "2001:db8::42"}) {
    Outcome out = resolve(ioc, resolver, literal);  // checks it is not called inline
    EXPECT_EQ(out.error, "");
    EXPECT_THAT(out.resolution.addresses, UnorderedElementsAre(ip(literal)));
    EXPECT_EQ(out.resolution.ttl, std::chrono::seconds(0));
  }
  EXPECT_EQ(down.drain(), 0);
}

TEST(Resolver, LocalhostComesFromTheHostsFileWithoutAQuery) {
  BlackHole down;
  asio::io_context ioc;
  std::string error;
  Resolver resolver(ioc, {down.server()}, 1000ms, &error);
  ASSERT_EQ(error, "");
  Outcome out = resolve(ioc, resolver, "localhost");
  EXPECT_EQ(out.error, "");
  ASSERT_FALSE(out.resolution.addresses.empty());
  for (const auto& a : out.resolution.addresses) EXPECT_TRUE(a.is_loopback()) << a;
  EXPECT_EQ(out.resolution.ttl, std::chrono::seconds(0));  // unknown
  EXPECT_EQ(down.drain(), 0);
}

TEST(Resolver, BadConfigurationIsReportedAndEveryNameFails) {
  asio::io_context ioc;
  for (const char* bad : {"dns.example:53", "127.0.0.1:0", "127.0.0.1:65536", "[::1]53",
                          "127.0.0.1:5x", "[::1", ""}) {
    std::string error;
    Resolver resolver(ioc, {"127.0.0.1:53", bad}, 1000ms, &error);
    EXPECT_EQ(error, "bad DNS server \"" + std::string(bad) + "\": expected ip:port");
    Outcome out = resolve(ioc, resolver, "api.sluice.test");
    EXPECT_EQ(out.error, "cannot resolve api.sluice.test: " + error);
    // Literals need no server.
    EXPECT_EQ(resolve(ioc, resolver, "127.0.0.1").error, "");
  }
  std::string error;
  Resolver resolver(ioc, {}, 0ms, &error);
  EXPECT_EQ(error, "DNS timeout must be positive");
}

TEST(Resolver, AcceptsEveryServerForm) {
  asio::io_context ioc;
  for (const char* good : {"127.0.0.1:53", "127.0.0.1", "[::1]:5353", "[::1]", "::1"}) {
    std::string error = "unset";
    Resolver resolver(ioc, {good}, 1000ms, &error);
    EXPECT_EQ(error, "") << good;
  }
  std::string error = "unset";
  Resolver system(ioc, {}, 1000ms, &error);  // /etc/resolv.conf
  EXPECT_EQ(error, "");
}

TEST(Resolver, DestroyedWithQueriesPendingNeverCallsBack) {
  BlackHole down;
  asio::io_context ioc;
  std::string error;
  const milliseconds timeout = 300ms;
  auto resolver = std::make_unique<Resolver>(ioc, std::vector{down.server()}, timeout, &error);
  ASSERT_EQ(error, "");
  int calls = 0;
  auto count = [&calls](const Resolution&, const std::string&) { ++calls; };
  resolver->resolve("api.sluice.test", count);
  resolver->resolve("other.sluice.test", count);
  run_for(ioc, 50ms);                    // queries sent, sockets watched, retransmit timer armed
  resolver->resolve("10.0.0.1", count);  // an answer already posted
  EXPECT_EQ(calls, 0);
  resolver.reset();
  run_for(ioc, timeout + 300ms);  // past every deadline the queries had
  EXPECT_EQ(calls, 0);
  EXPECT_GE(down.drain(), 4);
}

TEST(Resolver, MayBeDestroyedFromItsOwnCallback) {
  BlackHole down;
  asio::io_context ioc;
  std::string error;
  auto resolver = std::make_unique<Resolver>(ioc, std::vector{down.server()}, 300ms, &error);
  ASSERT_EQ(error, "");
  int pending_calls = 0;
  bool destroyed = false;
  resolver->resolve("api.sluice.test",
                    [&](const Resolution&, const std::string&) { ++pending_calls; });
  resolver->resolve("10.0.0.1", [&](const Resolution&, const std::string& e) {
    EXPECT_EQ(e, "");
    resolver.reset();
    destroyed = true;
  });
  ASSERT_TRUE(run_until(ioc, [&] { return destroyed; }));
  run_for(ioc, 600ms);
  EXPECT_EQ(pending_calls, 0);
}

RC_GTEST_PROP(ResolverProperty, EveryIpLiteralResolvesToItself, ()) {
  asio::ip::address address;
  if (*rc::gen::arbitrary<bool>()) {
    address = asio::ip::address_v4(*rc::gen::arbitrary<uint32_t>());
  } else {
    asio::ip::address_v6::bytes_type bytes;
    for (auto& b : bytes) b = *rc::gen::arbitrary<unsigned char>();
    address = asio::ip::address_v6(bytes);
  }
  asio::io_context ioc;
  std::string error;
  // A server nothing listens on: a literal must not need one.
  Resolver resolver(ioc, {"127.0.0.1:9"}, 1000ms, &error);
  RC_ASSERT(error.empty());
  int calls = 0;
  Resolution got;
  std::string got_error = "unset";
  resolver.resolve(address.to_string(), [&](const Resolution& r, const std::string& e) {
    ++calls;
    got = r;
    got_error = e;
  });
  RC_ASSERT(calls == 0);
  ioc.poll();
  RC_ASSERT(calls == 1);
  RC_ASSERT(got_error.empty());
  RC_ASSERT(got.addresses == std::vector{address});
  RC_ASSERT(got.ttl == std::chrono::seconds(0));
}

}  // namespace
}  // namespace sluice::upstream::dns
