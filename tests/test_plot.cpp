// The figure renderer: limits and ticks against brute-force enumeration, the
// axis mapping, skipping of unplottable points, SVG well-formedness and the
// pgfplots structure; end to end through `cesr loss --plot`.
#include <doctest/doctest.h>

#include "cesr_run.hpp"

#include "cesr/plot.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace plot = cesr::plot;
using plot::Scale;

namespace {

constexpr double nan_v = std::numeric_limits<double>::quiet_NaN();
constexpr double inf_v = std::numeric_limits<double>::infinity();

double power_of_ten(int k) { return std::strtod(("1e" + std::to_string(k)).c_str(), nullptr); }

// Checks that every start tag has its end tag, in order; returns the first
// problem or "".
std::string tag_balance(const std::string& xml) {
  std::vector<std::string> stack;
  std::size_t pos = 0;
  while ((pos = xml.find('<', pos)) != std::string::npos) {
    const std::size_t end = xml.find('>', pos);
    if (end == std::string::npos) return "unterminated tag";
    const std::string tag = xml.substr(pos + 1, end - pos - 1);
    pos = end + 1;
    if (tag.empty()) return "empty tag";
    if (tag[0] == '?' || tag[0] == '!') continue;
    if (tag.back() == '/') continue;  // self-closing
    const std::string name = tag.substr(tag[0] == '/' ? 1 : 0, tag.find_first_of(" \t\n/", 1) - (tag[0] == '/' ? 1 : 0));
    if (tag[0] == '/') {
      if (stack.empty() || stack.back() != name) return "unexpected </" + name + ">";
      stack.pop_back();
    } else {
      stack.push_back(name);
    }
  }
  return stack.empty() ? "" : "unclosed <" + stack.back() + ">";
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + what.size())) ++n;
  return n;
}

bool has_non_finite_text(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s.find("nan") != std::string::npos || s.find("inf") != std::string::npos;
}

// Every "x,y" pair of every <polyline points="..."> in an SVG.
std::vector<std::vector<std::array<double, 2>>> polylines(const std::string& svg) {
  std::vector<std::vector<std::array<double, 2>>> out;
  // (std::regex recurses per character and overflows the stack on long lines.)
  const std::string key = "<polyline points=\"";
  for (std::size_t p = svg.find(key); p != std::string::npos; p = svg.find(key, p + 1)) {
    const std::size_t begin = p + key.size(), end = svg.find('"', begin);
    auto& line = out.emplace_back();
    std::istringstream in(svg.substr(begin, end - begin));
    std::string pair;
    while (in >> pair) {
      const auto comma = pair.find(',');
      line.push_back({std::stod(pair.substr(0, comma)), std::stod(pair.substr(comma + 1))});
    }
  }
  return out;
}

plot::Figure one_series(std::vector<double> x, std::vector<double> y, Scale xs, Scale ys) {
  plot::Panel p;
  p.xscale = xs;
  p.yscale = ys;
  p.xlabel = "step t";
  p.ylabel = "loss";
  plot::Series s;
  s.name = "curve <A & B>";
  s.x = std::move(x);
  s.y = std::move(y);
  p.series.push_back(std::move(s));
  return plot::Figure{{p}};
}

}  // namespace

TEST_CASE("scales parse and reject unknown names") {
  CHECK(plot::parse_scales("loglog").x == Scale::Log);
  CHECK(plot::parse_scales("semilogy").x == Scale::Linear);
  CHECK(plot::parse_scales("semilogy").y == Scale::Log);
  CHECK(plot::parse_scales("semilogx").y == Scale::Linear);
  CHECK(plot::parse_scales("linear").y == Scale::Linear);
  CHECK_THROWS_WITH_AS(plot::parse_scales("log"), doctest::Contains("--plot-scale"), std::invalid_argument);
}

