#include "cesr/spectrum.hpp"

#include "cesr/io.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <cmath>
#include <map>
#include <numeric>
#include <stdexcept>
#include <string>

#include <unistd.h>

namespace cesr {

double Spectrum::lambda_max() const { return *std::max_element(lambda.begin(), lambda.end()); }
double Spectrum::lambda_min() const { return *std::min_element(lambda.begin(), lambda.end()); }
double Spectrum::directions() const {
  return weight.empty() ? double(lambda.size()) : std::accumulate(weight.begin(), weight.end(), 0.0);
}
bool Spectrum::fractional() const {
  return std::any_of(weight.begin(), weight.end(), [](double w) { return w != std::floor(w); });
}
double Spectrum::trace() const {
  double s = 0;
  for (std::size_t i = 0; i < lambda.size(); ++i) s += weight_at(i) * lambda[i];
  return s;
}
double Spectrum::initial_loss() const {
  double s = 0;
  for (std::size_t i = 0; i < lambda.size(); ++i) s += weight_at(i) * lambda[i] * init[i];
  return 0.5 * s;
}

Spectrum expand_weights(const Spectrum& s, std::string_view what) {
  if (!s.weighted()) return s;
  double total = 0;
  for (std::size_t i = 0; i < s.dim(); ++i) {
    const double w = s.weight[i];
    if (w != std::floor(w))
      throw std::invalid_argument(fmt::format(
          "{} needs whole directions, but spectrum line {} has weight {} (a fractional weight is a spectral measure)",
          what, i + 1, w));
    total += w;
  }
  if (total > double(max_dimension))
    throw std::invalid_argument(
        fmt::format("{}: the weighted spectrum has {} directions, more than the maximum {}", what, total, max_dimension));
  check_fits_in_memory(static_cast<std::size_t>(total), what);
  Spectrum out;
  out.lambda.reserve(static_cast<std::size_t>(total));
  out.init.reserve(static_cast<std::size_t>(total));
  for (std::size_t i = 0; i < s.dim(); ++i)
    for (double n = 0; n < s.weight[i]; ++n) {
      out.lambda.push_back(s.lambda[i]);
      out.init.push_back(s.init.empty() ? 1.0 : s.init[i]);
      if (!s.noise_covariance.empty()) out.noise_covariance.push_back(s.noise_covariance[i]);
    }
  if (s.init.empty()) out.init.clear();
  return out;
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

double physical_memory() {
  const double physical = double(::sysconf(_SC_PHYS_PAGES)) * double(::sysconf(_SC_PAGESIZE));
  return physical > 0 ? physical : 0;
}

void check_fits_in_memory(std::size_t d, std::string_view what, double bytes_per_direction) {
  const double physical = physical_memory();
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

namespace {
// Calls f(line, lineno) for each line of `text` that holds something once a
// '#' comment and surrounding blanks are removed (lines counted from 1).
template <class F>
void for_each_data_line(std::string_view rest, F&& f) {
  std::size_t lineno = 0;
  while (!rest.empty()) {  // each pass consumes one line
    const auto newline = rest.find('\n');
    std::string_view v = rest.substr(0, newline);
    rest.remove_prefix(newline == std::string_view::npos ? rest.size() : newline + 1);
    ++lineno;
    if (const auto hash = v.find('#'); hash != std::string_view::npos) v = v.substr(0, hash);
    v = trim(v);
    if (!v.empty()) f(v, lineno);
  }
}
}  // namespace

std::vector<double> read_values_file(const std::string& path, bool positive, std::string_view what) {
  const std::string text = read_text_file(path, what);
  std::vector<double> values;
  for_each_data_line(text, [&](std::string_view v, std::size_t lineno) {
    const double x = parse_finite(v, fmt::format("{} line {}", path, lineno));
    if (positive ? !(x > 0) : !(x >= 0))
      throw std::invalid_argument(
          fmt::format("{} line {}: {} must be {}", path, lineno, v, positive ? "> 0" : ">= 0"));
    values.push_back(x);
  });
  if (values.empty()) throw std::invalid_argument(fmt::format("'{}' holds no values", path));
  return values;
}

namespace {

// A spectrum file: per non-comment line "lambda" or "lambda w". The weights
// are kept only when one of them differs from 1.
Spectrum read_spectrum_file(const std::string& path) {
  const std::string text = read_text_file(path, "spectrum file");
  Spectrum s;
  std::vector<double> weight;
  bool weighted = false;
  for_each_data_line(text, [&](std::string_view v, std::size_t lineno) {
    const auto where = [&] { return fmt::format("{} line {}", path, lineno); };
    const auto gap = v.find_first_of(" \t");
    const std::string_view first = v.substr(0, gap);
    const std::string_view second = gap == std::string_view::npos ? std::string_view{} : trim(v.substr(gap));
    if (second.find_first_of(" \t") != std::string_view::npos)
      throw std::invalid_argument(
          fmt::format("{}: '{}' has more than two columns (expected 'lambda' or 'lambda w')", where(), v));
    const double x = parse_finite(first, where());
    if (!(x > 0)) throw std::invalid_argument(fmt::format("{}: {} must be > 0", where(), first));
    double w = 1;
    if (!second.empty()) {
      w = parse_finite(second, fmt::format("{} (weight)", where()));
      if (!(w > 0)) throw std::invalid_argument(fmt::format("{}: the weight {} must be > 0", where(), second));
    }
    weighted |= w != 1;
    s.lambda.push_back(x);
    weight.push_back(w);
  });
  if (s.lambda.empty()) throw std::invalid_argument(fmt::format("'{}' holds no values", path));
  if (weighted) s.weight = std::move(weight);
  return s;
}

std::uint64_t little_endian(const unsigned char* p, int bytes) {
  std::uint64_t v = 0;
  for (int b = bytes - 1; b >= 0; --b) v = (v << 8) | p[b];
  return v;
}

// The value of key `key` in the header dictionary of a .npy file (a Python
// literal such as {'descr': '<f8', 'fortran_order': False, 'shape': (5,), }),
// as its literal text: a quoted string without quotes, a word, or a tuple
// with its parentheses.
std::string_view npy_field(std::string_view header, std::string_view key, const std::string& path) {
  for (const char quote : {'\'', '"'}) {
    const std::string quoted = fmt::format("{0}{1}{0}", quote, key);
    auto at = header.find(quoted);
    if (at == std::string_view::npos) continue;
    std::string_view rest = trim(header.substr(at + quoted.size()));
    if (rest.empty() || rest.front() != ':') break;
    rest = trim(rest.substr(1));
    if (rest.empty()) break;
    if (rest.front() == '\'' || rest.front() == '"') {
      const auto end = rest.find(rest.front(), 1);
      if (end == std::string_view::npos) break;
      return rest.substr(1, end - 1);
    }
    if (rest.front() == '(') {
      const auto end = rest.find(')');
      if (end == std::string_view::npos) break;
      return rest.substr(0, end + 1);
    }
    return rest.substr(0, rest.find_first_of(",} "));
  }
  throw std::invalid_argument(fmt::format("'{}': the .npy header has no readable '{}'", path, key));
}

}  // namespace

NpyArray read_npy_array(const std::string& path, std::string_view what) {
  const std::string bytes = read_binary_file(path, what);
  const auto refuse = [&](const std::string& problem) {
    return std::invalid_argument(fmt::format("'{}': {} ({})", path, problem, what));
  };
  const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) throw refuse("not a .npy file (no \\x93NUMPY magic)");
  const int major = u[6];
  if (major < 1 || major > 3) throw refuse(fmt::format(".npy format version {} is not 1, 2 or 3", major));
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  if (bytes.size() < 8 + len_bytes) throw refuse("truncated .npy header");
  const std::size_t header_len = little_endian(u + 8, static_cast<int>(len_bytes));
  const std::size_t data_at = 8 + len_bytes + header_len;
  if (header_len > bytes.size() || data_at > bytes.size()) throw refuse("truncated .npy header");
  const std::string_view header(bytes.data() + 8 + len_bytes, header_len);
  const std::string_view descr = npy_field(header, "descr", path);
  const std::string_view fortran = npy_field(header, "fortran_order", path);
  const std::string_view shape = npy_field(header, "shape", path);
  std::size_t item = 0;
  if (descr == "<f8") item = 8;
  else if (descr == "<f4") item = 4;
  else throw refuse(fmt::format("dtype '{}' is not little-endian float64 ('<f8') or float32 ('<f4')", descr));
  if (fortran != "False") throw refuse("Fortran-order arrays are not read (save a C-order array)");
  // shape "(n,)" or "(n, m)": one or two whole numbers, comma-separated.
  NpyArray a;
  std::string_view inner = trim(shape.substr(1, shape.size() - 2));
  if (!inner.empty() && inner.back() == ',') inner = trim(inner.substr(0, inner.size() - 1));
  for (int dims = 0; dims < 3 && !inner.empty(); ++dims) {
    const auto comma = inner.find(',');
    const std::string_view item_text = trim(inner.substr(0, comma));
    std::size_t len = 0;
    const auto [end, ec] = std::from_chars(item_text.data(), item_text.data() + item_text.size(), len);
    if (item_text.empty() || ec != std::errc{} || end != item_text.data() + item_text.size()) {
      a.shape.clear();
      break;
    }
    a.shape.push_back(len);
    inner = comma == std::string_view::npos ? std::string_view{} : trim(inner.substr(comma + 1));
  }
  if (a.shape.empty() || a.shape.size() > 2 || !inner.empty() || shape.find(',') == std::string_view::npos)
    throw refuse(fmt::format("shape {} is not one-dimensional (expected (n,)) nor two-dimensional ((n, d))", shape));
  std::size_t n = 1;
  for (const std::size_t len : a.shape) {
    if (len == 0) throw refuse("the array is empty");
    if (len > max_dimension || n > max_dimension / len)
      throw refuse(fmt::format("shape {} exceeds the maximum of {} values", shape, max_dimension));
    n *= len;
  }
  const std::size_t have = bytes.size() - data_at;
  if (have != n * item)
    throw refuse(fmt::format("shape {} of {} needs {} data bytes, the file has {}", shape, descr, n * item, have));
  static_assert(std::endian::native == std::endian::little, "the .npy reader assumes a little-endian machine");
  a.values.resize(n);
  const char* data = bytes.data() + data_at;
  for (std::size_t i = 0; i < n; ++i) {
    if (item == 8) {
      std::memcpy(&a.values[i], data + 8 * i, 8);
    } else {
      float f;
      std::memcpy(&f, data + 4 * i, 4);
      a.values[i] = f;
    }
  }
  return a;
}

std::vector<double> read_npy(const std::string& path, std::string_view what) {
  NpyArray a = read_npy_array(path, what);
  if (a.shape.size() != 1)
    throw std::invalid_argument(fmt::format("'{}': shape ({}, {}) is not one-dimensional (expected (n,)) ({})", path,
                                            a.shape[0], a.shape[1], what));
  return std::move(a.values);
}

namespace {
// Checks the values of an npy: array (finite; > 0 or >= 0), naming the entry.
std::vector<double> checked_npy(const std::string& path, bool positive, std::string_view what) {
  std::vector<double> v = read_npy(path, what);
  for (std::size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i]) || (positive ? !(v[i] > 0) : !(v[i] >= 0)))
      throw std::invalid_argument(fmt::format("'{}' entry {}: {} must be finite and {} ({})", path, i + 1, v[i],
                                              positive ? "> 0" : ">= 0", what));
  return v;
}
}  // namespace

