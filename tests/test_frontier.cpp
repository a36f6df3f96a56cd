// The frontier's regimes against what the theory predicts (THEORY.md / docs/frontier.md)
// and against closed forms:
//  - SGD: CE flat at small batch, critical batch of order tr(H)/lambda_max, gap
//    saturating at the deterministic optimum 1 - ((kappa-1)/(kappa+1))^2;
//  - heavy ball: small-batch CE equal to SGD's within a few percent, a window
//    B_crit(hb)/B_crit(sgd) that grows like sqrt(kappa), large-batch gap towards
//    Polyak's 1 - ((sqrt kappa - 1)/(sqrt kappa + 1))^2 ~ 4/sqrt(kappa);
//  - AccSGD: several times better at B = 1 on lambda_i = i^-2, level with the
//    others on lambda_i = i^-0.5;
//  - the summary arithmetic on curves with a known half-point, and on rows
//    with a known best and critical batch;
//  - step counts and final losses of the rows against the dense oracle
//    (tests/oracle.hpp, long double, none of src/);
//  - rows independent of the thread count.
#include <doctest/doctest.h>

#include "cesr/frontier.hpp"
#include "oracle.hpp"
#include "tune_compare.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>

using namespace cesr;

namespace {

const FrontierRow& row(const Frontier& f, const std::string& m, std::uint64_t b) {
  for (const auto& r : f.rows)
    if (r.method == m && r.batch == b) return r;
  throw std::logic_error("row not found");
}

const MethodSummary& summary(const Frontier& f, const std::string& m) {
  for (const auto& s : f.summary.methods)
    if (s.method == m) return s;
  throw std::logic_error("summary not found");
}

std::vector<long double> ld(const std::vector<double>& v) { return {v.begin(), v.end()}; }

/// The oracle's exact loss curve L_0..L_steps of a tuned sgd or hb row.
std::vector<long double> oracle_curve(const Spectrum& s, const MethodSpec& m, const NoiseModel& n,
                                      std::uint64_t steps) {
  REQUIRE((m.name == "sgd" || m.name == "hb"));
  const oracle::Method om = m.name == "sgd" ? oracle::coeffs_sgd(m.value("lr"))
                                            : oracle::coeffs_heavy_ball(m.value("lr"), m.value("momentum"));
  return oracle::dense_loss(ld(s.lambda), ld(s.init), om.s0, n.kurtosis, n.label_noise,
                            oracle::constant_batch(n.batch), om.coeffs, steps);
}

Frontier run(const char* spec, std::vector<std::string> methods, const char* batches) {
  FrontierOptions o;
  o.methods = std::move(methods);
  o.batches = parse_batches(batches);
  return compute_frontier(make_spectrum(spec), NoiseModel{}, o);
}

}  // namespace

TEST_CASE("batch lists and ranges") {
  const auto b = parse_batches("1:65536:x2");
  REQUIRE(b.size() == 17);
  CHECK(b.front() == 1);
  CHECK(b.back() == 65536);
  CHECK(b[10] == 1024);
  CHECK(parse_batches("1,8,64") == std::vector<std::uint64_t>{1, 8, 64});
  CHECK(parse_batches("64,8") == std::vector<std::uint64_t>{64, 8});
  CHECK(parse_batches("3:100:x3") == std::vector<std::uint64_t>{3, 9, 27, 81});
  for (const char* bad : {"", "0:8:x2", "1:8:2", "1:8:x1", "8:1:x2", "1,,2", "1,1", "1.5", "a:b:x2", "1:8:x2:3"})
    CHECK_THROWS_WITH_AS(parse_batches(bad), doctest::Contains("--batches"), std::invalid_argument);
  CHECK(parse_methods("sgd,hb,asgd,nag").size() == 4);
  for (const char* bad : {"sgd,foo", "sgd,sgd", "custom", ""})
    CHECK_THROWS_WITH_AS(parse_methods(bad), doctest::Contains("methods '"), std::invalid_argument);
}

