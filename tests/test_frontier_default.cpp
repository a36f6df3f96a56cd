// The embedded default of `cesr frontier` (the README's main command): three
// problems, an array of normative frontier objects in JSON, and the regimes it
// is meant to show (heavy-ball window on the log-uniform spectrum, AccSGD's
// small-batch advantage on alpha = 2 that disappears on alpha = 0.5).
#include <doctest/doctest.h>

#include "cesr_run.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <cstdio>
#include <string>

#include <sys/wait.h>

namespace {

std::pair<int, std::string> run(const std::string& args) {
  const cesr_test::Run r = cesr_test::run_cesr(args);
  return {r.code, r.out};
}

double ce(const nlohmann::json& f, const std::string& method, double batch) {
  for (const auto& r : f["rows"])
    if (r["method"] == method && r["batch"].get<double>() == batch) return r["ce"];
  FAIL("row not found");
  return 0;
}

}  // namespace

TEST_CASE("cesr frontier with no options: three problems, both regimes") {
  const auto [code, out] = run("frontier --format json");
  REQUIRE(code == 0);
  const auto j = nlohmann::json::parse(out);
  REQUIRE(j.is_array());
  REQUIRE(j.size() == 3);
  for (const auto& f : j) {
    for (const char* k : {"problem", "rows", "summary"}) REQUIRE(f.contains(k));
    CHECK(f["rows"].size() == 3 * 17);  // sgd, hb, asgd x 1:65536:x2
    CHECK(f["problem"]["d"] == 1000);
    CHECK(f["problem"]["objective"] == "rate");
    CHECK(f["problem"]["target"] == 1e-6);
    CHECK(f["problem"]["relative"] == true);
    for (const char* m : {"sgd", "hb", "asgd"}) CHECK(f["summary"]["methods"].contains(m));
  }
  const auto& loguniform = j[0];
  CHECK(loguniform["problem"]["spectrum"] == "loguniform:d=1000,kappa=1e4");
  const double window = loguniform["summary"]["window_ratio"], sqrt_kappa = loguniform["summary"]["sqrt_kappa"];
  CHECK(window > sqrt_kappa / 5);
  CHECK(window < 2 * sqrt_kappa);
  CHECK(ce(loguniform, "hb", 1) == doctest::Approx(ce(loguniform, "sgd", 1)).epsilon(0.05));

  const auto& fast = j[1];
  CHECK(fast["problem"]["spectrum"] == "powerlaw:d=1000,alpha=2");
  CHECK(ce(fast, "asgd", 1) > 10 * ce(fast, "hb", 1));
  CHECK(ce(fast, "asgd", 1) > 10 * ce(fast, "sgd", 1));
  const auto& slow = j[2];
  CHECK(slow["problem"]["spectrum"] == "powerlaw:d=1000,alpha=0.5");
  CHECK(ce(slow, "asgd", 1) == doctest::Approx(ce(slow, "sgd", 1)).epsilon(0.05));
  CHECK(ce(slow, "hb", 1) == doctest::Approx(ce(slow, "sgd", 1)).epsilon(0.05));
}

TEST_CASE("the default problems print one heading each in table format") {
  const auto [code, out] = run("frontier --batches 1,2 --methods sgd");
  REQUIRE(code == 0);
  std::size_t headings = 0, windows = 0;
  for (std::size_t at = out.find("== "); at != std::string::npos; at = out.find("\n== ", at + 1)) ++headings;
  for (std::size_t at = out.find("window B_crit"); at != std::string::npos; at = out.find("window B_crit", at + 1))
    ++windows;
  CHECK(headings == 3);
  CHECK(windows == 3);
  CHECK(out.find("powerlaw:d=1000,alpha=0.5") != std::string::npos);
}