std::vector<double> parse_spectrum(std::string_view spec) {
  Spectrum s = read_spectrum(spec);
  if (s.weighted())
    throw std::invalid_argument(fmt::format("'{}' is a weighted spectrum (two columns): read it with read_spectrum", spec));
  return std::move(s.lambda);
}

Spectrum read_spectrum(std::string_view spec) {
  const auto colon = spec.find(':');
  const auto kind = spec.substr(0, colon);
  const auto body = colon == std::string_view::npos ? std::string_view{} : spec.substr(colon + 1);
  if (kind == "file") {
    if (body.empty()) throw std::invalid_argument("'file:' needs a path");
    return read_spectrum_file(std::string(body));
  }
  if (kind == "npy") {
    if (body.empty()) throw std::invalid_argument("'npy:' needs a path");
    Spectrum s;
    s.lambda = checked_npy(std::string(body), true, "spectrum file");
    return s;
  }
  if (kind != "powerlaw" && kind != "loguniform")
    throw std::invalid_argument(
        fmt::format("'{}': unknown spectrum (expected powerlaw:..., loguniform:..., file:PATH or npy:PATH)", spec));
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
  Spectrum s;
  s.lambda = std::move(lambda);
  return s;
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
  if (kind == "npy") {
    if (body.empty()) throw std::invalid_argument("'npy:' needs a path");
    auto v = checked_npy(std::string(body), false, "initial-moments file");
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
      fmt::format("'{}': unknown init (expected isotropic, powerlaw:beta=B, file:PATH or npy:PATH)", init));
}

