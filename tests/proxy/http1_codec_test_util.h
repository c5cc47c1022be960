#pragma once
// Helpers shared by the RequestDecoder tests: a recording DecoderCallbacks and a driver that
// feeds bytes the way Http1Connection does.
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/http1_codec.h"

namespace sluice::http1::codec_test {

using namespace std::string_literals;

struct Recorder : DecoderCallbacks {
  int heads = 0;
  RequestHead head;
  bool end_stream = false;
  std::string body;
  int completes = 0;
  bool data_after_complete = false;

  void on_request_head(RequestHead& h, bool end) override {
    ++heads;
    head = h;
    end_stream = end;
  }
  void on_request_data(std::string_view data) override {
    if (completes > 0) data_after_complete = true;
    body.append(data);
  }
  void on_request_complete() override { ++completes; }
};

struct Result {
  std::optional<Error> error;
  int heads = 0;
  RequestHead head;
  bool end_stream = false;
  std::string body;
  int completes = 0;
  bool done = false;
  size_t consumed = 0;
  bool keep_alive = false;
  bool chunked = false;
  bool expect_continue = false;
  std::optional<uint64_t> content_length;
};

// Feeds `input` the way the connection does: the unconsumed remainder plus what arrived since,
// `step` bytes arriving at a time (0: all at once). Stops after one message or an error.
inline Result decode(std::string_view input, size_t step = 0, DecoderLimits limits = {}) {
  Recorder rec;
  RequestDecoder d(rec, limits);
  std::string pending;
  size_t pos = 0;
  Result r;
  for (;;) {
    size_t take = step == 0 ? input.size() - pos : std::min(step, input.size() - pos);
    pending.append(input.substr(pos, take));
    pos += take;
    while (!pending.empty()) {
      size_t n = d.feed(pending);
      pending.erase(0, n);
      r.consumed += n;
      if (d.error() || d.message_done() || n == 0) break;
    }
    if (d.error() || d.message_done() || pos == input.size()) break;
  }
  r.error = d.error();
  r.heads = rec.heads;
  r.head = rec.head;
  r.end_stream = rec.end_stream;
  r.body = rec.body;
  r.completes = rec.completes;
  r.done = d.message_done();
  EXPECT_FALSE(rec.data_after_complete);
  if (d.header_done() && !d.error()) {
    r.keep_alive = d.keep_alive();
    r.chunked = d.chunked();
    r.expect_continue = d.expect_continue();
    r.content_length = d.content_length();
  }
  return r;
}

inline std::string get(std::string_view extra_headers = "", std::string_view target = "/") {
  return "GET "s.append(target) + " HTTP/1.1\r\nHost: example.test\r\n" +
         std::string(extra_headers) + "\r\n";
}

inline const std::string kChunkedHead =
    "POST /up HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n";

inline DecoderLimits small_limits() {
  DecoderLimits l;
  l.max_header_bytes = 200;
  l.max_headers = 4;
  l.max_body_bytes = 10;
  l.max_uri_bytes = 32;
  return l;
}

}  // namespace sluice::http1::codec_test
