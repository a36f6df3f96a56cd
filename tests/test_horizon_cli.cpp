// --horizon on the command line: the exact spectral path of loss, steps,
// check and tune --objective steps against the same commands with
// --horizon stepping (time stepping in long double), and its errors.
#include <doctest/doctest.h>

#include "cesr_run.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

using cesr_test::Run;
Run cesr_run(const std::string& args, const std::string& cwd = "") { return cesr_test::run_cesr(args, cwd); }

const std::string problem = "--spectrum loguniform:d=50,kappa=1e4 --method sgd --lr 0.3 --batch 2 --noise 1e-7";

std::vector<std::pair<std::uint64_t, double>> csv_rows(const std::string& text) {
  std::vector<std::pair<std::uint64_t, double>> rows;
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    const auto comma = line.find(',');
    rows.emplace_back(std::stoull(line.substr(0, comma)), std::stod(line.substr(comma + 1)));
  }
  return rows;
}

}  // namespace

TEST_CASE("horizon cli: steps counts equal long-double time stepping, both target kinds") {
  for (const std::string target : {"--target 1e-4 --relative", "--target 3e-5 --relative", "--target 1e-5"}) {
    CAPTURE(target);
    const Run fast = cesr_run("steps " + problem + " " + target + " --horizon exact");
    const Run slow = cesr_run("steps " + problem + " " + target + " --horizon stepping --precision long");
    REQUIRE(fast.code == 0);
    REQUIRE(slow.code == 0);
    const auto jf = nlohmann::json::parse(fast.out), js = nlohmann::json::parse(slow.out);
    CHECK(jf["horizon"] == "exact");
    CHECK(js["horizon"] == "stepping");
    CHECK(jf["steps"].get<std::uint64_t>() == js["steps"].get<std::uint64_t>());
    CHECK(jf["steps"].get<std::uint64_t>() > 1000u);
    const double lf = jf["loss"].get<double>(), ls = js["loss"].get<double>();
    CHECK(std::abs(lf - ls) <= 1e-9 * ls);
  }
}

TEST_CASE("horizon cli: --max-steps does not cap the exact path; a target below the floor is never reached") {
  const Run capped = cesr_run("steps " + problem + " --target 1e-4 --relative --max-steps 10");
  REQUIRE(capped.code == 0);
  CHECK(nlohmann::json::parse(capped.out)["horizon"] == "exact");
  const Run floor = cesr_run("steps " + problem + " --target 1e-12");
  CHECK(floor.code == 1);
  CHECK(floor.err.find("noise floor") != std::string::npos);
  CHECK(nlohmann::json::parse(floor.out)["reached"] == false);
}

TEST_CASE("horizon cli: loss at far-apart steps equals long-double time stepping") {
  const std::string run = "loss " + problem + " --steps 400000 --every 100000";
  const Run fast = cesr_run(run);
  const Run slow = cesr_run(run + " --horizon stepping --precision long");
  REQUIRE(fast.code == 0);
  REQUIRE(slow.code == 0);
  CHECK(fast.err.empty());
  const auto a = csv_rows(fast.out), b = csv_rows(slow.out);
  REQUIRE(a.size() == 5);
  REQUIRE(b.size() == 5);
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].first == b[i].first);
    CHECK(std::abs(a[i].second - b[i].second) <= 1e-10 * b[i].second);
  }
}

TEST_CASE("horizon cli: check rows at large steps through the exact path") {
  cesr_test::ScratchWorkingDirectory dir("horizon_check");
  const Run slow = cesr_run("loss " + problem + " --steps 300000 --every 100000 --horizon stepping --precision long");
  REQUIRE(slow.code == 0);
  {
    std::ofstream f(dir.dir / "curve.csv");
    f << slow.out;
  }
  const Run check = cesr_run("check " + problem + " --input curve.csv --rtol 1e-9", dir.dir.string());
  CHECK(check.code == 0);
  CHECK(check.err.find("time stepping") == std::string::npos);
}

TEST_CASE("horizon cli: tune --objective steps gives the time-stepped count") {
  const std::string run =
      "tune --spectrum loguniform:d=30,kappa=1e3 --method sgd --batch 4 --objective steps --target 1e-5 --relative";
  const Run fast = cesr_run(run);
  const Run slow = cesr_run(run + " --horizon stepping");
  REQUIRE(fast.code == 0);
  REQUIRE(slow.code == 0);
  const auto jf = nlohmann::json::parse(fast.out), js = nlohmann::json::parse(slow.out);
  CHECK(jf["steps"] == js["steps"]);
  CHECK(jf["params"]["lr"].get<double>() == doctest::Approx(js["params"]["lr"].get<double>()).epsilon(1e-6));
  // The tuned count holds against long-double time stepping at the tuned lr.
  const std::string lr = jf["params"]["lr"].dump();
  const Run ref = cesr_run("steps --spectrum loguniform:d=30,kappa=1e3 --method sgd --batch 4 --lr " + lr +
                           " --target 1e-5 --relative --horizon stepping --precision long");
  REQUIRE(ref.code == 0);
  CHECK(nlohmann::json::parse(ref.out)["steps"] == jf["steps"]);
}

