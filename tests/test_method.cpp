// Methods as data (src/method.cpp, include/cesr/method.hpp): the (P, q, r, o)
// of each factory checked against the update rule it stands for, validation
// of hyperparameters, and custom method files.
#include <doctest/doctest.h>

#include "cesr/method.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>

namespace {

namespace fs = std::filesystem;
using cesr::Method;
using cesr::MethodKind;
using cesr::MethodSpec;

struct TempFile {
  fs::path path;
  explicit TempFile(const std::string& content) {
    std::random_device rd;
    path = fs::temp_directory_path() / ("cesr_test_method_" + std::to_string(rd()) + ".json");
    std::ofstream(path) << content;
  }
  ~TempFile() { fs::remove(path); }
  std::string str() const { return path.string(); }
};

doctest::Contains has(const std::string& text) { return doctest::Contains(text.c_str()); }
#define CHECK_INVALID(expr, text) CHECK_THROWS_WITH_AS(expr, has(text), std::invalid_argument)

MethodSpec spec(MethodKind kind, double lr = MethodSpec::unset, double momentum = MethodSpec::unset) {
  MethodSpec m;
  m.kind = kind;
  m.lr = lr;
  m.momentum = momentum;
  return m;
}

MethodSpec asgd(double lr, double kappa, double xi, double c = 0.7) {
  MethodSpec m = spec(MethodKind::AccSgd, lr);
  m.kappa = kappa;
  m.xi = xi;
  m.small_const = c;
  return m;
}

// One deterministic step of a method on a scalar problem with curvature h:
// s' = P s - q h (r . s), e = o . s.
std::array<double, 2> apply(const Method<double>& m, std::array<double, 2> s, double h) {
  const double z = m.r[0] * s[0] + m.r[1] * s[1];
  std::array<double, 2> out{};
  for (int a = 0; a < m.k; ++a) out[a] = m.P[a][0] * s[0] + m.P[a][1] * s[1] - m.q[a] * h * z;
  return out;
}

}  // namespace

TEST_CASE("method names") {
  for (const auto k : {MethodKind::Sgd, MethodKind::HeavyBall, MethodKind::Nesterov, MethodKind::AccSgd,
                       MethodKind::Custom})
    CHECK(cesr::parse_method_kind(cesr::to_string(k)) == k);
  CHECK_INVALID(cesr::parse_method_kind("adam"), "--method: unknown method 'adam'");
  CHECK_INVALID(cesr::parse_method_kind(""), "unknown method ''");
  CHECK_INVALID(cesr::parse_method_kind("SGD"), "unknown method 'SGD'");
}

