// The exact second-moment engine against the real stochastic iteration.
//
// cesr::monte_carlo_loss runs the actual method update on sampled covariates;
// its mean over runs must land on cesr::loss_curve within its standard errors
// for every method, covariate law and with label noise. The z threshold is
// Bonferroni's for the number of points (computed here from Boost's normal
// quantile, independently of cesr's checker), so a correct engine fails a case
// with probability < 1e-3; seeds are fixed, so the outcome is reproducible.
// The same test must reject a wrong theory (learning rate x 1.1, wrong K), so
// it has power, and the z values must be standard normal in size.
#include <doctest/doctest.h>

#include "cesr_run.hpp"

#include "cesr/dynamics.hpp"
#include "cesr/method.hpp"
#include "cesr/simulate.hpp"

#include <boost/math/distributions/normal.hpp>

#include <algorithm>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace {

using cesr::Covariates;
using cesr::MethodSpec;

/// Two-sided Bonferroni threshold for n simultaneous z-tests at level alpha.
double bonferroni_z(std::size_t n, double alpha) {
  return boost::math::quantile(boost::math::complement(boost::math::normal(), alpha / (2.0 * double(n))));
}

MethodSpec method(const std::string& kind, double lr_scale = 1.0) {
  MethodSpec m;
  m.name = kind;
  if (kind == "sgd") m.set("lr", 0.3);
  if (kind == "hb" || kind == "nag") m.set("lr", 0.15).set("momentum", 0.6);
  if (kind == "asgd") m.set("lr", 0.15).set("kappa", 20).set("xi", 2);
  m.set("lr", m.value("lr") * lr_scale);
  return m;
}

const cesr::Spectrum problem{{1.0, 0.5, 0.3333333333333333, 0.25, 0.2, 0.16666666666666666, 0.125, 0.1},
                             {1.0, 2.0, 0.5, 1.0, 1.5, 1.0, 0.7, 1.0}};

struct Comparison {
  std::vector<double> z;  // at points with a positive standard error
  double max_abs_z = 0;
  double first_loss = 0, last_loss = 0;
  double largest_share = 0;  // largest share of the summed loss carried by one run
};

/// Simulates `sim` and compares with the exact curve of `theory` (double).
Comparison compare(const MethodSpec& sim, const MethodSpec& theory, Covariates law, double noise, double kurtosis,
                   std::uint64_t runs, std::uint64_t seed) {
  cesr::SimulationConfig cfg;
  cfg.steps = 60;
  cfg.every = 5;
  cfg.runs = runs;
  cfg.seed = seed;
  cfg.covariates = law;
  cfg.threads = 2;
  const cesr::NoiseModel nm{4, kurtosis, noise};
  const auto mc = cesr::monte_carlo_loss(problem, cesr::make_method<double>(sim), nm, cfg);
  const auto exact = cesr::loss_curve<double>(problem, cesr::make_method<double>(theory), nm, cfg.steps, cfg.every);
  REQUIRE_FALSE(mc.diverged_at);
  REQUIRE(mc.step == exact.step);
  Comparison c;
  c.largest_share = *std::max_element(mc.largest_share.begin(), mc.largest_share.end());
  c.first_loss = exact.loss.front();
  c.last_loss = exact.loss.back();
  for (std::size_t i = 0; i < mc.step.size(); ++i) {
    if (mc.std_error[i] == 0) {
      // Only t = 0 is deterministic (all runs start at e_0).
      CHECK(mc.step[i] == 0);
      CHECK(mc.mean[i] == doctest::Approx(exact.loss[i]).epsilon(1e-14));
      continue;
    }
    const double z = (mc.mean[i] - exact.loss[i]) / mc.std_error[i];
    c.z.push_back(z);
    c.max_abs_z = std::max(c.max_abs_z, std::abs(z));
  }
  return c;
}

}  // namespace

