#pragma once
// The request of an http health probe and the reading of its answer, over HTTP/1.1 or HTTP/2,
// without I/O: the checker moves the bytes, through TLS when the cluster has it. A probe is
// decided by the response's status line (HTTP/1.1) or `:status` (HTTP/2); the body is never
// read.
//
// One codec per probe, used on the checker's thread only.
#include <memory>
#include <string>
#include <string_view>

namespace sluice::upstream::health {

class ProbeCodec {
 public:
  struct Result {
    enum class State { more, done, failed };
    State state = State::more;
    unsigned status = 0;  // done: the final status
    std::string error;    // failed: why, as a probe result ("bad response: ...")
  };

  virtual ~ProbeCodec() = default;
  // Appends what is to be sent: the request at first, later what the protocol owes the server
  // (HTTP/2 acknowledges SETTINGS and PINGs).
  virtual void take_output(std::string& out) = 0;
  // Plaintext from the server.
  virtual Result receive(std::string_view data) = 0;
  // The server closed the connection (or the TLS session) before the status was known.
  virtual Result end_of_stream() = 0;
};

// HTTP/1.1: `request` is the whole request, sent as is.
std::unique_ptr<ProbeCodec> make_http1_probe(std::string request);

// HTTP/2 (prior knowledge on plaintext, ALPN h2 over TLS): the connection preface, then one
// GET `path` with `authority` on stream 1.
std::unique_ptr<ProbeCodec> make_h2_probe(const std::string& path, const std::string& authority,
                                          bool tls);

}  // namespace sluice::upstream::health
