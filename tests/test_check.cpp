// cesr check: reading curves, the corrected z threshold, verdicts, and the
// command end to end (accepts simulator output of every method, rejects a
// learning rate off by 10%, malformed files are exit 2 naming the line).
#include <doctest/doctest.h>

#include "cesr_run.hpp"

#include "cesr/check.hpp"

#include <boost/math/distributions/normal.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

TEST_CASE("Sidak threshold: n simultaneous two-sided tests at family-wise level alpha") {
  const boost::math::normal phi;
  CHECK(cesr::sidak_threshold(1, 0.05) == doctest::Approx(1.959963984540054).epsilon(1e-12));
  for (const std::size_t n : {1u, 2u, 10u, 200u, 100000u})
    for (const double alpha : {1e-1, 1e-3, 1e-6}) {
      const double z = cesr::sidak_threshold(n, alpha);
      // Independent route: the normal cdf. P(all |Z_i| <= z) = (1 - 2 Phi(-z))^n = 1 - alpha.
      const double tail = 2 * boost::math::cdf(boost::math::complement(phi, z));
      CHECK(-std::expm1(double(n) * std::log1p(-tail)) == doctest::Approx(alpha).epsilon(1e-9));
      // Never above Bonferroni's (conservative) threshold, and close to it.
      const double bonferroni = boost::math::quantile(boost::math::complement(phi, alpha / (2.0 * double(n))));
      CHECK(z <= bonferroni);
      CHECK(z > bonferroni - 0.05);
    }
  CHECK(std::isinf(cesr::sidak_threshold(0, 0.01)));
  CHECK_THROWS_AS(cesr::sidak_threshold(3, 1.0), std::invalid_argument);
}

TEST_CASE("parse_curve_csv: columns by name, extra columns, any order, optional stderr") {
  const auto c = cesr::parse_curve_csv(
      "# from a PyTorch run\n"
      "run,loss,note,step,stderr\n"
      "a,0.5,x,10,0.01\n"
      "\n"
      "a,1.0,y,0,\n"
      "a,0.25,z,1000,0.002\r\n",
      "f.csv");
  REQUIRE(c.step.size() == 3);
  CHECK(c.step == std::vector<std::uint64_t>{10, 0, 1000});
  CHECK(c.loss == std::vector<double>{0.5, 1.0, 0.25});
  CHECK(c.has_std_error_column);
  CHECK(c.std_error[0] == 0.01);
  CHECK_FALSE(c.std_error[1].has_value());
  CHECK(c.std_error[2] == 0.002);
  CHECK(c.line == std::vector<std::size_t>{3, 5, 6});
  // cesr simulate's own columns: the observed loss is `mean`.
  const auto s = cesr::parse_curve_csv("step,theory,mean,stderr,z\n0,1,1,0,\n5,0.5,0.51,0.01,1\n", "sim.csv");
  CHECK(s.loss == std::vector<double>{1, 0.51});
  const auto n = cesr::parse_curve_csv("step,loss\n0,1\n3,0.5\n", "n.csv");
  CHECK_FALSE(n.has_std_error_column);
  CHECK_FALSE(n.std_error[0].has_value());
}

TEST_CASE("check_curve: z rows against the corrected threshold, other rows against rtol") {
  cesr::CheckOptions opt;
  const std::vector<double> theory{1.0, 0.5, 0.2, 0.1};
  // Row 0 has no stderr (relative 1% < 5%), row 1 stderr 0 (relative), rows 2-3 z = 1, -2.
  const std::vector<std::optional<double>> se{std::nullopt, 0.0, 0.001, 0.002};
  auto rep = cesr::check_curve({1.01, 0.51, 0.201, 0.096}, se, theory, opt);
  CHECK(rep.agree);
  CHECK(rep.z_rows == 2);
  CHECK(rep.rtol_rows == 2);
  CHECK(rep.zmax == doctest::Approx(cesr::sidak_threshold(2, 1e-3)));
  CHECK(*rep.rows[2].z == doctest::Approx(1.0));
  CHECK(*rep.rows[3].z == doctest::Approx(-2.0));
  CHECK(rep.rows[0].rel_error == doctest::Approx(0.01));
  CHECK(rep.max_abs_z == doctest::Approx(2.0));
  // z = 5 fails (threshold ~3.5 for 2 rows); a 6% deviation without stderr fails rtol.
  rep = cesr::check_curve({1.06, 0.51, 0.205, 0.096}, se, theory, opt);
  CHECK_FALSE(rep.agree);
  CHECK(rep.failed == 2);
  CHECK(rep.worst[0] == 2);  // |z|/z* = 5/3.48 beats 0.06/0.05
  CHECK(rep.worst[1] == 0);
  opt.zmax = 6;
  CHECK(cesr::check_curve({1.0, 0.5, 0.205, 0.1}, se, theory, opt).agree);
  opt.rtol = 0;
  CHECK_THROWS_AS(cesr::check_curve({1.0}, {std::nullopt}, {1.0}, opt), std::invalid_argument);
}