TEST_CASE("critical batch: the half point of a curve with a known answer") {
  // ce(B) = 1/(1 + B/Bc): the maximum is at B = 1, and ce = ce(1)/2 at B = Bc + 2.
  for (double Bc : {5.0, 300.0, 20000.0}) {
    std::vector<std::uint64_t> batch;
    std::vector<double> ce;
    for (std::uint64_t b = 1; b <= (1u << 24); b *= 2) {
      batch.push_back(b);
      ce.push_back(1 / (1 + double(b) / Bc));
    }
    const auto crit = critical_batch(batch, ce);
    REQUIRE(crit);
    CAPTURE(Bc);
    CHECK(*crit == doctest::Approx(Bc + 2).epsilon(0.06));
  }
  // Never halves: null. Flat then a cliff to unstable rows (ce 0): the last good batch.
  CHECK_FALSE(critical_batch({1, 2, 4}, {1.0, 0.9, 0.8}).has_value());
  CHECK(*critical_batch({1, 2, 4}, {1.0, 0.9, 0.0}) == doctest::Approx(2));
}

TEST_CASE("SGD: flat small-batch CE, critical batch ~ tr(H)/lambda_max, gap saturates at the deterministic rate") {
  const Frontier f = run("loguniform:d=100,kappa=1e4", {"sgd"}, "1:1048576:x2");
  const double kappa = 1e4;
  // Flat: CE(B) = gap(B)/B barely moves while B << B_crit (~1/(1 + B/B_crit)).
  CHECK(row(f, "sgd", 2).ce >= 0.9 * row(f, "sgd", 1).ce);
  const auto& s = summary(f, "sgd");
  REQUIRE(s.critical_batch);
  const double scale = f.summary.trace_over_max;
  CAPTURE(*s.critical_batch);
  CAPTURE(scale);
  CHECK(*s.critical_batch > scale / 4);
  CHECK(*s.critical_batch < 4 * scale);
  const double deterministic = 1 - std::pow((kappa - 1) / (kappa + 1), 2);
  CHECK(row(f, "sgd", 1048576).tuned.gap == doctest::Approx(deterministic).epsilon(2e-3));
  // McCandlish's E_min/S_min is a second convention of the same scale.
  REQUIRE(s.mccandlish_batch);
  CHECK(*s.mccandlish_batch > *s.critical_batch / 3);
  CHECK(*s.mccandlish_batch < *s.critical_batch * 3);
}

TEST_CASE("heavy ball: SGD's small-batch CE, a window ~ sqrt(kappa) wider, gap towards 4/sqrt(kappa)") {
  double previous_window = 0;
  for (double kappa : {1e2, 1e4}) {
    const std::string spec = fmt::format("loguniform:d=100,kappa={}", kappa);
    const Frontier f = run(spec.c_str(), {"sgd", "hb"}, "1:16777216:x4");
    CAPTURE(kappa);
    const double sgd1 = row(f, "sgd", 1).ce, hb1 = row(f, "hb", 1).ce;
    // Momentum does not improve the small-batch frontier (THEORY: within a few percent).
    CHECK(hb1 >= 0.95 * sgd1);
    CHECK(hb1 <= 1.10 * sgd1);
    REQUIRE(f.summary.window_ratio);
    const double q = std::sqrt(kappa);
    CAPTURE(*f.summary.window_ratio);
    CHECK(*f.summary.window_ratio > q / 5);
    CHECK(*f.summary.window_ratio < 2 * q);
    if (previous_window > 0) {
      // kappa x100 -> window x ~10.
      CHECK(*f.summary.window_ratio / previous_window > 10.0 / 3);
      CHECK(*f.summary.window_ratio / previous_window < 10.0 * 3);
    }
    previous_window = *f.summary.window_ratio;
    const double polyak = 1 - std::pow((q - 1) / (q + 1), 2);
    const double hb_large = row(f, "hb", 16777216).tuned.gap;
    CAPTURE(hb_large);
    CAPTURE(polyak);
    CHECK(hb_large > 0.9 * polyak);
    CHECK(hb_large <= polyak * (1 + 1e-6));
  }
}