std::vector<double> parse_noise_covariance(std::string_view text, std::size_t d) {
  const auto colon = text.find(':');
  const auto kind = text.substr(0, colon);
  const auto body = colon == std::string_view::npos ? std::string_view{} : text.substr(colon + 1);
  std::vector<double> v;
  if (kind == "file" && !body.empty()) v = read_values_file(std::string(body), false, "noise-covariance file");
  else if (kind == "npy" && !body.empty()) v = checked_npy(std::string(body), false, "noise-covariance file");
  else
    throw std::invalid_argument(fmt::format("'{}': expected file:PATH or npy:PATH (one C_ii >= 0 per spectrum line)", text));
  if (v.size() != d)
    throw std::invalid_argument(fmt::format("'{}' holds {} values but the spectrum has {}", body, v.size(), d));
  return v;
}

double parse_precondition(std::string_view text) {
  if (text == "none") return 0;
  const auto colon = text.find(':');
  if (colon == std::string_view::npos || text.substr(0, colon) != "power")
    throw std::invalid_argument(fmt::format("'{}': unknown preconditioner (expected none or power:p=GAMMA)", text));
  const auto kv = parse_keyvals(text.substr(colon + 1), text);
  check_keys(kv, {"p"}, {}, text);
  const double gamma = parse_finite(kv.at("p"), fmt::format("'{}': p", text));
  if (!(gamma >= 0 && gamma <= 1))
    throw std::invalid_argument(fmt::format("'{}': p must be in [0, 1] (0: none, 1: every direction at lambda_max)", text));
  return gamma;
}

Spectrum precondition(const Spectrum& s, double gamma) {
  if (gamma == 0) return s;
  Spectrum out = s;
  const double top = s.lambda_max();
  for (std::size_t i = 0; i < s.dim(); ++i) {
    // p_i = (lambda_i / lambda_max)^-gamma >= 1; p_i lambda_i = lambda_i^(1-gamma) lambda_max^gamma.
    const double p = std::pow(s.lambda[i] / top, -gamma);
    if (!std::isfinite(p) || !(p > 0))
      throw std::invalid_argument(fmt::format(
          "power:p={}: the step multiplier of eigenvalue {} overflows ({})", gamma, s.lambda[i], p));
    out.lambda[i] = s.lambda[i] * p;
    if (i < out.init.size()) out.init[i] = s.init[i] / p;
    if (i < out.noise_covariance.size()) out.noise_covariance[i] = s.noise_covariance[i] * p;
  }
  return out;
}

Spectrum make_spectrum(std::string_view spec, std::string_view init) {
  Spectrum s = read_spectrum(spec);
  s.init = parse_init(init, s.lambda.size());
  return s;
}

}  // namespace cesr
