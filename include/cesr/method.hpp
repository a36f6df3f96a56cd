// Linear stochastic methods as data.
//
// A method with k state vectors (k = 1..4) is four small objects (P, q, r, o)
// and an initial state s0:
//   s_{t+1} = P_t s_t - q_t (x) g(z_t),   z_t = r_t^T s_t,   e_t = o^T s_t,
// where s_t stacks the k state vectors (in error coordinates e = w - w*),
// g(z) is the mini-batch gradient at z and s_0 = s0 (x) e_0. The coefficients
// may depend on the step t (MethodPath). Every named method is one row of the
// registry (methods()): its hyperparameters, their ranges and search space,
// and a factory from hyperparameters to coefficients. The CLI, the tuner, the
// reports and the Python bindings read that table; adding a method is adding
// a row. See docs/methods.md and docs/theory.md.
#pragma once

#include "cesr/error.hpp"
#include "cesr/real.hpp"
#include "cesr/schedule.hpp"

#include <boost/multiprecision/cpp_int.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cesr {

/// The largest number of state vectors a method may have.
inline constexpr int max_states = 4;

/// Constant coefficients (P, q, r, o) and the initial state s0 of a method.
template <class Real>
struct Method {
  using Vector = std::array<Real, max_states>;
  int k = 1;                                         ///< number of state vectors: 1..max_states
  std::array<Vector, max_states> P{};                ///< k x k transition (unused entries 0)
  Vector q{};                                        ///< gradient injection
  Vector r{};                                        ///< gradient query point z = r^T s
  Vector o{};                                        ///< output e = o^T s
  Vector s0{Real(1), Real(1), Real(1), Real(1)};     ///< s_0 = s0 (x) e_0 (1: the state starts at e_0)

  /// The same method with every entry converted to another scalar type.
  template <class Other>
  Method<Other> cast() const {
    Method<Other> m;
    m.k = k;
    for (int i = 0; i < max_states; ++i) {
      m.q[i] = static_cast<Other>(q[i]);
      m.r[i] = static_cast<Other>(r[i]);
      m.o[i] = static_cast<Other>(o[i]);
      m.s0[i] = static_cast<Other>(s0[i]);
      for (int j = 0; j < max_states; ++j) m.P[i][j] = static_cast<Other>(P[i][j]);
    }
    return m;
  }
};

/// A method whose coefficients may change with the step: `at(t, m)` writes the
/// coefficients of step t (the update from s_t to s_{t+1}; m.o is the output
/// at time t) into m. k and s0 never change. An empty `at` means constant
/// coefficients (`initial` for every t).
template <class Real>
struct MethodPath {
  Method<Real> initial;  ///< k and s0; the coefficients when `at` is empty
  std::function<void(std::uint64_t t, Method<Real>& m)> at;
  /// The coefficients are those of step `constant_from` for every t >= it
  /// (0: constant; nullopt: they never settle, e.g. Polyak averaging).
  std::optional<std::uint64_t> constant_from = 0;

  MethodPath() = default;
  /// A constant method.
  MethodPath(const Method<Real>& m) : initial(m) {}  // NOLINT: implicit on purpose
  bool constant() const { return !at; }
  /// The coefficients of step t.
  Method<Real> coefficients(std::uint64_t t) const {
    if (!at) return initial;
    Method<Real> m = initial;
    at(t, m);
    return m;
  }
};

/// How the tuner searches a hyperparameter (its box depends on the problem:
/// lambda_max, tr H, kappa; see docs/tune.md).
enum class Search {
  None,      ///< never tuned: the given value, or the default
  StepSize,  ///< log lr over [1e-2 min(1/lambda_max, B/(K tr H)), 4/lambda_max]
  Damping,   ///< log(1 - value) over [log(0.1/sqrt(kappa)), 0]
  Unit,      ///< linear over [0, 1]
  Condition, ///< log over [1, 10 K tr(H) / lambda_min] (AccSGD's kappa_a)
  RootOfKappa, ///< log over [0, log sqrt(kappa_a)]: 1 <= xi <= sqrt(kappa_a) (AccSGD's advice)
};
std::string_view to_string(Search s);

