#include "cesr/spectrum.hpp"

#include "cesr/io.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <numeric>
#include <stdexcept>
#include <string>

#include <unistd.h>

namespace cesr {

double Spectrum::lambda_max() const { return *std::max_element(lambda.begin(), lambda.end()); }
double Spectrum::lambda_min() const { return *std::min_element(lambda.begin(), lambda.end()); }
double Spectrum::trace() const { return std::accumulate(lambda.begin(), lambda.end(), 0.0); }
double Spectrum::initial_loss() const {
  double s = 0;
  for (std::size_t i = 0; i < lambda.size(); ++i) s += lambda[i] * init[i];
  return 0.5 * s;
}

namespace {

std::string_view trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// "key=value,key=value" after the "kind:" prefix.
std::map<std::string, std::string> parse_keyvals(std::string_view body, std::string_view whole) {
  std::map<std::string, std::string> kv;
  while (!body.empty()) {
    const auto comma = body.find(',');
    const auto item = trim(body.substr(0, comma));
    const auto eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0)
      throw std::invalid_argument(fmt::format("'{}': expected key=value, got '{}'", whole, item));
    std::string key(trim(item.substr(0, eq)));
    if (kv.count(key)) throw std::invalid_argument(fmt::format("'{}': '{}' given twice", whole, key));
    kv[key] = std::string(trim(item.substr(eq + 1)));
    if (comma == std::string_view::npos) break;
    body.remove_prefix(comma + 1);
  }
  return kv;
}

void check_keys(const std::map<std::string, std::string>& kv, std::initializer_list<const char*> required,
                std::initializer_list<const char*> optional, std::string_view whole) {
  for (const char* k : required)
    if (!kv.count(k)) throw std::invalid_argument(fmt::format("'{}': missing {}=", whole, k));
  for (const auto& [k, v] : kv) {
    bool known = false;
    for (const char* r : required) known |= (k == r);
    for (const char* o : optional) known |= (k == o);
    if (!known) throw std::invalid_argument(fmt::format("'{}': unknown key '{}'", whole, k));
  }
}

std::size_t parse_dimension(const std::string& text, std::string_view whole) {
  std::size_t d = 0;
  const auto* end = text.data() + text.size();
  const auto [p, ec] = std::from_chars(text.data(), end, d);
  if (ec != std::errc{} || p != end || text.empty())
    throw std::invalid_argument(fmt::format("'{}': d must be a positive integer, got '{}'", whole, text));
  if (d < 1) throw std::invalid_argument(fmt::format("'{}': d must be >= 1, got {}", whole, text));
  if (d > max_dimension)
    throw std::invalid_argument(fmt::format("'{}': d = {} exceeds the maximum {}", whole, text, max_dimension));
  check_fits_in_memory(d, whole);
  return d;
}

}  // namespace

void check_fits_in_memory(std::size_t d, std::string_view what) {
  // A double-precision run keeps about 7 doubles per direction (spectrum,
  // initial moments, 1 or 3 state entries and a copy of lambda).
  constexpr double bytes_per_direction = 64;
  const double physical = double(::sysconf(_SC_PHYS_PAGES)) * double(::sysconf(_SC_PAGESIZE));
  if (physical > 0 && double(d) * bytes_per_direction > 0.8 * physical)
    throw std::invalid_argument(fmt::format("'{}': d = {} needs about {:.1f} GiB, more than this machine's memory ({:.1f} GiB)",
                                            what, d, double(d) * bytes_per_direction / (1u << 30), physical / (1u << 30)));
}

double parse_finite(std::string_view text, std::string_view what) {
  text = trim(text);
  // A leading '+' as on the command line (strtod reads "+1"; from_chars does not).
  const std::string_view number = text.size() > 1 && text[0] == '+' && text[1] != '-' && text[1] != '+'
                                      ? text.substr(1)
                                      : text;
  double x = 0;
  const auto* end = number.data() + number.size();
  const auto [p, ec] = std::from_chars(number.data(), end, x);
  if (text.empty() || ec != std::errc{} || p != end || !std::isfinite(x))
    throw std::invalid_argument(fmt::format("{}: '{}' is not a finite number", what, text));
  return x;
}

