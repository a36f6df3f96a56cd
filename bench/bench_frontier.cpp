// Timing of the tuner and of whole frontiers.
//   BM_DefaultFrontier      the embedded default of `cesr frontier` (3 problems, d = 1000,
//                           sgd/hb/asgd, 17 batches, rate objective), all cores; target < 10 s
//   BM_StepsFrontier        steps objective, d = 100, kappa = 1e4, target 1e-6 relative,
//                           sgd/hb/asgd over 1:65536:x2, all cores; target < 1 minute
//   BM_Tune/<method>        one rate-objective tune at d = 1000, B = 16, with the reported gap
//                           confirmed in automatic precision (BM_TuneNoConfirm: double only)
// Baselines measured in the same run:
//   BM_RateEval/<method>    one contraction_rate<double> at a typical point (the unit of work)
//   BM_GridTune/hb          the naive alternative to the tuner: a 64 x 64 grid over the same box
//   BM_TuneMode/<method>/<mode>  one tune on powerlaw:d=100000,alpha=1.5 at B = 16, the fast search
//                           (mode 0) against the global search (mode 1, the baseline of the same run)
//   BM_ChainedFrontier/<mode>    sgd, hb, asgd over 1:65536:x2 on powerlaw:d=20000,alpha=1.5, fast
//                           (continuation) against global
//   BM_RateThreads/<n>      one heavy-ball contraction_rate<double> at d = 1e6 on n kernel threads
//                           (its best gap is reported next to the tuner's as gap_ratio)
//   BM_RateIsa/<isa>/<k>    the same (k = 2; SGD for k = 1) on one thread in each instruction set of
//                           the kernels: 0 baseline (SSE2), 1 AVX2, 2 AVX-512
#include <benchmark/benchmark.h>

#include "cesr/frontier.hpp"
#include "cesr/isa.hpp"
#include "cesr/parallel.hpp"
#include "cesr/rate.hpp"
#include "cesr/tune.hpp"

#include <cmath>

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
  const std::string kind(methods()[static_cast<std::size_t>(state.range(0))].name);
  TuneOptions o;
  o.confirm_gap = Confirm;
  int evals = 0;
  for (auto _ : state) {
    const TuneResult r = tune(s, kind, NoiseModel{16, 3.0, 0.0}, o);
    evals = r.evaluations;
    benchmark::DoNotOptimize(r.gap);
  }
  state.SetLabel(kind);
  state.counters["evaluations"] = evals;
}
BENCHMARK(BM_Tune<true>)
    ->Name("BM_Tune")
    ->Arg(static_cast<int>(method_index("sgd")))
    ->Arg(static_cast<int>(method_index("hb")))
    ->Arg(static_cast<int>(method_index("asgd")))
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Tune<false>)
    ->Name("BM_TuneNoConfirm")
    ->Arg(static_cast<int>(method_index("sgd")))
    ->Arg(static_cast<int>(method_index("hb")))
    ->Arg(static_cast<int>(method_index("asgd")))
    ->Unit(benchmark::kMillisecond);

void BM_RateEval(benchmark::State& state) {
  const Spectrum s = make_spectrum("loguniform:d=1000,kappa=1e4");
  const std::string kind(methods()[static_cast<std::size_t>(state.range(0))].name);
  const TuneResult t = tune(s, kind, NoiseModel{16, 3.0, 0.0}, {});
  const Method<double> m = make_method<double>(t.method);
  for (auto _ : state) benchmark::DoNotOptimize(contraction_rate<double>(s, m, NoiseModel{16, 3.0, 0.0}).gap);
  state.SetLabel(kind);
}
BENCHMARK(BM_RateEval)
    ->Arg(static_cast<int>(method_index("sgd")))
    ->Arg(static_cast<int>(method_index("hb")))
    ->Arg(static_cast<int>(method_index("asgd")))
    ->Unit(benchmark::kMicrosecond);

void BM_GridTune(benchmark::State& state) {
  const Spectrum s = make_spectrum("loguniform:d=1000,kappa=1e4");
  const NoiseModel n{16, 3.0, 0.0};
  const double L = s.lambda_max(), q = std::sqrt(s.kappa());
  const double lo0 = std::log(1e-2 * std::min(1 / L, 16 / (3 * s.trace()))), lo1 = std::log(0.1 / q);
  const double hi0 = std::log(4 / L) - lo1, hi1 = 0;
  const int points = 64;
  double best = 0;
  for (auto _ : state) {
    best = 0;
    MethodSpec m;
    m.name = "hb";
    for (int i = 0; i < points; ++i)
      for (int j = 0; j < points; ++j) {
        const double x0 = lo0 + (i + 0.5) * (hi0 - lo0) / points, x1 = lo1 + (j + 0.5) * (hi1 - lo1) / points;
        m.set("lr", std::exp(x0 + x1));
        m.set("momentum", -std::expm1(x1));
        if (m.value("lr") * L >= 2 * (1 + m.value("momentum"))) continue;
        const auto r = contraction_rate<double>(s, make_method<double>(m), n);
        if (r.stable) best = std::max(best, r.gap);
      }
  }
  const TuneResult t = tune(s, "hb", n, {});
  state.counters["gap_ratio"] = best / t.gap;  // grid's best over the tuner's
}
BENCHMARK(BM_GridTune)->Unit(benchmark::kMillisecond)->Iterations(1);

