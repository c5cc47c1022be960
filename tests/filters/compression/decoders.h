#pragma once
// Streaming decoders from the real libraries (zlib, Brotli, zstd), for checking what the
// compression filter's encoders produce. Test-only.
#include <brotli/decode.h>
#include <zlib.h>
#include <zstd.h>

#include <memory>
#include <string>
#include <string_view>

#include "filters/compression/encoder.h"

namespace sluice::compression::test {

// Feed encoded bytes piece by piece; each call returns what they decode to so far.
class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual bool feed(std::string_view in, std::string& out) = 0;
  virtual bool finished() const = 0;  // the encoding's end was seen
};

class GzipDecoder : public Decoder {
 public:
  GzipDecoder() { inflateInit2(&z_, 15 + 16); }
  ~GzipDecoder() override { inflateEnd(&z_); }
  bool feed(std::string_view in, std::string& out) override {
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    char buf[4096];
    do {
      z_.next_out = reinterpret_cast<Bytef*>(buf);
      z_.avail_out = sizeof(buf);
      const int rc = inflate(&z_, Z_SYNC_FLUSH);
      if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) return false;
      out.append(buf, sizeof(buf) - z_.avail_out);
      if (rc == Z_STREAM_END) done_ = true;
      if (rc == Z_BUF_ERROR && z_.avail_out != 0) break;
    } while (z_.avail_out == 0 || (z_.avail_in > 0 && !done_));
    return true;
  }
  bool finished() const override { return done_; }

 private:
  z_stream z_{};
  bool done_ = false;
};

class BrotliDecoder : public Decoder {
 public:
  BrotliDecoder() : state_(BrotliDecoderCreateInstance(nullptr, nullptr, nullptr)) {}
  ~BrotliDecoder() override { BrotliDecoderDestroyInstance(state_); }
  bool feed(std::string_view in, std::string& out) override {
    auto next_in = reinterpret_cast<const uint8_t*>(in.data());
    size_t avail_in = in.size();
    for (;;) {
      uint8_t buf[4096];
      uint8_t* next_out = buf;
      size_t avail_out = sizeof(buf);
      const auto rc = BrotliDecoderDecompressStream(state_, &avail_in, &next_in, &avail_out,
                                                    &next_out, nullptr);
      out.append(reinterpret_cast<char*>(buf), sizeof(buf) - avail_out);
      if (rc == BROTLI_DECODER_RESULT_ERROR) return false;
      if (rc == BROTLI_DECODER_RESULT_SUCCESS) done_ = true;
      if (rc != BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT) return true;
    }
  }
  bool finished() const override { return done_; }

 private:
  BrotliDecoderState* state_;
  bool done_ = false;
};

class ZstdDecoder : public Decoder {
 public:
  ZstdDecoder() : ctx_(ZSTD_createDCtx()) {}
  ~ZstdDecoder() override { ZSTD_freeDCtx(ctx_); }
  bool feed(std::string_view in, std::string& out) override {
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    for (;;) {
      char buf[4096];
      ZSTD_outBuffer output{buf, sizeof(buf), 0};
      const size_t rc = ZSTD_decompressStream(ctx_, &output, &input);
      if (ZSTD_isError(rc)) return false;
      out.append(buf, output.pos);
      done_ = done_ || rc == 0;  // a finished frame; calling again would start a new one
      if (input.pos == input.size && output.pos < output.size) return true;
    }
  }
  bool finished() const override { return done_; }

 private:
  ZSTD_DCtx* ctx_;
  bool done_ = false;
};

inline std::unique_ptr<Decoder> make_decoder(Algorithm a) {
  switch (a) {
    case Algorithm::gzip:
      return std::make_unique<GzipDecoder>();
    case Algorithm::br:
      return std::make_unique<BrotliDecoder>();
    case Algorithm::zstd:
      return std::make_unique<ZstdDecoder>();
  }
  return nullptr;
}

// Some text that compresses like a web page does (repetitive but not uniform).
inline std::string sample_text(size_t bytes, unsigned seed = 1) {
  std::string out;
  uint32_t x = seed;
  static constexpr std::string_view kWords[] = {"<div class=\"item\">",
                                                "</div>\n",
                                                "sluice ",
                                                "proxy ",
                                                "compression ",
                                                "<p>",
                                                "</p>",
                                                "stream ",
                                                "chunk ",
                                                "header ",
                                                "{\"id\": ",
                                                "\"name\": \"",
                                                "\"}, ",
                                                "42 ",
                                                "lorem ",
                                                "ipsum "};
  while (out.size() < bytes) {
    x = x * 1103515245u + 12345u;
    out += kWords[(x >> 16) % std::size(kWords)];
    if ((x >> 8) % 7 == 0) out += std::to_string(x % 100000);
  }
  out.resize(bytes);
  return out;
}

}  // namespace sluice::compression::test