TEST_CASE("log limits enclose the data with at least two powers of ten, ignoring unplottable values") {
  // Ends within 0.3 decades of a power of ten go there.
  const auto l = plot::axis_limits({0.17, 5.4, nan_v, -1.0, 0.0, inf_v}, Scale::Log);
  CHECK(l.lo == 0.1);
  CHECK(l.hi == 10.0);
  const auto exact = plot::axis_limits({1e-5, 1e3}, Scale::Log);
  CHECK(exact.lo == 1e-5);
  CHECK(exact.hi == 1e3);
  // Farther ends sit 2% of the span (in decades) beyond the data.
  const auto tight = plot::axis_limits({1.0, 300.0}, Scale::Log);
  CHECK(tight.lo == 1.0);
  CHECK(tight.hi == doctest::Approx(300 * std::pow(10.0, 0.02 * std::log10(300.0))));
  // Less than two powers of ten inside: the enclosing decades.
  const auto narrow = plot::axis_limits({0.25, 0.5}, Scale::Log);
  CHECK(narrow.lo == doctest::Approx(0.1));
  CHECK(narrow.hi == 1.0);
  const auto single = plot::axis_limits({100.0}, Scale::Log);
  CHECK(single.lo == 10.0);
  CHECK(single.hi == 1000.0);
  const auto none = plot::axis_limits({nan_v, 0.0}, Scale::Log);
  CHECK(none.lo == 1.0);
  CHECK(none.hi == 10.0);
  // Random data: the limits enclose it, waste less than a decade at each end,
  // and hold at least two powers of ten (so at least two labelled ticks).
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(-40, 40);
  for (int trial = 0; trial < 2000; ++trial) {
    const double a = std::pow(10.0, u(rng)), b = trial % 4 ? std::pow(10.0, u(rng)) : a * 1.5;
    const auto lim = plot::axis_limits({a, b}, Scale::Log);
    REQUIRE(lim.lo <= std::min(a, b));
    REQUIRE(lim.hi >= std::max(a, b));
    REQUIRE(lim.lo >= std::min(a, b) / 10.000001);
    REQUIRE(lim.hi <= std::max(a, b) * 10.000001);
    REQUIRE(plot::major_ticks(lim, Scale::Log).size() >= 2);
  }
}

TEST_CASE("linear limits are multiples of a 1-2-5 step enclosing the data") {
  const auto l = plot::axis_limits({0.3, 9.7}, Scale::Linear);
  CHECK(l.lo == 0.0);
  CHECK(l.hi == 10.0);
  const auto m = plot::axis_limits({-3.0, 0, 2000.0, nan_v}, Scale::Linear);
  CHECK(m.lo == -500.0);
  CHECK(m.hi == 2000.0);
  CHECK(plot::major_ticks({0, 10}, Scale::Linear) == std::vector<double>{0, 2, 4, 6, 8, 10});
  CHECK(plot::major_ticks({-500, 2000}, Scale::Linear) == std::vector<double>{-500, 0, 500, 1000, 1500, 2000});
}

TEST_CASE("log ticks are exactly the powers of ten in range, thinned to at most 8") {
  CHECK(plot::major_ticks({1, 1e4}, Scale::Log) == std::vector<double>{1, 10, 100, 1000, 1e4});
  CHECK(plot::major_ticks({3, 2000}, Scale::Log) == std::vector<double>{10, 100, 1000});
  CHECK(plot::major_ticks({1e-3, 1e-1}, Scale::Log) == std::vector<double>{1e-3, 1e-2, 1e-1});
  CHECK(plot::minor_ticks({1, 100}, Scale::Log).size() == 16);
  CHECK(plot::minor_ticks({1e-30, 1}, Scale::Log).empty());
  // Brute force over every power of ten a double holds.
  std::mt19937_64 rng(11);
  std::uniform_int_distribution<int> e(-300, 300), span(1, 60);
  for (int trial = 0; trial < 500; ++trial) {
    const int k0 = e(rng), k1 = std::min(k0 + span(rng), 307);
    const double lo = power_of_ten(k0) * (trial % 3 == 0 ? 0.7 : 1.0), hi = power_of_ten(k1);
    const auto ticks = plot::major_ticks({lo, hi}, Scale::Log);
    std::vector<int> in_range;
    for (int k = -330; k <= 310; ++k)
      if (power_of_ten(k) >= lo && power_of_ten(k) <= hi && power_of_ten(k) > 0) in_range.push_back(k);
    REQUIRE(!ticks.empty());
    REQUIRE(ticks.size() <= 8);
    const int stride = in_range.size() > 1 && ticks.size() > 1 ? plot::decade(ticks[1]) - plot::decade(ticks[0]) : 1;
    std::vector<int> expected;
    for (int k : in_range)
      if (((k % stride) + stride) % stride == 0) expected.push_back(k);
    std::vector<int> got;
    for (double t : ticks) {
      REQUIRE(t == power_of_ten(plot::decade(t)));
      got.push_back(plot::decade(t));
    }
    REQUIRE(got == expected);
  }
}

TEST_CASE("the axis map sends the limits to the ends and is monotone") {
  const plot::AxisMap lx{{1e-6, 1e2}, Scale::Log, 100, 500};
  CHECK(lx(1e-6) == doctest::Approx(100));
  CHECK(lx(1e2) == doctest::Approx(500));
  CHECK(lx(1e-2) == doctest::Approx(300));  // the middle decade
  const plot::AxisMap ly{{0, 10}, Scale::Linear, 400, 100};  // y grows upwards
  CHECK(ly(5) == doctest::Approx(250));
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(-6, 2);
  std::vector<double> v(1000);
  for (double& x : v) x = std::pow(10.0, u(rng));
  std::sort(v.begin(), v.end());
  for (std::size_t i = 1; i < v.size(); ++i) {
    REQUIRE(lx(v[i]) >= lx(v[i - 1]));
    REQUIRE(ly(v[i] / 1e2 * 10) <= ly(v[i - 1] / 1e2 * 10));
  }
}

