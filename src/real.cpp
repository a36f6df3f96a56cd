#include "cesr/real.hpp"

#include <fmt/format.h>

#include <ios>

namespace cesr {

std::string_view to_string(Precision p) {
  switch (p) {
    case Precision::Double: return "double";
    case Precision::Long: return "long";
    case Precision::Quad: return "quad";
    case Precision::Mp50: return "mp50";
  }
  return "?";
}

Precision parse_precision(std::string_view s) {
  if (s == "double") return Precision::Double;
  if (s == "long") return Precision::Long;
  if (s == "quad") return Precision::Quad;
  if (s == "mp50") return Precision::Mp50;
  throw std::invalid_argument(fmt::format("unknown precision '{}' (expected double, long, quad or mp50)", s));
}

void check_escalation_rtol(double rtol) {
  if (!std::isfinite(rtol) || !(rtol > 0) || !(rtol < 1))
    throw std::invalid_argument(fmt::format("--rtol must be in (0, 1), got {}", rtol));
}

template <class Real>
std::string format_real(const Real& x, int digits) {
  if (digits <= 0) digits = round_trip_digits<Real>();
  if (!is_finite(x)) {
    const double d = to_double(x);
    return d != d ? "nan" : (d > 0 ? "inf" : "-inf");
  }
  if constexpr (std::is_same_v<Real, double> || std::is_same_v<Real, long double>) {
    return fmt::format("{:.{}e}", x, digits - 1);
  } else {
    return x.str(digits - 1, std::ios_base::scientific);
  }
}

#define CESR_INSTANTIATE(Real) template std::string format_real<Real>(const Real&, int);
CESR_FOR_EACH_REAL(CESR_INSTANTIATE)
#undef CESR_INSTANTIATE

}  // namespace cesr
