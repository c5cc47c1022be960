// proxy/stream: the filter chain driven by a Stream, with recording test filters, a fake
// terminal filter standing in for the router, and a fake StreamEncoder standing in for the codec.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "core/stats.h"
#include "filters/chain.h"
#include "proxy/snapshot.h"
#include "proxy/stream.h"
#include "upstream/cluster_manager.h"

namespace sluice {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Optional;
namespace asio = boost::asio;

using Log = std::vector<std::string>;

class TestFilter;

// What a test filter does in each phase; unset hooks log and return Continue.
struct Hooks {
  std::function<FilterStatus(TestFilter&, RequestHead&, bool)> request_headers;
  std::function<FilterStatus(TestFilter&, std::string&, bool)> request_body;
  std::function<void(TestFilter&, ResponseHead&, bool)> response_headers;
  std::function<void(TestFilter&, std::string&, bool)> response_body;
  std::function<void(const StreamInfo&)> log;
  int logs = 0;
  int destroys = 0;
  TestFilter* instance = nullptr;  // the filter of the current stream
};

class TestFilter : public Filter {
 public:
  TestFilter(std::string name, Log& log, Hooks& hooks)
      : name_(std::move(name)), log_(log), hooks_(hooks) {
    hooks_.instance = this;
  }
  ~TestFilter() override {
    if (hooks_.instance == this) hooks_.instance = nullptr;
  }

  FilterStatus on_request_headers(RequestHead& head, bool end_stream) override {
    log_.push_back(name_ + ":req_headers" + (end_stream ? " end" : ""));
    return hooks_.request_headers ? hooks_.request_headers(*this, head, end_stream)
                                  : FilterStatus::Continue;
  }
  FilterStatus on_request_body(std::string& data, bool end_stream) override {
    log_.push_back(name_ + ":req_body " + data + (end_stream ? " end" : ""));
    return hooks_.request_body ? hooks_.request_body(*this, data, end_stream)
                               : FilterStatus::Continue;
  }
  FilterStatus on_response_headers(ResponseHead& head, bool end_stream) override {
    log_.push_back(name_ + ":resp_headers " + std::to_string(head.status) +
                   (end_stream ? " end" : ""));
    if (hooks_.response_headers) hooks_.response_headers(*this, head, end_stream);
    return FilterStatus::Continue;
  }
  FilterStatus on_response_body(std::string& data, bool end_stream) override {
    log_.push_back(name_ + ":resp_body " + data + (end_stream ? " end" : ""));
    if (hooks_.response_body) hooks_.response_body(*this, data, end_stream);
    return FilterStatus::Continue;
  }
  FilterStatus on_request_trailers(HeaderMap& t) override {
    log_.push_back(name_ + ":req_trailers " + std::to_string(t.size()));
    return FilterStatus::Continue;
  }
  FilterStatus on_response_trailers(HeaderMap& t) override {
    log_.push_back(name_ + ":resp_trailers " + std::to_string(t.size()));
    return FilterStatus::Continue;
  }
  void on_downstream_watermark(bool above_high) override {
    log_.push_back(name_ + (above_high ? ":watermark high" : ":watermark low"));
  }
  void on_log(const StreamInfo& info) override {
    log_.push_back(name_ + ":log");
    ++hooks_.logs;
    if (hooks_.log) hooks_.log(info);
  }
  void on_destroy() override {
    log_.push_back(name_ + ":destroy");
    ++hooks_.destroys;
  }

  FilterCallbacks& cb() { return callbacks(); }

 private:
  std::string name_;
  Log& log_;
  Hooks& hooks_;
};

class TestFilterFactory : public FilterFactory {
 public:
  TestFilterFactory(std::string name, Log& log, Hooks& hooks)
      : name_(std::move(name)), log_(log), hooks_(hooks) {}
  FilterPtr create(WorkerServices&) const override {
    return std::make_unique<TestFilter>(name_, log_, hooks_);
  }