std::vector<double> read_values_file(const std::string& path, bool positive, std::string_view what) {
  const std::string text = read_text_file(path, what);
  std::string_view rest(text);
  std::vector<double> values;
  std::size_t lineno = 0;
  while (!rest.empty()) {  // each pass consumes one line
    const auto newline = rest.find('\n');
    std::string_view v = rest.substr(0, newline);
    rest.remove_prefix(newline == std::string_view::npos ? rest.size() : newline + 1);
    ++lineno;
    if (const auto hash = v.find('#'); hash != std::string_view::npos) v = v.substr(0, hash);
    v = trim(v);
    if (v.empty()) continue;
    const double x = parse_finite(v, fmt::format("{} line {}", path, lineno));
    if (positive ? !(x > 0) : !(x >= 0))
      throw std::invalid_argument(
          fmt::format("{} line {}: {} must be {}", path, lineno, v, positive ? "> 0" : ">= 0"));
    values.push_back(x);
  }
  if (values.empty()) throw std::invalid_argument(fmt::format("'{}' holds no values", path));
  return values;
}

std::vector<double> parse_spectrum(std::string_view spec) {
  const auto colon = spec.find(':');
  const auto kind = spec.substr(0, colon);
  const auto body = colon == std::string_view::npos ? std::string_view{} : spec.substr(colon + 1);
  if (kind == "file") {
    if (body.empty()) throw std::invalid_argument("'file:' needs a path");
    return read_values_file(std::string(body), true, "spectrum file");
  }
  if (kind != "powerlaw" && kind != "loguniform")
    throw std::invalid_argument(
        fmt::format("'{}': unknown spectrum (expected powerlaw:..., loguniform:... or file:PATH)", spec));
  const auto kv = parse_keyvals(body, spec);
  const bool power = kind == "powerlaw";
  check_keys(kv, {"d", power ? "alpha" : "kappa"}, {"scale"}, spec);
  const std::size_t d = parse_dimension(kv.at("d"), spec);
  const double scale = kv.count("scale") ? parse_finite(kv.at("scale"), fmt::format("'{}': scale", spec)) : 1.0;
  if (!(scale > 0)) throw std::invalid_argument(fmt::format("'{}': scale must be > 0", spec));
  std::vector<double> lambda(d);
  if (power) {
    const double alpha = parse_finite(kv.at("alpha"), fmt::format("'{}': alpha", spec));
    for (std::size_t i = 0; i < d; ++i) lambda[i] = scale * std::pow(double(i + 1), -alpha);
  } else {
    const double kappa = parse_finite(kv.at("kappa"), fmt::format("'{}': kappa", spec));
    if (!(kappa >= 1)) throw std::invalid_argument(fmt::format("'{}': kappa must be >= 1", spec));
    if (d == 1 && kappa != 1)
      throw std::invalid_argument(fmt::format("'{}': d = 1 needs kappa = 1", spec));
    for (std::size_t i = 0; i < d; ++i)
      lambda[i] = d == 1 ? scale : scale * std::pow(kappa, -double(i) / double(d - 1));
  }
  for (std::size_t i = 0; i < d; ++i)
    if (!(lambda[i] > 0) || !std::isfinite(lambda[i]))
      throw std::invalid_argument(
          fmt::format("'{}': eigenvalue {} is {} (under- or overflow)", spec, i + 1, lambda[i]));
  return lambda;
}

std::vector<double> parse_init(std::string_view init, std::size_t d) {
  if (init == "isotropic") return std::vector<double>(d, 1.0);
  const auto colon = init.find(':');
  const auto kind = init.substr(0, colon);
  const auto body = colon == std::string_view::npos ? std::string_view{} : init.substr(colon + 1);
  if (kind == "file") {
    if (body.empty()) throw std::invalid_argument("'file:' needs a path");
    auto v = read_values_file(std::string(body), false, "initial-moments file");
    if (v.size() != d)
      throw std::invalid_argument(
          fmt::format("'{}' holds {} values but the spectrum has {}", body, v.size(), d));
    return v;
  }
  if (kind == "powerlaw") {
    const auto kv = parse_keyvals(body, init);
    check_keys(kv, {"beta"}, {}, init);
    const double beta = parse_finite(kv.at("beta"), fmt::format("'{}': beta", init));
    std::vector<double> v(d);
    for (std::size_t i = 0; i < d; ++i) {
      v[i] = std::pow(double(i + 1), -beta);
      if (!std::isfinite(v[i]))
        throw std::invalid_argument(fmt::format("'{}': value {} is {} (overflow)", init, i + 1, v[i]));
    }
    return v;
  }
  throw std::invalid_argument(
      fmt::format("'{}': unknown init (expected isotropic, powerlaw:beta=B or file:PATH)", init));
}

Spectrum make_spectrum(std::string_view spec, std::string_view init) {
  Spectrum s;
  s.lambda = parse_spectrum(spec);
  s.init = parse_init(init, s.lambda.size());
  return s;
}

}  // namespace cesr