TEST_CASE("SVG: balanced tags, escaped legend, ticks at powers of ten, unplottable points skipped") {
  // Runs of plottable points on log-log axes: [1,2], [4,5], [7,8]; NaN, inf, 0
  // and a negative value break the line.
  const std::vector<double> x{1, 10, 100, 1000, 1e4, 1e5, -3, 1e6, 1e7};
  const std::vector<double> y{1, 0.5, nan_v, 0.2, 0.1, 0.0, 0.05, 0.02, 0.01};
  const std::string svg = plot::to_svg(one_series(x, y, Scale::Log, Scale::Log));
  CHECK(tag_balance(svg) == "");
  CHECK(svg.rfind("<?xml", 0) == 0);
  CHECK(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\"") != std::string::npos);
  CHECK(svg.find("curve &lt;A &amp; B&gt;") != std::string::npos);
  CHECK_FALSE(has_non_finite_text(svg));
  const auto lines = polylines(svg);
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].size() == 2);
  CHECK(lines[1].size() == 2);
  CHECK(lines[2].size() == 2);
  // x from 1 to 1e7: 8 decades, 8 labelled ticks 10^0..10^7 (10^7 included).
  for (int k = 0; k <= 7; ++k)
    CHECK(svg.find(">10<tspan dy=\"-0.45em\" font-size=\"10.4\">" + std::to_string(k) + "</tspan>") !=
          std::string::npos);
  // y from 1e-2 to 1: 10^-2, 10^-1, 10^0 with a true minus sign.
  CHECK(svg.find(">\u22122</tspan>") != std::string::npos);
  // Every drawn point lies inside the plot area (82..522 x 38..338).
  for (const auto& line : lines)
    for (const auto& p : line) {
      CHECK(p[0] >= 82 - 1e-9);
      CHECK(p[0] <= 522 + 1e-9);
      CHECK(p[1] >= 38 - 1e-9);
      CHECK(p[1] <= 338 + 1e-9);
    }
  // The first point (1, 1) is the bottom-left... of x and the top of y.
  CHECK(lines[0][0][0] == doctest::Approx(82));
  CHECK(lines[0][0][1] == doctest::Approx(38));
}

TEST_CASE("SVG: a linear axis keeps zero and negative values") {
  const std::string svg = plot::to_svg(one_series({0, 1, 2, 3}, {-1, 0, 1, 2}, Scale::Linear, Scale::Linear));
  CHECK(tag_balance(svg) == "");
  const auto lines = polylines(svg);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].size() == 4);
}

TEST_CASE("long curves are thinned in pixel space, keeping both ends") {
  std::vector<double> x, y;
  for (int t = 1; t <= 200000; ++t) {
    x.push_back(t);
    y.push_back(std::exp(-t / 5e4) * (1 + 0.5 * std::sin(t)));  // oscillation inside one pixel column
  }
  const std::string svg = plot::to_svg(one_series(x, y, Scale::Linear, Scale::Log));
  const auto lines = polylines(svg);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].size() <= 4 * 2 * 440 + 2);  // first, last, min, max per half-pixel column
  CHECK(lines[0].size() > 440);
  CHECK(lines[0].front()[0] == doctest::Approx(82).epsilon(1e-3));
  CHECK(lines[0].back()[0] == doctest::Approx(522));
}

TEST_CASE("bands, vertical lines and power-law references") {
  plot::Panel p;
  plot::Series s;
  s.name = "simulated mean";
  s.x = {1, 2, 4, 8};
  s.y = {1, 0.5, 0.25, 0.125};
  s.lower = {0.9, 0.4, -0.1, nan_v};  // a negative lower edge on a log axis; then NaN
  s.upper = {1.1, 0.6, 0.5, 0.2};
  p.series.push_back(s);
  p.vlines.push_back({3.0, "critical batch", 1});
  p.references.push_back({1, 1, -1, "slope -1"});
  const plot::Figure fig{{p, p}};
  const std::string svg = plot::to_svg(fig);
  CHECK(tag_balance(svg) == "");
  CHECK_FALSE(has_non_finite_text(svg));
  CHECK(count(svg, "<polygon") == 2);                 // one band per panel (the NaN point ends it)
  CHECK(count(svg, "stroke-dasharray=\"8 3 2 3\"") == 2);  // one vertical line per panel
  CHECK(count(svg, ">critical batch</text>") == 1);   // one legend for the figure
  CHECK(count(svg, ">slope -1</text>") == 1);

  const std::string tex = plot::to_pgfplots(fig);
  CHECK_FALSE(has_non_finite_text(tex));
  CHECK(count(tex, "\\begin{axis}") == 2);
  CHECK(count(tex, "\\end{axis}") == 2);
  CHECK(tex.find("at={(panel0.outer east)}") != std::string::npos);
  CHECK(count(tex, "\\addlegendentry{") == 3);
  // The reference line y = 1/x, clipped exactly to the box, and the vertical line.
  const std::regex ref(R"re(color=cesrgray, dashed[^\]]*\] coordinates \{\n\(([^,]+),([^)]+)\) \(([^,]+),([^)]+)\))re");
  std::smatch m;
  REQUIRE(std::regex_search(tex, m, ref));
  for (int i : {1, 3}) CHECK(std::stod(m[i]) * std::stod(m[i + 1]) == doctest::Approx(1).epsilon(1e-6));
  CHECK(tex.find("coordinates {(3,0.1) (3,1.1") != std::string::npos);
}