 private:
  std::string name_;
  Log& log_;
  Hooks& hooks_;
};

class FakeEncoder : public StreamEncoder {
 public:
  void encode_1xx(const ResponseHead& head) override {
    events.push_back("1xx " + std::to_string(head.status));
  }
  void encode_100_continue() override { events.push_back("100-continue"); }
  void encode_headers(ResponseHead& h, bool end_stream) override {
    events.push_back("headers " + std::to_string(h.status) + (end_stream ? " end" : ""));
    head = h;
  }
  void encode_data(std::string_view data, bool end_stream) override {
    events.push_back(std::string("data ") + std::string(data) + (end_stream ? " end" : ""));
    body.append(data);
  }
  void encode_trailers(const HeaderMap& t) override {
    events.push_back("trailers " + std::to_string(t.size()));
    trailers = t;
  }
  void abort_response() override { events.push_back("abort"); }
  void pause_request_body() override { events.push_back("pause"); }
  void resume_request_body() override { events.push_back("resume"); }

  Log events;
  ResponseHead head;
  HeaderMap trailers;
  std::string body;
};

RequestHead make_request(std::string method = "GET", std::string target = "/") {
  RequestHead h;
  h.method = std::move(method);
  h.target = std::move(target);
  h.authority = "example.com";
  h.headers.add("Host", "example.com");
  return h;
}

// Sends a 200 with `body` (or no body) from the terminal filter.
void respond(TestFilter& f, std::string body, unsigned status = 200) {
  ResponseHead head;
  head.status = status;
  head.headers.add("x-terminal", "1");
  f.cb().encode_headers(head, body.empty());
  if (!body.empty()) f.cb().encode_data(body, true);
}

class StreamTest : public ::testing::Test {
 protected:
  StreamTest() {
    auto cfg = std::make_shared<config::Config>();
    cfg->source = "stream_test.yaml";
    config::Listener l;
    l.name = "public";
    cfg->listeners.push_back(l);
    config::Route api;
    api.name = "api";
    api.match.path = {config::PathMatch::Kind::prefix, "/api/"};
    api.respond.emplace();
    cfg->routes.push_back(api);
    config::Route other;
    other.name = "other";
    other.respond.emplace();
    cfg->routes.push_back(other);
    auto snap = std::make_shared<Snapshot>();
    snap->config = cfg;
    snap->routes = router::RouteTable::build(*cfg);
    snapshot_ = snap;
    TrustedProxies trusted;
    std::string error;
    trusted.add("10.0.0.0/8", &error);
    // The terminal filter holds the request, like the router.
    t_.request_headers = [](TestFilter&, RequestHead&, bool) { return FilterStatus::Stop; };
    t_.request_body = [](TestFilter&, std::string&, bool) { return FilterStatus::Stop; };
    chain_ = std::make_unique<FilterChainFactory>(
        std::vector<FilterFactoryPtr>{std::make_shared<TestFilterFactory>("A", log_, a_),
                                      std::make_shared<TestFilterFactory>("B", log_, b_),
                                      std::make_shared<TestFilterFactory>("T", log_, t_)},
        snap->routes, trusted);
  }
  ~StreamTest() override { stream_.reset(); }

  Stream& stream() {
    if (!stream_) {
      StreamInfo info;
      info.listener = "public";
      info.peer_ip = info.client_ip = asio::ip::make_address(peer_);
      info.peer_port = 4000;
      stream_ = std::make_unique<Stream>(ctx_, encoder_, snapshot_, *chain_, std::move(info));
    }
    return *stream_;
  }
  void decode_data(std::string data, bool end_stream) { stream().decode_data(data, end_stream); }
  void end_stream() { stream_.reset(); }
  // Runs posted handlers (the "async work" of filters); bounded, and returns once idle.
  void run() {
    ioc_.restart();
    ioc_.run_for(std::chrono::seconds(2));
  }
  // Entries of `log_` for filter `name` ("A", "B", "T").
  Log of(const std::string& name) const {
    Log out;
    for (const auto& e : log_) {
      if (e.rfind(name + ":", 0) == 0) out.push_back(e);
    }
    return out;
  }

