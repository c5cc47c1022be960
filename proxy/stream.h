#pragma once
// One request/response exchange, independent of the codec that carries it (HTTP/1.1 now,
// HTTP/2 streams later). The codec feeds request events in and implements StreamEncoder to
// carry the response out; the Stream runs the filter chain between them.
// Owned by its connection; lives on one worker thread.
#include <memory>
#include <string>
#include <vector>

#include "filters/filter.h"
#include "filters/worker_services.h"
#include "proxy/snapshot.h"

namespace sluice {

class AccessLog;

// The downstream side, implemented by the codec connection.
class StreamEncoder {
 public:
  virtual ~StreamEncoder() = default;
  virtual void encode_1xx(const ResponseHead& head) = 0;
  virtual void encode_100_continue() = 0;
  virtual void encode_headers(ResponseHead& head, bool end_stream) = 0;
  virtual void encode_data(std::string_view data, bool end_stream) = 0;
  // Ends the response with trailers. HTTP/1.1 sends them in a chunked body's last chunk and
  // drops them otherwise.
  virtual void encode_trailers(const HeaderMap& trailers) = 0;
  // The response cannot be completed: end the downstream message visibly incomplete.
  virtual void abort_response() = 0;
  virtual void pause_request_body() = 0;
  virtual void resume_request_body() = 0;
};

// Read buffers shared by a worker's connections: a connection holds one only while bytes are
// arriving or being parsed, so an idle keep-alive connection costs no buffer.
class BufferPool {
 public:
  explicit BufferPool(size_t buffer_size, size_t max_cached = 64)
      : buffer_size_(buffer_size), max_cached_(max_cached) {}
  std::string take() {
    if (free_.empty()) return std::string(buffer_size_, '\0');
    std::string b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  void give(std::string&& b) {
    if (free_.size() < max_cached_ && b.size() == buffer_size_) free_.push_back(std::move(b));
    b = std::string();
  }

 private:
  size_t buffer_size_;
  size_t max_cached_;
  std::vector<std::string> free_;
};

// Worker-owned services a stream uses.
struct StreamContext {
  boost::asio::any_io_executor executor;
  upstream::ClusterManager* cluster_manager = nullptr;
  WorkerStats* stats = nullptr;
  AccessLog* access_log = nullptr;
  BufferPool* read_buffers = nullptr;  // null: connections allocate their own
  WorkerServices* services = nullptr;
  SpanSink* spans = nullptr;  // the tracing exporter; spans are recorded when config says so
};

class Stream : public FilterCallbacks {
 public:
  Stream(StreamContext& ctx, StreamEncoder& encoder, SnapshotPtr snapshot,
         const FilterChainFactory& chain, StreamInfo info);
  ~Stream() override;

  void decode_headers(RequestHead&& head, bool end_stream);
  void decode_data(std::string& data, bool end_stream);
  // The request ends with trailers.
  void decode_trailers(HeaderMap&& trailers);
  // The downstream write buffer crossed a watermark.
  void on_downstream_watermark(bool above_high);
  // The exchange ends abnormally (client gone, protocol error): filters cancel their work,
  // the upstream request is abandoned.
  void reset(std::string_view reason);

  bool response_started() const { return response_started_; }
  bool response_complete() const { return response_complete_; }

  // FilterCallbacks
  boost::asio::any_io_executor executor() override { return ctx_.executor; }
  RequestHead& request() override { return request_; }
  StreamInfo& info() override { return info_; }
  const config::Config& config() override { return *snapshot_->config; }
  upstream::ClusterManager& cluster_manager() override { return *ctx_.cluster_manager; }
  WorkerStats& stats() override { return *ctx_.stats; }
  WorkerServices& services() override { return *ctx_.services; }
  CancellationToken cancellation() override { return cancellation_.token(); }
  const router::CompiledRoute* route() override;
  void clear_route_cache() override { route_cached_ = false; }
  void continue_request() override;
  void send_local_reply(unsigned status, std::string_view body,
                        const HeaderMap& extra_headers) override;
  void encode_headers(ResponseHead& head, bool end_stream) override;
  void encode_1xx(ResponseHead& head) override;
  void encode_data(std::string& data, bool end_stream) override;
  void encode_trailers(HeaderMap& trailers) override;
  void abort_response(std::string_view reason) override;
  void pause_request_body() override { encoder_.pause_request_body(); }
  void resume_request_body() override { encoder_.resume_request_body(); }

 private:
  void run_request_headers(size_t from);
  void run_request_body(std::string& data, bool end_stream, size_t from);
  void run_request_trailers();
  void destroy_filters();
  // Tracing is on: decides whether this request is recorded (core/trace.h).
  void sample_trace(const config::Tracing& tracing);
  void record_server_span();

  StreamContext& ctx_;
  StreamEncoder& encoder_;
  SnapshotPtr snapshot_;
  const FilterChainFactory& chain_;  // owned by snapshot_
  std::vector<FilterPtr> filters_;
  CancellationSource cancellation_;
  const router::CompiledRoute* route_ = nullptr;
  bool route_cached_ = false;
  RequestHead request_;
  StreamInfo info_;
  size_t stopped_at_ = 0;  // filter that returned Stop in the headers phase
  bool headers_stopped_ = false;
  bool request_ended_ = false;       // end_stream seen on the request
  bool headers_end_stream_ = false;  // the request had no body at all
  std::string held_body_;            // body that arrived while the headers phase was stopped
  bool held_end_ = false;
  HeaderMap request_trailers_;
  bool trailers_held_ = false;  // the trailers arrived while the headers phase was stopped
  bool local_reply_ = false;
  bool response_started_ = false;
  bool response_complete_ = false;
  bool filters_destroyed_ = false;
};

}  // namespace sluice
