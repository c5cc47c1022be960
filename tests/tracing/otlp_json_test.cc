#include "tracing/otlp_json.h"

#include <gtest/gtest.h>

#include "core/version.h"
#include "tracing/otlp_exporter.h"

namespace sluice::tracing {
namespace {

template <typename Id>
Id id_of(std::string_view hex) {
  Id id;
  std::copy(hex.begin(), hex.end(), id.begin());
  return id;
}

SpanRecord client_span() {
  SpanRecord s;
  s.trace_id = id_of<TraceId>("4bf92f3577b34da6a3ce929d0e0e4736");
  s.span_id = id_of<SpanId>("00f067aa0ba902b7");
  s.parent_id = id_of<SpanId>("a3ce929d0e0e4736");
  s.has_parent = true;
  s.kind = SpanKind::client;
  s.name = "GET";
  s.start_unix_ns = 1'700'000'000'000'000'001;
  s.end_unix_ns = 1'700'000'000'250'000'000;
  s.add("http.request.method", "GET");
  s.add("http.response.status_code", int64_t{503});
  s.add("url.full", "http://10.0.0.1:80/a\"b\\c\n");
  s.error = true;
  return s;
}

TEST(OtlpJson, OneSpanAsTheSpecificationEncodesIt) {
  SpanRecord span = client_span();
  const std::string v = kVersion;
  EXPECT_EQ(encode_export_request({&span, 1}, "edge"),
            "{\"resourceSpans\":[{\"resource\":{\"attributes\":["
            "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"edge\"}},"
            "{\"key\":\"service.version\",\"value\":{\"stringValue\":\"" +
                v +
                "\"}},"
                "{\"key\":\"telemetry.sdk.name\",\"value\":{\"stringValue\":\"sluice\"}},"
                "{\"key\":\"telemetry.sdk.language\",\"value\":{\"stringValue\":\"cpp\"}},"
                "{\"key\":\"telemetry.sdk.version\",\"value\":{\"stringValue\":\"" +
                v +
                "\"}}]},"
                "\"scopeSpans\":[{\"scope\":{\"name\":\"sluice\",\"version\":\"" +
                v +
                "\"},"
                "\"spans\":[{\"traceId\":\"4bf92f3577b34da6a3ce929d0e0e4736\","
                "\"spanId\":\"00f067aa0ba902b7\",\"parentSpanId\":\"a3ce929d0e0e4736\","
                "\"flags\":257,\"name\":\"GET\",\"kind\":3,"
                "\"startTimeUnixNano\":\"1700000000000000001\","
                "\"endTimeUnixNano\":\"1700000000250000000\",\"attributes\":["
                "{\"key\":\"http.request.method\",\"value\":{\"stringValue\":\"GET\"}},"
                "{\"key\":\"http.response.status_code\",\"value\":{\"intValue\":\"503\"}},"
                "{\"key\":\"url.full\",\"value\":{\"stringValue\":"
                "\"http://10.0.0.1:80/a\\\"b\\\\c\\n\"}}],"
                "\"status\":{\"code\":2}}]}]}]}");
}

TEST(OtlpJson, ARootServerSpanHasNoParentAndAChildOfARemoteSpanSaysSo) {
  SpanRecord root = client_span();
  root.kind = SpanKind::server;
  root.has_parent = false;
  root.error = false;
  SpanRecord child = root;
  child.has_parent = true;
  SpanRecord spans[] = {root, child};
  const std::string json = encode_export_request(spans, "s");
  EXPECT_EQ(json.find("parentSpanId"), json.rfind("parentSpanId"));  // the child's only
  EXPECT_NE(json.find("\"flags\":257,\"name\""), std::string::npos);
  EXPECT_NE(json.find("\"flags\":769,\"name\""), std::string::npos);  // 0x301: remote parent
  EXPECT_EQ(json.find("\"status\":"), std::string::npos);             // unset
}

TEST(OtlpExporter, AFullQueueDropsAndCountsAndExitDropsWhatIsLeft) {
  OtlpExporter exporter;
  config::Tracing t;
  t.otlp_endpoint = "http://127.0.0.1:9/v1/traces";  // nothing listens: nothing is exported
  t.endpoint_host = "127.0.0.1";
  t.endpoint_port = 9;
  t.endpoint_target = "/v1/traces";
  t.max_queue_spans = 8;
  // Never a full batch (the loader would refuse this; the exporter does not care) and a long
  // delay: the thread sleeps, so what is queued and what is dropped is exact.
  t.max_batch_spans = 9;
  t.batch_delay = std::chrono::minutes(1);
  exporter.configure(t);
  for (int i = 0; i < 8; ++i) exporter.submit(client_span());
  for (int i = 0; i < 2; ++i) exporter.submit(SpanRecord(client_span()));
  ExporterCounters c = exporter.counters();
  EXPECT_EQ(c.dropped_queue_full, 2u);
  EXPECT_EQ(c.dropped_export_failed, 0u);
  exporter.shutdown(std::chrono::milliseconds(0));
  c = exporter.counters();
  EXPECT_EQ(c.exported, 0u);
  EXPECT_EQ(c.dropped_export_failed, 8u);  // no time was given to send them
  exporter.submit(client_span());          // after shutdown: dropped, never queued
  EXPECT_EQ(exporter.counters().dropped_queue_full, c.dropped_queue_full + 1);
}

}  // namespace
}  // namespace sluice::tracing
