#pragma once
// The OTLP/HTTP exporter: workers submit finished spans into a bounded queue (a short mutex,
// never I/O); one background thread takes them in batches (max_batch_spans, or whatever is
// queued after batch_delay), encodes them as JSON (otlp_json.h) and POSTs them to the
// collector. A full queue drops the span and counts it. A collector that answers 429, 502,
// 503 or 504, or cannot be reached, is retried with exponential backoff (Retry-After honoured)
// until export_timeout; then the batch is dropped and counted.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "config/config.h"
#include "core/trace.h"

namespace sluice::tracing {

struct ExporterCounters {
  uint64_t exported = 0;               // spans the collector accepted
  uint64_t dropped_queue_full = 0;     // spans submitted while the queue was full
  uint64_t dropped_export_failed = 0;  // spans in batches that could not be delivered
  uint64_t failed_requests = 0;        // export requests that failed (retried ones included)
};

class OtlpExporter final : public SpanSink {
 public:
  OtlpExporter();
  ~OtlpExporter() override;  // shutdown() with no time to flush
  OtlpExporter(const OtlpExporter&) = delete;
  OtlpExporter& operator=(const OtlpExporter&) = delete;

  // Control thread: the settings of the config now installed. The first config with tracing
  // starts the export thread; later ones change the endpoint, headers and bounds in place. One
  // without tracing changes nothing (its streams record no spans).
  void configure(const config::Tracing& settings);
  // Any thread.
  void submit(SpanRecord&& span) override;
  // Control thread, at exit: sends what is queued (one try per batch) for up to `flush_for`,
  // then stops the thread. Spans submitted afterwards are dropped.
  void shutdown(std::chrono::milliseconds flush_for);
  ExporterCounters counters() const;

 private:
  class Client;
  void run();
  // Sends one batch, retrying as the settings allow; false when it was dropped.
  bool send(const std::vector<SpanRecord>& batch, const config::Tracing& settings, bool final);
  // Waits `d` unless shutdown starts; false when it did.
  bool sleep_for(std::chrono::steady_clock::duration d);

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<SpanRecord> queue_;
  config::Tracing settings_;
  bool stopping_ = false;
  bool stopped_ = false;
  std::chrono::steady_clock::time_point flush_deadline_;
  std::thread thread_;
  std::unique_ptr<Client> client_;  // export thread only
  std::atomic<uint64_t> exported_{0};
  std::atomic<uint64_t> dropped_queue_full_{0};
  std::atomic<uint64_t> dropped_export_failed_{0};
  std::atomic<uint64_t> failed_requests_{0};
  std::chrono::steady_clock::time_point last_failure_log_{};
};

}  // namespace sluice::tracing
