// Bounded work (issue 12): inputs that used to hang or overflow get one line
// and exit 2, fast.
#include <doctest/doctest.h>

#include "cesr_run.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>

using cesr_test::run_cesr;

TEST_CASE("inputs that hung or overflowed are refused at once") {
  for (const std::string cmd : {"frontier --batches 1:2:x1.0000000000000002",
                                "simulate --method sgd --lr 0.1 --steps 3 --runs 18446744073709551615"}) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = run_cesr(cmd);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    INFO(cmd, "\n", r.err);
    CHECK(r.code == 2);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK(seconds < 5);
  }
}

TEST_CASE("check warns that a curve without standard errors is a weak check") {
  cesr_test::ScratchWorkingDirectory dir("bounds_check");
  const std::string file = (dir.dir / "c.csv").string();
  std::ofstream(file) << "step,loss\n0,1.0853410357218001\n";
  const auto r = run_cesr("check --input " + file + " --spectrum powerlaw:d=20,alpha=1.5 --method sgd --lr 0.1");
  CHECK(r.code == 0);
  CHECK(r.err.find("warning: no row has a standard error") != std::string::npos);
}

TEST_CASE("subnormal small quantities: the rate answers (it looped for ever) and the answer is 2 lr lambda_min") {
  // SGD's slowest direction contracts like (1 - lr lambda)^2 ~ 1 - 2 lr lambda.
  // (Expected values and the comparison in long double: these gaps are
  // subnormal doubles, and doctest's Approx would compare them absolutely.)
  struct Case {
    std::string args;
    long double gap;
  };
  for (const Case& c : {Case{"--spectrum loguniform:d=30,kappa=100 --method sgd --lr 1e-320", 2e-322L},
                        Case{"--spectrum loguniform:d=2,kappa=1e300 --method sgd --lr 1e-10", 2e-310L}}) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = run_cesr("rate " + c.args);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    INFO(c.args, "\n", r.out, r.err);
    REQUIRE(r.code == 0);
    CHECK(seconds < 5);
    const auto at = r.out.find("\"gap\": ");
    REQUIRE(at != std::string::npos);
    const long double ratio = std::strtold(r.out.c_str() + at + 7, nullptr) / c.gap;
    CHECK(std::abs(static_cast<double>(ratio - 1)) < 1e-3);
  }
}

TEST_CASE("tuning at kappa = 1e308 finishes (it hung)") {
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = run_cesr("tune --spectrum loguniform:d=2,kappa=1e308 --method sgd --batch 4");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO(r.out, r.err);
  CHECK(r.code == 0);
  CHECK(seconds < 10);
  // At the top of double's range SGD's tuned gap is 2 lr lambda_min with
  // lr lambda_max = 4/3, i.e. (8/3)/kappa = 1.57e-308 (just above the
  // smallest normal double), still resolved; beyond the range the tuner
  // refuses instead of answering "no stable hyperparameters".
  const auto top = run_cesr("tune --spectrum loguniform:d=2,kappa=1.7e308 --method sgd --batch 4 --format json");
  CHECK(top.code == 0);
  const auto gap_at = top.out.find("\"gap\": ");
  REQUIRE(gap_at != std::string::npos);
  const double gap = std::strtod(top.out.c_str() + gap_at + 7, nullptr);
  CHECK(gap > 1e-308);
  CHECK(gap < 3e-308);
  const auto file = std::filesystem::temp_directory_path() / "cesr_bounds_huge_kappa.txt";
  {
    std::ofstream f(file);
    f << "1e308\n4e-4\n";
  }
  const auto beyond = run_cesr("tune --spectrum file:" + file.string() + " --method sgd --batch 1");
  std::filesystem::remove(file);
  CHECK(beyond.code == 2);
  CHECK(beyond.err.find("--spectrum: kappa = lambda_max/lambda_min = 1e+308/0.0004 exceeds the double range") !=
        std::string::npos);
}

TEST_CASE("a command line that helps: --format in any case, whole counts in scientific notation") {
  const auto upper = run_cesr("rate --method sgd --lr 0.1 --format JSON");
  const auto lower = run_cesr("rate --method sgd --lr 0.1 --format json");
  CHECK(upper.code == 0);
  CHECK(upper.out == lower.out);
  const auto bad = run_cesr("rate --method sgd --lr 0.1 --format yaml");
  CHECK(bad.code == 2);
  CHECK(bad.err.find("'yaml' is not one of json, table") != std::string::npos);
  const auto sci = run_cesr("loss --method sgd --lr 0.1 --steps 1e3 --every 2.5e2");
  const auto plain = run_cesr("loss --method sgd --lr 0.1 --steps 1000 --every 250");
  CHECK(sci.code == 0);
  CHECK(sci.out == plain.out);
  for (const char* steps : {"1.5", "1e300", "-1e3"}) {
    const auto r = run_cesr(std::string("loss --method sgd --lr 0.1 --steps ") + steps);
    INFO(steps, r.err);
    CHECK(r.code == 2);
  }
}