  asio::io_context ioc_;
  WorkerStats stats_;
  upstream::ClusterManager cm_{ioc_, stats_};
  WorkerServices services_{ioc_.get_executor(), 0};
  StreamContext ctx_{ioc_.get_executor(), &cm_, &stats_, nullptr, nullptr, &services_};
  std::string peer_ = "192.0.2.1";
  SnapshotPtr snapshot_;
  FakeEncoder encoder_;
  Log log_;
  Hooks a_, b_, t_;
  std::unique_ptr<FilterChainFactory> chain_;
  std::unique_ptr<Stream> stream_;
};

TEST_F(StreamTest, RequestPhasesInOrderResponsePhasesInReverse) {
  a_.request_headers = [](TestFilter&, RequestHead& h, bool) {
    h.headers.add("x-from-a", "1");
    return FilterStatus::Continue;
  };
  std::optional<std::string> t_saw;
  t_.request_headers = [&](TestFilter&, RequestHead& h, bool) {
    if (auto v = h.headers.get("x-from-a")) t_saw = std::string(*v);
    return FilterStatus::Stop;
  };
  t_.request_body = [](TestFilter& t, std::string&, bool end) {
    if (end) respond(t, "xyz");
    return FilterStatus::Stop;
  };
  a_.response_headers = [](TestFilter&, ResponseHead& h, bool) { h.headers.add("x-a-resp", "1"); };
  b_.response_body = [](TestFilter&, std::string& d, bool) {
    for (auto& c : d) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  };

  stream().decode_headers(make_request("POST", "/upload"), false);
  decode_data("abc", false);
  decode_data("def", true);

  EXPECT_EQ(t_saw, "1");
  EXPECT_THAT(log_,
              ElementsAre("A:req_headers", "B:req_headers", "T:req_headers", "A:req_body abc",
                          "B:req_body abc", "T:req_body abc", "A:req_body def end",
                          "B:req_body def end", "T:req_body def end", "B:resp_headers 200",
                          "A:resp_headers 200", "B:resp_body xyz end", "A:resp_body XYZ end"));
  EXPECT_THAT(encoder_.events, ElementsAre("100-continue", "headers 200", "data XYZ end"));
  EXPECT_THAT(encoder_.head.headers.get("x-a-resp"), Optional(std::string_view("1")));
  EXPECT_THAT(encoder_.head.headers.get("x-terminal"), Optional(std::string_view("1")));
  EXPECT_TRUE(stream().response_started());
  EXPECT_TRUE(stream().response_complete());
  EXPECT_EQ(stream().info().status, 200u);
  EXPECT_EQ(stream().info().bytes_received, 6u);
  EXPECT_EQ(stream().info().bytes_sent, 3u);

  log_.clear();
  end_stream();
  EXPECT_THAT(log_, ElementsAre("A:destroy", "B:destroy", "T:destroy", "A:log", "B:log", "T:log"));
}

TEST_F(StreamTest, RequestWithoutBodyGetsNo100Continue) {
  stream().decode_headers(make_request(), true);
  EXPECT_THAT(log_, ElementsAre("A:req_headers end", "B:req_headers end", "T:req_headers end"));
  EXPECT_THAT(encoder_.events, IsEmpty());
}

TEST_F(StreamTest, StopHoldsTheChainUntilContinueFromAPostedHandler) {
  // A stands for a filter waiting on Redis: it answers later, from the io_context.
  a_.request_headers = [](TestFilter& a, RequestHead&, bool) {
    asio::post(a.cb().executor(), [&a] { a.cb().continue_request(); });
    return FilterStatus::Stop;
  };
  stream().decode_headers(make_request("POST", "/"), false);
  decode_data("one", false);
  decode_data("two", false);

  EXPECT_THAT(log_, ElementsAre("A:req_headers"));
  EXPECT_THAT(encoder_.events, ElementsAre("pause"));

  run();
  EXPECT_THAT(log_, ElementsAre("A:req_headers", "B:req_headers", "T:req_headers",
                                "A:req_body onetwo", "B:req_body onetwo", "T:req_body onetwo"));
  EXPECT_THAT(encoder_.events, ElementsAre("pause", "resume", "100-continue"));

  decode_data("three", true);
  EXPECT_THAT(of("T"), ElementsAre("T:req_headers", "T:req_body onetwo", "T:req_body three end"));
}

TEST_F(StreamTest, HeldBodyIncludingItsEndIsReplayedAfterHeaders) {
  a_.request_headers = [](TestFilter& a, RequestHead&, bool) {
    asio::post(a.cb().executor(), [&a] { a.cb().continue_request(); });
    return FilterStatus::Stop;
  };
  stream().decode_headers(make_request("POST", "/"), false);
  decode_data("one", false);
  decode_data("two", true);
  EXPECT_THAT(of("T"), IsEmpty());
  run();
  // Later filters see headers first, then the whole body once, in order.
  for (const std::string name : {"B", "T"}) {
    Log l = of(name);
    ASSERT_EQ(l.size(), 2u) << name;
    EXPECT_EQ(l[0].rfind(name + ":req_headers", 0), 0u) << l[0];
    EXPECT_EQ(l[1], name + ":req_body onetwo end");
  }
}

// A body that arrives in full while a filter holds the headers must not make the later
// filters (and the router) see a bodiless request: they get end_stream=false, then the body.
TEST_F(StreamTest, HeadersAfterContinueDoNotClaimEndStreamWhenABodyWasHeld) {
  a_.request_headers = [](TestFilter& a, RequestHead&, bool) {
    asio::post(a.cb().executor(), [&a] { a.cb().continue_request(); });
    return FilterStatus::Stop;
  };
  stream().decode_headers(make_request("POST", "/"), false);
  decode_data("body", true);
  run();
  EXPECT_THAT(of("B"), ElementsAre("B:req_headers", "B:req_body body end"));
  EXPECT_THAT(of("T"), ElementsAre("T:req_headers", "T:req_body body end"));
}

TEST_F(StreamTest, TrailersEndTheRequestAndTheResponseThroughEveryFilter) {
  t_.request_headers = [](TestFilter&, RequestHead&, bool) { return FilterStatus::Stop; };
  stream().decode_headers(make_request("POST", "/grpc"), false);
  decode_data("msg", false);
  HeaderMap req_trailers;
  req_trailers.add("x-checksum", "1");
  stream().decode_trailers(std::move(req_trailers));
  EXPECT_THAT(of("T"), ElementsAre("T:req_headers", "T:req_body msg", "T:req_trailers 1"));

  ResponseHead head;
  head.status = 200;
  TestFilter& t = *t_.instance;
  t.cb().encode_headers(head, false);
  std::string out = "out";
  t.cb().encode_data(out, false);
  HeaderMap resp_trailers;
  resp_trailers.add("grpc-status", "0");
  resp_trailers.add("grpc-message", "");
  t.cb().encode_trailers(resp_trailers);
  EXPECT_THAT(of("A"), ElementsAre("A:req_headers", "A:req_body msg", "A:req_trailers 1",
                                   "A:resp_headers 200", "A:resp_body out", "A:resp_trailers 2"));
  EXPECT_THAT(encoder_.events,
              ElementsAre("100-continue", "headers 200", "data out", "trailers 2"));
  EXPECT_THAT(encoder_.trailers.get("grpc-status"), Optional(std::string_view("0")));
  EXPECT_TRUE(stream().response_complete());
}

TEST_F(StreamTest, TrailersHeldWithTheBodyWhileHeadersAreStopped) {
  a_.request_headers = [](TestFilter& a, RequestHead&, bool) {
    asio::post(a.cb().executor(), [&a] { a.cb().continue_request(); });
    return FilterStatus::Stop;
  };
  stream().decode_headers(make_request("POST", "/"), false);
  decode_data("one", false);
  HeaderMap trailers;
  trailers.add("x-a", "1");
  stream().decode_trailers(std::move(trailers));
  EXPECT_THAT(of("T"), IsEmpty());
  run();
  ASSERT_EQ(of("T").size(), 3u);
  EXPECT_EQ(of("T")[1], "T:req_body one");  // not end: the trailers end the request
  EXPECT_EQ(of("T")[2], "T:req_trailers 1");
}

TEST_F(StreamTest, ContinueRequestWithoutStopDoesNothing) {
  a_.request_headers = [](TestFilter& a, RequestHead&, bool) {
    a.cb().continue_request();  // not stopped: must not rerun the chain
    return FilterStatus::Continue;
  };
  stream().decode_headers(make_request(), true);
  EXPECT_THAT(log_, ElementsAre("A:req_headers end", "B:req_headers end", "T:req_headers end"));
}

TEST_F(StreamTest, NonTerminalBodyStopTakesTheData) {
  b_.request_body = [](TestFilter&, std::string& d, bool) {
    return d == "secret" ? FilterStatus::Stop : FilterStatus::Continue;
  };
  stream().decode_headers(make_request("POST", "/"), false);
  decode_data("secret", false);
  decode_data("ok", true);
  EXPECT_THAT(of("T"), ElementsAre("T:req_headers", "T:req_body ok end"));
}

TEST_F(StreamTest, LocalReplyFromAFilterSkipsTheRest) {
  a_.request_headers = [](TestFilter& a, RequestHead&, bool) {
    a.cb().send_local_reply(403, "denied\n");
    return FilterStatus::Stop;
  };
  stream().decode_headers(make_request("POST", "/"), false);
  decode_data("ignored", true);

  EXPECT_THAT(of("B"), Not(Contains("B:req_headers")));
  EXPECT_THAT(of("T"), IsEmpty());
  EXPECT_THAT(log_, Not(Contains("A:req_body ignored end")));
  EXPECT_THAT(encoder_.events, ElementsAre("headers 403", "data denied\n end"));
  EXPECT_EQ(encoder_.head.status, 403u);
  EXPECT_THAT(encoder_.head.headers.get("content-type"),
              Optional(std::string_view("text/plain; charset=utf-8")));
  EXPECT_THAT(encoder_.head.headers.get("content-length"), Optional(std::string_view("7")));
  EXPECT_EQ(encoder_.body, "denied\n");
  EXPECT_EQ(stream().info().status, 403u);
  EXPECT_TRUE(stream().response_complete());

  end_stream();
  EXPECT_EQ(a_.logs, 1);
  EXPECT_EQ(b_.logs, 1);
  EXPECT_EQ(t_.logs, 1);
  EXPECT_EQ(a_.destroys, 1);
  EXPECT_EQ(t_.destroys, 1);
  EXPECT_EQ(stats_.listener("public").requests.by_class[3].value(), 1u);
}

TEST_F(StreamTest, LocalReplyExtraHeadersAndOwnContentType) {
  a_.request_headers = [](TestFilter& a, RequestHead&, bool) {
    HeaderMap extra;
    extra.add("Content-Type", "application/json");
    extra.add("Retry-After", "5");
    a.cb().send_local_reply(429, "{}", extra);
    return FilterStatus::Stop;
  };
  stream().decode_headers(make_request(), true);
  EXPECT_EQ(encoder_.head.headers.count("content-type"), 1u);
  EXPECT_THAT(encoder_.head.headers.get("content-type"),
              Optional(std::string_view("application/json")));
  EXPECT_THAT(encoder_.head.headers.get("retry-after"), Optional(std::string_view("5")));
  EXPECT_THAT(encoder_.head.headers.get("content-length"), Optional(std::string_view("2")));
}

TEST_F(StreamTest, LocalReplyWithEmptyBodyEndsWithTheHeaders) {
  t_.request_headers = [](TestFilter& t, RequestHead&, bool) {
    HeaderMap extra;
    extra.add("location", "https://example.com/");
    t.cb().send_local_reply(301, "", extra);
    return FilterStatus::Stop;
  };
  stream().decode_headers(make_request(), true);
  EXPECT_THAT(encoder_.events, ElementsAre("headers 301 end"));
  EXPECT_THAT(encoder_.head.headers.get("content-length"), Optional(std::string_view("0")));
  EXPECT_FALSE(encoder_.head.headers.contains("content-type"));
  EXPECT_TRUE(stream().response_complete());
}

// RFC 9110 §8.6: a 204 carries no Content-Length.
TEST_F(StreamTest, LocalReply204HasNoContentLength) {
  t_.request_headers = [](TestFilter& t, RequestHead&, bool) {
    t.cb().send_local_reply(204, "");
    return FilterStatus::Stop;
  };
  stream().decode_headers(make_request(), true);
  EXPECT_THAT(encoder_.events, ElementsAre("headers 204 end"));
  EXPECT_FALSE(encoder_.head.headers.contains("content-length"));
}

TEST_F(StreamTest, LocalReplyFromAPostedHandlerAfterStop) {
  // A rate limiter that learns asynchronously that the client is over its limit. The pause
  // is lifted again: the connection must read past the body (or end) to serve the next request.
  a_.request_headers = [](TestFilter& a, RequestHead&, bool) {
    asio::post(a.cb().executor(), [&a] { a.cb().send_local_reply(429, "slow down\n"); });
    return FilterStatus::Stop;
  };
  stream().decode_headers(make_request("POST", "/"), false);
  decode_data("held", true);
  run();
  EXPECT_THAT(of("B"), Not(Contains("B:req_headers")));
  EXPECT_THAT(of("T"), IsEmpty());
  EXPECT_THAT(log_, Not(Contains("A:req_body held end")));
  EXPECT_THAT(encoder_.events,
              ElementsAre("pause", "resume", "headers 429", "data slow down\n end"));
  // A late continue_request() after the reply is ignored.
  a_.instance->cb().continue_request();
  EXPECT_THAT(of("B"), Not(Contains("B:req_headers")));
  EXPECT_THAT(of("T"), IsEmpty());
  EXPECT_THAT(encoder_.events,
              ElementsAre("pause", "resume", "headers 429", "data slow down\n end"));
}

TEST_F(StreamTest, LocalReplyFromTheTerminalRunsEarlierResponsePhases) {
  t_.request_headers = [](TestFilter& t, RequestHead&, bool) {
    t.cb().send_local_reply(404, "no route matched\n");
    return FilterStatus::Stop;
  };
  stream().decode_headers(make_request(), true);
  EXPECT_THAT(log_, ElementsAre("A:req_headers end", "B:req_headers end", "T:req_headers end",
                                "B:resp_headers 404", "A:resp_headers 404",
                                "B:resp_body no route matched\n end",
                                "A:resp_body no route matched\n end"));
  EXPECT_THAT(encoder_.events, ElementsAre("headers 404", "data no route matched\n end"));
}

TEST_F(StreamTest, OnLogOnceAndOnDestroyOnceEvenWithReset) {
  std::string logged_error;
  a_.log = [&](const StreamInfo& info) { logged_error = info.error; };
  stream().decode_headers(make_request("POST", "/"), false);
  stream().reset("client closed");
  stream().reset("again");
  EXPECT_EQ(a_.destroys, 1);
  EXPECT_EQ(b_.destroys, 1);
  EXPECT_EQ(t_.destroys, 1);
  EXPECT_EQ(a_.logs, 0) << "on_log runs when the stream ends, not at reset";
  // Events after a reset reach no filter.
  decode_data("late", true);
  EXPECT_THAT(log_, Not(Contains("A:req_body late end")));
  end_stream();
  EXPECT_EQ(a_.destroys, 1);
  EXPECT_EQ(b_.destroys, 1);
  EXPECT_EQ(t_.destroys, 1);
  EXPECT_EQ(a_.logs, 1);
  EXPECT_EQ(b_.logs, 1);
  EXPECT_EQ(t_.logs, 1);
  EXPECT_EQ(logged_error, "client closed");
}

TEST_F(StreamTest, PendingContinueAfterResetIsIgnored) {
  a_.request_headers = [](TestFilter& a, RequestHead&, bool) {
    // A filter that forgot to cancel its async work in on_destroy.
    asio::post(a.cb().executor(), [&a] { a.cb().continue_request(); });
    return FilterStatus::Stop;
  };
  stream().decode_headers(make_request(), true);
  stream().reset("client closed");
  run();
  EXPECT_THAT(of("B"), ElementsAre("B:destroy"));
  EXPECT_THAT(of("T"), ElementsAre("T:destroy"));
}

TEST_F(StreamTest, OnLogOnceAfterCompleteExchange) {
  t_.request_headers = [](TestFilter& t, RequestHead&, bool) {
    t.cb().info().route = "r1";
    respond(t, "hello");
    return FilterStatus::Stop;
  };
  stream().decode_headers(make_request(), true);
  end_stream();
  EXPECT_EQ(a_.logs, 1);
  EXPECT_EQ(b_.logs, 1);
  EXPECT_EQ(t_.logs, 1);
  EXPECT_EQ(a_.destroys, 1);
  EXPECT_EQ(stats_.listener("public").requests.by_class[1].value(), 1u);
  EXPECT_EQ(stats_.route("r1").duration[1].count(), 1u);  // 2xx
}

TEST_F(StreamTest, ExchangeWithoutAResponseIsNotInTheLatencyHistogram) {
  t_.request_headers = [](TestFilter& t, RequestHead&, bool) {
    t.cb().info().route = "r1";
    return FilterStatus::Stop;  // waits for an upstream that never answers
  };
  stream().decode_headers(make_request(), true);
  stream().reset("client closed");
  end_stream();
  // Neither counted as a response nor observed: the route has no sample in any class.
  for (size_t c = 0; c < 5; ++c) EXPECT_EQ(stats_.route("r1").duration[c].count(), 0u) << c;
  for (size_t c = 0; c < 5; ++c) {
    EXPECT_EQ(stats_.listener("public").requests.by_class[c].value(), 0u) << c;
  }
}

TEST_F(StreamTest, LocalReplyAfterTheResponseStartedAbortsInstead) {
  bool aborted_in_log = false;
  a_.log = [&](const StreamInfo& info) { aborted_in_log = info.response_aborted; };
  t_.request_headers = [](TestFilter& t, RequestHead&, bool) {
    ResponseHead head;
    head.status = 200;
    t.cb().encode_headers(head, false);
    std::string part = "partial";
    t.cb().encode_data(part, false);
    // Something fails mid-response; a local reply can no longer be sent.
    t.cb().send_local_reply(502, "upstream reset\n");
    return FilterStatus::Stop;
  };
  stream().decode_headers(make_request(), true);
  EXPECT_THAT(encoder_.events, ElementsAre("headers 200", "data partial", "abort"));
  EXPECT_EQ(encoder_.head.status, 200u);
  EXPECT_FALSE(stream().response_complete());
  EXPECT_EQ(stream().info().status, 200u);
  EXPECT_TRUE(stream().info().response_aborted);
  EXPECT_FALSE(stream().info().error.empty());
  EXPECT_EQ(t_.destroys, 1) << "aborting cancels the filters' work";
  end_stream();
  EXPECT_EQ(t_.destroys, 1);
  EXPECT_EQ(a_.logs, 1);
  EXPECT_EQ(t_.logs, 1);
  EXPECT_TRUE(aborted_in_log);
}

TEST_F(StreamTest, IncompleteResponseIsLoggedAsAborted) {
  bool aborted_in_log = false;
  a_.log = [&](const StreamInfo& info) { aborted_in_log = info.response_aborted; };
  t_.request_headers = [](TestFilter& t, RequestHead&, bool) {
    ResponseHead head;
    t.cb().encode_headers(head, false);
    return FilterStatus::Stop;
  };
  stream().decode_headers(make_request(), true);
  stream().reset("client closed");
  end_stream();
  EXPECT_TRUE(aborted_in_log);
}

TEST_F(StreamTest, InterimResponsesOnlyBeforeTheHead) {
  t_.request_headers = [](TestFilter& t, RequestHead&, bool) {
    ResponseHead hints;
    hints.status = 103;
    t.cb().encode_1xx(hints);
    respond(t, "");
    ResponseHead late;
    late.status = 103;
    t.cb().encode_1xx(late);
    return FilterStatus::Stop;
  };
  stream().decode_headers(make_request(), true);
  EXPECT_THAT(encoder_.events, ElementsAre("1xx 103", "headers 200 end"));
}

TEST_F(StreamTest, FlowControlIsForwarded) {
  stream().decode_headers(make_request("POST", "/"), false);
  stream().on_downstream_watermark(true);
  stream().on_downstream_watermark(false);
  EXPECT_THAT(of("T"), ElementsAre("T:req_headers", "T:watermark high", "T:watermark low"));
  EXPECT_THAT(of("A"), ElementsAre("A:req_headers"));
  t_.instance->cb().pause_request_body();
  t_.instance->cb().resume_request_body();
  EXPECT_THAT(encoder_.events, ElementsAre("100-continue", "pause", "resume"));
}

TEST_F(StreamTest, CallbacksExposeTheStreamContext) {
  stream().decode_headers(make_request("GET", "/x?q=1"), true);
  FilterCallbacks& cb = a_.instance->cb();
  EXPECT_EQ(&cb.cluster_manager(), &cm_);
  EXPECT_EQ(&cb.stats(), &stats_);
  EXPECT_EQ(&cb.config(), snapshot_->config.get());
  EXPECT_EQ(cb.config().source, "stream_test.yaml");
  EXPECT_EQ(cb.executor(), asio::any_io_executor(ioc_.get_executor()));
  EXPECT_EQ(cb.request().target, "/x?q=1");
  EXPECT_EQ(cb.info().listener, "public");
  EXPECT_EQ(cb.info().client_ip, asio::ip::make_address("192.0.2.1"));
  EXPECT_EQ(cb.info().peer_port, 4000);
  EXPECT_EQ(&cb.services(), &services_);
}

TEST_F(StreamTest, RouteIsMatchedOnceAndSharedByEveryFilter) {
  const router::CompiledRoute* seen_by_a = nullptr;
  a_.request_headers = [&](TestFilter& f, RequestHead& head, bool) {
    seen_by_a = f.cb().route();
    head.target = "/elsewhere";  // without clearing the cache the route stays
    return FilterStatus::Continue;
  };
  const router::CompiledRoute* seen_by_t = nullptr;
  t_.request_headers = [&](TestFilter& f, RequestHead&, bool) {
    seen_by_t = f.cb().route();
    return FilterStatus::Stop;
  };
  stream().decode_headers(make_request("GET", "/api/x"), true);
  ASSERT_NE(seen_by_a, nullptr);
  EXPECT_EQ(seen_by_a->route->name, "api");
  EXPECT_EQ(seen_by_t, seen_by_a);
}

TEST_F(StreamTest, AFilterThatRewritesThePathClearsTheRoute) {
  a_.request_headers = [&](TestFilter& f, RequestHead& head, bool) {
    EXPECT_EQ(f.cb().route()->route->name, "api");
    head.target = "/elsewhere";
    f.cb().clear_route_cache();
    return FilterStatus::Continue;
  };
  std::string routed;
  t_.request_headers = [&](TestFilter& f, RequestHead&, bool) {
    routed = f.cb().route()->route->name;
    return FilterStatus::Stop;
  };
  stream().decode_headers(make_request("GET", "/api/x"), true);
  EXPECT_EQ(routed, "other");
}

TEST_F(StreamTest, AsyncWorkIsCancelledWhenTheStreamGoesAway) {
  int ran = 0;
  a_.request_headers = [&](TestFilter& f, RequestHead&, bool) {
    asio::post(f.cb().executor(), f.cb().cancellation().bind([&ran, &f] {
      ++ran;
      f.cb().continue_request();
    }));
    return FilterStatus::Stop;
  };
  stream().decode_headers(make_request(), true);
  end_stream();  // before the posted work runs
  run();
  EXPECT_EQ(ran, 0);
  // The same work on a stream that stays runs.
  stream().decode_headers(make_request(), true);
  run();
  EXPECT_EQ(ran, 1);
  EXPECT_THAT(of("T"), Contains("T:req_headers end"));
}

TEST_F(StreamTest, ClientIpComesFromForwardedForOnlyBehindATrustedProxy) {
  auto forwarded = [] {
    RequestHead h = make_request();
    h.headers.add("X-Forwarded-For", "6.6.6.6, 198.51.100.7");
    return h;
  };
  stream().decode_headers(forwarded(), true);
  EXPECT_EQ(a_.instance->cb().info().client_ip, asio::ip::make_address("192.0.2.1"));
  end_stream();
  peer_ = "10.1.1.1";
  stream().decode_headers(forwarded(), true);
  EXPECT_EQ(a_.instance->cb().info().client_ip, asio::ip::make_address("198.51.100.7"));
  EXPECT_EQ(a_.instance->cb().info().peer_ip, asio::ip::make_address("10.1.1.1"));
}

TEST_F(StreamTest, StreamKeepsItsSnapshot) {
  std::weak_ptr<const Snapshot> weak = snapshot_;
  stream().decode_headers(make_request(), true);
  snapshot_.reset();  // a reload replaced it
  ASSERT_FALSE(weak.expired());
  EXPECT_EQ(a_.instance->cb().config().source, "stream_test.yaml");
  end_stream();
  EXPECT_TRUE(weak.expired());
}

}  // namespace
}  // namespace sluice
