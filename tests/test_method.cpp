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

MethodSpec spec(const char* name, double lr = std::nan(""), double momentum = std::nan("")) {
  MethodSpec m;
  m.name = name;
  if (!std::isnan(lr)) m.set("lr", lr);
  if (!std::isnan(momentum)) m.set("momentum", momentum);
  return m;
}

MethodSpec asgd(double lr, double kappa, double xi, double c = 0.7) {
  MethodSpec m = spec("asgd", lr);
  m.set("kappa", kappa);
  if (!std::isnan(xi)) m.set("xi", xi);
  if (c != 0.7) m.set("small_const", c);
  return m;
}

using State = std::array<double, cesr::max_states>;

// One deterministic step of a method on a scalar problem with curvature h:
// s' = P s - q h (r . s), e = o . s.
State apply(const Method<double>& m, State s, double h) {
  double z = 0;
  for (int a = 0; a < m.k; ++a) z += m.r[a] * s[a];
  State out{};
  for (int a = 0; a < m.k; ++a) {
    out[a] = -m.q[a] * h * z;
    for (int b = 0; b < m.k; ++b) out[a] += m.P[a][b] * s[b];
  }
  return out;
}
double output(const Method<double>& m, const State& s) {
  double e = 0;
  for (int a = 0; a < m.k; ++a) e += m.o[a] * s[a];
  return e;
}

// Runs a method path for `steps` deterministic steps on curvature h from e_0
// (state s0 e_0) and returns the outputs e_0..e_steps.
std::vector<double> outputs(const cesr::MethodPath<double>& path, double h, double e0, int steps) {
  State s{};
  for (int a = 0; a < path.initial.k; ++a) s[a] = path.initial.s0[a] * e0;
  std::vector<double> out;
  for (int t = 0; t <= steps; ++t) {
    const auto m = path.coefficients(static_cast<std::uint64_t>(t));
    out.push_back(output(m, s));
    s = apply(m, s, h);
  }
  return out;
}

}  // namespace

TEST_CASE("the registry: names, rows and lookup") {
  for (const auto& row : cesr::methods()) {
    CHECK(&cesr::method_info(row.name) == &row);
    CHECK(!row.description.empty());
    for (const auto& h : row.hyperparameters) CHECK(row.find(h.name) == &h);
  }
  CHECK(cesr::method_names().find("sgd, hb, nag, asgd, torch-sgd, qhm, schedule-free, lookahead, custom") == 0);
  CHECK_INVALID(cesr::method_info("adam"), "method: unknown method 'adam' (expected one of sgd, hb");
  CHECK_INVALID(cesr::method_info(""), "unknown method ''");
  CHECK_INVALID(cesr::method_info("SGD"), "unknown method 'SGD'");
  // A library error names the field, for the front ends to map.
  try {
    spec("sgd", -1.0).validate();
    FAIL("no error");
  } catch (const cesr::FieldError& e) {
    CHECK(e.field == "lr");
  }
}

