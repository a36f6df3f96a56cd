// Cost of rendering a figure (src/plot.cpp) against writing its data.
//
// A loss curve of n points (a decaying, oscillating sequence on a log y axis)
// is rendered to SVG and to pgfplots. The baseline, measured in the same run,
// writes the same n points as "x,y" text with {fmt} (what a CSV costs). The
// counters report the output size, which thinning in pixel space keeps
// bounded (a few thousand points) however long the curve is.
#include <benchmark/benchmark.h>

#include "cesr/plot.hpp"

#include <fmt/format.h>

#include <cmath>
#include <string>

namespace {

cesr::plot::Figure curve(std::size_t n) {
  cesr::plot::Panel p;
  p.xscale = cesr::plot::Scale::Linear;
  p.yscale = cesr::plot::Scale::Log;
  p.xlabel = "step t";
  p.ylabel = "loss";
  cesr::plot::Series s;
  s.name = "curve";
  for (std::size_t t = 0; t < n; ++t) {
    const double x = static_cast<double>(t);
    s.x.push_back(x);
    s.y.push_back(std::exp(-8 * x / static_cast<double>(n)) * (1.5 + std::sin(x)));
  }
  p.series.push_back(std::move(s));
  return cesr::plot::Figure{{std::move(p)}};
}

void BM_Baseline_WritePoints(benchmark::State& state) {
  const auto fig = curve(static_cast<std::size_t>(state.range(0)));
  const auto& s = fig.panels[0].series[0];
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string out;
    for (std::size_t i = 0; i < s.x.size(); ++i) out += fmt::format("{},{:.17g}\n", s.x[i], s.y[i]);
    bytes = out.size();
    benchmark::DoNotOptimize(out);
  }
  state.counters["bytes"] = static_cast<double>(bytes);
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_Svg(benchmark::State& state) {
  const auto fig = curve(static_cast<std::size_t>(state.range(0)));
  std::size_t bytes = 0;
  for (auto _ : state) {
    const std::string svg = cesr::plot::to_svg(fig);
    bytes = svg.size();
    benchmark::DoNotOptimize(svg);
  }
  state.counters["bytes"] = static_cast<double>(bytes);
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_Pgfplots(benchmark::State& state) {
  const auto fig = curve(static_cast<std::size_t>(state.range(0)));
  std::size_t bytes = 0;
  for (auto _ : state) {
    const std::string tex = cesr::plot::to_pgfplots(fig);
    bytes = tex.size();
    benchmark::DoNotOptimize(tex);
  }
  state.counters["bytes"] = static_cast<double>(bytes);
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

}  // namespace

BENCHMARK(BM_Baseline_WritePoints)->RangeMultiplier(100)->Range(100, 1000000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Svg)->RangeMultiplier(100)->Range(100, 1000000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Pgfplots)->RangeMultiplier(100)->Range(100, 1000000)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
