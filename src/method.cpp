#include "cesr/method.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace cesr {

std::string_view to_string(MethodKind kind) {
  switch (kind) {
    case MethodKind::Sgd: return "sgd";
    case MethodKind::HeavyBall: return "hb";
    case MethodKind::Nesterov: return "nag";
    case MethodKind::AccSgd: return "asgd";
    case MethodKind::Custom: return "custom";
  }
  return "?";
}

MethodKind parse_method_kind(std::string_view name) {
  for (auto k : {MethodKind::Sgd, MethodKind::HeavyBall, MethodKind::Nesterov, MethodKind::AccSgd,
                 MethodKind::Custom})
    if (name == to_string(k)) return k;
  throw std::invalid_argument(
      fmt::format("--method: unknown method '{}' (expected sgd, hb, nag, asgd or custom)", name));
}

namespace {
bool given(double x) { return x == x; }

void require(double x, std::string_view flag, MethodKind kind) {
  if (!given(x))
    throw std::invalid_argument(fmt::format("{} is required for --method {}", flag, to_string(kind)));
  if (!std::isfinite(x)) throw std::invalid_argument(fmt::format("{}: {} is not finite", flag, x));
}
void forbid(double x, std::string_view flag, MethodKind kind) {
  if (given(x))
    throw std::invalid_argument(fmt::format("{} {} does not apply to --method {}", flag, x, to_string(kind)));
}
}  // namespace

void MethodSpec::validate() const {
  const bool uses_lr = kind != MethodKind::Custom;
  const bool uses_momentum = kind == MethodKind::HeavyBall || kind == MethodKind::Nesterov;
  const bool uses_asgd = kind == MethodKind::AccSgd;
  if (uses_lr) require(lr, "--lr", kind); else forbid(lr, "--lr", kind);
  if (uses_momentum) require(momentum, "--momentum", kind); else forbid(momentum, "--momentum", kind);
  if (uses_asgd) {
    require(kappa, "--kappa", kind);
    require(xi, "--xi", kind);
  } else {
    forbid(kappa, "--kappa", kind);
    forbid(xi, "--xi", kind);
    if (small_const != 0.7) forbid(small_const, "--small-const", kind);
  }
  if (uses_lr && !(lr > 0)) throw std::invalid_argument(fmt::format("--lr must be > 0, got {}", lr));
  if (uses_momentum && !(momentum >= 0 && momentum < 1))
    throw std::invalid_argument(fmt::format("--momentum must be in [0, 1), got {}", momentum));
  if (uses_asgd) {
    if (!(small_const > 0) || !std::isfinite(small_const))
      throw std::invalid_argument(fmt::format("--small-const must be > 0, got {}", small_const));
    if (!(kappa >= 1)) throw std::invalid_argument(fmt::format("--kappa must be >= 1, got {}", kappa));
    if (!(xi > 0)) throw std::invalid_argument(fmt::format("--xi must be > 0, got {}", xi));
    // alpha = 1 - c^2 xi / kappa must lie in [0, 1) so that the buffer update is
    // a convex combination, as in the authors' optimizer.
    if (small_const * small_const * xi > kappa)
      throw std::invalid_argument(fmt::format(
          "--xi {} is too large for --kappa {} (need small-const^2 * xi <= kappa)", xi, kappa));
  }
  if (kind == MethodKind::Custom) {
    if (custom.k != 1 && custom.k != 2)
      throw std::invalid_argument(fmt::format("--method-file: k must be 1 or 2, got {}", custom.k));
  }
}

Method<double> read_method_file(const std::string& path) {
  if (std::filesystem::is_directory(path))
    throw std::invalid_argument(fmt::format("--method-file: '{}' is a folder, not a file", path));
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(fmt::format("--method-file: cannot read '{}'", path));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(fmt::format("--method-file: '{}' is not valid JSON ({})", path, e.what()));
  }
  const auto fail = [&](const std::string& why) {
    return std::invalid_argument(fmt::format("--method-file: '{}': {}", path, why));
  };
  if (!j.is_object()) throw fail("expected an object with keys P, q, r, o");
  for (const char* key : {"P", "q", "r", "o"})
    if (!j.contains(key)) throw fail(fmt::format("missing key \"{}\"", key));
  for (const auto& [key, value] : j.items())
    if (key != "P" && key != "q" && key != "r" && key != "o") throw fail(fmt::format("unknown key \"{}\"", key));
  const auto number = [&](const nlohmann::json& x, const std::string& where) {
    if (!x.is_number()) throw fail(fmt::format("{} must be a number", where));
    const double v = x.get<double>();
    if (!std::isfinite(v)) throw fail(fmt::format("{} is not finite", where));
    return v;
  };
  const auto& P = j["P"];
  if (!P.is_array() || (P.size() != 1 && P.size() != 2)) throw fail("P must be a 1x1 or 2x2 array of arrays");
  Method<double> m;
  m.k = static_cast<int>(P.size());
  for (int a = 0; a < m.k; ++a) {
    if (!P[a].is_array() || static_cast<int>(P[a].size()) != m.k)
      throw fail(fmt::format("P must be {}x{}", m.k, m.k));
    for (int b = 0; b < m.k; ++b) m.P[a][b] = number(P[a][b], fmt::format("P[{}][{}]", a, b));
  }
  for (const char* key : {"q", "r", "o"}) {
    const auto& v = j[key];
    if (!v.is_array() || static_cast<int>(v.size()) != m.k)
      throw fail(fmt::format("\"{}\" must have {} entries (k from P)", key, m.k));
    auto& dst = key[0] == 'q' ? m.q : key[0] == 'r' ? m.r : m.o;
    for (int a = 0; a < m.k; ++a) dst[a] = number(v[a], fmt::format("{}[{}]", key, a));
  }
  return m;
}

std::string describe(const MethodSpec& s) {
  switch (s.kind) {
    case MethodKind::Sgd: return fmt::format("sgd(lr={})", s.lr);
    case MethodKind::HeavyBall:
    case MethodKind::Nesterov:
      return fmt::format("{}(lr={}, momentum={})", to_string(s.kind), s.lr, s.momentum);
    case MethodKind::AccSgd:
      return fmt::format("asgd(lr={}, kappa={}, xi={}, small_const={})", s.lr, s.kappa, s.xi, s.small_const);
    case MethodKind::Custom: return fmt::format("custom(k={})", s.custom.k);
  }
  return "?";
}

}  // namespace cesr
