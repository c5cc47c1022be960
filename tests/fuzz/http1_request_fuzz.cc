// libFuzzer target: bytes -> RequestDecoder, fed the way Http1Connection feeds it (the
// unconsumed rest again, followed by what arrived since). The first byte picks the size of
// the pieces (low 7 bits, 0 = all at once) and, with its high bit, small limits, so split
// heads, chunk lines, trailers and every limit get exercised. Pipelined requests are decoded
// one after another with reset() in between. Built without libFuzzer, replay_main.cc runs the
// committed corpus through the same function as a ctest test.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proxy/http1_codec.h"

namespace {

using sluice::http1::DecoderCallbacks;
using sluice::http1::DecoderLimits;
using sluice::http1::RequestDecoder;

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "http1_request_fuzz: invariant violated: %s\n", what);
  std::abort();
}

// Touches everything it is given, so the sanitizers see every byte the decoder hands out, and
// checks the order of events.
class Sink : public DecoderCallbacks {
 public:
  void on_request_head(sluice::RequestHead& head, bool end_stream) override {
    if (heads_ != completes_) violated("head before the previous request completed");
    ++heads_;
    end_stream_ = end_stream;
    body_bytes_ = 0;
    touch(head.method);
    touch(head.target);
    touch(head.authority);
    touch(head.path());
    touch(head.query());
    for (const auto& h : head.headers) {
      touch(h.name);
      touch(h.value);
    }
  }
  void on_request_data(std::string_view data) override {
    if (heads_ != completes_ + 1) violated("data outside a request");
    if (end_stream_ && !data.empty()) violated("data after end_stream");
    body_bytes_ += data.size();
    touch(data);
  }
  void on_request_complete() override {
    if (heads_ != completes_ + 1) violated("complete without a head");
    ++completes_;
  }

  uint64_t heads_ = 0;
  uint64_t completes_ = 0;
  uint64_t body_bytes_ = 0;
  bool end_stream_ = false;
  unsigned sum_ = 0;

 private:
  void touch(std::string_view s) {
    for (unsigned char c : s) sum_ += c;
  }
};

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

  Sink sink;
  RequestDecoder decoder(sink, limits);
  std::string pending;
  size_t pos = 0;
  uint64_t messages = 0;
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
        if (sink.completes_ != messages) violated("a failed request was completed");
        return 0;  // the connection would answer and close here
      }
      if (decoder.header_done()) {
        // Valid once the head is done; must not trip Beast's assertions.
        (void)decoder.keep_alive();
        auto length = decoder.content_length();
        if (decoder.message_done() && length && !decoder.chunked() && sink.body_bytes_ != *length) {
          violated("body length differs from Content-Length");
        }
      }
      if (decoder.message_done()) {
        if (sink.completes_ != ++messages) violated("done without exactly one complete");
        decoder.reset();  // pipelined: the next request starts in `pending`
        continue;
      }
      if (n == 0) break;
    }
    if (pos == input.size()) break;
  }
  if (sink.sum_ == 0xdeadbeef) std::fputc(0, stderr);  // keep the touches observable
  return 0;
}