TEST_CASE("Monte Carlo of the real iteration lands on the exact curve") {
  const double alpha = 1e-3;
  double sum_z2 = 0;
  std::size_t count = 0, within_3 = 0;
  std::uint64_t seed = 100;
  for (const std::string kind : {"sgd", "hb", "nag", "asgd"})
    for (const Covariates law : {Covariates::Gaussian, Covariates::Rademacher, Covariates::Uniform})
      for (const double noise : {0.0, 0.5}) {
        const MethodSpec m = method(kind);
        const auto c = compare(m, m, law, noise, cesr::fourth_moment(law), 6000, ++seed);
        const double zmax = bonferroni_z(c.z.size(), alpha);
        INFO(cesr::describe(m), " covariates=", cesr::to_string(law), " noise=", noise, " max|z|=", c.max_abs_z,
             " threshold=", zmax);
        MESSAGE(cesr::describe(m), " ", cesr::to_string(law), " noise=", noise, ": max|z| = ", c.max_abs_z,
                ", largest run share = ", c.largest_share);
        CHECK(c.z.size() == 12);
        // The z-test assumes a near-Gaussian mean: no run may dominate the sum
        // (a loss with light tails gives a share of order ln(R)/R = 0.0015).
        CHECK(c.largest_share < 0.01);
        CHECK(c.max_abs_z <= zmax);
        // The curve must move, or agreement would be cheap.
        CHECK(c.last_loss < 0.5 * c.first_loss);
        for (const double z : c.z) {
          sum_z2 += z * z;
          within_3 += std::abs(z) <= 3 ? 1 : 0;
          ++count;
        }
      }
  // Standard errors of the right size: z is standard normal, so E[z^2] = 1 (the
  // points of one simulation are correlated, hence the loose band); a standard
  // error off by a factor 2 would give 0.25 or 4.
  const double mean_z2 = sum_z2 / double(count);
  MESSAGE("mean z^2 over ", count, " points = ", mean_z2, ", within 3: ", within_3);
  CHECK(mean_z2 > 0.5);
  CHECK(mean_z2 < 1.6);
  CHECK(double(within_3) >= 0.98 * double(count));
}

TEST_CASE("the same test rejects a wrong theory") {
  const double zmax = bonferroni_z(12, 1e-3);
  SUBCASE("learning rate off by 10%") {
    for (const std::string kind : {"sgd", "hb", "nag", "asgd"}) {
      const auto c = compare(method(kind, 1.1), method(kind), Covariates::Gaussian, 0.0, 3.0, 6000, 7);
      MESSAGE("lr x 1.1: ", cesr::describe(method(kind)), " max|z| = ", c.max_abs_z, " (threshold ", zmax, ")");
      CHECK(c.max_abs_z > zmax);
    }
  }
  SUBCASE("Rademacher covariates against the Gaussian K = 3") {
    const auto c = compare(method("sgd"), method("sgd"), Covariates::Rademacher, 0.0, 3.0, 6000, 8);
    MESSAGE("Rademacher vs K = 3: max|z| = ", c.max_abs_z);
    CHECK(c.max_abs_z > zmax);
  }
}

TEST_CASE("d = 1 SGD with Rademacher covariates and B = 1 is deterministic") {
  // x = +-sqrt(lambda) so x x^T = lambda: e_t = (1 - eta lambda)^t e_0 in every run.
  const cesr::Spectrum s{{0.8}, {2.25}};
  MethodSpec m;
  m = cesr::method_spec("sgd", {{"lr", 0.4}});
  cesr::SimulationConfig cfg;
  cfg.steps = 30;
  cfg.runs = 7;
  cfg.covariates = Covariates::Rademacher;
  const auto mc = cesr::monte_carlo_loss(s, cesr::make_method<double>(m), cesr::NoiseModel{1, 1.0, 0.0}, cfg);
  REQUIRE(mc.step.size() == 31);
  for (std::size_t t = 0; t < mc.step.size(); ++t) {
    const double expected = 0.5 * 0.8 * 2.25 * std::pow(1 - 0.4 * 0.8, 2.0 * double(t));
    CHECK(mc.mean[t] == doctest::Approx(expected).epsilon(1e-12));
    CHECK(mc.std_error[t] <= 1e-12 * expected);
  }
}

TEST_CASE("the output depends on the seed only, never on the thread count") {
  MethodSpec m = method("hb");
  cesr::SimulationConfig cfg;
  cfg.steps = 25;
  cfg.every = 3;
  cfg.runs = 37;  // not a multiple of the block size
  cfg.seed = 42;
  const cesr::NoiseModel nm{3, 3.0, 0.2};
  auto run = [&](unsigned threads, std::uint64_t seed) {
    cfg.threads = threads;
    cfg.seed = seed;
    return cesr::monte_carlo_loss(problem, cesr::make_method<double>(m), nm, cfg);
  };
  const auto a = run(1, 42);
  for (const unsigned th : {1u, 2u, 3u, 8u}) {
    const auto b = run(th, 42);
    CHECK(a.step == b.step);
    CHECK(a.mean == b.mean);  // bitwise
    CHECK(a.std_error == b.std_error);
  }
  const auto c = run(2, 43);
  CHECK(c.mean != a.mean);
  CHECK(a.step.back() == 25);  // the last step is always recorded
}

