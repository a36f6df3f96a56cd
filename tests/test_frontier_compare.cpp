// End-to-end: comparisons in one `cesr frontier` run. Several --spectrum give
// the same rows as separate runs; --init pairs with them; a fixed
// hyperparameter gives what `cesr tune` gives with it fixed; the CSV forms
// (rows and summary) hold the JSON's values; the trade-off figure draws
// (B * steps, steps) of the table with the critical batch on the curve.
#include <doctest/doctest.h>

#include "cesr_run.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace {

using cesr_test::Run;
Run cesr(const std::string& args) { return cesr_test::run_cesr(args); }

const std::string a = "loguniform:d=30,kappa=1e3";
const std::string b = "powerlaw:d=30,alpha=1.5";
const std::string sweep = " --methods sgd,hb --batches 1,16,256 --threads 1";
// The exact steps to a target depend on the initial moments (the rate does not).
const std::string steps_sweep = sweep + " --objective steps --target 1e-4 --relative";

nlohmann::json json_of(const Run& r) {
  REQUIRE(r.code == 0);
  return nlohmann::json::parse(r.out);
}

std::vector<std::string> split(const std::string& line, char sep = ',') {
  std::vector<std::string> out;
  std::stringstream ss(line);
  std::string cell;
  while (std::getline(ss, cell, sep)) out.push_back(cell);
  if (!line.empty() && line.back() == sep) out.emplace_back();
  return out;
}

/// CSV text as rows of cells (no quoting expected: the test fails on a quote).
std::vector<std::vector<std::string>> csv(const std::string& text) {
  CHECK(text.find('"') == std::string::npos);
  std::vector<std::vector<std::string>> out;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) out.push_back(split(line));
  return out;
}

}  // namespace

TEST_CASE("frontier --spectrum A --spectrum B: one list, each problem equal to its own run row by row") {
  const auto both = json_of(cesr("frontier --spectrum " + a + " --spectrum " + b + sweep + " --format json"));
  const auto only_a = json_of(cesr("frontier --spectrum " + a + sweep + " --format json"));
  const auto only_b = json_of(cesr("frontier --spectrum " + b + sweep + " --format json"));
  REQUIRE(both.is_array());
  REQUIRE(both.size() == 2);
  REQUIRE(only_a.size() == 1);
  CHECK(both[0] == only_a[0]);  // problem, every row and the summary
  CHECK(both[1] == only_b[0]);
  CHECK(both[0]["problem"]["spectrum"] == a);
  CHECK(both[1]["problem"]["spectrum"] == b);
  CHECK(both[0]["rows"].size() == 6);

  // The text table has one section per problem, the figure two panels per problem.
  const Run table = cesr("frontier --spectrum " + a + " --spectrum " + b + sweep);
  REQUIRE(table.code == 0);
  CHECK(table.out.find("== " + a + " ==") != std::string::npos);
  CHECK(table.out.find("== " + b + " ==") != std::string::npos);
  const Run tex = cesr("frontier --spectrum " + a + " --spectrum " + b + sweep + " --format pgfplots");
  REQUIRE(tex.code == 0);
  std::size_t axes = 0;
  for (auto at = tex.out.find("\\begin{axis}"); at != std::string::npos; at = tex.out.find("\\begin{axis}", at + 1))
    ++axes;
  CHECK(axes == 4);
  // Titles in a paper's words, not the raw spectrum text.
  CHECK(tex.out.find("title={log-uniform spectrum, d = 30, $\\kappa$ = 1e3: serial runtime}") != std::string::npos);
  CHECK(tex.out.find("title={power-law spectrum, d = 30, $\\alpha$ = 1.5: compute efficiency}") != std::string::npos);
}

TEST_CASE("frontier --init: once for every problem, or once per --spectrum in order; otherwise exit 2") {
  const std::string init = "powerlaw:beta=1";
  const auto paired = json_of(
      cesr("frontier --spectrum " + a + " --spectrum " + b + " --init isotropic --init " + init + steps_sweep + " --format json"));
  const auto b_alone = json_of(cesr("frontier --spectrum " + b + " --init " + init + steps_sweep + " --format json"));
  const auto a_alone = json_of(cesr("frontier --spectrum " + a + steps_sweep + " --format json"));
  REQUIRE(paired.size() == 2);
  CHECK(paired[0] == a_alone[0]);
  CHECK(paired[1] == b_alone[0]);
  CHECK(paired[1]["problem"]["init"] == init);
  // The init changes the answer (a test of the pairing, not of a no-op).
  CHECK(paired[1]["rows"] != json_of(cesr("frontier --spectrum " + b + steps_sweep + " --format json"))[0]["rows"]);

  const auto once = json_of(cesr("frontier --spectrum " + a + " --spectrum " + b + " --init " + init + steps_sweep +
                                 " --format json"));
  CHECK(once[0]["problem"]["init"] == init);
  CHECK(once[1] == b_alone[0]);

  const Run three = cesr("frontier --spectrum " + a + " --spectrum " + b + " --init isotropic --init " + init +
                         " --init isotropic" + steps_sweep);
  CHECK(three.code == 2);
  CHECK(three.err.find("--init") != std::string::npos);
  CHECK(std::count(three.err.begin(), three.err.end(), '\n') == 1);
  CHECK(three.out.empty());
}

