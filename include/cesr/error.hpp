// Errors the library reports about its inputs.
//
// The library speaks fields, front ends speak their own names: a FieldError's
// message starts with the field it is about ("lr must be > 0, got -1"), and the
// CLI (src/cli/common.cpp) and the Python bindings replace that leading field
// by their flag or argument name ("--lr must be > 0, got -1").
#pragma once

#include <stdexcept>
#include <string>

namespace cesr {

/// Bad input about one named field; what() starts with `field`.
struct FieldError : std::invalid_argument {
  std::string field;
  FieldError(std::string field_name, const std::string& message)
      : std::invalid_argument(message), field(std::move(field_name)) {}
};

}  // namespace cesr