TEST_CASE("a diverging method is reported as diverging") {
  MethodSpec m;
  m = cesr::method_spec("sgd", {{"lr", 3.5}});  // |1 - eta lambda_max| = 2.5: the loss grows like 6^t
  cesr::SimulationConfig cfg;
  cfg.steps = 2000;
  cfg.every = 10;
  cfg.runs = 4;
  const auto r = cesr::simulate(problem, m, cesr::NoiseModel{2, 3.0, 0.0}, cfg);
  REQUIRE(r.diverged_at);
  CHECK(r.step.size() < 201);
  CHECK(r.mean.empty());  // nothing is simulated once the exact curve diverges
  const auto mc = cesr::monte_carlo_loss(problem, cesr::make_method<double>(m), cesr::NoiseModel{2, 3.0, 0.0}, cfg);
  REQUIRE(mc.diverged_at);
  for (const double x : mc.mean) CHECK(std::isfinite(x));
}

// ---------------------------------------------------------------- end to end

namespace {

/// The end-to-end cases write files with relative names: run them in a private
/// scratch folder (removed at exit), wherever the test is started from.
const cesr_test::ScratchWorkingDirectory scratch("cesr_test_simulate");

using cesr_test::Run;
using cesr_test::slurp;
Run cesr_run(const std::string& args) { return cesr_test::run_cesr(args); }

const std::string sim_args =
    "simulate --spectrum powerlaw:d=20,alpha=1.2 --method nag --lr 0.4 --momentum 0.5 --batch 3 "
    "--steps 40 --every 10 --runs 300";

}  // namespace

TEST_CASE("cesr simulate: normative CSV, reproducible, thread-independent") {
  const Run a = cesr_run(sim_args + " --seed 5 --threads 1");
  REQUIRE(a.code == 0);
  CHECK(a.out.rfind("step,theory,mean,stderr,z,judged_by\n0,", 0) == 0);
  // Where stderr is 0 (t = 0) z is undefined: written as 0, the point judged by its relative error.
  const auto first_row = a.out.substr(a.out.find('\n') + 1, a.out.find('\n', a.out.find('\n') + 1) - a.out.find('\n') - 1);
  CHECK(first_row.size() > 20);
  CHECK(first_row.substr(first_row.size() - 12) == ",0,rel_error");
  CHECK(first_row.find(",0.0000000000000000e+00,0,rel_error") != std::string::npos);  // stderr 0
  CHECK(a.out.find(",z\n20,") != std::string::npos);  // later rows: by z
  CHECK(a.err.find("points within 3 standard errors") != std::string::npos);
  CHECK(a.err.find("largest |z|") != std::string::npos);
  CHECK(cesr_run(sim_args + " --seed 5 --threads 1").out == a.out);
  CHECK(cesr_run(sim_args + " --seed 5 --threads 2").out == a.out);
  CHECK(cesr_run(sim_args + " --seed 6 --threads 2").out != a.out);
  const Run j = cesr_run(sim_args + " --seed 5 --format json");
  CHECK(j.code == 0);
  CHECK(j.out.find("\"z\": 0, \"judged_by\": \"rel_error\"") != std::string::npos);
  CHECK(j.out.find("\"runs\": 300,") != std::string::npos);
  CHECK(j.out.find("\"seed\": 5,") != std::string::npos);
  CHECK(j.out.find("\"verdict\": \"agree\"") != std::string::npos);
}

TEST_CASE("cesr simulate: the theory column uses the law's K unless --kurtosis is given") {
  const std::string base = "simulate --spectrum powerlaw:d=5,alpha=1 --method sgd --lr 0.5 --batch 1 --steps 5 "
                           "--runs 2 --covariates rademacher";
  const auto theory_at_5 = [](const std::string& csv) {
    const auto last = csv.substr(csv.rfind("\n5,") + 3);
    return std::stod(last.substr(0, last.find(',')));
  };
  const Run law = cesr_run(base);
  const Run k1 = cesr_run("loss --spectrum powerlaw:d=5,alpha=1 --method sgd --lr 0.5 --batch 1 --steps 5 --kurtosis 1");
  const Run k3 = cesr_run(base + " --kurtosis 3");
  REQUIRE(law.code == 0);
  REQUIRE(k1.code == 0);
  REQUIRE(k3.code == 0);
  CHECK(law.err.find("K = 1") != std::string::npos);
  CHECK(theory_at_5(law.out) == doctest::Approx(theory_at_5(k1.out.substr(k1.out.find('\n')))).epsilon(1e-15));
  CHECK(theory_at_5(k3.out) > theory_at_5(law.out) * 1.01);
}

