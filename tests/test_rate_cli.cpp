// End-to-end tests of `cesr rate` and `cesr stability`: JSON shape, exit codes,
// bad input (exit 2, one line on stderr naming the flag, nothing written).
#include <doctest/doctest.h>

#include "cesr_run.hpp"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>

namespace {

using cesr_test::Run;

// A folder of this process, removed at exit.
const std::filesystem::path& scratch() { return cesr_test::capture_dir(); }

Run cesr(const std::string& args) { return cesr_test::run_cesr(args); }

int lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

const std::string problem = "--spectrum loguniform:d=50,kappa=1e3 --method hb --momentum 0.9 --batch 4";

}  // namespace

TEST_CASE("cesr rate prints the JSON object, exit 0 when stable") {
  const Run r = cesr("rate " + problem + " --lr 0.05");
  REQUIRE(r.code == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j.size() == 5);
  CHECK(j["stable"] == true);
  CHECK(j["rho"].get<double>() < 1);
  CHECK(j["gap"].get<double>() == doctest::Approx(1 - j["rho"].get<double>()).epsilon(1e-9));
  CHECK(j["precision"].is_string());
  CHECK(j["evaluations"].get<int>() > 0);
  CHECK(r.err.empty());
  // Every digit of the precision used: 17 for double.
  const Run d = cesr("rate " + problem + " --lr 0.05 --precision double");
  REQUIRE(d.code == 0);
  CHECK(d.out.find("\"precision\": \"double\"") != std::string::npos);
  const auto jd = nlohmann::json::parse(d.out);
  CHECK(jd["gap"].get<double>() == doctest::Approx(j["gap"].get<double>()).epsilon(1e-10));
  const Run m = cesr("rate " + problem + " --lr 0.05 --precision mp50 --format table");
  REQUIRE(m.code == 0);
  CHECK(m.out.find("mp50") != std::string::npos);
  CHECK(lines(m.out) == 2);
}

TEST_CASE("cesr rate: a diverging method prints stable false, exit 3, one line on stderr") {
  const Run r = cesr("rate " + problem + " --lr 5");
  CHECK(r.code == 3);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["stable"] == false);
  CHECK(j["rho"].get<double>() > 1);
  CHECK(lines(r.err) == 1);
  CHECK(r.err.find("diverges") != std::string::npos);
}

TEST_CASE("cesr rate and stability: bad input is exit 2 with the flag named, nothing written") {
  const auto out = scratch() / "never.json";
  struct Bad {
    std::string args, flag;
  };
  const Bad bad[] = {
      {"rate " + problem + " --lr 0.05 --precision triple", "--precision"},
      {"rate " + problem + " --lr 0.05 --rtol -1", "--rtol"},
      // below what quad and mp50 can agree to (issue 12: it used to have no effect)
      {"rate " + problem + " --lr 0.05 --rtol 1e-40", "--rtol"},
      // a gap of 2e-309 that double cannot resolve (it printed 1.7e-16)
      {"rate --spectrum loguniform:d=2,kappa=1e300 --method hb --lr 1e-10 --momentum 0.9 --precision double",
       "--precision"},
      {"rate " + problem + " --lr -0.05", "--lr"},
      {"rate " + problem + " --lr 0.05 --format csv", "--format"},
      {"rate --spectrum powerlaw:d=0,alpha=1 --method sgd --lr 0.1", "--spectrum"},
      {"rate " + problem, "--lr"},
      {"stability " + problem + " --precision nope", "--precision"},
      {"stability --spectrum loguniform:d=5,kappa=10 --method hb --momentum 1.5", "--momentum"},
      {"stability " + problem + " --lr 0.1", "--lr"},
  };
  for (const auto& b : bad) {
    std::filesystem::remove(out);
    const Run r = cesr(b.args + " --output " + out.string());
    INFO(b.args, " -> ", r.err);
    CHECK(r.code == 2);
    CHECK(lines(r.err) == 1);
    CHECK(r.err.find(b.flag) != std::string::npos);
    CHECK(!std::filesystem::exists(out));
  }
}

TEST_CASE("cesr stability: JSON with lr_max and lr_best; rate at lr_max is on the boundary") {
  const Run s = cesr("stability " + problem);
  REQUIRE(s.code == 0);
  const auto j = nlohmann::json::parse(s.out);
  const double lr_max = j["lr_max"].get<double>(), lr_best = j["lr_best"].get<double>();
  CHECK(lr_best < lr_max);
  CHECK(j["gap_best"].get<double>() > 0);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", lr_max * (1 - 1e-7));
  CHECK(cesr("rate " + problem + " --lr " + buf).code == 0);
  std::snprintf(buf, sizeof buf, "%.17g", lr_max * (1 + 1e-7));
  CHECK(cesr("rate " + problem + " --lr " + buf).code == 3);
  std::snprintf(buf, sizeof buf, "%.17g", lr_best);
  const Run at_best = cesr("rate " + problem + " --lr " + buf);
  REQUIRE(at_best.code == 0);
  CHECK(nlohmann::json::parse(at_best.out)["gap"].get<double>() ==
        doctest::Approx(j["gap_best"].get<double>()).epsilon(1e-9));
}

TEST_CASE("--help of rate and stability has an example") {
  for (const char* cmd : {"rate", "stability"}) {
    const Run r = cesr(std::string(cmd) + " --help");
    CHECK(r.code == 0);
    CHECK(r.out.find("Example:") != std::string::npos);
  }
}

TEST_CASE("cesr rate at the extremes: AccSGD at kappa = 1e60 is stable with gap 4.9e-61; --rtol 1e-20 reaches quad") {
  const Run r = cesr(
      "rate --spectrum loguniform:d=2,kappa=1e60 --batch 1000 --method asgd --lr 0.1 --kappa 100 --xi 5");
  REQUIRE(r.code == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["stable"] == true);
  CHECK(j["gap"].get<double>() == doctest::Approx(4.9e-61).epsilon(0.01));
  CHECK(r.err.empty());
  const Run t = cesr("rate " + problem + " --lr 0.05 --rtol 1e-20");
  REQUIRE(t.code == 0);
  const auto jt = nlohmann::json::parse(t.out);
  CHECK((jt["precision"] == "quad" || jt["precision"] == "mp50"));
}