TEST_CASE("factories reproduce the update rules they stand for") {
  const double h = 0.37, eta = 0.6, beta = 0.8;
  SUBCASE("sgd: e' = e - eta h e") {
    const auto m = cesr::make_method<double>(spec("sgd", eta));
    CHECK(m.k == 1);
    const auto s = apply(m, {2.0}, h);
    CHECK(s[0] == doctest::Approx(2.0 - eta * h * 2.0));
    CHECK(m.o[0] == 1.0);
  }
  SUBCASE("hb: e' = e - eta h e + beta (e - e_prev), state (e, e_prev)") {
    const auto m = cesr::make_method<double>(spec("hb", eta, beta));
    CHECK(m.k == 2);
    const double e = 1.3, prev = 0.4;
    const auto s = apply(m, {e, prev}, h);
    CHECK(s[0] == doctest::Approx(e - eta * h * e + beta * (e - prev)));
    CHECK(s[1] == doctest::Approx(e));
    CHECK(output(m, s) == doctest::Approx(s[0]));
  }
  SUBCASE("nag: y = e + beta (e - e_prev), e' = y - eta h y") {
    const auto m = cesr::make_method<double>(spec("nag", eta, beta));
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

TEST_CASE("the new rows follow their published updates step by step") {
  // Each update written out as published, on a scalar problem g(w) = h w,
  // against the outputs of the row's coefficients (all states, several steps).
  const double h = 0.37, e0 = 1.7;
  const int steps = 12;
  const auto path = [](const MethodSpec& m) {
    m.validate();
    return cesr::make_path<double>(m);
  };
  SUBCASE("torch-sgd: buf_0 = g_0, buf_t = mu buf + (1 - tau) g, p -= lr (g + mu buf | buf)") {
    for (const bool nesterov : {false, true})
      for (const double tau : {0.0, 0.4}) {
        if (nesterov && tau != 0) continue;  // PyTorch refuses it
        const double lr = 0.3, mu = 0.8;
        MethodSpec m = spec("torch-sgd", lr, mu);
        m.set("dampening", tau).set("nesterov", nesterov ? 1 : 0);
        const auto got = outputs(path(m), h, e0, steps);
        double p = e0, buf = 0;
        for (int t = 0; t <= steps; ++t) {
          CAPTURE(t);
          CHECK(got[t] == doctest::Approx(p).epsilon(1e-14));
          const double g = h * p;
          buf = t == 0 ? g : mu * buf + (1 - tau) * g;
          p -= lr * (nesterov ? g + mu * buf : buf);
        }
      }
    MethodSpec bad = spec("torch-sgd", 0.1, 0.9);
    bad.set("nesterov", 1).set("dampening", 0.1);
    CHECK_INVALID(bad.validate(), "nesterov requires momentum > 0 and dampening = 0");
    CHECK(cesr::make_path<double>(spec("torch-sgd", 0.1, 0.9).set("dampening", 0.5)).constant_from == 1u);
  }
  SUBCASE("qhm: buf = beta buf + (1 - beta) g, theta -= lr ((1 - nu) g + nu buf), buf_0 = 0") {
    const double lr = 0.4, beta = 0.9, nu = 0.7;
    const auto got = outputs(path(spec("qhm", lr, beta).set("nu", nu)), h, e0, steps);
    double th = e0, buf = 0;
    for (int t = 0; t <= steps; ++t) {
      CHECK(got[t] == doctest::Approx(th).epsilon(1e-14));
      const double g = h * th;
      buf = beta * buf + (1 - beta) * g;
      th -= lr * ((1 - nu) * g + nu * buf);
    }
  }
  SUBCASE("schedule-free: y = (1 - beta) z + beta x, z -= lr g(y), x = (1 - 1/(t+1)) x + z/(t+1)") {
    const double lr = 0.5, beta = 0.9;
    const auto p = path(spec("schedule-free", lr, beta));
    CHECK(!p.constant_from);
    const auto got = outputs(p, h, e0, steps);
    double x = e0, z = e0;
    for (int t = 0; t <= steps; ++t) {
      CHECK(got[t] == doctest::Approx(x).epsilon(1e-14));
      const double y = (1 - beta) * z + beta * x;
      z -= lr * h * y;
      const double c = 1.0 / (t + 1);
      x = (1 - c) * x + c * z;
    }
  }
  SUBCASE("lookahead: sync inner steps, then slow += a (fast - slow), fast = slow; loss at slow") {
    for (const int inner : {0, 1}) {
      const double lr = 0.3, a = 0.5, mu = 0.6;
      const int sync = 3;
      MethodSpec m = spec("lookahead", lr);
      m.set("sync", sync).set("slow_step", a).set("inner", inner);
      if (inner) m.set("momentum", mu);
      const auto p = path(m);
      CHECK(p.initial.k == 2 + inner);
      const auto got = outputs(p, h, e0, steps);
      double fast = e0, slow = e0, buf = 0;
      for (int t = 0; t <= steps; ++t) {
        CAPTURE(t);
        CHECK(got[t] == doctest::Approx(slow).epsilon(1e-14));
        const double g = h * fast;
        if (inner) {
          buf = mu * buf + g;
          fast -= lr * buf;
        } else {
          fast -= lr * g;
        }
        if ((t + 1) % sync == 0) {
          slow += a * (fast - slow);
          fast = slow;
        }
      }
    }
    CHECK_INVALID(spec("lookahead", 0.1, 0.9).validate(), "momentum applies to lookahead only with inner torch-sgd");
  }
  SUBCASE("averaging: ema, polyak and tail of heavy ball") {
    const double lr = 0.3, beta = 0.5;
    std::vector<double> e;
    {
      double cur = e0, prev = e0;
      for (int t = 0; t <= steps; ++t) {
        e.push_back(cur);
        const double next = cur - lr * h * cur + beta * (cur - prev);
        prev = cur;
        cur = next;
      }
    }
    MethodSpec m = spec("hb", lr, beta);
    m.average = cesr::parse_average("ema:decay=0.8");
    auto got = outputs(path(m), h, e0, steps);
    double a = e0;
    for (int t = 0; t <= steps; ++t) {
      CHECK(got[t] == doctest::Approx(a).epsilon(1e-14));
      if (t < steps) a = 0.8 * a + 0.2 * e[t + 1];
    }
    m.average = cesr::parse_average("polyak");
    got = outputs(path(m), h, e0, steps);
    double sum = 0;
    for (int t = 0; t <= steps; ++t) {
      sum += e[t];
      CHECK(got[t] == doctest::Approx(sum / (t + 1)).epsilon(1e-14));
    }
    m.average = cesr::parse_average("tail:start=4");
    got = outputs(path(m), h, e0, steps);
    sum = 0;
    for (int t = 0; t <= steps; ++t) {
      if (t >= 4) sum += e[t];
      CHECK(got[t] == doctest::Approx(t < 4 ? e[t] : sum / (t - 3)).epsilon(1e-14));
    }
    CHECK_INVALID(cesr::parse_average("ema:decay=1"), "decay must be in [0, 1)");
    CHECK_INVALID(cesr::parse_average("tail:start=-1"), "start must be a whole number");
    CHECK_INVALID(cesr::parse_average("swa"), "unknown average");
    CHECK(cesr::to_string(cesr::parse_average("tail:start=7")) == "tail:start=7");
  }
  SUBCASE("a varying method has no constant coefficients for the rate") {
    CHECK_INVALID(cesr::make_method<double>(spec("schedule-free", 0.1, 0.9)), "the rate needs constant coefficients");
    MethodSpec m = spec("sgd", 0.1);
    m.average = cesr::parse_average("polyak");
    CHECK_INVALID(cesr::make_method<double>(m), "change with the step");
  }
}

TEST_CASE("hyperparameters: required, forbidden and ranges, each naming the field and value") {
  CHECK_NOTHROW(spec("sgd", 0.1).validate());
  CHECK_NOTHROW(spec("hb", 0.1, 0.0).validate());
  CHECK_NOTHROW(asgd(0.1, 100, 10).validate());
  CHECK_INVALID(spec("sgd").validate(), "lr is required for method sgd");
  CHECK_INVALID(spec("hb", 0.1).validate(), "momentum is required for method hb");
  CHECK_INVALID(spec("nag", 0.1).validate(), "momentum is required for method nag");
  CHECK_INVALID(spec("sgd", 0.1, 0.5).validate(), "momentum 0.5 does not apply to method sgd");
  CHECK_INVALID(spec("custom", 0.1).validate(), "lr 0.1 does not apply to method custom");
  CHECK_INVALID(spec("sgd", 0.0).validate(), "lr must be > 0, got 0");
  CHECK_INVALID(spec("sgd", -1.0).validate(), "lr must be > 0, got -1");
  CHECK_INVALID(spec("sgd", INFINITY).validate(), "lr must be > 0, got inf");
  CHECK_INVALID(spec("hb", 0.1, 1.0).validate(), "momentum must be in [0, 1), got 1");
  CHECK_INVALID(spec("hb", 0.1, -0.1).validate(), "momentum must be in [0, 1), got -0.1");
  CHECK_INVALID(asgd(0.1, 0.5, 0.1).validate(), "kappa must be >= 1, got 0.5");
  CHECK_INVALID(asgd(0.1, 10, 0).validate(), "xi must be > 0, got 0");
  CHECK_INVALID(asgd(0.1, 10, 100).validate(), "xi 100 is too large for kappa 10");
  CHECK_INVALID(asgd(0.1, 10, 1, -0.7).validate(), "small_const must be > 0, got -0.7");
  CHECK_INVALID(asgd(0.1, 10, std::nan("")).validate(), "xi is required for method asgd");
  // A default is a value, not a silent pass: --small-const is AccSGD's only.
  CHECK_INVALID(spec("sgd", 0.1).set("kappa", 5).validate(), "kappa 5 does not apply to method sgd");
  CHECK_INVALID(spec("hb", 0.1, 0.5).set("small_const", 0.7).validate(), "small_const 0.7 does not apply to method hb");
  CHECK(spec("hb", 0.1, 0.5).get("small_const") == std::nullopt);
  CHECK(asgd(0.1, 10, 2).get("small_const") == 0.7);
  CHECK_INVALID(spec("lookahead", 0.1).set("sync", 2.5).validate(), "sync must be a whole number in [1, 1000000000], got 2.5");
  MethodSpec k4;
  k4.name = "custom";
  k4.custom.k = 4;
  for (const char* avg : {"polyak", "ema:decay=0.5", "tail:start=3"}) {
    k4.average = cesr::parse_average(avg);
    CHECK_INVALID(k4.validate(), "average: method custom already has 4 states; an average adds one");
  }
  // torch.optim.SGD keeps no buffer at momentum 0: dampening has no effect there.
  const auto plain = cesr::make_method<double>(spec("torch-sgd", 0.1).set("dampening", 0.5));
  CHECK(plain.q[0] == 0.1);
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
    MethodSpec s = spec("custom");
    s.custom = m1;
    CHECK_NOTHROW(s.validate());
    CHECK(cesr::describe(s) == "custom(k=1)");
    const TempFile k3(R"({"P": [[1, 0, 0], [0, 0.5, 0], [0.2, 0, 0.8]], "q": [0.1, 0, 0.3], "r": [1, 0, 0],
                          "o": [0, 0, 1], "s0": [1, 0, 1]})");
    const auto m3 = cesr::read_method_file(k3.str());
    CHECK(m3.k == 3);
    CHECK(m3.s0[1] == 0.0);
    CHECK(m3.s0[2] == 1.0);
    CHECK(m3.P[2][0] == 0.2);
  }
  SUBCASE("errors name the file and what is wrong") {
    const auto bad = [](const std::string& json, const std::string& why) {
      const TempFile f(json);
      CAPTURE(json);
      CHECK_INVALID(cesr::read_method_file(f.str()), "method_file: '" + f.str() + "'");
      CHECK_INVALID(cesr::read_method_file(f.str()), why);
    };
    bad(R"({"P": [[1]], "q": [1], "r": [1]})", R"(missing key "o")");
    bad(R"({"P": [[1]], "q": [1], "r": [1], "o": [1], "s": 2})", R"(unknown key "s")");
    bad(R"({"P": [[1, 2, 3], [1, 2, 3], [1, 2, 3]], "q": [1], "r": [1], "o": [1]})", R"("q" must have 3 entries)");
    bad(R"({"P": [[1,0,0,0,0],[0,1,0,0,0],[0,0,1,0,0],[0,0,0,1,0],[0,0,0,0,1]], "q": [1], "r": [1], "o": [1]})",
        "P must be a k x k array of arrays with k = 1..4");
    bad(R"({"P": [[1]], "q": [1], "r": [1], "o": [1], "s0": [1, 2]})", R"("s0" must have 1 entries)");
    bad(R"({"P": [[1, 2], [1]], "q": [1, 0], "r": [1, 0], "o": [1, 0]})", "P must be 2x2");
    bad(R"({"P": [[1]], "q": [1, 2], "r": [1], "o": [1]})", R"("q" must have 1 entries)");
    bad(R"({"P": [[1]], "q": ["a"], "r": [1], "o": [1]})", "q[0] must be a number");
    bad(R"({"P": [[1]], "q": [1], "r": [1], "o": [1e999]})", "1e999");  // overflow: not finite
    bad(R"([1, 2])", "expected an object");
    bad(R"({"P": [[1]], )", "is not valid JSON");
    CHECK_INVALID(cesr::read_method_file("/nonexistent/cesr/m.json"), "method_file: cannot read file '/nonexistent/cesr/m.json'");
  }
}

TEST_CASE("describe names the method and its hyperparameters") {
  CHECK(cesr::describe(spec("sgd", 0.5)) == "sgd(lr=0.5)");
  CHECK(cesr::describe(spec("hb", 0.5, 0.9)) == "hb(lr=0.5, momentum=0.9)");
  CHECK(cesr::describe(asgd(0.1, 100, 10)) == "asgd(lr=0.1, kappa=100, xi=10, small_const=0.7)");
  MethodSpec t = spec("torch-sgd", 0.1, 0.9);
  t.set("nesterov", 1);
  t.average = cesr::parse_average("ema:decay=0.99");
  CHECK(cesr::describe(t) == "torch-sgd(lr=0.1, momentum=0.9, dampening=0, nesterov=true)+ema:decay=0.99");
}
