// Timing of the tuner and of whole frontiers.
//   BM_DefaultFrontier      the embedded default of `cesr frontier` (3 problems, d = 1000,
//                           sgd/hb/asgd, 17 batches, rate objective), all cores; target < 10 s
//   BM_StepsFrontier        steps objective, d = 100, kappa = 1e4, target 1e-6 relative,
//                           sgd/hb/asgd over 1:65536:x2, all cores; target < 1 minute
//   BM_Tune/<method>        one rate-objective tune at d = 1000, B = 16, with the reported gap
//                           confirmed in automatic precision (BM_TuneNoConfirm: double only)
#include <benchmark/benchmark.h>

#include "cesr/frontier.hpp"
#include "cesr/tune.hpp"

#include <thread>

namespace {

using namespace cesr;

void BM_DefaultFrontier(benchmark::State& state) {
  const char* specs[] = {"loguniform:d=1000,kappa=1e4", "powerlaw:d=1000,alpha=2", "powerlaw:d=1000,alpha=0.5"};
  std::vector<Spectrum> spectra;
  for (const char* s : specs) spectra.push_back(make_spectrum(s));
  FrontierOptions o;  // sgd, hb, asgd; 1:65536:x2; rate; all cores
  for (auto _ : state)
    for (const auto& s : spectra) benchmark::DoNotOptimize(compute_frontier(s, NoiseModel{}, o));
  state.counters["threads"] = std::thread::hardware_concurrency();
}
BENCHMARK(BM_DefaultFrontier)->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();

void BM_StepsFrontier(benchmark::State& state) {
  const Spectrum s = make_spectrum("loguniform:d=100,kappa=1e4");
  FrontierOptions o;
  o.tune.objective = Objective::Steps;
  o.tune.target = {1e-6, true};
  for (auto _ : state) benchmark::DoNotOptimize(compute_frontier(s, NoiseModel{}, o));
}
BENCHMARK(BM_StepsFrontier)->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();

template <bool Confirm>
void BM_Tune(benchmark::State& state) {
  const Spectrum s = make_spectrum("loguniform:d=1000,kappa=1e4");
  const auto kind = static_cast<MethodKind>(state.range(0));
  TuneOptions o;
  o.confirm_gap = Confirm;
  int evals = 0;
  for (auto _ : state) {
    const TuneResult r = tune(s, kind, NoiseModel{16, 3.0, 0.0}, o);
    evals = r.evaluations;
    benchmark::DoNotOptimize(r.gap);
  }
  state.SetLabel(std::string(to_string(kind)));
  state.counters["evaluations"] = evals;
}
BENCHMARK(BM_Tune<true>)
    ->Name("BM_Tune")
    ->Arg(static_cast<int>(MethodKind::Sgd))
    ->Arg(static_cast<int>(MethodKind::HeavyBall))
    ->Arg(static_cast<int>(MethodKind::AccSgd))
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Tune<false>)
    ->Name("BM_TuneNoConfirm")
    ->Arg(static_cast<int>(MethodKind::Sgd))
    ->Arg(static_cast<int>(MethodKind::HeavyBall))
    ->Arg(static_cast<int>(MethodKind::AccSgd))
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
