#pragma once
// Field names as Beast's parsers report them: Beast looks each name up once (case
// insensitively) and hands the codecs a http::field, so they can judge a field with one compare
// instead of string compares. For the HTTP/1.1 codecs only; the rest of sluice works on names.
#include <boost/beast/http/field.hpp>

namespace sluice {

// is_hop_by_hop() (core/http.h) on a field Beast has looked up.
inline bool is_hop_by_hop(boost::beast::http::field f) {
  using boost::beast::http::field;
  switch (f) {
    case field::connection:
    case field::keep_alive:
    case field::proxy_connection:
    case field::te:
    case field::trailer:
    case field::transfer_encoding:
    case field::upgrade:
      return true;
    default:
      return false;
  }
}

}  // namespace sluice