TEST_CASE("factories reproduce the update rules they stand for") {
  const double h = 0.37, eta = 0.6, beta = 0.8;
  SUBCASE("sgd: e' = e - eta h e") {
    const auto m = cesr::make_method<double>(spec(MethodKind::Sgd, eta));
    CHECK(m.k == 1);
    const auto s = apply(m, {2.0, 0.0}, h);
    CHECK(s[0] == doctest::Approx(2.0 - eta * h * 2.0));
    CHECK(m.o[0] == 1.0);
  }
  SUBCASE("hb: e' = e - eta h e + beta (e - e_prev), state (e, e_prev)") {
    const auto m = cesr::make_method<double>(spec(MethodKind::HeavyBall, eta, beta));
    CHECK(m.k == 2);
    const double e = 1.3, prev = 0.4;
    const auto s = apply(m, {e, prev}, h);
    CHECK(s[0] == doctest::Approx(e - eta * h * e + beta * (e - prev)));
    CHECK(s[1] == doctest::Approx(e));
    CHECK(m.o[0] * s[0] + m.o[1] * s[1] == doctest::Approx(s[0]));
  }
  SUBCASE("nag: y = e + beta (e - e_prev), e' = y - eta h y") {
    const auto m = cesr::make_method<double>(spec(MethodKind::Nesterov, eta, beta));
    const double e = 1.3, prev = 0.4, y = e + beta * (e - prev);
    const auto s = apply(m, {e, prev}, h);
    CHECK(s[0] == doctest::Approx(y - eta * h * y));
    CHECK(s[1] == doctest::Approx(e));
  }
  SUBCASE("asgd: the authors' buffer update and iterate update, state (w, buf)") {
    const double lr = 0.2, kappa = 50, xi = 5, c = 0.7;
    const auto m = cesr::make_method<double>(asgd(lr, kappa, xi, c));
    const double w = 0.9, buf = -0.3, g = h * w;
    const double L = lr * kappa / c, alpha = 1 - c * c * xi / kappa, zeta = c / (c + 1 - alpha);
    const double buf_new = alpha * buf + (1 - alpha) * (w - L * g);
    const double w_new = zeta * (w - lr * g) + (1 - zeta) * buf_new;
    const auto s = apply(m, {w, buf}, h);
    CHECK(s[0] == doctest::Approx(w_new).epsilon(1e-14));
    CHECK(s[1] == doctest::Approx(buf_new).epsilon(1e-14));
    CHECK(m.r[0] == 1.0);
    CHECK(m.r[1] == 0.0);
  }
  SUBCASE("every precision builds the same method") {
    const auto md = cesr::make_method<double>(asgd(0.2, 50, 5));
    const auto mq = cesr::make_method<cesr::mp50>(asgd(0.2, 50, 5));
    for (int a = 0; a < 2; ++a) {
      CHECK(cesr::to_double(mq.q[a]) == doctest::Approx(md.q[a]).epsilon(1e-15));
      for (int b = 0; b < 2; ++b) CHECK(cesr::to_double(mq.P[a][b]) == doctest::Approx(md.P[a][b]).epsilon(1e-15));
    }
  }
}

TEST_CASE("hyperparameters: required, forbidden and ranges, each naming the flag and value") {
  CHECK_NOTHROW(spec(MethodKind::Sgd, 0.1).validate());
  CHECK_NOTHROW(spec(MethodKind::HeavyBall, 0.1, 0.0).validate());
  CHECK_NOTHROW(asgd(0.1, 100, 10).validate());
  CHECK_INVALID(spec(MethodKind::Sgd).validate(), "--lr is required for --method sgd");
  CHECK_INVALID(spec(MethodKind::HeavyBall, 0.1).validate(), "--momentum is required for --method hb");
  CHECK_INVALID(spec(MethodKind::Nesterov, 0.1).validate(), "--momentum is required for --method nag");
  CHECK_INVALID(spec(MethodKind::Sgd, 0.1, 0.5).validate(), "--momentum 0.5 does not apply to --method sgd");
  CHECK_INVALID(spec(MethodKind::Custom, 0.1).validate(), "--lr 0.1 does not apply to --method custom");
  CHECK_INVALID(spec(MethodKind::Sgd, 0.0).validate(), "--lr must be > 0, got 0");
  CHECK_INVALID(spec(MethodKind::Sgd, -1.0).validate(), "--lr must be > 0, got -1");
  CHECK_INVALID(spec(MethodKind::Sgd, INFINITY).validate(), "--lr: inf is not finite");
  CHECK_INVALID(spec(MethodKind::HeavyBall, 0.1, 1.0).validate(), "--momentum must be in [0, 1), got 1");
  CHECK_INVALID(spec(MethodKind::HeavyBall, 0.1, -0.1).validate(), "--momentum must be in [0, 1), got -0.1");
  CHECK_INVALID(asgd(0.1, 0.5, 0.1).validate(), "--kappa must be >= 1, got 0.5");
  CHECK_INVALID(asgd(0.1, 10, 0).validate(), "--xi must be > 0, got 0");
  CHECK_INVALID(asgd(0.1, 10, 100).validate(), "--xi 100 is too large for --kappa 10");
  CHECK_INVALID(asgd(0.1, 10, 1, -0.7).validate(), "--small-const must be > 0, got -0.7");
  MethodSpec missing_xi = asgd(0.1, 10, MethodSpec::unset);
  CHECK_INVALID(missing_xi.validate(), "--xi is required for --method asgd");
  MethodSpec extra = spec(MethodKind::Sgd, 0.1);
  extra.kappa = 5;
  CHECK_INVALID(extra.validate(), "--kappa 5 does not apply to --method sgd");
  extra = spec(MethodKind::HeavyBall, 0.1, 0.5);
  extra.small_const = 0.5;
  CHECK_INVALID(extra.validate(), "--small-const 0.5 does not apply to --method hb");
}