TEST_CASE("frontier --momentum 0.9: heavy ball tuned with it fixed equals cesr tune --momentum 0.9 at each batch") {
  const auto fixed = json_of(cesr("frontier --spectrum " + a + sweep + " --momentum 0.9 --format json"))[0];
  const auto free = json_of(cesr("frontier --spectrum " + a + sweep + " --format json"))[0];
  int hb_rows = 0;
  for (std::size_t i = 0; i < fixed["rows"].size(); ++i) {
    const auto& row = fixed["rows"][i];
    const std::string method = row["method"];
    const auto batch = row["batch"].get<std::uint64_t>();
    CAPTURE(method);
    CAPTURE(batch);
    if (method == "sgd") {
      CHECK(row == free["rows"][i]);  // sgd has no momentum: untouched
      continue;
    }
    ++hb_rows;
    CHECK(row["params"]["momentum"].get<double>() == 0.9);
    const auto t = json_of(cesr(fmt::format("tune --spectrum {} --method hb --batch {} --momentum 0.9", a, batch)));
    CHECK(t["params"]["momentum"].get<double>() == 0.9);
    CHECK(row["params"]["lr"].get<double>() == doctest::Approx(t["params"]["lr"].get<double>()).epsilon(1e-15));
    CHECK(row["gap"].get<double>() == doctest::Approx(t["gap"].get<double>()).epsilon(1e-15));
    CHECK(row["steps"] == t["steps"]);
    // Fixing beta at 0.9 is no better than tuning it.
    CHECK(row["gap"].get<double>() <= free["rows"][i]["gap"].get<double>() * (1 + 1e-9));
  }
  CHECK(hb_rows == 3);

  // A fixed hyperparameter that none of the methods has: exit 2 naming it.
  const Run none = cesr("frontier --spectrum " + a + " --methods sgd --batches 1,4 --momentum 0.9");
  CHECK(none.code == 2);
  CHECK(none.err.find("--momentum") != std::string::npos);
  CHECK(std::count(none.err.begin(), none.err.end(), '\n') == 1);
  // A bad value is named too.
  const Run bad = cesr("frontier --spectrum " + a + " --methods hb --batches 1,4 --momentum 1.5");
  CHECK(bad.code == 2);
  CHECK(bad.err.find("--momentum") != std::string::npos);
  // A fixed lr applies to every method that has one.
  const auto lr = json_of(cesr("frontier --spectrum " + a + " --methods sgd,hb --batches 1,4 --lr 0.1 --format json"))[0];
  for (const auto& row : lr["rows"]) CHECK(row["params"]["lr"].get<double>() == 0.1);
}