/// One hyperparameter of a registry row.
struct Hyperparameter {
  std::string_view name;         ///< field name (the CLI flag is --NAME with '_' -> '-')
  std::string_view description;  ///< one line, for --help and `cesr methods`
  std::optional<double> default_value;  ///< absent: the hyperparameter is required
  double lo = -std::numeric_limits<double>::infinity();  ///< valid range [lo, hi] ...
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false, hi_open = false;                   ///< ... with open ends where set
  bool integer = false;          ///< a whole number (e.g. lookahead's sync)
  bool flag = false;             ///< 0 or 1, given as a switch (e.g. nesterov)
  bool optional = false;         ///< may be absent although it has no default (lookahead's momentum)
  std::vector<std::string_view> choices;  ///< a choice among names (value = index), e.g. lookahead's inner
  Search search = Search::None;
  /// For Search::StepSize: the top of the default box in units of 1/lambda_max
  /// (0: 4, the heavy-ball limit; SGD's is 2).
  double search_max = 0;

  /// "[0, 1)", "> 0", "one of sgd, torch-sgd", ...
  std::string range_text() const;
  /// Throws std::invalid_argument "NAME must be RANGE, got VALUE" when x is out of range.
  void check(double x) const;
};

struct MethodSpec;

/// Exact rational arithmetic. The hyperparameters are doubles, i.e. rationals,
/// and every constant-coefficient factory uses + - * / only, so a method formed
/// in it is exact: make_method_exact.
using exact = boost::multiprecision::number<boost::multiprecision::cpp_rational_backend, boost::multiprecision::et_off>;

/// Coefficient factories of a row, one per working precision (and exact).
struct Factory {
  MethodPath<double> (*as_double)(const MethodSpec&) = nullptr;
  MethodPath<long double> (*as_long)(const MethodSpec&) = nullptr;
  MethodPath<quad> (*as_quad)(const MethodSpec&) = nullptr;
  MethodPath<mp50> (*as_mp50)(const MethodSpec&) = nullptr;
  MethodPath<exact> (*as_exact)(const MethodSpec&) = nullptr;
  template <class Real>
  MethodPath<Real> make(const MethodSpec& spec) const;
};

/// Whether a row's coefficients depend on the step.
enum class Time {
  Constant,          ///< the same every step
  ConstantAfterOne,  ///< step 0 differs, then constant (torch-sgd's undamped first step)
  Varying,           ///< periodic or ever-changing (schedule-free, lookahead)
};

/// One row of the method registry.
struct MethodInfo {
  std::string_view name;
  std::string_view description;  ///< one line with its reference
  std::string_view paper_name;   ///< the name in figures and papers (SGD, HB, AccSGD, ...)
  std::vector<Hyperparameter> hyperparameters;
  int states = 1;       ///< k for the row's defaults (custom: from its file)
  int states_max = 0;   ///< the largest k its options give, when more (lookahead: 3 with inner torch-sgd)
  Time time = Time::Constant;
  Factory factory;
  bool from_file = false;  ///< the coefficients come from MethodSpec::custom (a method file)
  /// The factory applies MethodSpec::lr_schedule itself (schedule-free: its
  /// averaging weights follow the step sizes); for the others make_path does.
  bool own_lr_schedule = false;
  /// Relations between hyperparameters beyond their ranges (may be null);
  /// throws std::invalid_argument naming the fields.
  void (*validate)(const MethodSpec&) = nullptr;
  /// The tuner searches lr / (1 - momentum) instead of lr (at small batch the
  /// good points of momentum methods lie along it).
  bool effective_step = false;
  /// A quick test that the mean iteration already diverges in the top direction
  /// (so the second moment does too) and the tuner can skip the point (may be null).
  bool (*mean_diverges)(const MethodSpec&, double lambda_max) = nullptr;

  const Hyperparameter* find(std::string_view field) const;
};

/// The registry, in the order `cesr methods` lists it.
const std::vector<MethodInfo>& methods();
/// The row named `name`; throws std::invalid_argument "method: unknown method
/// 'NAME' (expected sgd, hb, ...)" otherwise.
const MethodInfo& method_info(std::string_view name);
/// The position of a row in the registry (for a method's colour in figures).
std::size_t method_index(std::string_view name);
/// "sgd, hb, nag, ..." (every row), for messages and --help.
std::string method_names();

