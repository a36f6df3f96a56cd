// Bounded work (issue 12): inputs that used to hang or overflow get one line
// and exit 2, fast.
#include <doctest/doctest.h>

#include "cesr_run.hpp"

#include <algorithm>
#include <chrono>
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