TEST_CASE("pgfplots: tikzpicture/axis structure with the data inline") {
  const auto fig = one_series({1, 10, 100}, {0.5, 0.25, nan_v}, Scale::Log, Scale::Log);
  const std::string tex = plot::to_pgfplots(fig);
  const auto begin_pic = tex.find("\\begin{tikzpicture}"), begin_axis = tex.find("\\begin{axis}[");
  const auto end_axis = tex.find("\\end{axis}"), end_pic = tex.find("\\end{tikzpicture}");
  REQUIRE(begin_pic != std::string::npos);
  REQUIRE(end_pic != std::string::npos);
  CHECK(begin_pic < begin_axis);
  CHECK(begin_axis < end_axis);
  CHECK(end_axis < end_pic);
  CHECK(tex.find("xmode=log, ymode=log") != std::string::npos);
  CHECK(tex.find("xmin=1, xmax=100, ymin=0.1, ymax=1") != std::string::npos);
  CHECK(tex.find("xtick={1,10,100}") != std::string::npos);
  CHECK(tex.find("(1,0.5) (10,0.25)") != std::string::npos);
  CHECK_FALSE(has_non_finite_text(tex));
  CHECK(tex.find("\\addlegendentry{curve <A \\& B>}") != std::string::npos);
  CHECK(tex.find("xlabel={step t}") != std::string::npos);
}

TEST_CASE("figures need a panel; grids place panels row by row; --plot names end in .svg or .tex") {
  CHECK_THROWS_AS(plot::to_svg(plot::Figure{}), std::invalid_argument);
  const auto p = one_series({1}, {1}, Scale::Log, Scale::Log).panels.front();
  CHECK_THROWS_AS(plot::to_pgfplots(plot::Figure{{p}, 0}), std::invalid_argument);
  const plot::Figure grid{{p, p, p}, 2};
  const std::string svg = plot::to_svg(grid);
  CHECK(tag_balance(svg) == "");
  CHECK(svg.find("height=\"792\"") != std::string::npos);  // two rows of 396
  CHECK(count(svg, "<clipPath") == 3);
  const std::string tex = plot::to_pgfplots(grid);
  CHECK(tex.find("at={(panel0.outer east)}") != std::string::npos);
  CHECK(tex.find("at={(panel0.outer south west)}") != std::string::npos);
  CHECK(count(tex, "\\addlegendentry{") == 1);
  CHECK_THROWS_WITH_AS(plot::check_plot_path("fig.png"), doctest::Contains("--plot"), std::invalid_argument);
  CHECK_NOTHROW(plot::check_plot_path("out/fig.svg"));
  const plot::Figure f{{p}};
  CHECK(plot::render_for_file(f, "a.svg").find("<svg") != std::string::npos);
  CHECK(plot::render_for_file(f, "a.tex").find("\\begin{tikzpicture}") != std::string::npos);
}

