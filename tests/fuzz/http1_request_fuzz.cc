// libFuzzer target: bytes -> RequestDecoder, fed the way Http1Connection feeds it (the
// unconsumed rest again, followed by what arrived since). The first byte picks the size of
// the pieces (low 7 bits, 0 = all at once) and, with its high bit, small limits, so split
// heads, chunk lines, trailers and every limit get exercised. Pipelined requests are decoded
// one after another with reset() in between.
//
// Besides the sanitizers and Beast's own assertions it checks the order of events and that
// the outcome does not depend on how the bytes were split: the input is decoded a second
// time all at once, and every request both runs decided must be decided the same way (a
// proxy whose verdict depends on TCP segmentation can be desynchronised from its backends).
//
// Built without libFuzzer, replay_main.cc runs the committed corpus through it as a test.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http1_codec.h"

namespace {

using sluice::http1::DecoderCallbacks;
using sluice::http1::DecoderLimits;
using sluice::http1::RequestDecoder;

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "http1_request_fuzz: invariant violated: %s\n", what);
  std::abort();
}

// Records each request as one string (so two runs compare), which also touches every byte
// the decoder hands out, and checks the order of events.
class Sink : public DecoderCallbacks {
 public:
  void on_request_head(sluice::RequestHead& head, bool end_stream) override {
    if (heads_ != completes_) violated("head before the previous request completed");
    ++heads_;
    end_stream_ = end_stream;
    body_bytes_ = 0;
    current_.clear();
    for (std::string_view s : {std::string_view(head.method), std::string_view(head.target),
                               std::string_view(head.authority), head.path(), head.query()}) {
      current_.append(s).push_back('\n');
    }
    current_ += head.version == 10 ? "1.0" : "1.1";
    current_ += end_stream ? " end\n" : "\n";
    for (const auto& h : head.headers) {
      current_.append(h.name).append(": ").append(h.value).push_back('\n');
    }
    current_ += "--\n";
  }
  void on_request_data(std::string_view data) override {
    if (heads_ != completes_ + 1) violated("data outside a request");
    if (end_stream_ && !data.empty()) violated("data after end_stream");
    body_bytes_ += data.size();
    current_.append(data);
  }
  void on_request_complete() override {
    if (heads_ != completes_ + 1) violated("complete without a head");
    ++completes_;
  }

  uint64_t heads_ = 0;
  uint64_t completes_ = 0;
  uint64_t body_bytes_ = 0;
  bool end_stream_ = false;
  std::string current_;
};

struct Outcome {
  std::vector<std::string> completed;  // each request decoded whole, in order
  bool error = false;                  // the request after those was rejected
};

Outcome decode(std::string_view input, size_t step, const DecoderLimits& limits) {
  Outcome out;
  Sink sink;
  RequestDecoder decoder(sink, limits);
  std::string pending;
  size_t pos = 0;
  for (;;) {
    size_t take = step == 0 ? input.size() - pos : std::min(step, input.size() - pos);
    pending.append(input.substr(pos, take));
    pos += take;
    for (;;) {
      size_t before = pending.size();
      size_t n = decoder.feed(pending);
      if (n > before) violated("consumed more than it was given");
      pending.erase(0, n);
      if (decoder.error()) {
        if (decoder.message_done()) violated("done despite an error");
        if (sink.completes_ != out.completed.size()) violated("a failed request was completed");
        out.error = true;
        return out;  // the connection would answer and close here
      }
      if (decoder.header_done()) {
        // Valid once the head is done; must not trip Beast's assertions.
        bool keep_alive = decoder.keep_alive();
        if (decoder.message_done()) sink.current_ += keep_alive ? "keep-alive\n" : "close\n";
        auto length = decoder.content_length();
        if (decoder.message_done() && length && !decoder.chunked() && sink.body_bytes_ != *length) {
          violated("body length differs from Content-Length");
        }
      }
      if (decoder.message_done()) {
        out.completed.push_back(sink.current_);
        if (sink.completes_ != out.completed.size()) {
          violated("done without exactly one complete");
        }
        decoder.reset();  // pipelined: the next request starts in `pending`
        continue;
      }
      if (n == 0) break;
    }
    if (pos == input.size()) break;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t step = data[0] & 0x7f;
  DecoderLimits limits;
  if (data[0] & 0x80) {
    limits.max_header_bytes = 256;
    limits.max_headers = 8;
    limits.max_body_bytes = 64;
    limits.max_uri_bytes = 64;
  }
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);

  Outcome split = decode(input, step, limits);
  if (step == 0) return 0;
  Outcome whole = decode(input, 0, limits);
  // A request that one run completed and the other rejected, or completed differently. (A run
  // may also end undecided, waiting for bytes that never came; that is no verdict.)
  size_t both = std::min(split.completed.size(), whole.completed.size());
  for (size_t i = 0; i < both; ++i) {
    if (split.completed[i] != whole.completed[i]) violated("split changed a request");
  }
  if ((split.error && whole.completed.size() > split.completed.size()) ||
      (whole.error && split.completed.size() > whole.completed.size())) {
    violated("split changed whether a request is accepted");
  }
  return 0;
}
