// cesr simulate's Monte Carlo: heavy ball, d = 1000, B = 32, T = 200, R = 200
// (the case issue 5 asks to run in a few seconds on 2 cores), with 1 and 2
// threads and for each covariate law, next to a baseline measured in the same
// run: drawing the same number of Gaussian coordinates and nothing else (the
// floor for any simulator that samples x = H^{1/2} xi explicitly).
//
// Counter ns_per_coord = wall time / (R T B d), one sampled covariate coordinate.
// The numpy comparison is scripts/numpy_simulate.py (see docs/simulate.md).
#include <benchmark/benchmark.h>

#include "cesr/simulate.hpp"

#include <boost/random/mersenne_twister.hpp>
#include <boost/random/normal_distribution.hpp>

#include <cmath>
#include <vector>

namespace {

constexpr std::size_t d = 1000;
constexpr std::uint64_t batch = 32, steps = 200, runs = 200;
constexpr double coords = double(runs) * double(steps) * double(batch) * double(d);

cesr::Spectrum spectrum() {
  cesr::Spectrum s;
  for (std::size_t i = 1; i <= d; ++i) s.lambda.push_back(1.0 / double(i));
  s.init.assign(d, 1.0);
  return s;
}

void BM_simulate_hb(benchmark::State& state) {
  const cesr::Spectrum s = spectrum();
  const cesr::MethodSpec m = cesr::method_spec("hb", {{"lr", 0.5}, {"momentum", 0.9}});
  cesr::SimulationConfig cfg;
  cfg.steps = steps;
  cfg.every = 20;
  cfg.runs = runs;
  cfg.seed = 1;
  cfg.threads = static_cast<unsigned>(state.range(0));
  cfg.covariates = static_cast<cesr::Covariates>(state.range(1));
  const auto method = cesr::make_method<double>(m);
  for (auto _ : state) {
    auto mc = cesr::monte_carlo_loss(s, method, cesr::NoiseModel{batch, 3.0, 0.0}, cfg);
    benchmark::DoNotOptimize(mc.mean.data());
  }
  state.SetLabel(std::string(cesr::to_string(cfg.covariates)));
  state.counters["ns_per_coord"] = benchmark::Counter(coords * 1e-9, benchmark::Counter::kIsIterationInvariantRate |
                                                                         benchmark::Counter::kInvert);
}
BENCHMARK(BM_simulate_hb)
    ->ArgNames({"threads", "law"})
    ->Args({1, int(cesr::Covariates::Gaussian)})
    ->Args({2, int(cesr::Covariates::Gaussian)})
    ->Args({2, int(cesr::Covariates::Rademacher)})
    ->Args({2, int(cesr::Covariates::Uniform)})
    ->Unit(benchmark::kSecond)
    ->Iterations(2)
    ->UseRealTime();

// Baseline: the Gaussian draws alone, one thread, same engine and distribution.
void BM_gaussian_draws_only(benchmark::State& state) {
  std::vector<double> row(batch * d);
  for (auto _ : state) {
    boost::random::mt19937_64 eng(1);
    boost::random::normal_distribution<double> normal;
    for (std::uint64_t k = 0; k < runs * steps; ++k) {
      for (double& x : row) x = normal(eng);
      benchmark::DoNotOptimize(row.data());
    }
  }
  state.counters["ns_per_coord"] =
      benchmark::Counter(coords * 1e-9, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_gaussian_draws_only)->Unit(benchmark::kSecond)->Iterations(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