TEST_CASE("horizon cli: errors and fallbacks") {
  const Run bad = cesr_run("steps " + problem + " --target 1e-3 --horizon fast");
  CHECK(bad.code == 2);
  CHECK(bad.err.find("--horizon") != std::string::npos);
  const Run rtol = cesr_run("loss " + problem + " --steps 10 --horizon-rtol 0");
  CHECK(rtol.code == 2);
  CHECK(rtol.err.find("--horizon-rtol") != std::string::npos);
  // Heavy ball with an EMA of the iterate slower than the method (decay
  // 0.999 above the top mode, about 0.98): not covered.
  const std::string ema =
      "--spectrum loguniform:d=10,kappa=100 --method hb --lr 0.5 --momentum 0.5 --batch 4 --average ema:decay=0.999";
  const Run exact = cesr_run("steps " + ema + " --target 1e-3 --relative --horizon exact");
  CHECK(exact.code == 4);
  CHECK(exact.err.find("does not see") != std::string::npos);
  const Run autod = cesr_run("loss " + ema + " --steps 1000 --every 500");
  CHECK(autod.code == 0);
  CHECK(autod.err.find("time stepping (a block pole that the noise coupling does not see") != std::string::npos);
  const Run steps = cesr_run("steps " + ema + " --target 1e-3 --relative");
  CHECK(steps.code == 0);
  CHECK(steps.err.find("time stepping") != std::string::npos);
  CHECK(nlohmann::json::parse(steps.out)["horizon"] == "stepping");
}

TEST_CASE("horizon cli: heavy ball with an EMA (k = 3) takes the exact path and equals time stepping") {
  const std::string hb = "--spectrum loguniform:d=20,kappa=1e4 --method hb --lr 0.1 --momentum 0.8 --batch 4 "
                         "--noise 1e-7 --average ema:decay=0.99";
  for (const std::string target : {"--target 1e-6 --relative", "--target 3e-7"}) {
    CAPTURE(target);
    const Run exact = cesr_run("steps " + hb + " " + target + " --horizon exact");
    REQUIRE(exact.code == 0);
    const auto je = nlohmann::json::parse(exact.out);
    CHECK(je["horizon"] == "exact");
    const Run ref = cesr_run("steps " + hb + " " + target + " --horizon stepping --precision long");
    REQUIRE(ref.code == 0);
    const auto jr = nlohmann::json::parse(ref.out);
    CHECK(jr["steps"] == je["steps"]);
    CHECK(je["steps"].get<std::uint64_t>() > 30000u);
    CHECK(std::abs(je["loss"].get<double>() - jr["loss"].get<double>()) <= 1e-9 * jr["loss"].get<double>());
  }
  const Run far = cesr_run("loss " + hb + " --steps 40000 --every 10000 --horizon exact --format json");
  REQUIRE(far.code == 0);
  const Run far_ref =
      cesr_run("loss " + hb + " --steps 40000 --every 10000 --horizon stepping --precision mp50 --format json");
  REQUIRE(far_ref.code == 0);
  const auto a = nlohmann::json::parse(far.out), b = nlohmann::json::parse(far_ref.out);
  REQUIRE(a.size() == b.size());
  REQUIRE(a.size() == 5);
  for (std::size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    const double x = a[i]["loss"], y = b[i]["loss"];
    CHECK(std::abs(x - y) <= 1e-10 * y);
  }
}

TEST_CASE("horizon cli: heavy ball (k = 2) takes the exact path and equals long-double stepping") {
  const std::string hb = "--spectrum loguniform:d=10,kappa=100 --method hb --lr 0.5 --momentum 0.5 --batch 4";
  const Run exact = cesr_run("steps " + hb + " --target 1e-9 --relative --horizon exact");
  REQUIRE(exact.code == 0);
  const auto je = nlohmann::json::parse(exact.out);
  CHECK(je["horizon"] == "exact");
  const Run ref = cesr_run("steps " + hb + " --target 1e-9 --relative --horizon stepping --precision long");
  REQUIRE(ref.code == 0);
  CHECK(nlohmann::json::parse(ref.out)["steps"] == je["steps"]);
  const Run far = cesr_run("loss " + hb + " --steps 4000 --every 1000 --horizon exact --format json");
  REQUIRE(far.code == 0);
  const Run far_ref =
      cesr_run("loss " + hb + " --steps 4000 --every 1000 --horizon stepping --precision mp50 --format json");
  REQUIRE(far_ref.code == 0);
  const auto a = nlohmann::json::parse(far.out), b = nlohmann::json::parse(far_ref.out);
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    const double x = a[i]["loss"], y = b[i]["loss"];
    CHECK(std::abs(x - y) <= 1e-10 * y);
  }
}
