// The fast search (coarse grid or a continuation start, quasi-Newton on the
// implicit gradient of the gap) on main's weighted spectra and additive noise
// model:
//  - the gradient on a weighted spectrum against the same gradient on the
//    expanded spectrum (every direction its own line: the unweighted code,
//    no weight arithmetic) and against central differences of two long-double
//    root solves;
//  - tuned gaps of the fast search never more than 1e-6 below the global
//    search (dense grid + restarted Nelder-Mead) on a weighted spectrum, on
//    its expansion, and under the additive model; and a weighted frontier's
//    continued rows against rows tuned on their own.
#include <doctest/doctest.h>

#include "cesr/frontier.hpp"
#include "cesr/rate.hpp"
#include "cesr/tune.hpp"
#include "tune_compare.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string_view>
#include <string>
#include <vector>

using namespace cesr;

namespace {

// 24 lines of whole weights 1..5 on a log-uniform spectrum (kappa = 1e3).
Spectrum weighted_spectrum() {
  Spectrum s;
  for (int i = 0; i < 24; ++i) {
    s.lambda.push_back(std::pow(10.0, -3.0 * i / 23));
    s.init.push_back(1.0 + 0.1 * (i % 3));
    s.weight.push_back(1 + (7 * i) % 5);
  }
  return s;
}

NoiseModel additive(std::uint64_t batch) {
  NoiseModel n{batch};
  n.model = NoiseKind::Additive;
  return n;
}

MethodSpec with(const char* name, std::initializer_list<std::pair<std::string_view, double>> values) {
  return method_spec(name, values);
}

}  // namespace

TEST_CASE("contraction_rate_gradient on a weighted spectrum: equal to the expanded spectrum's, and to long-double differences") {
  const Spectrum w = weighted_spectrum();
  const Spectrum e = expand_weights(w, "the test");
  REQUIRE(e.dim() > w.dim());
  const std::vector<std::pair<MethodSpec, std::uint64_t>> cases{
      {with("sgd", {{"lr", 0.3}}), 4},
      {with("hb", {{"lr", 0.05}, {"momentum", 0.9}}), 8},
      {with("nag", {{"lr", 0.2}, {"momentum", 0.8}}), 32},
      {with("asgd", {{"lr", 0.5}, {"kappa", 300.0}, {"xi", 5.0}}), 16},
  };
  for (const auto& [m, batch] : cases) {
    const NoiseModel n{batch, 3.0, 0.0};
    std::vector<std::string> names;
    for (const auto& [k, x] : m.values) names.push_back(k);
    const double h = 1e-6;
    std::vector<MethodSpec> plus, minus;
    for (const auto& name : names) {
      MethodSpec p = m, q = m;
      p.set(name, m.value(name) * std::exp(h));
      q.set(name, m.value(name) * std::exp(-h));
      plus.push_back(p);
      minus.push_back(q);
    }
    const GapGradient gw = contraction_rate_gradient(w, m, plus, minus, h, n);
    const GapGradient ge = contraction_rate_gradient(e, m, plus, minus, h, n);
    CAPTURE(describe(m));
    REQUIRE(gw.rate.stable);
    CHECK(gw.rate.gap == doctest::Approx(ge.rate.gap).epsilon(1e-12));
    REQUIRE(gw.gradient.size() == names.size());
    REQUIRE(ge.gradient.size() == names.size());
    for (std::size_t j = 0; j < names.size(); ++j) {
      const double step = 1e-4;
      MethodSpec p = m, q = m;
      p.set(names[j], m.value(names[j]) * std::exp(step));
      q.set(names[j], m.value(names[j]) * std::exp(-step));
      const long double fd =
          (contraction_rate<long double>(e, p, n).gap - contraction_rate<long double>(e, q, n).gap) / (2 * step);
      CAPTURE(names[j]);
      CAPTURE(gw.gradient[j]);
      CAPTURE(ge.gradient[j]);
      CAPTURE(static_cast<double>(fd));
      CHECK(gw.gradient[j] == doctest::Approx(ge.gradient[j]).epsilon(1e-9).scale(0));
      CHECK(gw.gradient[j] == doctest::Approx(static_cast<double>(fd)).epsilon(1e-5).scale(0));
    }
  }
}