TEST_CASE("frontier CSV: rows and --table summary hold the JSON's values, no quoted commas, one table each") {
  const std::string both = "frontier --spectrum " + a + " --spectrum " + b + sweep;
  const auto j = json_of(cesr(both + " --format json"));
  const Run rows = cesr(both + " --format csv");
  REQUIRE(rows.code == 0);
  const auto r = csv(rows.out);
  REQUIRE(r.size() == 1 + 12);
  CHECK(r[0] == std::vector<std::string>{"problem", "spectrum", "init", "method", "batch", "gap", "steps", "ce", "lr",
                                         "momentum"});
  for (std::size_t i = 1; i < r.size(); ++i) {
    REQUIRE(r[i].size() == r[0].size());
    const std::size_t p = std::stoul(r[i][0]) - 1, k = (i - 1) % 6;
    const auto& row = j[p]["rows"][k];
    CHECK(r[i][1] == (p == 0 ? "loguniform:d=30;kappa=1e3" : "powerlaw:d=30;alpha=1.5"));
    CHECK(r[i][3] == row["method"]);
    CHECK(std::stod(r[i][4]) == row["batch"].get<double>());
    CHECK(std::stod(r[i][5]) == row["gap"].get<double>());
    CHECK(std::stod(r[i][8]) == row["params"]["lr"].get<double>());
  }
  const Run summary = cesr(both + " --format csv --table summary");
  REQUIRE(summary.code == 0);
  const auto s = csv(summary.out);
  REQUIRE(s.size() == 1 + 4);
  CHECK(s[0] == std::vector<std::string>{"problem", "spectrum", "init", "method", "best_ce", "best_ce_batch",
                                         "critical_batch", "mccandlish_batch", "window_ratio", "sqrt_kappa",
                                         "trace_over_max", "kappa"});
  for (std::size_t i = 1; i < s.size(); ++i) {
    const std::size_t p = std::stoul(s[i][0]) - 1;
    const auto& m = j[p]["summary"]["methods"][s[i][3]];
    CHECK(std::stod(s[i][4]) == m["best_ce"].get<double>());
    if (m["critical_batch"].is_null()) CHECK(s[i][6] == "nan");
    else CHECK(std::stod(s[i][6]) == m["critical_batch"].get<double>());
    CHECK(std::stod(s[i][8]) == j[p]["summary"]["window_ratio"].get<double>());
    CHECK(std::stod(s[i][11]) == j[p]["summary"]["kappa"].get<double>());
  }
  // A CSV holds one table; json has no --table.
  for (const char* args : {" --format csv --table both", " --format json --table rows", " --table everything"}) {
    const Run bad = cesr(both + args);
    CAPTURE(args);
    CHECK(bad.code == 2);
    CHECK(bad.err.find("--table") != std::string::npos);
  }
  // The text formats show the table asked for.
  const Run only_summary = cesr("frontier --spectrum " + a + sweep + " --table summary");
  REQUIRE(only_summary.code == 0);
  CHECK(only_summary.out.find("best_ce") != std::string::npos);
  CHECK(only_summary.out.find("gap") == std::string::npos);
}

TEST_CASE("frontier --plot-kind tradeoff: (B * steps, steps) of every row, the critical batch ringed on its curve") {
  const std::string args = "frontier --spectrum " + a + " --methods sgd,hb --batches 1:4096:x4 --objective steps "
                           "--target 1e-4 --relative --threads 1";
  const auto j = json_of(cesr(args + " --format json"))[0];
  const Run tex = cesr(args + " --format pgfplots --plot-kind tradeoff");
  REQUIRE(tex.code == 0);
  CHECK(tex.out.find("xlabel={samples processed ($B \\cdot$ steps)}") != std::string::npos);
  CHECK(tex.out.find("ylabel={serial runtime (steps)}") != std::string::npos);
  int points = 0;
  for (const auto& row : j["rows"]) {
    const double batch = row["batch"].get<double>(), steps = row["steps"].get<double>();
    CHECK(tex.out.find(fmt::format("({:.7g},{:.7g})", batch * steps, steps)) != std::string::npos);
    ++points;
  }
  CHECK(points == 14);
  // Each ring (an only-marks plot of one point) sits on its method's curve at
  // its critical batch: samples / steps = B_crit, steps between its neighbours'.
  const std::regex ring(R"(\\addplot\[forget plot, color=cesr(\d), solid, thick, mark=o[^\]]*only marks\] coordinates \{\n\(([^,]+),([^)]+)\))");
  int rings = 0;
  for (std::sregex_iterator it(tex.out.begin(), tex.out.end(), ring), end; it != end; ++it) {
    const double samples = std::stod((*it)[2]), steps = std::stod((*it)[3]);
    const std::string method = (*it)[1] == "0" ? "sgd" : "hb";  // colours follow the registry order
    const double crit = j["summary"]["methods"][method]["critical_batch"].get<double>();
    CHECK(samples / steps == doctest::Approx(crit).epsilon(1e-6));
    double below = 0, above = 0;
    for (const auto& row : j["rows"])
      if (row["method"] == method) {
        if (row["batch"].get<double>() <= crit) below = row["steps"].get<double>();
        if (above == 0 && row["batch"].get<double>() >= crit) above = row["steps"].get<double>();
      }
    CHECK(steps <= below * (1 + 1e-6));
    CHECK(steps >= above * (1 - 1e-6));
    ++rings;
  }
  CHECK(rings == 2);
  CHECK(tex.out.find("\\addlegendentry{critical batch, SGD}") != std::string::npos);
  // Without a figure the kind has nothing to apply to.
  const Run alone = cesr(args + " --plot-kind tradeoff");
  CHECK(alone.code == 2);
  CHECK(alone.err.find("--plot-kind") != std::string::npos);
}

