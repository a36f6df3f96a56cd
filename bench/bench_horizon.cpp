// Cost of the exact spectral path (src/horizon.cpp) against time stepping.
//
// Issue 14's target: `cesr steps` for SGD on loguniform:d=1000,kappa=1e8 at
// B = 1, the lr `cesr tune` gives (0.035874288199619041), target 1e-6
// relative, in under 5 s. The answer is 7,025,774,968 steps. Baseline in the
// same run: 1000 steps of Dynamics<double> on the same problem, from which the
// cost of time-stepping to the answer is extrapolated (counter
// "stepping_s"). Also: building the modes alone (O(d^2)), and one L_t
// evaluation (O(d)).
#include <benchmark/benchmark.h>

#include "cesr/dynamics.hpp"
#include "cesr/horizon.hpp"
#include "cesr/spectrum.hpp"

#include <chrono>

namespace {

const cesr::Spectrum& problem() {
  static const cesr::Spectrum s = cesr::make_spectrum("loguniform:d=1000,kappa=1e8");
  return s;
}
const cesr::MethodSpec spec = cesr::method_spec("sgd", {{"lr", 0.035874288199619041}});
const cesr::NoiseModel noise(1);
constexpr double answer = 7025774968.0;

void BM_stepping_1000_steps(benchmark::State& state) {
  cesr::Dynamics<double> dyn(problem(), cesr::make_path<double>(spec), noise);
  for (auto _ : state) {
    dyn.advance(1000);
    benchmark::DoNotOptimize(dyn.loss());
  }
  // Seconds per iteration times the iterations the answer needs.
  state.counters["stepping_s"] = benchmark::Counter(1000 / answer, benchmark::Counter::kIsIterationInvariantRate |
                                                                       benchmark::Counter::kInvert);
}
BENCHMARK(BM_stepping_1000_steps)->Unit(benchmark::kMillisecond);

void BM_horizon_build(benchmark::State& state) {
  for (auto _ : state) {
    std::string why;
    auto sl = cesr::SpectralLoss<double>::build(problem(), cesr::make_method<double>(spec), noise, &why);
    benchmark::DoNotOptimize(sl);
  }
}
BENCHMARK(BM_horizon_build)->Unit(benchmark::kMillisecond);

void BM_horizon_loss_at(benchmark::State& state) {
  std::string why;
  const auto sl = cesr::SpectralLoss<double>::build(problem(), cesr::make_method<double>(spec), noise, &why);
  std::uint64_t t = 1'000'000'000;
  for (auto _ : state) benchmark::DoNotOptimize(sl->at(t++));
}
BENCHMARK(BM_horizon_loss_at)->Unit(benchmark::kMicrosecond);

void BM_horizon_steps_sgd_kappa1e8(benchmark::State& state) {
  for (auto _ : state) {
    cesr::HorizonReport rep;
    const auto r = cesr::horizon_steps<double>(problem(), spec, noise, 1e-6, true, 1e-10, rep);
    if (!r || !r->steps || static_cast<double>(*r->steps) != answer) state.SkipWithError("wrong count");
  }
}
BENCHMARK(BM_horizon_steps_sgd_kappa1e8)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
