// Accuracy and cost of the contraction rate (src/rate.cpp).
//
// 1. Accuracy sweep (printed before the timings): the gap 1 - rho from
//    contraction_rate_auto and from plain double against a 50-digit
//    evaluation, for kappa = 1e2 .. 1e12, B = 1 .. 1e9, SGD, heavy ball
//    (including critically damped in the slowest direction and the
//    deterministic optimum), Nesterov and AccSGD. Reports the worst relative
//    gap error and every stability verdict that differs from 50 digits.
//    Issue 3's target: worst auto error <= 1e-10, no flipped verdict.
// 2. Timings: contraction_rate<double> on powerlaw:d=1e6,alpha=1.5 with heavy
//    ball (issue 3's target: < 0.5 s, <= ~50 secular evaluations), against a
//    baseline measured in the same run: one time step of the exact engine
//    (Dynamics<double>::step) on the same problem, i.e. the cost of one O(d)
//    pass over the state. The "steps" counter is rate time / step time.
#include <benchmark/benchmark.h>

#include "cesr/dynamics.hpp"
#include "cesr/error.hpp"
#include "cesr/rate.hpp"
#include "cesr/spectrum.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <vector>

namespace {

cesr::MethodSpec make(const char* kind, double lr, double momentum = std::nan("")) {
  cesr::MethodSpec m = cesr::method_spec(kind, {{"lr", lr}});
  if (!std::isnan(momentum)) m.set("momentum", momentum);
  return m;
}

struct SweepResult {
  int cases = 0, stable = 0, unstable = 0, auto_flips = 0, double_flips = 0, double_refused = 0;
  double worst_auto = 0, worst_double = 0;
  std::string worst_auto_case, worst_double_case;
  int by_precision[4] = {0, 0, 0, 0};
};

void accuracy_sweep() {
  SweepResult res;
  const double kappas[] = {1e2, 1e4, 1e8, 1e12};
  const std::uint64_t batches[] = {1, 10, 1000, 1'000'000, 1'000'000'000};
  for (double kappa : kappas) {
    const cesr::Spectrum s = cesr::make_spectrum(fmt::format("loguniform:d=30,kappa={}", kappa));
    const double lmin = s.lambda_min();
    std::vector<cesr::MethodSpec> methods;
    for (double lr : {0.1, 1.0, 1.9}) methods.push_back(make("sgd", lr));
    for (double lr : {0.01, 0.3, 1.0}) {
      const double critical = std::pow(1 - std::sqrt(lr * lmin), 2);  // critically damped at lambda_min
      for (double beta : {critical, 0.9, 0.99}) {
        methods.push_back(make("hb", lr, beta));
        methods.push_back(make("nag", lr, beta));
      }
    }
    // The deterministic optimum (critically damped at both ends).
    methods.push_back(make("hb", 4 / std::pow(1 + std::sqrt(lmin), 2),
                           std::pow((std::sqrt(kappa) - 1) / (std::sqrt(kappa) + 1), 2)));
    for (double lr : {0.1, 0.5}) {
      cesr::MethodSpec a = make("asgd", lr);
      a.set("kappa", std::sqrt(kappa)).set("xi", std::pow(kappa, 0.25));
      methods.push_back(a);
    }
    for (const auto& m : methods)
      for (std::uint64_t B : batches) {
        const cesr::NoiseModel noise{B, 3, 0};
        const auto exact = cesr::contraction_rate<cesr::mp50>(s, m, noise);
        const double gap = static_cast<double>(exact.gap);
        const cesr::AutoRate a = cesr::contraction_rate_auto(s, m, noise);
        const std::string label = fmt::format("kappa={:g} B={} {}", kappa, B, cesr::describe(m));
        const double ea = std::abs(a.gap - gap) / std::abs(gap);
        ++res.cases;
        ++(exact.stable ? res.stable : res.unstable);
        ++res.by_precision[static_cast<int>(a.precision)];
        if (a.stable != exact.stable) ++res.auto_flips;
        if (ea > res.worst_auto) res.worst_auto = ea, res.worst_auto_case = label;
        // Forced double refuses where its rounding cannot decide the sign of the gap.
        try {
          const cesr::AutoRate d = cesr::contraction_rate_in(cesr::Precision::Double, s, m, noise);
          const double ed = std::abs(d.gap - gap) / std::abs(gap);
          if (d.stable != exact.stable) ++res.double_flips;
          if (ed > res.worst_double) res.worst_double = ed, res.worst_double_case = label;
        } catch (const cesr::FieldError&) {
          ++res.double_refused;
        }
      }
  }
  fmt::print("accuracy sweep: {} cases ({} stable, {} unstable), d = 30, gap relative error against mp50\n",
             res.cases, res.stable, res.unstable);
  fmt::print("  auto:   worst {:.2e} ({}); stability verdicts differing from mp50: {}\n", res.worst_auto,
             res.worst_auto_case, res.auto_flips);
  fmt::print("  double: worst {:.2e} ({}); stability verdicts differing from mp50: {}; refused (sign of the gap "
             "undecided): {}\n",
             res.worst_double, res.worst_double_case, res.double_flips, res.double_refused);
  fmt::print("  auto reported precision: long {}, quad {}, mp50 {}\n\n", res.by_precision[1], res.by_precision[2],
             res.by_precision[3]);
}

const cesr::Spectrum& large_problem() {
  static const cesr::Spectrum s = cesr::make_spectrum("powerlaw:d=1000000,alpha=1.5");
  return s;
}
const cesr::MethodSpec large_method = make("hb", 0.1, 0.99);
const cesr::NoiseModel large_noise{64, 3, 0};

void BM_RateDouble_d1e6(benchmark::State& state) {
  int evaluations = 0;
  for (auto _ : state) {
    const auto r = cesr::contraction_rate<double>(large_problem(), large_method, large_noise);
    evaluations = r.evaluations;
    benchmark::DoNotOptimize(r.gap);
  }
  state.counters["evaluations"] = evaluations;
}

void BM_EngineStep_d1e6(benchmark::State& state) {
  cesr::Dynamics<double> dyn(large_problem(), cesr::make_method<double>(large_method), large_noise);
  for (auto _ : state) {
    dyn.step();
    benchmark::DoNotOptimize(dyn.loss());
  }
}

void BM_RateAuto_d1e4(benchmark::State& state) {
  const cesr::Spectrum s = cesr::make_spectrum("powerlaw:d=10000,alpha=1.5");
  int evaluations = 0;
  for (auto _ : state) {
    const auto r = cesr::contraction_rate_auto(s, large_method, large_noise);
    evaluations = r.evaluations;
    benchmark::DoNotOptimize(r.gap);
  }
  state.counters["evaluations"] = evaluations;
}

template <class Real>
void BM_Rate_d1e4(benchmark::State& state) {
  const cesr::Spectrum s = cesr::make_spectrum("powerlaw:d=10000,alpha=1.5");
  int evaluations = 0;
  for (auto _ : state) {
    const auto r = cesr::contraction_rate<Real>(s, large_method, large_noise);
    evaluations = r.evaluations;
    benchmark::DoNotOptimize(r.gap);
  }
  state.counters["evaluations"] = evaluations;
}

}  // namespace

BENCHMARK(BM_EngineStep_d1e6)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RateDouble_d1e6)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Rate_d1e4<double>)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Rate_d1e4<long double>)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Rate_d1e4<cesr::quad>)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Rate_d1e4<cesr::mp50>)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RateAuto_d1e4)->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  accuracy_sweep();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
