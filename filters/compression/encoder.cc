#include "filters/compression/encoder.h"

#include <algorithm>

#include <brotli/encode.h>
#include <zlib.h>
#include <zstd.h>

namespace sluice::compression {
namespace {

constexpr int kGzipLevel = 6;
constexpr int kBrotliQuality = 4;
constexpr int kBrotliWindowBits = 20;
constexpr int kZstdLevel = 3;
constexpr int kZstdWindowLog = 20;

// Grows `out` by at least `min` bytes of writable space; returns where that space starts.
char* grow(std::string& out, size_t used, size_t min) {
  if (out.size() - used < min) out.resize(used + std::max<size_t>(min, out.size() - used + min));
  return out.data() + used;
}

class GzipEncoder : public Encoder {
 public:
  bool init() {
    // windowBits 15 + 16: a gzip wrapper (header and CRC-32 trailer) rather than zlib's.
    ok_ = deflateInit2(&z_, kGzipLevel, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK;
    return ok_;
  }
  ~GzipEncoder() override {
    if (ok_) deflateEnd(&z_);
  }

  bool encode(std::string_view in, bool finish, std::string& out) override {
    // A flush with nothing new would only add an empty block (or Z_BUF_ERROR).
    if (in.empty() && !finish) return true;
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    size_t used = out.size();
    const int flush = finish ? Z_FINISH : Z_SYNC_FLUSH;
    for (;;) {
      char* dst = grow(out, used, in.size() / 2 + 64);
      const size_t room = out.size() - used;
      z_.next_out = reinterpret_cast<Bytef*>(dst);
      z_.avail_out = static_cast<uInt>(room);
      const int rc = deflate(&z_, flush);
      used += room - z_.avail_out;
      if (rc == Z_STREAM_ERROR) return false;
      if (finish ? rc == Z_STREAM_END : (z_.avail_out != 0 && z_.avail_in == 0)) break;
      if (rc != Z_OK && rc != Z_BUF_ERROR) return false;
    }
    out.resize(used);
    return true;
  }

 private:
  z_stream z_{};
  bool ok_ = false;
};

class BrotliEncoder : public Encoder {
 public:
  bool init() {
    state_ = BrotliEncoderCreateInstance(nullptr, nullptr, nullptr);
    if (!state_) return false;
    BrotliEncoderSetParameter(state_, BROTLI_PARAM_QUALITY, kBrotliQuality);
    BrotliEncoderSetParameter(state_, BROTLI_PARAM_LGWIN, kBrotliWindowBits);
    return true;
  }
  ~BrotliEncoder() override {
    if (state_) BrotliEncoderDestroyInstance(state_);
  }

  bool encode(std::string_view in, bool finish, std::string& out) override {
    if (in.empty() && !finish) return true;
    auto next_in = reinterpret_cast<const uint8_t*>(in.data());
    size_t avail_in = in.size();
    size_t used = out.size();
    const BrotliEncoderOperation op = finish ? BROTLI_OPERATION_FINISH : BROTLI_OPERATION_FLUSH;
    for (;;) {
      char* dst = grow(out, used, in.size() / 2 + 64);
      const size_t room = out.size() - used;
      auto next_out = reinterpret_cast<uint8_t*>(dst);
      size_t avail_out = room;
      if (!BrotliEncoderCompressStream(state_, op, &avail_in, &next_in, &avail_out, &next_out,
                                       nullptr)) {
        return false;
      }
      used += room - avail_out;
      if (avail_in == 0 && !BrotliEncoderHasMoreOutput(state_) &&
          (!finish || BrotliEncoderIsFinished(state_))) {
        break;
      }
    }
    out.resize(used);
    return true;
  }

 private:
  BrotliEncoderState* state_ = nullptr;
};

class ZstdEncoder : public Encoder {
 public:
  bool init() {
    ctx_ = ZSTD_createCCtx();
    if (!ctx_) return false;
    return !ZSTD_isError(ZSTD_CCtx_setParameter(ctx_, ZSTD_c_compressionLevel, kZstdLevel)) &&
           !ZSTD_isError(ZSTD_CCtx_setParameter(ctx_, ZSTD_c_windowLog, kZstdWindowLog));
  }
  ~ZstdEncoder() override { ZSTD_freeCCtx(ctx_); }

  bool encode(std::string_view in, bool finish, std::string& out) override {
    if (in.empty() && !finish) return true;
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    size_t used = out.size();
    const ZSTD_EndDirective op = finish ? ZSTD_e_end : ZSTD_e_flush;
    for (;;) {
      char* dst = grow(out, used, in.size() / 2 + 64);
      ZSTD_outBuffer output{dst, out.size() - used, 0};
      const size_t left = ZSTD_compressStream2(ctx_, &output, &input, op);
      if (ZSTD_isError(left)) return false;
      used += output.pos;
      if (left == 0) break;  // everything given is flushed (ended, with ZSTD_e_end)
    }
    out.resize(used);
    return true;
  }

 private:
  ZSTD_CCtx* ctx_ = nullptr;
};

template <typename T>
EncoderPtr make() {
  auto e = std::make_unique<T>();
  if (!e->init()) return nullptr;
  return e;
}

}  // namespace

std::string_view algorithm_name(Algorithm a) {
  switch (a) {
    case Algorithm::gzip:
      return "gzip";
    case Algorithm::br:
      return "br";
    case Algorithm::zstd:
      return "zstd";
  }
  return "gzip";
}

std::optional<Algorithm> algorithm_from_name(std::string_view name) {
  if (name == "gzip" || name == "x-gzip") return Algorithm::gzip;
  if (name == "br") return Algorithm::br;
  if (name == "zstd") return Algorithm::zstd;
  return std::nullopt;
}

EncoderPtr make_encoder(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::gzip:
      return make<GzipEncoder>();
    case Algorithm::br:
      return make<BrotliEncoder>();
    case Algorithm::zstd:
      return make<ZstdEncoder>();
  }
  return nullptr;
}

}  // namespace sluice::compression