void BM_TuneMode(benchmark::State& state) {
  static const Spectrum s = make_spectrum("powerlaw:d=100000,alpha=1.5");
  const std::string kind(methods()[static_cast<std::size_t>(state.range(0))].name);
  TuneOptions o;
  o.search_mode = state.range(1) == 0 ? SearchMode::Fast : SearchMode::Global;
  int evals = 0;
  double gap = 0;
  for (auto _ : state) {
    const KernelThreads one(1);
    const TuneResult r = tune(s, kind, NoiseModel{16, 3.0, 0.0}, o);
    evals = r.evaluations;
    gap = r.gap;
  }
  state.SetLabel(kind + (state.range(1) == 0 ? " fast" : " global"));
  state.counters["evaluations"] = evals;
  state.counters["gap"] = gap;
}
BENCHMARK(BM_TuneMode)
    ->ArgsProduct({{static_cast<int>(method_index("sgd")), static_cast<int>(method_index("hb")),
                    static_cast<int>(method_index("asgd"))},
                   {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

void BM_ChainedFrontier(benchmark::State& state) {
  const Spectrum s = make_spectrum("powerlaw:d=20000,alpha=1.5");
  FrontierOptions o;
  o.batches = parse_batches("1:65536:x2");
  o.threads = 1;
  o.tune.search_mode = state.range(0) == 0 ? SearchMode::Fast : SearchMode::Global;
  int evals = 0;
  for (auto _ : state) {
    const Frontier f = compute_frontier(s, NoiseModel{}, o);
    evals = 0;
    for (const auto& r : f.rows) evals += r.tuned.evaluations;
    state.counters["evaluations_per_row"] = double(evals) / double(f.rows.size());
  }
  state.SetLabel(state.range(0) == 0 ? "fast" : "global");
}
BENCHMARK(BM_ChainedFrontier)->Arg(0)->Arg(1)->Unit(benchmark::kSecond)->Iterations(1);

void BM_RateThreads(benchmark::State& state) {
  static const Spectrum s = make_spectrum("powerlaw:d=1000000,alpha=1.5");
  const MethodSpec m = method_spec("hb", {{"lr", 0.00081970167530255502}, {"momentum", 0.99991923790376636}});
  const KernelThreads threads(static_cast<unsigned>(state.range(0)));
  double gap = 0;
  for (auto _ : state) gap = contraction_rate<double>(s, m, NoiseModel{16, 3.0, 0.0}).gap;
  state.counters["gap"] = gap;
}
BENCHMARK(BM_RateThreads)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// One contraction_rate<double> at d = 1e6 on one thread in each instruction
// set of the kernels (include/cesr/isa.hpp): heavy ball (k = 2, the tuned
// point of BM_RateThreads) and SGD (k = 1); "per_pass" is the time per
// secular evaluation (the rate's cost is ~evaluations of them plus the
// rho(D) pass). Variants the CPU does not run are skipped.
void BM_RateIsa(benchmark::State& state) {
  static const Spectrum s = make_spectrum("powerlaw:d=1000000,alpha=1.5");
  const Isa isa = static_cast<Isa>(state.range(0));
  if (!isa_supported(isa)) {
    state.SkipWithError("instruction set not supported by this CPU");
    return;
  }
  const Isa saved = kernel_isa();
  set_kernel_isa(isa);
  const KernelThreads threads(1);
  const MethodSpec m = state.range(1) == 2
                           ? method_spec("hb", {{"lr", 0.00081970167530255502}, {"momentum", 0.99991923790376636}})
                           : method_spec("sgd", {{"lr", 1.7664258254486735}});
  Rate<double> r;
  for (auto _ : state) r = contraction_rate<double>(s, m, NoiseModel{16, 3.0, 0.0});
  set_kernel_isa(saved);
  state.counters["evaluations"] = r.evaluations;
  state.counters["gap"] = r.gap;
  state.SetLabel(std::string(to_string(isa)));
}
BENCHMARK(BM_RateIsa)
    ->ArgsProduct({{static_cast<int>(Isa::Baseline), static_cast<int>(Isa::Avx2), static_cast<int>(Isa::Avx512)}, {1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