TEST_CASE("custom method files") {
  SUBCASE("k = 2 and k = 1 files are read exactly") {
    const TempFile f(R"({"P": [[1.5, -0.5], [1, 0]], "q": [0.25, 0], "r": [1, 0], "o": [1, 0]})");
    const auto m = cesr::read_method_file(f.str());
    CHECK(m.k == 2);
    CHECK(m.P[0][0] == 1.5);
    CHECK(m.P[0][1] == -0.5);
    CHECK(m.P[1][0] == 1.0);
    CHECK(m.q[0] == 0.25);
    const TempFile g(R"({"o": [2], "r": [1], "q": [0.1], "P": [[0.9]]})");
    const auto m1 = cesr::read_method_file(g.str());
    CHECK(m1.k == 1);
    CHECK(m1.P[0][0] == 0.9);
    CHECK(m1.o[0] == 2.0);
    MethodSpec s = spec(MethodKind::Custom);
    s.custom = m1;
    CHECK_NOTHROW(s.validate());
    CHECK(cesr::describe(s) == "custom(k=1)");
  }
  SUBCASE("errors name the file and what is wrong") {
    const auto bad = [](const std::string& json, const std::string& why) {
      const TempFile f(json);
      CAPTURE(json);
      CHECK_INVALID(cesr::read_method_file(f.str()), "--method-file: '" + f.str() + "'");
      CHECK_INVALID(cesr::read_method_file(f.str()), why);
    };
    bad(R"({"P": [[1]], "q": [1], "r": [1]})", R"(missing key "o")");
    bad(R"({"P": [[1]], "q": [1], "r": [1], "o": [1], "s": 2})", R"(unknown key "s")");
    bad(R"({"P": [[1, 2, 3], [1, 2, 3], [1, 2, 3]], "q": [1], "r": [1], "o": [1]})", "P must be a 1x1 or 2x2");
    bad(R"({"P": [[1, 2], [1]], "q": [1, 0], "r": [1, 0], "o": [1, 0]})", "P must be 2x2");
    bad(R"({"P": [[1]], "q": [1, 2], "r": [1], "o": [1]})", R"("q" must have 1 entries)");
    bad(R"({"P": [[1]], "q": ["a"], "r": [1], "o": [1]})", "q[0] must be a number");
    bad(R"({"P": [[1]], "q": [1], "r": [1], "o": [1e999]})", "1e999");  // overflow: not finite
    bad(R"([1, 2])", "expected an object");
    bad(R"({"P": [[1]], )", "is not valid JSON");
    CHECK_INVALID(cesr::read_method_file("/nonexistent/cesr/m.json"), "--method-file: cannot read '/nonexistent/cesr/m.json'");
  }
}

TEST_CASE("describe names the method and its hyperparameters") {
  CHECK(cesr::describe(spec(MethodKind::Sgd, 0.5)) == "sgd(lr=0.5)");
  CHECK(cesr::describe(spec(MethodKind::HeavyBall, 0.5, 0.9)) == "hb(lr=0.5, momentum=0.9)");
  CHECK(cesr::describe(asgd(0.1, 100, 10)) == "asgd(lr=0.1, kappa=100, xi=10, small_const=0.7)");
}
