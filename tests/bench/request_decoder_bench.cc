// Micro-benchmarks of the HTTP/1.1 request decoder (our checks ahead of Beast, Beast's parser,
// the head handed over): wrk's two-line GET, and a browser's GET with a head of about 800 bytes,
// the usual size of what Chrome and Firefox send. Built, never run by ctest.
#include <benchmark/benchmark.h>

#include <string>
#include <string_view>

#include "proxy/http1_codec.h"

namespace sluice::http1 {
namespace {

struct Discard : DecoderCallbacks {
  size_t fields = 0;
  void on_request_head(RequestHead& h, bool) override { fields += h.headers.size(); }
  void on_request_data(std::string_view) override {}
  void on_request_complete() override {}
};

void run(benchmark::State& state, std::string_view head) {
  Discard sink;
  RequestDecoder decoder(sink, {});
  for (auto _ : state) {
    size_t n = decoder.feed(head);
    if (n != head.size() || !decoder.message_done()) state.SkipWithError("not decoded");
    decoder.reset();
  }
  benchmark::DoNotOptimize(sink.fields);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * head.size()));
}

void BM_DecodeWrkGet(benchmark::State& state) {
  run(state, "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n");
}
BENCHMARK(BM_DecodeWrkGet);

void BM_DecodeBrowserGet(benchmark::State& state) {
  run(state,
      "GET /static/js/app.3f9c2b1e.js?v=20261203 HTTP/1.1\r\n"
      "Host: www.example.com\r\n"
      "Connection: keep-alive\r\n"
      "sec-ch-ua: \"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"\r\n"
      "sec-ch-ua-mobile: ?0\r\n"
      "sec-ch-ua-platform: \"Linux\"\r\n"
      "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/131.0.0.0 Safari/537.36\r\n"
      "Accept: */*\r\n"
      "Sec-Fetch-Site: same-origin\r\n"
      "Sec-Fetch-Mode: no-cors\r\n"
      "Sec-Fetch-Dest: script\r\n"
      "Referer: https://www.example.com/account/orders?page=2\r\n"
      "Accept-Encoding: gzip, deflate, br, zstd\r\n"
      "Accept-Language: en-GB,en-US;q=0.9,en;q=0.8\r\n"
      "Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark; "
      "_ga=GA1.2.1234567890.1701600000; consent=analytics%3Dno\r\n"
      "\r\n");
}
BENCHMARK(BM_DecodeBrowserGet);

}  // namespace
}  // namespace sluice::http1