TEST_CASE("frontier panels: serial runtime and CE against batch, critical batches, slope -1 reference") {
  std::vector<plot::FrontierCurve> curves(2);
  curves[0] = {"SGD", 0, {1, 4, 16, 64}, {1000, 260, 90, 60}, {1e-3, 9.6e-4, 6.9e-4, 2.6e-4}, 12.0, {}, plot::Stroke::Solid};
  curves[1] = {"HB", 1, {1, 4, 16, 64}, {1000, 250, 64, inf_v}, {1e-3, 1e-3, 9.8e-4, 0}, std::nullopt, {}, plot::Stroke::Dashed};
  const auto panels = plot::frontier_panels(curves, "kappa = 1e4", "steps", "CE");
  REQUIRE(panels.size() == 2);
  CHECK(panels[0].title == "kappa = 1e4: serial runtime");
  CHECK(panels[0].xscale == Scale::Log);
  CHECK(panels[1].yscale == Scale::Log);
  REQUIRE(panels[0].references.size() == 1);
  CHECK(panels[0].references[0].x0 == 1);
  CHECK(panels[0].references[0].y0 == 1000);
  CHECK(panels[0].references[0].slope == -1);
  CHECK(panels[0].vlines.size() == 1);
  CHECK(panels[1].vlines.front().x == 12.0);
  const std::string svg = plot::to_svg(plot::Figure{panels});
  CHECK(tag_balance(svg) == "");
  CHECK_FALSE(has_non_finite_text(svg));
  CHECK(svg.find(">critical batch, SGD</text>") != std::string::npos);
  // HB's infinite steps and zero CE at B = 64 are not drawn: 3 points each.
  const auto lines = polylines(svg);
  CHECK(std::count_if(lines.begin(), lines.end(), [](const auto& l) { return l.size() == 3; }) == 2);
}

TEST_CASE("simulation figure: exact curve and the simulated mean with a 2-standard-error band") {
  const std::vector<double> step{0, 10, 20, 30}, exact{1, 0.5, 0.25, 0.125}, mean{1, 0.52, 0.24, 0.13},
      se{0, 0.01, 0.02, 0.1};
  const auto fig = plot::simulation_figure(step, exact, mean, se, "check", {Scale::Linear, Scale::Log});
  REQUIRE(fig.panels.size() == 1);
  const auto& sim = fig.panels[0].series[0];
  const std::vector<double> lower{1, 0.5, 0.2, -0.07};
  REQUIRE(sim.lower.size() == 4);
  for (std::size_t i = 0; i < 4; ++i) CHECK(sim.lower[i] == doctest::Approx(lower[i]));
  CHECK(sim.upper[3] == doctest::Approx(0.33));
  const std::string svg = plot::to_svg(fig);
  CHECK(tag_balance(svg) == "");
  CHECK(count(svg, "<polygon") == 1);  // the negative lower edge is drawn at the axis bottom
  CHECK(svg.find("\u00b1 2 standard errors") != std::string::npos);
  const std::string tex = plot::to_pgfplots(fig);
  CHECK(tex.find("\\addlegendentry{simulated mean $\\pm$ 2 standard errors}") != std::string::npos);
  CHECK(tex.find("area legend") != std::string::npos);
}

// ---- End to end: cesr loss --plot / --compare-batches / --format pgfplots ----

namespace {

using cesr_test::Run;
using cesr_test::slurp;

// Runs `cesr COMMAND_LINE`; `dir` is the test's scratch folder for the files it names.
Run run_command(const std::string& command_line, const std::filesystem::path& /*dir*/) {
  return cesr_test::run_cesr(command_line);
}

Run run(const std::string& loss_args, const std::filesystem::path& dir) { return run_command("loss " + loss_args, dir); }

std::filesystem::path temp_dir() {
  auto dir = std::filesystem::temp_directory_path() /
             ("cesr_test_plot_" + std::to_string(std::random_device{}()));
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace

TEST_CASE("cesr loss --compare-batches writes a long table and one curve per batch") {
  const auto dir = temp_dir();
  const std::string problem = "--spectrum powerlaw:d=50,alpha=1.5 --method sgd --lr 0.5 --steps 40 --every 10";
  const Run multi = run(problem + " --compare-batches 1,4 --plot " + (dir / "f.svg").string(), dir);
  INFO(multi.err);
  REQUIRE(multi.code == 0);
  CHECK(multi.out.rfind("method,batch,step,loss,lr\n", 0) == 0);
  CHECK(count(multi.out, "\n") == 1 + 2 * 5);
  // The rows of batch 4 are exactly the single-run curve at --batch 4.
  const Run single = run(problem + " --batch 4", dir);
  REQUIRE(single.code == 0);
  std::istringstream in(single.out);
  std::string line;
  std::getline(in, line);
  CHECK(line == "step,loss");
  while (std::getline(in, line)) CHECK(multi.out.find("sgd,4," + line + ",0.5\n") != std::string::npos);

  const std::string svg = slurp(dir / "f.svg");
  CHECK(tag_balance(svg) == "");
  CHECK(svg.find(">B = 1</text>") != std::string::npos);
  CHECK(svg.find(">B = 4</text>") != std::string::npos);
  // semilogy (the default) keeps step 0: 5 points per curve.
  const auto lines = polylines(svg);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].size() == 5);

