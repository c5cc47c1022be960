// libFuzzer target: bytes after the client connection preface -> Http2Codec, the server side
// of an HTTP/2 connection, with the real filter chain and router behind it (routes that answer
// locally, so no upstream I/O). The first byte picks the size of the pieces the rest is fed in
// (0 = all at once), as TCP would split it. Each input gets a fresh connection; what the codec
// wants to send is produced after every piece, and posted work (stream cleanup) is run.
//
// Besides the sanitizers it checks that a connection the codec refused stays refused.
// Built without libFuzzer, replay_main.cc runs the committed corpus through it as a test.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "config/config.h"
#include "core/runtime_state.h"
#include "core/stats.h"
#include "filters/registry.h"
#include "filters/worker_services.h"
#include "proxy/http2_codec.h"
#include "proxy/listener.h"
#include "proxy/snapshot.h"
#include "upstream/cluster_manager.h"

namespace {

constexpr std::string_view kConfig = R"(
workers: 1
access_log: { path: "off" }
listeners: [{ name: main, address: 127.0.0.1:1, http2: { cleartext: true } }]
routes:
  - { name: moved, match: { path: { prefix: /old } }, redirect: { path: /new } }
  - { name: posts, match: { methods: [POST, PUT] }, respond: { status: 201, body: "made\n" } }
  - { name: empty, match: { path: { exact: /204 } }, respond: { status: 204 } }
  - { name: rest, respond: { status: 200, body: "hello\n", headers: { x-a: b } } }
)";

struct World {
  boost::asio::io_context ioc;
  sluice::WorkerStats stats;
  sluice::upstream::SharedClusters shared{ioc, [](const std::string&) {}};
  sluice::upstream::ClusterManager clusters{ioc, stats};
  sluice::StreamContext ctx;
  sluice::RuntimeState runtime;
  sluice::WorkerServices services{ioc.get_executor(), 0};
  std::shared_ptr<sluice::ListenerRuntime> listener;

  World() {
    sluice::register_builtin_filters();
    auto loaded = sluice::config::load_string(kConfig, "fuzz.yaml");
    std::string error;
    auto snapshot =
        loaded.config ? sluice::Snapshot::build(loaded.config, runtime, &shared, &error) : nullptr;
    if (!snapshot) {
      std::fprintf(stderr, "http2_server_fuzz: bad config: %s\n", error.c_str());
      std::abort();
    }
    clusters.update(*loaded.config, snapshot->clusters);
    ctx.executor = ioc.get_executor();
    ctx.cluster_manager = &clusters;
    ctx.stats = &stats;
    ctx.services = &services;
    const auto& l = loaded.config->listeners[0];
    listener = std::make_shared<sluice::ListenerRuntime>(boost::asio::ip::tcp::acceptor(ioc), l,
                                                         ctx, stats.listener(l.name));
    listener->update(l, snapshot);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* world = new World();  // shared by every input, like a worker
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t piece = 0;
  if (!input.empty()) {
    piece = static_cast<unsigned char>(input.front());
    input.remove_prefix(1);
  }
  {
    sluice::Http2Codec::Env env;
    env.ctx = &world->ctx;
    env.listener = world->listener;
    env.peer = {boost::asio::ip::make_address("127.0.0.1"), 1};
    env.scheme = "http";
    env.want_write = [] {};
    sluice::Http2Codec codec(std::move(env), sluice::Http2Settings{});
    std::string out;
    bool ok = codec.receive("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    if (!ok) {
      std::fprintf(stderr, "http2_server_fuzz: the preface was refused\n");
      std::abort();
    }
    while (ok && !input.empty()) {
      size_t n = piece == 0 ? input.size() : std::min(piece, input.size());
      ok = codec.receive(input.substr(0, n));
      input.remove_prefix(n);
      codec.produce(out);
      world->ioc.poll();
      world->ioc.restart();
      out.clear();
    }
    if (!ok && codec.receive("\0\0\0\4\0\0\0\0\0")) {
      // An empty SETTINGS frame after a connection error must not be taken as progress.
      std::fprintf(stderr, "http2_server_fuzz: a failed session accepted more input\n");
      std::abort();
    }
    codec.produce(out);
  }
  world->ioc.poll();  // cleanup posted by the streams
  world->ioc.restart();
  return 0;
}