TEST_CASE("AccSGD: better small-batch CE on lambda_i = i^-2, level with SGD and HB on i^-0.5") {
  const std::vector<std::string> all{"sgd", "hb", "asgd"};
  const Frontier fast = run("powerlaw:d=64,alpha=2", all, "1");
  const double asgd = row(fast, "asgd", 1).ce;
  CHECK(asgd > 3 * row(fast, "hb", 1).ce);
  CHECK(asgd > 3 * row(fast, "sgd", 1).ce);
  const Frontier slow = run("powerlaw:d=64,alpha=0.5", all, "1");
  const double sgd = row(slow, "sgd", 1).ce;
  CHECK(row(slow, "hb", 1).ce == doctest::Approx(sgd).epsilon(0.05));
  CHECK(row(slow, "asgd", 1).ce == doctest::Approx(sgd).epsilon(0.05));
}

TEST_CASE("rows do not depend on the thread count") {
  FrontierOptions o;
  o.methods = {"hb", "sgd", "nag"};
  o.batches = parse_batches("1:4096:x8");
  const Spectrum s = make_spectrum("powerlaw:d=50,alpha=1.5");
  o.threads = 1;
  const Frontier a = compute_frontier(s, NoiseModel{}, o);
  o.threads = 3;
  std::size_t calls = 0;
  o.progress = [&](std::size_t done, std::size_t total) {
    ++calls;
    CHECK(done <= total);
  };
  const Frontier b = compute_frontier(s, NoiseModel{}, o);
  CHECK(calls == a.rows.size());
  REQUIRE(a.rows.size() == b.rows.size());
  for (std::size_t i = 0; i < a.rows.size(); ++i) {
    CHECK(a.rows[i].method == b.rows[i].method);
    CHECK(a.rows[i].batch == b.rows[i].batch);
    CHECK(a.rows[i].tuned.gap == b.rows[i].tuned.gap);
    CHECK(a.rows[i].tuned.method.values == b.rows[i].tuned.method.values);
    CHECK(a.rows[i].tuned.steps == b.rows[i].tuned.steps);
  }
  CHECK(frontier_json(a) == frontier_json(b));
}

TEST_CASE("steps objective: each row's step count is the oracle's first passage, and ce is 1/(B steps)") {
  FrontierOptions o;
  o.methods = {"sgd", "hb"};
  o.batches = {1, 16};
  o.tune.objective = Objective::Steps;
  o.tune.target = {1e-3, true};
  const Spectrum s = make_spectrum("loguniform:d=30,kappa=1e3");
  const Frontier f = compute_frontier(s, NoiseModel{}, o);
  const long double goal = 1e-3L * s.initial_loss();
  REQUIRE(f.rows.size() == 4);
  for (const auto& r : f.rows) {
    REQUIRE(r.tuned.steps);
    NoiseModel n;
    n.batch = r.batch;
    const std::uint64_t t = *r.tuned.steps;
    const auto curve = oracle_curve(s, r.tuned.method, n, t);
    CAPTURE(r.method);
    CAPTURE(r.batch);
    CAPTURE(t);
    // First passage on the oracle (to 1e-9 either side: the engine runs in double).
    CHECK(curve[t] <= goal * (1 + 1e-9L));
    CHECK(curve[t - 1] > goal * (1 - 1e-9L));
    // ce from the oracle's count.
    CHECK(r.ce == doctest::Approx(1.0 / (double(r.batch) * double(t))).epsilon(1e-12));
  }
}

