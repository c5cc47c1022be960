# Writes OUTPUT, a C++ source whose function FUNCTION() returns INPUT's bytes as a
# std::string_view: how the dashboard page is compiled into the binary. Run with cmake -P.
file(READ "${INPUT}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# A line break every 16 bytes (CMake's regular expressions have no {n}).
string(REPEAT "0x[0-9a-f][0-9a-f]," 16 line)
string(REGEX REPLACE "(${line})" "\\1\n" bytes "${bytes}")
get_filename_component(name "${INPUT}" NAME)
file(WRITE "${OUTPUT}" "// Generated from admin/${name} by admin/embed.cmake: edit that file, not this one.
#include <string_view>

namespace sluice::admin {

std::string_view ${FUNCTION}() {
  static const unsigned char kBytes[] = {
${bytes}0x00};
  return {reinterpret_cast<const char*>(kBytes), sizeof kBytes - 1};
}

}  // namespace sluice::admin
")