TEST_CASE("fast search >= global search (1 - 1e-6): a weighted spectrum, its expansion, and the additive model") {
  const Spectrum w = weighted_spectrum();
  const Spectrum e = expand_weights(w, "the test");
  int cases = 0, fast_evaluations = 0, global_evaluations = 0;
  double worst = 2;
  const auto compare = [&](const Spectrum& s, const std::string& what, const std::string& kind, const NoiseModel& n,
                           const TuneResult* global_ref) {
    TuneOptions global;
    global.search_mode = SearchMode::Global;
    TuneOptions fast;
    fast.search_mode = SearchMode::Fast;
    const TuneResult g = global_ref ? *global_ref : tune(s, kind, n, global);
    const TuneResult f = tune(s, kind, n, fast);
    CAPTURE(what);
    CAPTURE(kind);
    CAPTURE(n.batch);
    worst = std::min(worst, cesr_test::fast_over_global(f, g));
    if (!n.additive()) {  // the additive model's rate search is the global one in both modes (docs/tune.md)
      fast_evaluations += f.evaluations;
      global_evaluations += g.evaluations;
    }
    ++cases;
    return g;
  };
  for (const std::string kind : {"sgd", "hb", "nag", "asgd"}) {
    for (std::uint64_t batch : {1, 16, 1024}) {
      const NoiseModel n{batch, 3.0, 0.0};
      // The weighted spectrum, then the fast search on the expansion against
      // the weighted spectrum's global optimum (the same problem).
      TuneOptions global;
      global.search_mode = SearchMode::Global;
      const TuneResult g = tune(w, kind, n, global);
      compare(w, "weighted", kind, n, &g);
      compare(e, "expanded", kind, n, &g);
    }
    for (std::uint64_t batch : {1, 64}) compare(w, "weighted, additive", kind, additive(batch), nullptr);
  }
  if (std::getenv("CESR_TEST_VERBOSE"))
    fmt::print("{} cases: worst fast/global {:.12f}, evaluations fast {} global {}\n", cases, worst,
               fast_evaluations, global_evaluations);
  CHECK(fast_evaluations * 2 < global_evaluations);
}

TEST_CASE("fast frontier on a weighted spectrum: every continued row >= its row tuned alone by the global search") {
  const Spectrum w = weighted_spectrum();
  FrontierOptions o;
  o.methods = {"sgd", "hb", "asgd"};
  o.batches = parse_batches("1:4096:x4");
  o.tune.search_mode = SearchMode::Fast;
  const Frontier fast = compute_frontier(w, NoiseModel{}, o);
  o.tune.search_mode = SearchMode::Global;
  const Frontier global = compute_frontier(w, NoiseModel{}, o);
  REQUIRE(fast.rows.size() == global.rows.size());
  REQUIRE(fast.rows.size() == 3 * 7);
  int fast_evaluations = 0, global_evaluations = 0;
  for (std::size_t i = 0; i < fast.rows.size(); ++i) {
    const TuneResult& f = fast.rows[i].tuned;
    const TuneResult& g = global.rows[i].tuned;
    CAPTURE(fast.rows[i].method);
    CAPTURE(fast.rows[i].batch);
    cesr_test::fast_over_global(f, g);
    fast_evaluations += f.evaluations;
    global_evaluations += g.evaluations;
  }
  CHECK(fast_evaluations * 2 < global_evaluations);
}

TEST_CASE("a fast frontier row is the lone fast tune at its batch, digit for digit (the answer does not depend on the route)") {
  // A row starts from the previous batch's optimum, a lone tune from the
  // coarse grid; both end with the same snapped refinement.
  int rows = 0, same = 0;
  for (const Spectrum& s : {make_spectrum("loguniform:d=100,kappa=1e4"), make_spectrum("powerlaw:d=200,alpha=1.5"),
                            weighted_spectrum()}) {
    FrontierOptions o;
    o.methods = {"sgd", "hb", "nag", "asgd"};
    o.batches = parse_batches("1:4096:x4");
    o.tune.search_mode = SearchMode::Fast;
    const Frontier f = compute_frontier(s, NoiseModel{}, o);
    for (const FrontierRow& r : f.rows) {
      TuneOptions t;
      t.search_mode = SearchMode::Fast;
      const TuneResult lone = tune(s, r.method, NoiseModel{r.batch, 3.0, 0.0}, t);
      CAPTURE(r.method);
      CAPTURE(r.batch);
      CAPTURE(r.tuned.gap);
      CAPTURE(lone.gap);
      CHECK(lone.method.values == r.tuned.method.values);
      CHECK(lone.gap == r.tuned.gap);
      same += lone.method.values == r.tuned.method.values && lone.gap == r.tuned.gap;
      ++rows;
    }
  }
  if (std::getenv("CESR_TEST_VERBOSE")) fmt::print("{} of {} rows equal to the lone tune\n", same, rows);
}
