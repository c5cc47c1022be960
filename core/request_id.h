#pragma once
// Request identity: `x-request-id` and W3C `traceparent` on every request that goes upstream.
//
// x-request-id is kept when the connection's peer is a trusted proxy and sent one that looks
// like an id (visible ASCII, at most kMaxRequestIdLength), and replaced by a new one (32 random
// hex digits) otherwise: an id a client chose must not be able to pose as one of ours in the
// logs of the backends. traceparent (https://www.w3.org/TR/trace-context/) is passed through
// when it is valid, from any peer, as tracing across organisations is cooperative; a missing or
// malformed one is replaced by a new trace (random trace id and parent id, not sampled).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/http.h"
#include "core/trace.h"

namespace sluice {

inline constexpr size_t kMaxRequestIdLength = 200;

// Sets both headers as described above; returns the request id now in the headers. Fills
// `trace`'s trace id and, when the request carried a valid traceparent, its parent.
std::string assign_request_ids(HeaderMap& headers, bool peer_trusted, TraceContext& trace);

// Whether `value` is a well-formed version-00 traceparent (or a later version's, read as 00
// reads it) with a non-zero trace id and parent id.
bool is_valid_traceparent(std::string_view value);

// `n` random lowercase hex digits from a per-thread generator seeded from the kernel. Not for
// secrets: ids only need to be unique.
std::string random_hex(size_t n);
// The same, written to `out`.
void fill_random_hex(char* out, size_t n);
// 64 random bits from the same generator.
uint64_t random_u64();

}  // namespace sluice
