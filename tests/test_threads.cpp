// Thread independence: every command that takes --threads prints the same
// bytes for --threads 1 and 2, on spectra long enough (d >= 65536, several
// 32768-direction chunks) that the kernels do run on two threads; and the
// chunked sums of the library against a plain serial sum of the same terms,
// and the chunked time step against long double.
#include <doctest/doctest.h>

#include "cesr_run.hpp"

#include "cesr/dynamics.hpp"
#include "cesr/parallel.hpp"
#include "cesr/rate.hpp"

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

using namespace cesr;
using cesr_test::Run;
using cesr_test::run_cesr;

namespace {

void same_for_one_and_two_threads(const std::string& args) {
  const Run one = run_cesr(args + " --threads 1");
  const Run two = run_cesr(args + " --threads 2");
  CAPTURE(args);
  CAPTURE(one.err);
  REQUIRE(one.code == 0);
  REQUIRE(two.code == 0);
  CHECK(!one.out.empty());
  CHECK(one.out == two.out);
}

}  // namespace

TEST_CASE("rate, tune and frontier print the same bytes on one and two threads") {
  const std::string spectrum = " --spectrum powerlaw:d=100000,alpha=1.5";
  same_for_one_and_two_threads("rate" + spectrum + " --method hb --lr 0.004 --momentum 0.9995 --batch 16");
  same_for_one_and_two_threads("rate" + spectrum + " --method sgd --lr 1 --batch 4 --precision double");
  same_for_one_and_two_threads("tune" + spectrum + " --method sgd --batch 16");
  same_for_one_and_two_threads("tune" + spectrum + " --method hb --momentum 0.999 --batch 64");
  same_for_one_and_two_threads("frontier" + spectrum + " --methods sgd --batches 1,64 --format json");
}

TEST_CASE("a weighted spectrum and the additive model: the same bytes on one and two threads; window too") {
  // 100,000 weighted lines (weights 1..3, one fractional) in a file.
  const cesr_test::ScratchWorkingDirectory scratch("cesr_test_threads");
  {
    std::ofstream f("weighted.spectrum");
    f.precision(17);
    for (int i = 0; i < 100000; ++i) f << std::pow(1.0 + i, -1.5) << ' ' << (i == 7 ? 2.5 : 1 + i % 3) << '\n';
  }
  const std::string weighted = " --spectrum file:weighted.spectrum";
  same_for_one_and_two_threads("rate" + weighted + " --method hb --lr 0.001 --momentum 0.9995 --batch 16");
  same_for_one_and_two_threads("tune" + weighted + " --method sgd --batch 16");
  same_for_one_and_two_threads("frontier" + weighted + " --methods sgd --batches 1,64 --format json");
  const std::string additive = " --spectrum powerlaw:d=100000,alpha=1.5 --noise-model additive";
  same_for_one_and_two_threads("rate" + additive + " --method hb --lr 0.5 --momentum 0.9 --batch 16");
  same_for_one_and_two_threads("tune" + additive + " --method sgd --batch 16");
  // window's workers tune the rows (its spectra are built in; small d keeps it short).
  same_for_one_and_two_threads("window --kappas 1e2,1e4 --d 1000 --format json");
}

TEST_CASE("the chunked secular function: the same gap on 1, 2 and 3 threads, and the long-double gap to 1e-9") {
  const Spectrum s = make_spectrum("loguniform:d=200000,kappa=1e6");
  const MethodSpec hb = method_spec("hb", {{"lr", 0.2}, {"momentum", 0.99}});
  const NoiseModel n{64, 3.0, 0.01};
  std::vector<double> gaps;
  for (unsigned t : {1u, 2u, 3u}) {
    const KernelThreads scope(t);
    gaps.push_back(contraction_rate<double>(s, hb, n).gap);
  }
  CHECK(gaps[0] == gaps[1]);
  CHECK(gaps[0] == gaps[2]);
  // An independent reference: the same problem in long double (its own chunked
  // sums, 64-bit mantissa), to the accuracy of double.
  const double gap_long = static_cast<double>(contraction_rate<long double>(s, hb, n).gap);
  CHECK(gaps[0] == doctest::Approx(gap_long).epsilon(1e-9));
}

TEST_CASE("for_each_chunk covers every index once, in chunks independent of the thread count") {
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, parallel_chunk, parallel_chunk + 1, 3 * parallel_chunk + 7}) {
    for (unsigned t : {1u, 2u, 4u}) {
      const KernelThreads scope(t);
      std::vector<int> seen(n, 0);
      std::vector<std::size_t> first(chunk_count(n), n), last(chunk_count(n), 0);
      for_each_chunk(n, [&](std::size_t c, std::size_t begin, std::size_t end) {
        first[c] = begin;
        last[c] = end;
        for (std::size_t i = begin; i < end; ++i) ++seen[i];
      });
      CAPTURE(n);
      CAPTURE(t);
      for (int v : seen) CHECK(v == 1);
      for (std::size_t c = 0; c < first.size(); ++c) {
        CHECK(first[c] == c * parallel_chunk);
        CHECK(last[c] == std::min(n, (c + 1) * parallel_chunk));
      }
    }
  }
}

TEST_CASE("the chunked time step: the same losses on 1, 2 and 3 threads, and long double's to 1e-12") {
  // k = 1 and k = 2 (o = r and o != r), weighted too, over several chunks and a
  // partial last one; long double runs the template loop, not the kernels.
  Spectrum w = make_spectrum("loguniform:d=70001,kappa=1e4");
  w.weight.resize(w.lambda.size());
  for (std::size_t i = 0; i < w.weight.size(); ++i) w.weight[i] = i == 3 ? 0.5 : 1.0 + static_cast<double>(i % 2);
  const Spectrum s = make_spectrum("powerlaw:d=100003,alpha=1.2");
  struct Case {
    const Spectrum* spectrum;
    MethodSpec method;
  };
  const std::vector<Case> cases{{&s, method_spec("sgd", {{"lr", 0.5}})},
                                {&s, method_spec("hb", {{"lr", 0.1}, {"momentum", 0.9}})},
                                {&w, method_spec("nag", {{"lr", 0.2}, {"momentum", 0.8}})}};
  const NoiseModel n{1024, 3.0, 0.01};
  for (const Case& c : cases) {
    CAPTURE(describe(c.method));
    std::vector<double> losses;
    for (unsigned t : {1u, 2u, 3u}) {
      const KernelThreads scope(t);
      Dynamics<double> dyn(*c.spectrum, make_path<double>(c.method), n);
      dyn.advance(300);
      losses.push_back(dyn.loss());
    }
    CHECK(losses[0] == losses[1]);
    CHECK(losses[0] == losses[2]);
    Dynamics<long double> ref(*c.spectrum, make_path<long double>(c.method), n);
    ref.advance(300);
    const double l = static_cast<double>(ref.loss());
    CHECK(l > 0);
    CHECK(std::abs(losses[0] - l) <= 1e-12 * l);
  }
}
