#include "cesr/check.hpp"

#include "cesr/error.hpp"
#include "cesr/io.hpp"

#include <boost/math/special_functions/erf.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <unordered_map>

namespace cesr {

namespace {

std::string_view unquote(std::string_view s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') return s.substr(1, s.size() - 2);
  return s;
}

double parse_number(std::string_view field, std::string_view column, std::string_view where) {
  try {
    return parse_finite(field, column);
  } catch (const std::invalid_argument&) {
    throw std::invalid_argument(fmt::format("{}: {} '{}' is not a finite number", where, column, field));
  }
}

// A step count read exactly: a run of digits (optionally after '+') as an
// integer (9007199254740993 stays itself; beyond 2^64 - 1 is an error), any
// other number (1e3, 100.0) only when it is whole and below 2^53, where a
// double holds every integer.
std::uint64_t parse_step(std::string_view text, std::string_view where) {
  std::string_view digits = text;
  if (!digits.empty() && digits.front() == '+') digits.remove_prefix(1);
  if (!digits.empty() && std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    std::uint64_t t = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), t);
    if (ec != std::errc() || end != digits.data() + digits.size())
      throw std::invalid_argument(fmt::format("{}: step {} does not fit in 64 bits", where, text));
    return t;
  }
  const double step = parse_number(text, "step", where);
  if (step < 0) throw std::invalid_argument(fmt::format("{}: negative step {}", where, text));
  if (step != std::floor(step) || step >= 9007199254740992.0)
    throw std::invalid_argument(fmt::format(
        "{}: step {} is not a whole number of steps below 2^53 (write larger steps as integers)", where, text));
  return static_cast<std::uint64_t>(step);
}

}  // namespace

std::uint64_t max_exact_work(Precision precision) {
  // (d + 64) x steps that take about 30 s on one core here (measured, heavy
  // ball: a step costs about 50 ns + 0.5 ns d in double (57 ns at d = 10,
  // 100 ns at d = 100), 40 ns per direction in long double, 600 ns in quad,
  // 1 us in mp50; the 64 stands for the per-step overhead).
  switch (precision) {
    case Precision::Double: return 30'000'000'000ull;
    case Precision::Long: return 750'000'000ull;
    case Precision::Quad: return 50'000'000ull;
    case Precision::Mp50: return 30'000'000ull;
  }
  return 0;
}

void check_exact_work(std::size_t dim, std::uint64_t last_step, Precision precision, std::string_view field) {
  const std::uint64_t budget = max_exact_work(precision);
  const long double work = (static_cast<long double>(dim) + 64) * static_cast<long double>(last_step);
  if (work <= static_cast<long double>(budget)) return;
  throw FieldError(std::string(field),
                   fmt::format("{}: the exact loss at step {} on d = {} costs {:.3g} units of work in {} ((d + 64) x "
                               "steps), more than the {:.3g} (about 30 s) cesr check computes; compare a shorter run{}",
                               field, last_step, dim, static_cast<double>(work), to_string(precision),
                               static_cast<double>(budget),
                               precision == Precision::Double ? "" : " or use a lower --precision"));
}

ObservedCurve parse_curve_csv(std::string_view text, std::string_view name) {
  ObservedCurve out;
  std::optional<std::size_t> col_step, col_loss, col_mean, col_se;
  std::size_t columns = 0;
  bool have_header = false;
  std::unordered_map<std::uint64_t, std::size_t> seen;  // step -> line
  for_each_csv_row(text, [&](const std::vector<std::string_view>& fields, std::size_t line_no) {
    const std::string where = fmt::format("{} line {}", name, line_no);
    const auto line = [&] { return fmt::format("{}", fmt::join(fields, ",")); };
    if (!have_header) {
      for (std::size_t c = 0; c < fields.size(); ++c) {
        const std::string_view h = unquote(fields[c]);
        auto set = [&](std::optional<std::size_t>& slot) {
          if (slot) throw std::invalid_argument(fmt::format("{}: column '{}' appears twice in the header", where, h));
          slot = c;
        };
        if (h == "step") set(col_step);
        else if (h == "loss") set(col_loss);
        else if (h == "stderr") set(col_se);
        else if (h == "mean") set(col_mean);
      }
      // cesr simulate writes the observed loss as `mean`.
      if (!col_loss) col_loss = col_mean;
      if (!col_step || !col_loss) {
        const bool numeric = !fields.empty() && [&] {
          try {
            parse_finite(fields[0], "");
            return true;
          } catch (const std::invalid_argument&) {
            return false;
          }
        }();
        if (numeric)
          throw std::invalid_argument(fmt::format(
              "{}: missing header (the first line must name the columns, e.g. step,loss[,stderr]; got '{}')", where,
              line()));
        throw std::invalid_argument(fmt::format("{}: the header has no '{}' column (got '{}'; need step,loss[,stderr])",
                                                where, col_step ? "loss" : "step", line()));
      }
      columns = fields.size();
      out.has_std_error_column = col_se.has_value();
      have_header = true;
      return;
    }
    if (fields.size() != columns)
      throw std::invalid_argument(
          fmt::format("{}: {} fields where the header has {} ('{}')", where, fields.size(), columns, line()));
    const std::uint64_t t = parse_step(fields[*col_step], where);
    if (const auto it = seen.find(t); it != seen.end())
      throw std::invalid_argument(fmt::format("{}: duplicated step {} (first on line {})", where, t, it->second));
    seen.emplace(t, line_no);
    const double loss = parse_number(fields[*col_loss], "loss", where);
    if (loss < 0) throw std::invalid_argument(fmt::format("{}: negative loss {}", where, fields[*col_loss]));
    std::optional<double> se;
    if (col_se && !fields[*col_se].empty()) {
      se = parse_number(fields[*col_se], "stderr", where);
      if (*se < 0) throw std::invalid_argument(fmt::format("{}: negative stderr {}", where, fields[*col_se]));
    }
    out.step.push_back(t);
    out.loss.push_back(loss);
    out.std_error.push_back(se);
    out.line.push_back(line_no);
  });
  if (!have_header)
    throw std::invalid_argument(fmt::format("{}: empty file (expected a header step,loss[,stderr] and data rows)", name));
  if (out.step.empty()) throw std::invalid_argument(fmt::format("{}: no data rows after the header", name));
  return out;
}