  const Run tex = run(problem + " --compare hb:lr=0.25,momentum=0.5 --format pgfplots --plot-scale loglog", dir);
  REQUIRE(tex.code == 0);
  CHECK(count(tex.out, "\\begin{axis}") == 1);
  CHECK(tex.out.find("xmode=log, ymode=log") != std::string::npos);
  // One method naming across figures: the registry's paper name, hyperparameters as symbols.
  CHECK(tex.out.find("\\addlegendentry{HB, $\\eta$ = 0.25, $\\beta$ = 0.5}") != std::string::npos);
  CHECK_FALSE(has_non_finite_text(tex.out));
  std::filesystem::remove_all(dir);
}

TEST_CASE("cesr loss: bad figure options exit 2 and write nothing") {
  const auto dir = temp_dir();
  const std::string base = "--method sgd --lr 0.1 --steps 10 --output " + (dir / "t.csv").string();
  CHECK(run(base + " --plot " + (dir / "f.png").string(), dir).code == 2);
  CHECK(run(base + " --plot-scale semilog", dir).code == 2);
  CHECK(run(base + " --compare-batches 1,x", dir).code == 2);
  CHECK(run(base + " --compare-batches 2 --batch 3", dir).code == 2);
  CHECK(run(base + " --compare hb:lr=0.1", dir).code == 2);
  const Run unknown_key = run(base + " --compare hb:lr=0.1,beta=0.5", dir);
  CHECK(unknown_key.code == 2);
  const std::string& err = unknown_key.err;
  CHECK(err.find("--compare hb:lr=0.1,beta=0.5: unknown key 'beta'") != std::string::npos);
  CHECK(std::count(err.begin(), err.end(), '\n') == 1);
  CHECK_FALSE(std::filesystem::exists(dir / "t.csv"));
  CHECK_FALSE(std::filesystem::exists(dir / "f.png"));
  // A diverging curve among several: exit 3, nothing written.
  CHECK(run("--method sgd --lr 5 --steps 1000 --compare-batches 1,2 --output " + (dir / "t.csv").string() +
                " --plot " + (dir / "f.svg").string(),
            dir)
            .code == 3);
  CHECK_FALSE(std::filesystem::exists(dir / "t.csv"));
  CHECK_FALSE(std::filesystem::exists(dir / "f.svg"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("cesr frontier --plot / --format pgfplots draw the table's values") {
  const auto dir = temp_dir();
  const std::string args =
      "--spectrum loguniform:d=50,kappa=1e4 --methods sgd,hb --batches 1,16,256,4096 --threads 1";
  const Run json = run_command("frontier " + args + " --format json --plot " + (dir / "f.svg").string(), dir);
  REQUIRE(json.code == 0);
  const auto parsed = nlohmann::json::parse(json.out).at(0);
  const std::string svg = slurp(dir / "f.svg");
  CHECK(tag_balance(svg) == "");
  CHECK_FALSE(has_non_finite_text(svg));
  CHECK(count(svg, "<clipPath") == 2);
  CHECK(svg.find(">SGD</text>") != std::string::npos);
  CHECK(svg.find(">HB</text>") != std::string::npos);
  CHECK(svg.find(">perfect scaling (slope \u22121)</text>") != std::string::npos);
  for (const char* m : {"sgd", "hb"})
    if (!parsed["summary"]["methods"][m]["critical_batch"].is_null())
      CHECK(svg.find(std::string(">critical batch, ") + (m[0] == 's' ? "SGD" : "HB") + "</text>") !=
            std::string::npos);

  // The pgfplots picture holds (B, 1/gap) and (B, CE) of every row, as in the JSON.
  const Run tex = run_command("frontier " + args + " --format pgfplots", dir);
  REQUIRE(tex.code == 0);
  CHECK(count(tex.out, "\\begin{axis}") == 2);
  int points = 0;
  for (const auto& row : parsed["rows"]) {
    if (row["gap"].is_null()) continue;
    const auto b = row["batch"].get<std::uint64_t>();
    const double gap = row["gap"].get<double>(), ce = row["ce"].get<double>();
    CHECK(tex.out.find(fmt::format("({},{:.7g})", b, 1 / gap)) != std::string::npos);
    CHECK(tex.out.find(fmt::format("({},{:.7g})", b, ce)) != std::string::npos);
    ++points;
  }
  CHECK(points == 8);
  CHECK(run_command("frontier " + args + " --plot " + (dir / "f.pdf").string(), dir).code == 2);
  std::filesystem::remove_all(dir);
}

TEST_CASE("cesr frontier --objective final --plot: the tuned L_T against batch, one panel per budget") {
  const auto dir = temp_dir();
  const std::string args = "--spectrum loguniform:d=30,kappa=1e3 --methods sgd,hb --batches 1,8,64 --threads 1 "
                           "--objective final --samples 2000,20000 --noise 0.01";
  const Run json = run_command("frontier " + args + " --format json --plot " + (dir / "f.svg").string(), dir);
  REQUIRE(json.code == 0);
  const auto problems = nlohmann::json::parse(json.out);
  REQUIRE(problems.size() == 2);
  const std::string svg = slurp(dir / "f.svg");
  CHECK(tag_balance(svg) == "");
  CHECK_FALSE(has_non_finite_text(svg));
  CHECK(count(svg, "<clipPath") == 2);  // one panel per budget
  CHECK(svg.find("N = 2000 samples") != std::string::npos);
  CHECK(svg.find("N = 20000 samples") != std::string::npos);
  CHECK(svg.find(">HB</text>") != std::string::npos);
  CHECK(svg.find("perfect scaling") == std::string::npos);  // no slope -1 line: the y axis is a loss

  // The pgfplots picture holds (B, L_T) of every row of both budgets, as in the
  // JSON, and a critical batch line for each method of each budget.
  const Run tex = run_command("frontier " + args + " --format pgfplots", dir);
  REQUIRE(tex.code == 0);
  CHECK(count(tex.out, "\\begin{axis}") == 2);
  int points = 0, critical = 0;
  for (const auto& p : problems) {
    for (const auto& row : p["rows"]) {
      const auto b = row["batch"].get<std::uint64_t>();
      CHECK(tex.out.find(fmt::format("({},{:.7g})", b, row["loss"].get<double>())) != std::string::npos);
      ++points;
    }
    for (const char* m : {"sgd", "hb"}) {
      const auto& c = p["summary"]["methods"][m]["critical_batch"];
      REQUIRE_FALSE(c.is_null());
      // sgd is palette colour 0, hb colour 1 (a method keeps its colour in every figure).
      const std::string line = fmt::format("color=cesr{}, dashdotted, thick, mark=none] coordinates {{({:.7g},",
                                           m[0] == 's' ? 0 : 1, c.get<double>());
      CHECK(tex.out.find(line) != std::string::npos);
      ++critical;
    }
  }
  CHECK(points == 12);
  CHECK(critical == 4);
  // The trade-off needs steps to a target.
  const Run tradeoff = run_command("frontier " + args + " --plot-kind tradeoff --plot " + (dir / "t.svg").string(), dir);
  CHECK(tradeoff.code == 2);
  CHECK(tradeoff.err.find("--plot-kind tradeoff") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir / "t.svg"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("cesr simulate --plot: exact curve, simulated mean and its 2-standard-error band") {
  const auto dir = temp_dir();
  const std::string args = "--spectrum loguniform:d=20,kappa=100 --method sgd --lr 0.2 --batch 2 --steps 60 "
                           "--every 6 --runs 300 --seed 3 --threads 1";
  const Run csv = run_command("simulate " + args + " --plot " + (dir / "s.svg").string(), dir);
  REQUIRE(csv.code == 0);
  CHECK(csv.out.rfind("step,theory,mean,stderr,z,judged_by\n", 0) == 0);
  const std::string svg = slurp(dir / "s.svg");
  CHECK(tag_balance(svg) == "");
  CHECK(count(svg, "<polygon") == 1);
  CHECK(svg.find("simulated mean \u00b1 2 standard errors") != std::string::npos);
  CHECK(svg.find(">exact expected loss</text>") != std::string::npos);
  const Run tex = run_command("simulate " + args + " --format pgfplots --plot-scale loglog", dir);
  REQUIRE(tex.code == 0);
  CHECK(tex.out.find("xmode=log, ymode=log") != std::string::npos);
  CHECK(count(tex.out, "-- cycle;") == 1);
  // The exact curve's points are the theory column of the CSV.
  std::istringstream in(csv.out);
  std::string line;
  std::getline(in, line);
  int checked = 0;
  while (std::getline(in, line)) {
    const auto c1 = line.find(','), c2 = line.find(',', c1 + 1);
    const std::string step = line.substr(0, c1);
    if (step == "0") continue;  // not on a log step axis
    const double theory = std::stod(line.substr(c1 + 1, c2 - c1 - 1));
    CHECK(tex.out.find(fmt::format("({},{:.7g})", step, theory)) != std::string::npos);
    ++checked;
  }
  CHECK(checked == 10);
  CHECK(run_command("simulate " + args + " --plot-scale log", dir).code == 2);
  std::filesystem::remove_all(dir);
}

TEST_CASE("--plot into a missing folder fails at parse time: exit 2, one line naming --plot, nothing written") {
  const auto dir = temp_dir();
  const std::string output = " --output " + (dir / "t.txt").string();
  const std::string bad_plot = " --plot /nonexistent_cesr_folder/x.svg";
  const std::string commands[] = {
      "loss --spectrum loguniform:d=10,kappa=100 --method sgd --lr 0.5 --steps 20",
      "simulate --spectrum loguniform:d=10,kappa=100 --method sgd --lr 0.5 --steps 20 --runs 10 --seed 1 "
      "--threads 1",
      "frontier --methods sgd --batches 1,4 --spectrum loguniform:d=10,kappa=100 --threads 1",
  };
  for (const std::string& command : commands) {
    const Run r = run_command(command + output + bad_plot, dir);
    INFO(command);
    INFO(r.err);
    CHECK(r.code == 2);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK(r.err.find("--plot") != std::string::npos);
    CHECK(r.err.find("/nonexistent_cesr_folder/x.svg") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir / "t.txt"));
    // A name without .svg/.tex is refused the same way.
    const Run ext = run_command(command + output + " --plot " + (dir / "f.png").string(), dir);
    CHECK(ext.code == 2);
    CHECK(std::count(ext.err.begin(), ext.err.end(), '\n') == 1);
    CHECK(ext.err.find("--plot") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir / "t.txt"));
    CHECK_FALSE(std::filesystem::exists(dir / "f.png"));
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("trade-off panel: (B * steps, steps) per row, the critical batch ringed on the curve") {
  plot::FrontierCurve c;
  c.name = "SGD";
  c.batch = {1, 4, 16, 64};
  c.steps = {1000, 260, 90, inf_v};  // the last row did not reach the target
  c.critical_batch = 8.0;
  const plot::Panel p = plot::tradeoff_panel({c}, "");
  REQUIRE(p.series.size() == 2);
  CHECK(p.series[0].x == std::vector<double>{1000, 1040, 1440, inf_v});
  CHECK(p.series[0].y == std::vector<double>{1000, 260, 90, inf_v});
  // At B = 8, halfway between 4 and 16 in log B: steps sqrt(260 * 90) (log-linear), samples 8 times that.
  const auto& ring = p.series[1];
  CHECK(ring.ring);
  CHECK_FALSE(ring.line);
  CHECK(ring.name == "critical batch, SGD");
  REQUIRE(ring.y.size() == 1);
  CHECK(ring.y[0] == doctest::Approx(std::sqrt(260.0 * 90.0)).epsilon(1e-14));
  CHECK(ring.x[0] == doctest::Approx(8 * std::sqrt(260.0 * 90.0)).epsilon(1e-14));
  // On a row, its own point; beyond the drawable rows, none.
  CHECK((*plot::tradeoff_point(c, 4))[1] == 260);
  CHECK_FALSE(plot::tradeoff_point(c, 32).has_value());
  CHECK_FALSE(plot::tradeoff_point(c, 0.5).has_value());
  const std::string svg = plot::to_svg(plot::Figure{{p}, 1});
  CHECK(tag_balance(svg) == "");
  CHECK(count(svg, R"(r="7")") == 2);  // the ring and its legend entry
  CHECK_FALSE(has_non_finite_text(svg));
}

TEST_CASE("labels: title, axis labels once or per column, legend inside a corner or none") {
  plot::Panel p;
  p.title = "default";
  p.xlabel_tex = "step $t$";
  plot::Series s;
  s.name = "curve";
  s.x = {1, 2, 3};
  s.y = {3, 2, 1};
  p.series.push_back(s);
  plot::Figure two{{p, p, p, p}};
  plot::Labels l;
  l.title = "Both";
  l.xlabel = {"left", "right"};
  l.ylabel = {"y"};
  l.legend = plot::LegendPlace::NorthWest;
  plot::apply_labels(two, l);
  CHECK(two.title == "Both");
  CHECK(two.panels[0].title == "default");  // several panels keep their own titles
  CHECK(two.panels[2].xlabel == "left");
  CHECK(two.panels[3].xlabel == "right");
  CHECK(two.panels[3].xlabel_tex.empty());  // the user's words replace the LaTeX default
  CHECK(two.panels[1].ylabel == "y");
  const std::string svg = plot::to_svg(two);
  CHECK(tag_balance(svg) == "");
  CHECK(svg.find(">Both</text>") != std::string::npos);
  CHECK(svg.find(R"(width="1092")") != std::string::npos);  // no room taken right of the panels
  plot::Labels three;
  three.xlabel = {"a", "b", "c"};
  CHECK_THROWS_AS(plot::apply_labels(two, three), std::invalid_argument);
  plot::Figure one{{p}, 1};
  plot::Labels t;
  t.title = "Mine";
  t.legend = plot::LegendPlace::None;
  plot::apply_labels(one, t);
  CHECK(one.panels[0].title == "Mine");
  CHECK(plot::to_svg(one).find(">curve</text>") == std::string::npos);
  CHECK(plot::to_pgfplots(one).find("\\addlegendentry") == std::string::npos);
  CHECK(plot::parse_legend_place("southeast") == plot::LegendPlace::SouthEast);
  CHECK_THROWS_AS(plot::parse_legend_place("left"), std::invalid_argument);
}