TEST_CASE("cesr simulate: bad input is exit 2 naming the flag, divergence exit 3") {
  for (const auto& [args, flag] : std::vector<std::pair<std::string, std::string>>{
           {"--runs 1", "--runs"},
           {"--runs 10 --covariates cauchy", "--covariates"},
           {"--runs 10 --every 0", "--every"},
           {"--runs 10 --format xml", "--format"},
           {"--runs 10 --batch 0", "--batch"},
           {"--runs 10 --lr -1", "--lr"}}) {
    const Run r = cesr_run("simulate --spectrum powerlaw:d=4,alpha=1 --method sgd --lr 0.5 --steps 3 " + args +
                           " --output never_written.csv");
    INFO(args, " -> ", r.err);
    CHECK(r.code == 2);
    CHECK(r.err.find(flag) != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK_FALSE(std::ifstream("never_written.csv").good());
  }
  const Run d = cesr_run("simulate --spectrum powerlaw:d=4,alpha=1 --method sgd --lr 4 --steps 5000 --runs 3");
  CHECK(d.code == 3);
  CHECK(d.out.empty());
  CHECK(d.err.find("diverges") != std::string::npos);
}

TEST_CASE("cesr simulate warns when one run dominates the mean (heavy tails)") {
  // SGD at B = 1 with lr 0.5 on this spectrum: the expected loss grows, driven
  // by rare runs; the per-run loss is so heavy-tailed that z is meaningless.
  const Run heavy = cesr_run("simulate --spectrum powerlaw:d=10,alpha=1 --method sgd --lr 0.5 --steps 50 --every 10 "
                             "--runs 500 --seed 3");
  CHECK(heavy.code == 0);
  CHECK(heavy.err.find("warning: at step") != std::string::npos);
  CHECK(heavy.err.find("heavy-tailed") != std::string::npos);
  const Run light = cesr_run(sim_args + " --seed 5");
  CHECK(light.err.find("warning") == std::string::npos);
}

TEST_CASE("cesr simulate: losses above 1e154 keep a finite standard error (squared deviations overflowed a double)") {
  // Found by tests/fuzz_cli.py: a diverging torch-sgd whose runs stay finite
  // up to 1e222 printed stderr inf (the moments were summed in double).
  const Run r = cesr_run("simulate --spectrum loguniform:d=19,kappa=4.97642 --method torch-sgd --lr 1.88398 "
                         "--momentum 0.9529798802 --steps 197 --runs 41 --seed 180325 --threads 1");
  REQUIRE(r.code == 0);
  std::istringstream in(r.out);
  std::string line;
  std::getline(in, line);
  REQUIRE(line.rfind("step,theory,mean,stderr,", 0) == 0);
  int rows = 0, huge = 0;
  const double R = 41;
  while (std::getline(in, line)) {
    std::istringstream cells(line);
    std::string step, theory, mean, se;
    std::getline(cells, step, ',');
    std::getline(cells, theory, ',');
    std::getline(cells, mean, ',');
    std::getline(cells, se, ',');
    INFO(line);
    const double m = std::stod(mean), s = std::stod(se);
    CHECK(std::isfinite(m));
    CHECK(std::isfinite(s));
    // Losses are >= 0: the sample standard deviation is at most sqrt(R) times the
    // mean, so stderr <= mean sqrt(R / (R - 1)).
    CHECK(s <= m * std::sqrt(R / (R - 1)) * (1 + 1e-12));
    huge += m > 1e200;
    ++rows;
  }
  CHECK(rows == 198);
  CHECK(huge > 10);
}

TEST_CASE("simulate refuses up front a run whose recorded points exceed memory, saying what it would need") {
  const cesr::Spectrum sp = cesr::make_spectrum("loguniform:d=10,kappa=10", "isotropic");
  cesr::SimulationConfig config;
  config.steps = 1000000000;
  config.runs = 2;
  const cesr::NoiseModel noise{1};
  const auto cost = cesr::simulation_cost(sp, noise, config);
  CHECK(cost.points > 1e9);
  CHECK(cost.bytes > 5e11);  // about 550 bytes per recorded point, as measured
  if (cesr::physical_memory() > 0 && cost.bytes > 0.8 * cesr::physical_memory()) {
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(cesr::simulate(sp, cesr::method_spec("sgd", {{"lr", 0.1}}), noise, config, cesr::Precision::Double),
                    cesr::FieldError);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(1));
    const Run r = cesr_run("simulate --spectrum loguniform:d=10,kappa=10 --method sgd --lr 0.1 --steps 1e9 --runs 2 "
                           "--output never_written.csv");
    INFO(r.err);
    CHECK(r.code == 2);
    CHECK(r.err.find("--steps") != std::string::npos);
    CHECK(r.err.find("GiB") != std::string::npos);
    CHECK(r.err.find("core-hours") != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK_FALSE(std::ifstream("never_written.csv").good());
  }
  // Recording every 1e6-th step needs little memory: not refused.
  config.every = 1000000;
  CHECK_NOTHROW(cesr::check_simulation_size(sp, noise, config));
}
