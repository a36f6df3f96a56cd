// A .npy file written byte by byte from the format's definition (version 1:
// magic, version, 2-byte header length, a Python dict literal padded to 64),
// for tests of the reader that do not trust a writer of our own.
#pragma once

#include <string>
#include <vector>

namespace cesr_test {

inline std::string npy_bytes(const std::string& descr, const std::string& shape, const std::string& payload,
                             const std::string& fortran = "False") {
  std::string header = "{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += char(1);
  out += char(0);
  out += char(header.size() & 0xff);
  out += char(header.size() >> 8);
  return out + header + payload;
}

/// A 1-D float64 array.
inline std::string npy_f8(const std::vector<double>& v) {
  return npy_bytes("<f8", "(" + std::to_string(v.size()) + ",)",
                   std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(double)));
}

}  // namespace cesr_test
