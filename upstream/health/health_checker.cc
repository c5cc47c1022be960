#include "upstream/health/health_checker.h"

#include <algorithm>
#include <charconv>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include "core/tls_session.h"
#include "upstream/connector.h"
#include "upstream/health/probe_codec.h"

namespace sluice::upstream::health {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

// One read of the response: room for a whole TLS record (16 KiB of plaintext and overhead).
constexpr size_t kReadSize = 16 * 1024 + 256;

std::string duration_text(std::chrono::milliseconds d) {
  if (d.count() >= 1000 && d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + "s";
  return std::to_string(d.count()) + "ms";
}

bool status_expected(const config::HealthCheck& settings, unsigned status) {
  return std::any_of(settings.expected_statuses.begin(), settings.expected_statuses.end(),
                     [status](const auto& r) { return status >= r.first && status <= r.second; });
}

}  // namespace

std::optional<tcp::endpoint> parse_host_endpoint(std::string_view name) {
  const size_t colon = name.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  std::string_view addr = name.substr(0, colon);
  const std::string_view port_text = name.substr(colon + 1);
  uint32_t port = 0;
  const char* end = port_text.data() + port_text.size();
  auto [ptr, ec] = std::from_chars(port_text.data(), end, port);
  if (ec != std::errc() || ptr != end || port_text.empty() || port == 0 || port > 65535) {
    return std::nullopt;
  }
  error_code aec;
  asio::ip::address address;
  if (addr.front() == '[') {
    if (addr.size() < 3 || addr.back() != ']') return std::nullopt;
    address = asio::ip::make_address_v6(std::string(addr.substr(1, addr.size() - 2)), aec);
  } else {
    if (addr.find(':') != std::string_view::npos) return std::nullopt;  // IPv6 needs brackets
    address = asio::ip::make_address_v4(std::string(addr), aec);
  }
  if (aec) return std::nullopt;
  return tcp::endpoint(address, static_cast<uint16_t>(port));
}

// One probe: its own connection, deadline, TLS session and codec. Shared by its handlers so
// that a cancelled probe's buffers live until Asio has delivered every completion.
struct HealthChecker::Probe {
  Probe(asio::io_context& ioc, uint64_t epoch) : socket(ioc), deadline(ioc), epoch(epoch) {}
  // After this, each pending handler sees `done` and does nothing.
  void cancel() {
    done = true;
    error_code ignored;
    socket.close(ignored);
    deadline.cancel();
  }

  tcp::socket socket;
  asio::steady_timer deadline;
  std::unique_ptr<TlsSession> tls;  // the cluster has TLS
  std::unique_ptr<ProbeCodec> codec;
  std::string buffer;             // what the last read got (decrypted in place)
  std::string out;                // being written
  const char* stage = "connect";  // what a timeout interrupted
  const uint64_t epoch;           // the host state's epoch when the probe began
  bool done = false;
};

// One host's schedule and counters. Handlers hold it by shared_ptr (it owns the timer they wait
// on); `epoch` changes on every deactivation, so a handler queued before it does nothing.
struct HealthChecker::HostState {
  HostState(asio::io_context& ioc, HostPtr h) : host(std::move(h)), timer(ioc) {}