// ---------------------------------------------------------------- end to end

namespace {

/// The end-to-end cases write files with relative names: run them in a private
/// scratch folder (removed at exit), wherever the test is started from.
const cesr_test::ScratchWorkingDirectory scratch("cesr_test_check");

using cesr_test::Run;
using cesr_test::slurp;
Run cesr_run(const std::string& args) { return cesr_test::run_cesr(args); }

void write(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

std::string problem(const std::string& method) {
  const std::string base = "--spectrum powerlaw:d=20,alpha=1.3 --init powerlaw:beta=0.5 --batch 4 ";
  if (method == "sgd") return base + "--method sgd --lr {LR}";
  if (method == "hb") return base + "--method hb --lr {LR} --momentum 0.6";
  if (method == "nag") return base + "--method nag --lr {LR} --momentum 0.6";
  return base + "--method asgd --lr {LR} --kappa 30 --xi 2";
}

std::string with_lr(std::string s, double lr) {
  const auto at = s.find("{LR}");
  return s.replace(at, 4, std::to_string(lr));
}

}  // namespace

TEST_CASE("cesr check accepts a correct simulation of every method and rejects lr x 1.1") {
  for (const std::string m : {"sgd", "hb", "nag", "asgd"}) {
    const double lr = m == "sgd" ? 0.6 : 0.3;
    const std::string sim = "simulate --steps 100 --every 10 --runs 3000 --seed 11 ";
    const Run good = cesr_run(sim + with_lr(problem(m), lr) + " --output check_good.csv");
    const Run bad = cesr_run(sim + with_lr(problem(m), 1.1 * lr) + " --output check_bad.csv");
    REQUIRE(good.code == 0);
    REQUIRE(bad.code == 0);
    const Run accept = cesr_run("check --input check_good.csv " + with_lr(problem(m), lr));
    const Run reject = cesr_run("check --input check_bad.csv " + with_lr(problem(m), lr));
    INFO(m, "\naccept: ", accept.err, "reject: ", reject.err);
    CHECK(accept.code == 0);
    CHECK(accept.err.find("agree") != std::string::npos);
    CHECK(reject.code == 1);
    CHECK(reject.err.find("disagree") != std::string::npos);
    CHECK(reject.err.find("line ") != std::string::npos);  // worst rows are named
    // The per-row table carries the theory, relative error, z and verdict.
    CHECK(reject.out.find("FAIL") != std::string::npos);
    MESSAGE(m, ": ", accept.err, m, ": ", reject.err.substr(0, reject.err.find('\n')));
  }
}

TEST_CASE("cesr check without stderr uses the relative tolerance") {
  const std::string p = with_lr(problem("hb"), 0.3);
  REQUIRE(cesr_run("simulate --steps 100 --every 10 --runs 3000 --seed 3 " + p + " --output check_sim.csv").code == 0);
  REQUIRE(cesr_run("simulate --steps 100 --every 10 --runs 3000 --seed 3 " + with_lr(problem("hb"), 0.33) +
                   " --output check_sim_bad.csv").code == 0);
  // Keep step and mean only, as a loss curve from elsewhere would look.
  auto strip = [](const std::string& csv) {
    std::istringstream in(csv);
    std::string line, out = "step,loss\n";
    std::getline(in, line);
    while (std::getline(in, line)) {
      const auto c1 = line.find(','), c2 = line.find(',', c1 + 1), c3 = line.find(',', c2 + 1);
      out += line.substr(0, c1) + "," + line.substr(c2 + 1, c3 - c2 - 1) + "\n";
    }
    return out;
  };
  write("check_plain.csv", strip(slurp("check_sim.csv")));
  write("check_plain_bad.csv", strip(slurp("check_sim_bad.csv")));
  const Run ok = cesr_run("check --input check_plain.csv " + p);
  const Run no = cesr_run("check --input check_plain_bad.csv " + p);
  INFO(ok.err, no.err);
  CHECK(ok.code == 0);
  CHECK(ok.err.find("by relative error <= 0.05") != std::string::npos);
  CHECK(no.code == 1);
  CHECK(cesr_run("check --input check_plain_bad.csv --rtol 0.5 " + p).code == 0);
  const Run json = cesr_run("check --input check_plain.csv --format json " + p);
  CHECK(json.code == 0);
  CHECK(json.out.find("\"rel_error\"") != std::string::npos);
}

TEST_CASE("cesr check: malformed files are exit 2 naming the line") {
  const std::string p = with_lr(problem("sgd"), 0.5);
  const std::vector<std::pair<std::string, std::string>> cases{
      {"", "empty file"},
      {"\n\n", "empty file"},
      {"0,1.0\n1,0.5\n", "line 1: missing header"},
      {"step,value\n0,1.0\n", "line 1: the header has no 'loss' column"},
      {"iteration,loss\n0,1.0\n", "line 1: the header has no 'step' column"},
      {"step,loss\n0,1.0\n1,abc\n", "line 3: loss 'abc' is not a finite number"},
      {"step,loss\n0,1.0\nx,0.5\n", "line 3: step 'x' is not a finite number"},
      {"step,loss\n0,1.0\n-5,0.5\n", "line 3: negative step -5"},
      {"step,loss\n0,1.0\n2.5,0.5\n", "line 3: step 2.5 is not a whole number"},
      {"step,loss\n0,1.0\n4,0.5\n\n4,0.4\n", "line 5: duplicated step 4 (first on line 3)"},
      {"step,loss\n0,1.0\n4,0.5,7\n", "line 3: 3 fields where the header has 2"},
      {"step,loss,stderr\n0,1.0,-0.1\n", "line 2: negative stderr"},
      {"step,loss\n0,nan\n", "line 2: loss 'nan' is not a finite number"},
      {"step,loss\n0,-1\n", "line 2: negative loss"},
      {"step,loss,step\n0,1,0\n", "line 1: column 'step' appears twice"},
      {"step,loss\n", "no data rows"},
  };
  for (const auto& [text, expect] : cases) {
    write("check_malformed.csv", text);
    const Run r = cesr_run("check --input check_malformed.csv " + p + " --output check_never.csv");
    INFO("file: '", text, "' -> ", r.err);
    CHECK(r.code == 2);
    CHECK(r.err.find("--input") != std::string::npos);
    CHECK(r.err.find(expect) != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK(r.out.empty());
    CHECK_FALSE(std::ifstream("check_never.csv").good());
  }
  const Run missing = cesr_run("check --input no_such_file.csv " + p);
  CHECK(missing.code == 2);
  CHECK(missing.err.find("no_such_file.csv") != std::string::npos);
  std::filesystem::create_directories("check_a_folder");
  const Run folder = cesr_run("check --input check_a_folder " + p);
  CHECK(folder.code == 2);
  CHECK(folder.err.find("--input: 'check_a_folder' is a folder, not a file") != std::string::npos);
  write("check_ok.csv", "step,loss\n0,1\n");
  for (const std::string flag : {"--rtol 0", "--rtol -1", "--alpha 1", "--zmax 0"}) {
    const Run r = cesr_run("check --input check_ok.csv " + p + " " + flag);
    INFO(flag, " -> ", r.err);
    CHECK(r.code == 2);
    CHECK(r.err.find(flag.substr(0, flag.find(' '))) != std::string::npos);
  }
}

TEST_CASE("cesr check: a diverging method is exit 3") {
  write("check_div.csv", "step,loss\n0,1\n5000,1\n");
  const Run r = cesr_run("check --input check_div.csv --spectrum powerlaw:d=4,alpha=1 --method sgd --lr 4");
  CHECK(r.code == 3);
  CHECK(r.err.find("diverges") != std::string::npos);
}

TEST_CASE("check_curve: a standard error below the curves' resolution does not fail a correct row") {
  // At step 0 every run has the same loss: PyTorch wrote stderr 3.8e-17 next to
  // a relative error of 8e-16 (z = -24 would have rejected a correct run).
  const std::vector<double> theory{1.0853410357218001, 0.5};
  const std::vector<std::optional<double>> se{3.8e-17, 1e-3};
  cesr::CheckOptions opt;
  const auto rep = cesr::check_curve({1.0853410357218010, 0.5005}, se, theory, opt);
  CHECK(rep.agree);
  CHECK(rep.z_rows == 1);
  CHECK(rep.rtol_rows == 1);
  CHECK(!rep.rows[0].z);
  // A real error with a tiny standard error is still caught (by the relative error).
  CHECK_FALSE(cesr::check_curve({1.2, 0.5005}, se, theory, opt).agree);
}

TEST_CASE("cesr check: a relative error beyond the double range is no number, never inf (found by fuzz_cli)") {
  // A loss of 1.7e308 at step 20, where theory is ~0.1: (loss - theory) / theory overflows.
  const std::string p = with_lr(problem("sgd"), 0.5);
  write("check_huge.csv", "step,loss\n20,1.7e308\n");
  for (const char* format : {"table", "csv", "json"}) {
    const Run r = cesr_run(std::string("check --input check_huge.csv --format ") + format + " " + p);
    INFO(format, ": ", r.out, r.err);
    CHECK(r.code == 1);
    CHECK(r.out.find("inf") == std::string::npos);
    CHECK(r.out.find("FAIL") != std::string::npos);
  }
  const Run json = cesr_run("check --input check_huge.csv --format json " + p);
  CHECK(json.out.find("\"rel_error\": null") != std::string::npos);
}

TEST_CASE("parse_curve_csv reads steps as exact integers: 2^53 + 1 stays itself") {
  const auto c = cesr::parse_curve_csv(
      "step,loss\n9007199254740993,0.5\n9007199254740992,0.5\n+7,1\n1e3,1\n18446744073709551615,0\n", "big.csv");
  REQUIRE(c.step.size() == 5);
  CHECK(c.step[0] == 9007199254740993ull);
  CHECK(c.step[1] == 9007199254740992ull);
  CHECK(c.step[2] == 7);
  CHECK(c.step[3] == 1000);
  CHECK(c.step[4] == 18446744073709551615ull);
  // Beyond 64 bits, and non-integer notation where a double cannot hold every integer.
  CHECK_THROWS_WITH_AS(cesr::parse_curve_csv("step,loss\n18446744073709551616,0\n", "o.csv"),
                       doctest::Contains("does not fit in 64 bits"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(cesr::parse_curve_csv("step,loss\n9.007199254740993e15,0\n", "o.csv"),
                       doctest::Contains("below 2^53"), std::invalid_argument);
}

TEST_CASE("exact_loss_at refuses a step beyond its work budget before any work, naming the input") {
  const cesr::Spectrum sp = cesr::make_spectrum("loguniform:d=10,kappa=10", "isotropic");
  const auto spec = cesr::method_spec("sgd", {{"lr", 0.1}});
  const cesr::NoiseModel noise{1};
  for (const std::uint64_t step : {std::uint64_t{1000000000}, std::uint64_t{9007199254740993ull}}) {
    CAPTURE(step);
    const auto t0 = std::chrono::steady_clock::now();
    try {
      cesr::exact_loss_at<double>(sp, cesr::make_path<double>(spec), noise, {0, step});
      FAIL("no refusal");
    } catch (const cesr::FieldError& e) {
      CHECK(e.field == "input");
      CHECK(std::string(e.what()).find(std::to_string(step)) != std::string::npos);
    }
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(1));
  }
  // The budget is per precision: 1e6 steps at d = 10 is within double's, beyond mp50's.
  CHECK_NOTHROW(cesr::check_exact_work(10, 1000000, cesr::Precision::Double, "input"));
  CHECK_THROWS_AS(cesr::check_exact_work(10, 1000000, cesr::Precision::Mp50, "input"), cesr::FieldError);
  // Within the budget the answer is computed: SGD at d = 1, lambda = 1 has
  // the closed form L_t = L_0 ((1 - lr)^2 + lr^2 (K - 1) / B)^t = 0.5 0.83^t.
  const cesr::Spectrum one = cesr::make_spectrum("loguniform:d=1,kappa=1", "isotropic");
  const auto at = cesr::exact_loss_at<double>(one, cesr::make_path<double>(spec), noise, {3000, 100000});
  REQUIRE_FALSE(at.diverged_at);
  CHECK(at.loss[0] == doctest::Approx(0.5 * std::pow(0.83, 3000)).epsilon(1e-11));
  CHECK(at.loss[1] == 0);  // 0.83^100000 underflows: no divergence, no error
}

TEST_CASE("cesr check: a row at step 1e9 or 2^53 + 1 is refused up front (exit 2, one line)") {
  const std::string p = with_lr(problem("sgd"), 0.5);
  for (const std::string big : {"1000000000", "9007199254740993"}) {
    write("check_big.csv", "step,loss\n0,1\n" + big + ",0\n");
    const auto t0 = std::chrono::steady_clock::now();
    // (time stepping: SGD's far rows are otherwise answered by the spectral path, test_horizon_cli)
    const Run r = cesr_run("check --input check_big.csv --horizon stepping " + p);
    INFO(r.err);
    CHECK(r.code == 2);
    CHECK(r.err.find("--input") != std::string::npos);
    CHECK(r.err.find(big) != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
  }
}