TEST_CASE("figure options: --title, --xlabel/--ylabel once or per column, --legend placement; bad ones exit 2") {
  const std::string args = "frontier --spectrum " + a + " --methods sgd --batches 1,16 --threads 1 --format pgfplots";
  const Run labelled = cesr(args + " --title Comparison --xlabel 'batch B' --ylabel steps --ylabel efficiency "
                                   "--legend southwest");
  REQUIRE(labelled.code == 0);
  CHECK(labelled.out.find("{Comparison};") != std::string::npos);  // above the panels
  CHECK(labelled.out.find("xlabel={batch B}") != std::string::npos);
  CHECK(labelled.out.find("ylabel={steps}") != std::string::npos);
  CHECK(labelled.out.find("ylabel={efficiency}") != std::string::npos);
  CHECK(labelled.out.find("at={(0.03,0.03)}, anchor=south west") != std::string::npos);
  const Run none = cesr(args + " --legend none");
  REQUIRE(none.code == 0);
  CHECK(none.out.find("\\addlegendentry") == std::string::npos);
  for (const char* bad : {" --ylabel a --ylabel b --ylabel c", " --legend middle"}) {
    const Run r = cesr(args + bad);
    CAPTURE(bad);
    CHECK(r.code == 2);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK(r.err.find(std::string(bad).substr(1, 8)) != std::string::npos);
  }
  // Without a figure they have nothing to apply to.
  for (const char* cmd : {"frontier --spectrum loguniform:d=30,kappa=1e3 --methods sgd --batches 1,16 --title T",
                          "loss --method sgd --lr 0.1 --steps 5 --legend none",
                          "simulate --method sgd --lr 0.1 --steps 5 --runs 2 --xlabel x"}) {
    const Run r = cesr(cmd);
    CAPTURE(cmd);
    CHECK(r.code == 2);
    CHECK(r.err.find("applies to the figure") != std::string::npos);
  }
  // One panel: --title is its title; loss and simulate take the same options.
  const Run loss = cesr("loss --spectrum " + a + " --method hb --lr 0.1 --momentum 0.5 --steps 20 --format pgfplots "
                        "--title 'My run' --legend northeast");
  REQUIRE(loss.code == 0);
  CHECK(loss.out.find("title={My run}") != std::string::npos);
  CHECK(loss.out.find("at={(0.97,0.97)}, anchor=north east") != std::string::npos);
  const Run sim = cesr("simulate --spectrum " + a + " --method sgd --lr 0.1 --steps 10 --runs 20 --seed 1 --threads 1 "
                       "--format pgfplots --xlabel iteration");
  REQUIRE(sim.code == 0);
  CHECK(sim.out.find("xlabel={iteration}") != std::string::npos);
  CHECK(sim.out.find("title={SGD, $\\eta$ = 0.1, B = 1, 20 runs}") != std::string::npos);
}

TEST_CASE("loss figure: 3+ batch sizes differ in dash as well as colour") {
  const Run tex = cesr("loss --spectrum " + a + " --method sgd --lr 0.5 --steps 20 --compare-batches 1,2,4,8,16 "
                       "--format pgfplots");
  REQUIRE(tex.code == 0);
  std::vector<std::string> styles;
  const std::regex plot(R"(\\addlegendimage\{([^\n]*)\}\n\\addlegendentry\{B = )");
  for (std::sregex_iterator it(tex.out.begin(), tex.out.end(), plot), end; it != end; ++it) {
    std::string style = (*it)[1];
    style = style.substr(style.find(',') + 1);  // without the colour: distinguishable in gray
    styles.push_back(style);
  }
  REQUIRE(styles.size() == 5);
  std::vector<std::string> sorted = styles;
  std::sort(sorted.begin(), sorted.end());
  CHECK(std::unique(sorted.begin(), sorted.end()) == sorted.end());
}

TEST_CASE("frontier figure: methods differ in dash as well as colour, the same in every panel") {
  const Run tex = cesr("frontier --spectrum " + a + " --spectrum " + b +
                       " --methods sgd,hb,asgd --batches 1,16 --threads 1 --format pgfplots");
  REQUIRE(tex.code == 0);
  std::vector<std::string> styles;
  for (const char* name : {"SGD", "HB", "AccSGD"}) {
    const std::regex entry(std::string(R"(\\addlegendimage\{color=cesr\d, ([a-z]+),[^\n]*\}\n\\addlegendentry\{)") +
                           name + "\\}");
    std::smatch m;
    REQUIRE(std::regex_search(tex.out, m, entry));
    styles.push_back(m[1]);
  }
  CHECK(styles == std::vector<std::string>{"solid", "dashed", "dotted"});
  // Every drawn curve of a method carries its dash (4 panels: serial and CE of two problems).
  std::size_t dashed = 0;
  for (auto at = tex.out.find("% HB\n"); at != std::string::npos; at = tex.out.find("% HB\n", at + 1)) {
    CHECK(tex.out.compare(tex.out.find("color=", at), 21, "color=cesr1, dashed, ") == 0);
    ++dashed;
  }
  CHECK(dashed == 4);
}