TEST_CASE("final objective: each row is its batch's exact L_T at floor(N/B) steps; best and critical batches") {
  const cesr::Spectrum s = cesr::make_spectrum("loguniform:d=40,kappa=1e3");
  FrontierOptions o;
  o.methods = {"sgd", "hb"};
  o.batches = parse_batches("1:256:x4");
  o.tune.objective = cesr::Objective::Final;
  o.samples = 20000;
  const cesr::NoiseModel noise{1, 3.0, 0.1};
  const Frontier f = compute_frontier(s, noise, o);
  for (const auto& r : f.rows) {
    REQUIRE(r.tuned.final_loss);
    cesr::NoiseModel n = noise;
    n.batch = r.batch;
    const std::uint64_t T = 20000 / r.batch;  // floor(N/B) steps, on the oracle
    const auto c = oracle_curve(s, r.tuned.method, n, T);
    CAPTURE(r.method);
    CAPTURE(r.batch);
    CHECK(static_cast<double>(c.back()) == doctest::Approx(*r.tuned.final_loss).epsilon(1e-11));
  }
  // Hand-made rows with a known answer: best L_T 0.9 at B = 2; within 20% of it
  // (<= 1.08): B = 1, 2, 4 and 8 (1.07), not 16 (1.5) nor 32 (1.0801).
  {
    std::vector<FrontierRow> rows;
    const std::vector<std::pair<std::uint64_t, double>> losses{{1, 1.0}, {2, 0.9}, {4, 0.95}, {8, 1.07},
                                                              {16, 1.5}, {32, 1.0801}};
    for (const auto& [b, L] : losses) {
      FrontierRow r;
      r.method = "sgd";
      r.batch = b;
      r.tuned.final_loss = L;
      rows.push_back(r);
    }
    const FrontierSummary sum = summarize(s, rows, {"sgd"}, Objective::Final);
    REQUIRE(sum.methods.size() == 1);
    REQUIRE(sum.methods[0].best_loss);
    CHECK(*sum.methods[0].best_loss == 0.9);
    CHECK(*sum.methods[0].best_batch == 2);
    REQUIRE(sum.methods[0].critical_batch);
    CHECK(*sum.methods[0].critical_batch == 8);
  }
  const std::string json = cesr::frontier_json(f);
  CHECK(json.find("\"samples\": 20000") != std::string::npos);
  CHECK(json.find("\"loss\"") != std::string::npos);
  CHECK(json.find("\"best_batch\"") != std::string::npos);
}

TEST_CASE("fast frontier (continuation along the batches) against the global search in every row") {
  // Each method's batches in order, each starting from the previous optimum,
  // against every row tuned on its own by the dense grid + Nelder-Mead.
  int fast_evaluations = 0, global_evaluations = 0, fallbacks = 0;
  std::size_t rows = 0;
  double worst = 2;
  for (const char* spec : {"loguniform:d=100,kappa=1e4", "powerlaw:d=200,alpha=1.5", "powerlaw:d=100,alpha=0.5"}) {
    FrontierOptions o;
    o.methods = {"sgd", "hb", "nag", "asgd"};
    o.batches = parse_batches("1:65536:x2");
    const Spectrum s = make_spectrum(spec);
    o.tune.search_mode = SearchMode::Fast;
    const Frontier fast = compute_frontier(s, NoiseModel{}, o);
    o.tune.search_mode = SearchMode::Global;
    const Frontier global = compute_frontier(s, NoiseModel{}, o);
    REQUIRE(fast.rows.size() == global.rows.size());
    for (std::size_t i = 0; i < fast.rows.size(); ++i) {
      const TuneResult& f = fast.rows[i].tuned;
      const TuneResult& g = global.rows[i].tuned;
      const std::string spec_text = spec;
      CAPTURE(spec_text);
      CAPTURE(fast.rows[i].method);
      CAPTURE(fast.rows[i].batch);
      worst = std::min(worst, cesr_test::fast_over_global(f, g));
      fast_evaluations += f.evaluations;
      global_evaluations += g.evaluations;
      fallbacks += f.global_fallback;
    }
    rows += fast.rows.size();
  }
  if (std::getenv("CESR_TEST_VERBOSE"))
    fmt::print("{} rows: worst fast/global {:.12f}; evaluations per row fast {:.1f} global {:.1f}; {} fallbacks\n",
               rows, worst, double(fast_evaluations) / rows, double(global_evaluations) / rows, fallbacks);
  CHECK(fast_evaluations * 3 < global_evaluations);
}