/// Averaging of the iterate, a modifier that any method of k <= 3 states takes:
/// it adds one state a_t and the loss is that of a_t.
///   ema:decay=g   a_{t+1} = g a_t + (1 - g) e_{t+1}, a_0 = e_0
///   polyak        a_t = mean of e_0..e_t
///   tail:start=S  a_t = mean of e_S..e_t (a_t = e_t for t < S)
struct Average {
  enum class Kind { None, Ema, Polyak, Tail } kind = Kind::None;
  double decay = 0;          ///< ema
  std::uint64_t start = 0;   ///< tail
  bool given() const { return kind != Kind::None; }
  /// Constant coefficients only for ema.
  bool constant() const { return kind == Kind::None || kind == Kind::Ema; }
};
/// Parses ema:decay=G | polyak | tail:start=S; throws std::invalid_argument
/// naming `average` otherwise.
Average parse_average(std::string_view text);
/// The text parse_average reads back ("" for none).
std::string to_string(const Average& a);

/// A method as the user names it: a registry row, the hyperparameters given
/// (absent ones are absent, not NaN), an optional average, and for "custom"
/// the coefficients themselves.
struct MethodSpec {
  std::string name = "sgd";
  std::map<std::string, double, std::less<>> values;  ///< given hyperparameters, by field name
  Average average;
  /// Learning-rate factor m_t (lr_t = lr m_t) and momentum schedule (replaces
  /// the momentum hyperparameter); horizon-dependent shapes must be resolved.
  Schedule lr_schedule, momentum_schedule;
  Method<double> custom{};  ///< (P, q, r, o, s0) for the row "custom"

  const MethodInfo& info() const { return method_info(name); }
  /// The value given, or the row's default, or nothing.
  std::optional<double> get(std::string_view field) const;
  /// get(field), which must exist (validated specs always have every
  /// hyperparameter of their row).
  double value(std::string_view field) const;
  MethodSpec& set(std::string_view field, double v) {
    values.insert_or_assign(std::string(field), v);
    return *this;
  }
  /// Number of state vectors, averaging included.
  int states() const;
  /// Whether the coefficients are the same at every step (or from step 1 on,
  /// which is all the rate needs: see constant_tail()).
  Time time() const;
  /// Throws std::invalid_argument (one line, naming the field and value) when a
  /// hyperparameter is missing, unknown to the row, or out of range.
  void validate() const;
};

/// A spec from a row name and hyperparameters: method_spec("hb", {{"lr", 0.5}, {"momentum", 0.9}}).
MethodSpec method_spec(std::string_view name, std::initializer_list<std::pair<std::string_view, double>> values = {});

/// The coefficients of a validated spec in the working precision (averaging
/// included). Constant-coefficient rows are formed in 50-digit arithmetic and
/// rounded once, so that e.g. 1 - beta is not lost in the rounding of 1 + beta.
template <class Real>
MethodPath<Real> make_path(const MethodSpec& spec);

/// The constant coefficients of a validated spec: those of step 0 for a
/// constant method, of step 1 for one that is constant after its first step
/// (the rate is that of its constant tail). Throws std::invalid_argument
/// "the method's coefficients change with the step ..." for a varying method.
template <class Real>
Method<Real> make_method(const MethodSpec& spec);

/// The same constant coefficients in exact rational arithmetic (no rounding at
/// all): identities of the method survive exactly, e.g. det(I - P) = 0 for a
/// method that fixes the constant vector (AccSGD, heavy ball, QHM), which
/// matters when lambda_min r^T adj(I - P) q is 1e-60 (the rate at kappa = 1e60).
/// Throws like make_method.
Method<exact> make_method_exact(const MethodSpec& spec);

/// Reads a custom method from JSON {"P": [[..],..], "q": [..], "r": [..], "o": [..], "s0": [..]}
/// (k = 1..4, s0 optional, finite numbers). Throws std::invalid_argument
/// naming the file and the problem.
Method<double> read_method_file(const std::string& path);

/// One-line human description, e.g. "hb(lr=0.5, momentum=0.9)".
std::string describe(const MethodSpec& spec);

}  // namespace cesr
