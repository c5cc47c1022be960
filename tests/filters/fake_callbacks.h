#pragma once
// Filter tests' stand-in for the Stream: records what a filter does to the exchange. Routes
// are matched against the request as it is at each route() call.
#include <cstdlib>
#include <string>

#include <boost/asio/io_context.hpp>

#include "core/cancellation.h"
#include "filters/filter.h"
#include "filters/router/route_table.h"

namespace sluice::test {

namespace asio = boost::asio;

// Stands in for the Stream: records what the filter does to the exchange.
class FakeCallbacks : public FilterCallbacks {
 public:
  FakeCallbacks(asio::io_context& ioc, const router::RouteTable& routes, WorkerStats& stats,
                WorkerServices& services)
      : ioc_(ioc), routes_(routes), stats_(stats), services_(services) {}

  asio::any_io_executor executor() override { return ioc_.get_executor(); }
  RequestHead& request() override { return request_; }
  StreamInfo& info() override { return info_; }
  const config::Config& config() override { std::abort(); }
  upstream::ClusterManager& cluster_manager() override { std::abort(); }
  WorkerStats& stats() override { return stats_; }
  WorkerServices& services() override { return services_; }
  CancellationToken cancellation() override { return cancellation_.token(); }
  const router::CompiledRoute* route() override { return routes_.match(request_); }
  void clear_route_cache() override { ++route_cache_clears; }
  void continue_request() override { ++continued; }
  void send_local_reply(unsigned status, std::string_view body, const HeaderMap& extra) override {
    reply_status = status;
    reply_body = body;
    reply_headers = extra;
  }
  void encode_headers(ResponseHead&, bool) override {}
  void encode_1xx(ResponseHead&) override {}
  void encode_data(std::string&, bool) override {}
  void encode_trailers(HeaderMap&) override {}
  void abort_response(std::string_view) override {}
  void pause_request_body() override {}
  void resume_request_body() override {}

  void destroy() { cancellation_.cancel(); }

  RequestHead request_;
  StreamInfo info_;
  int continued = 0;
  int route_cache_clears = 0;
  unsigned reply_status = 0;
  std::string reply_body;
  HeaderMap reply_headers;

 private:
  asio::io_context& ioc_;
  const router::RouteTable& routes_;
  WorkerStats& stats_;
  WorkerServices& services_;
  CancellationSource cancellation_;
};

}  // namespace sluice::test