ObservedCurve read_curve_csv(const std::string& path) {
  return parse_curve_csv(read_text_file(path, "loss curve"), path);
}

double sidak_threshold(std::size_t n, double alpha) {
  if (!(alpha > 0 && alpha < 1)) throw std::invalid_argument(fmt::format("--alpha must lie in (0, 1), got {}", alpha));
  if (n == 0) return std::numeric_limits<double>::infinity();
  // Per-test level p = 1 - (1 - alpha)^(1/n), without cancellation for small alpha.
  const double p = -std::expm1(std::log1p(-alpha) / static_cast<double>(n));
  // Two-sided: P(|Z| > z) = erfc(z / sqrt 2) = p.
  return std::sqrt(2.0) * boost::math::erfc_inv(p);
}

void CheckOptions::validate() const {
  if (!std::isfinite(rtol) || !(rtol > 0))
    throw std::invalid_argument(fmt::format("--rtol must be a finite number > 0, got {}", rtol));
  if (!(alpha > 0 && alpha < 1)) throw std::invalid_argument(fmt::format("--alpha must lie in (0, 1), got {}", alpha));
  if (zmax && (!std::isfinite(*zmax) || !(*zmax > 0)))
    throw std::invalid_argument(fmt::format("--zmax must be a finite number > 0, got {}", *zmax));
}

CheckReport check_curve(const std::vector<double>& loss, const std::vector<std::optional<double>>& std_error,
                        const std::vector<double>& theory, const CheckOptions& options) {
  options.validate();
  const std::size_t n = loss.size();
  if (std_error.size() != n || theory.size() != n)
    throw std::invalid_argument("check_curve: loss, stderr and theory differ in length");
  CheckReport rep;
  // A standard error below the numerical resolution of the curves (1e-12 of
  // the loss; identical runs, as at step 0, give ~1e-17 from rounding) says
  // nothing: such a row is judged by its relative error, never by a huge z.
  auto has_z = [&](std::size_t i) {
    const double resolution = 1e-12 * std::max(std::abs(loss[i]), std::abs(theory[i]));
    return std_error[i] && *std_error[i] > resolution;
  };
  for (std::size_t i = 0; i < n; ++i) rep.z_rows += has_z(i) ? 1 : 0;
  rep.rtol_rows = n - rep.z_rows;
  rep.zmax = options.zmax ? *options.zmax : sidak_threshold(rep.z_rows, options.alpha);
  rep.rows.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    RowCheck& row = rep.rows[i];
    row.theory = theory[i];
    const double diff = loss[i] - theory[i];
    if (theory[i] != 0) row.rel_error = diff / theory[i];
    else row.rel_error = diff == 0 ? 0 : std::copysign(std::numeric_limits<double>::infinity(), diff);
    rep.max_abs_rel_error = std::max(rep.max_abs_rel_error, std::abs(row.rel_error));
    if (has_z(i)) {
      row.z = diff / *std_error[i];
      const double az = std::abs(*row.z);
      row.score = az / rep.zmax;
      rep.within_3 += az <= 3 ? 1 : 0;
      rep.max_abs_z = std::max(rep.max_abs_z, az);
    } else {
      row.score = std::abs(row.rel_error) / options.rtol;
    }
    row.pass = row.score <= 1;
    rep.failed += row.pass ? 0 : 1;
  }
  rep.agree = rep.failed == 0;
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return rep.rows[a].score > rep.rows[b].score; });
  order.resize(std::min<std::size_t>(n, 5));
  rep.worst = std::move(order);
  return rep;
}

template <class Real>
ExactAtSteps exact_loss_at(const Spectrum& spectrum, const MethodPath<Real>& method, const NoiseModel& noise,
                           const std::vector<std::uint64_t>& steps) {
  ExactAtSteps out;
  out.loss.assign(steps.size(), 0.0);
  std::vector<std::size_t> order(steps.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return steps[a] < steps[b]; });
  if (!steps.empty()) check_exact_work(spectrum.dim(), steps[order.back()], precision_of<Real>(), "input");
  Dynamics<Real> dyn(spectrum, method, noise);
  for (const std::size_t i : order) {
    while (dyn.time() < steps[i]) {
      if (dyn.diverged()) break;
      dyn.step();
    }
    if (dyn.diverged()) {
      out.diverged_at = dyn.time();
      return out;
    }
    out.loss[i] = to_double(dyn.loss());
  }
  return out;
}

#define CESR_INSTANTIATE(Real)                                                                     \
  template ExactAtSteps exact_loss_at<Real>(const Spectrum&, const MethodPath<Real>&, const NoiseModel&, \
                                            const std::vector<std::uint64_t>&);
CESR_FOR_EACH_REAL(CESR_INSTANTIATE)
#undef CESR_INSTANTIATE

}  // namespace cesr
