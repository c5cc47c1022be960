#pragma once
// GET /clusters: every cluster with its hosts (address, weight, health, ejection, requests in
// flight, failures) and the cluster-wide counts circuit breakers read. Admin thread.
#include <string>

namespace sluice::admin {

class AdminContext;

std::string clusters_json(const AdminContext& ctx);

// The array of clusters alone, as /stats embeds it: "[{...}, ...]".
std::string clusters_json_array(const AdminContext& ctx);

}  // namespace sluice::admin