  HostPtr host;
  std::optional<tcp::endpoint> endpoint;
  std::string authority;  // http: the Host header (HTTP/1.1) or :authority (h2)
  TlsNames tls_names;     // the cluster has TLS
  asio::steady_timer timer;
  std::shared_ptr<Probe> probe;  // in flight
  uint64_t epoch = 0;
  bool active = false;
  uint64_t successes = 0;
  uint64_t failures = 0;
  uint64_t probes = 0;
  std::string last_result;
};

HealthChecker::HealthChecker(asio::io_context& ioc, std::string cluster,
                             config::HealthCheck settings, HostSetPtr hosts,
                             OnTransition on_transition, ProbeTransport transport)
    : ioc_(ioc),
      cluster_(std::move(cluster)),
      settings_(std::move(settings)),
      on_transition_(std::move(on_transition)),
      transport_(std::move(transport)),
      rng_(std::random_device{}()) {
  update_hosts(std::move(hosts));
}

HealthChecker::~HealthChecker() {
  for (auto& s : states_) deactivate(*s);
}

void HealthChecker::start() {
  if (running_) return;
  running_ = true;
  for (auto& s : states_) activate(s);
}

void HealthChecker::stop() {
  running_ = false;
  for (auto& s : states_) deactivate(*s);
}

void HealthChecker::update_hosts(HostSetPtr hosts) {
  if (!hosts) hosts = std::make_shared<const HostSet>();
  std::unordered_map<const Host*, HostStatePtr> old;
  for (auto& s : states_) old.emplace(s->host.get(), s);
  std::vector<HostStatePtr> next;
  next.reserve(hosts->hosts.size());
  std::unordered_set<const Host*> seen;
  for (const auto& h : hosts->hosts) {
    if (!h || !seen.insert(h.get()).second) continue;
    if (auto it = old.find(h.get()); it != old.end()) {
      next.push_back(std::move(it->second));
      old.erase(it);
    } else {
      next.push_back(make_state(h));
      if (running_) activate(next.back());
    }
  }
  for (auto& [host, s] : old) deactivate(*s);
  states_ = std::move(next);
  hosts_ = std::move(hosts);
  hosts_->refresh_available();
}

void HealthChecker::set_tls_context(std::shared_ptr<ssl_ctx_st> context) {
  transport_.tls_context = std::move(context);
}

std::vector<HealthChecker::HostStatus> HealthChecker::status() const {
  std::vector<HostStatus> out;
  out.reserve(states_.size());
  for (const auto& s : states_) {
    out.push_back({s->host, s->successes, s->failures, s->probes, s->last_result});
  }
  return out;
}

HealthChecker::HostStatePtr HealthChecker::make_state(const HostPtr& host) const {
  auto s = std::make_shared<HostState>(ioc_, host);
  s->endpoint = parse_host_endpoint(host->name());
  if (settings_.type == config::HealthCheck::Type::http) {
    // The endpoint as configured: its name (with the port) when it came from DNS.
    s->authority = settings_.host;
    if (s->authority.empty()) {
      s->authority = host->hostname().empty()
                         ? host->name()
                         : host->hostname() + host->name().substr(host->name().rfind(':'));
    }
    if (transport_.tls) s->tls_names = tls_names(*transport_.tls, *host);
  }
  return s;
}

void HealthChecker::activate(const HostStatePtr& s) {
  s->active = true;
  schedule(s, first_delay());
}

void HealthChecker::deactivate(HostState& s) {
  s.active = false;
  ++s.epoch;
  s.timer.cancel();
  if (s.probe) {
    s.probe->cancel();
    s.probe.reset();
  }
}

void HealthChecker::schedule(const HostStatePtr& s, Clock::duration delay) {
  s->timer.expires_after(delay);
  // The epoch check also covers a wait that had completed (and was queued) before a cancel.
  s->timer.async_wait([weak = weak_from_this(), s, epoch = s->epoch](const error_code& ec) {
    if (ec || !s->active || s->epoch != epoch) return;
    if (auto self = weak.lock()) self->probe(s);
  });
}

void HealthChecker::probe(const HostStatePtr& s) {
  auto p = std::make_shared<Probe>(ioc_, s->epoch);
  s->probe = p;
  if (!s->endpoint) {
    finish(s, p, false, "not an address and port: " + s->host->name());
    return;
  }
  p->deadline.expires_after(std::max(settings_.timeout, std::chrono::milliseconds(1)));
  p->deadline.async_wait([weak = weak_from_this(), s, p](const error_code& ec) {
    if (ec || p->done) return;
    if (auto self = weak.lock()) {
      self->finish(
          s, p, false,
          "timeout after " + duration_text(self->settings_.timeout) + " (" + p->stage + ")");
    }
  });
  p->socket.async_connect(*s->endpoint, [weak = weak_from_this(), s, p](const error_code& ec) {
    if (p->done) return;
    auto self = weak.lock();
    if (!self) return;
    if (ec) {
      self->finish(s, p, false, "connect: " + ec.message());
      return;
    }
    if (self->settings_.type == config::HealthCheck::Type::tcp) {
      self->finish(s, p, true, "connected");
      return;
    }
    error_code ignored;
    p->socket.set_option(tcp::no_delay(true), ignored);
    if (!self->transport_.tls_context) {
      self->start_exchange(s, p);
      return;
    }
    // The cluster's TLS, as its connection pools do it (connector.h).
    p->stage = "tls handshake";
    p->tls = std::make_unique<TlsSession>(self->transport_.tls_context.get(), s->tls_names.sni,
                                          s->tls_names.verify_name);
    tls_handshake(p->socket, *p->tls, [weak, s, p](const std::string& error) {
      if (p->done) return;
      auto self = weak.lock();
      if (!self) return;
      if (!error.empty()) {
        self->finish(s, p, false, "tls: " + error);
      } else if (self->transport_.h2 && p->tls->alpn() != "h2") {
        self->finish(s, p, false, "tls: the server did not select ALPN h2");
      } else {
        self->start_exchange(s, p);
      }
    });
  });
}

void HealthChecker::start_exchange(const HostStatePtr& s, const std::shared_ptr<Probe>& p) {
  const std::string path = settings_.path.empty() ? std::string("/") : settings_.path;
  if (transport_.h2) {
    p->codec = make_h2_probe(path, s->authority, p->tls != nullptr);
  } else {
    p->codec = make_http1_probe("GET " + path + " HTTP/1.1\r\nHost: " + s->authority +
                                "\r\nUser-Agent: sluice-health-check\r\nConnection: close\r\n\r\n");
  }
  p->stage = "request";
  send_then_read(s, p);
}

// Writes what the codec has to send (the request, then HTTP/2's acknowledgements), then reads.
void HealthChecker::send_then_read(const HostStatePtr& s, const std::shared_ptr<Probe>& p) {
  std::string plain;
  p->codec->take_output(plain);
  p->out.clear();
  if (p->tls && !plain.empty()) {
    if (p->tls->write(plain) == TlsSession::Result::error) {
      finish(s, p, false, "tls: " + p->tls->error());
      return;
    }
    p->tls->take_output(p->out);
  } else {
    p->out = std::move(plain);
  }
  if (p->out.empty()) {
    read_response(s, p);
    return;
  }
  asio::async_write(p->socket, asio::buffer(p->out),
                    [weak = weak_from_this(), s, p](const error_code& ec, size_t) {
                      if (p->done) return;
                      auto self = weak.lock();
                      if (!self) return;
                      if (ec) {
                        self->finish(s, p, false, "send: " + ec.message());
                        return;
                      }
                      self->read_response(s, p);
                    });
}

void HealthChecker::read_response(const HostStatePtr& s, const std::shared_ptr<Probe>& p) {
  p->stage = "response";
  p->buffer.resize(kReadSize);
  p->socket.async_read_some(asio::buffer(p->buffer),
                            [weak = weak_from_this(), s, p](const error_code& ec, size_t n) {
                              if (p->done) return;
                              auto self = weak.lock();
                              if (!self) return;
                              if (ec == asio::error::eof) {
                                self->finish(s, p, false, p->codec->end_of_stream().error);
                              } else if (ec) {
                                self->finish(s, p, false, "receive: " + ec.message());
                              } else {
                                self->received(s, p, n);
                              }
                            });
}

void HealthChecker::received(const HostStatePtr& s, const std::shared_ptr<Probe>& p, size_t n) {
  ProbeCodec::Result r;
  if (!p->tls) {
    r = p->codec->receive({p->buffer.data(), n});
  } else {
    // Decrypt what arrived, again while a full buffer says more waits inside OpenSSL.
    for (bool first = true; first || p->tls->more(); first = false) {
      if (!first) n = 0;
      const auto tr = p->tls->decrypt_in_place(p->buffer.data(), &n, p->buffer.size());
      if (tr == TlsSession::Result::error) {
        r = {ProbeCodec::Result::State::failed, 0, "tls: " + p->tls->error()};
        break;
      }
      if (n > 0) r = p->codec->receive({p->buffer.data(), n});
      if (r.state != ProbeCodec::Result::State::more) break;
      if (tr == TlsSession::Result::closed) {
        r = p->codec->end_of_stream();
        break;
      }
    }
  }
  switch (r.state) {
    case ProbeCodec::Result::State::done:
      finish(s, p, status_expected(settings_, r.status), "status " + std::to_string(r.status));
      break;
    case ProbeCodec::Result::State::failed:
      finish(s, p, false, std::move(r.error));
      break;
    case ProbeCodec::Result::State::more:
      send_then_read(s, p);
      break;
  }
}

void HealthChecker::finish(const HostStatePtr& s, const std::shared_ptr<Probe>& p, bool pass,
                           std::string result) {
  if (p->done) return;
  p->cancel();
  if (s->probe == p) s->probe.reset();
  if (!s->active || s->epoch != p->epoch) return;
  record(*s, pass, std::move(result));
  // The transition callback may have stopped us, dropped this host or restarted us (which
  // scheduled it already).
  if (s->active && s->epoch == p->epoch) schedule(s, next_delay());
}

void HealthChecker::record(HostState& s, bool pass, std::string result) {
  ++s.probes;
  bool changed = false;
  if (pass) {
    ++s.successes;
    s.failures = 0;
    if (!s.host->healthy() && s.successes >= std::max(1u, settings_.healthy_threshold)) {
      changed = s.host->set_healthy(true);
    }
  } else {
    ++s.failures;
    s.successes = 0;
    if (s.host->healthy() && s.failures >= std::max(1u, settings_.unhealthy_threshold)) {
      changed = s.host->set_healthy(false);
    }
  }
  s.last_result = result;
  s.host->set_last_check(result);
  if (!changed) return;
  hosts_->refresh_available();
  if (on_transition_) on_transition_(Transition{s.host, pass, std::move(result)});
}

HealthChecker::Clock::duration HealthChecker::first_delay() {
  const auto interval = std::max(settings_.interval, std::chrono::milliseconds(1));
  std::uniform_int_distribution<int64_t> us(
      0, std::chrono::duration_cast<std::chrono::microseconds>(interval).count() - 1);
  return std::chrono::microseconds(us(rng_));
}

HealthChecker::Clock::duration HealthChecker::next_delay() {
  const auto interval = std::max(settings_.interval, std::chrono::milliseconds(1));
  const double jitter = std::min(settings_.jitter_percent, 100u) / 100.0;
  std::uniform_real_distribution<double> factor(1.0 - jitter, 1.0 + jitter);
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(interval).count();
  return std::max<Clock::duration>(
      std::chrono::microseconds(static_cast<int64_t>(static_cast<double>(us) * factor(rng_))),
      std::chrono::milliseconds(1));
}

}  // namespace sluice::upstream::health
