// The double-double certificate of a long double gap (src/double_double.hpp,
// double_double_certifies, contraction_rate_auto with RateConfirmation::Bound):
// the arithmetic's error bound against 50 digits on random chains of
// operations (cancellations included); on many random methods, a certified
// gap within rtol / 2 of the 50-digit gap with the same stability verdict, and
// refusals where the bracket does not hold the exact gap (a perturbed gap, or
// a tolerance below double-double's resolution); and the escalation case of
// test_rate.cpp (double off by more than 1e-10): quad under Agreement, the
// certified long double under Bound, both within 1e-10 of 50 digits.
#include <doctest/doctest.h>

#include "random_methods.hpp"

#include "../src/double_double.hpp"
#include "cesr/rate.hpp"

#include <cmath>
#include <random>
#include <vector>

using namespace cesr;
using detail::BoundedDD;

namespace {

mp50 value_of(const detail::DoubleDouble& v) { return mp50(v.hi) + mp50(v.lo); }

}  // namespace

TEST_CASE("double-double arithmetic: every result within its bound of the 50-digit value of the same chain") {
  std::mt19937_64 rng(2017);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const auto random_double = [&] {
    const double m = 1 + unit(rng), e = std::floor(40 * unit(rng)) - 20;
    return (unit(rng) < 0.5 ? -1 : 1) * std::ldexp(m, static_cast<int>(e));
  };
  int checked = 0, cancellations = 0;
  double worst = 0;  // the largest error relative to the bound
  for (int chain = 0; chain < 2000; ++chain) {
    BoundedDD a = detail::exact_dd(random_double());
    mp50 exact_a = mp50(a.v.hi);
    for (int step = 0; step < 12; ++step) {
      // The other operand: a fresh double, or a near copy of a (a cancellation).
      const bool cancel = unit(rng) < 0.25;
      const double other = cancel ? a.v.hi * (1 + std::ldexp(unit(rng), -30)) : random_double();
      const BoundedDD b = detail::exact_dd(other);
      const mp50 exact_b(other);
      const int op = static_cast<int>(4 * unit(rng));
      BoundedDD r;
      mp50 exact_r;
      if (op == 0) r = a + b, exact_r = exact_a + exact_b;
      if (op == 1) r = a - b, exact_r = exact_a - exact_b;
      if (op == 2) r = a * b, exact_r = exact_a * exact_b;
      if (op == 3) r = a / b, exact_r = exact_a / exact_b;
      cancellations += cancel && op == 1;
      if (!std::isfinite(r.e)) break;  // left the safe range: decides nothing
      const mp50 error = abs(value_of(r.v) - exact_r);
      CAPTURE(chain);
      CAPTURE(step);
      CAPTURE(op);
      CHECK(error <= mp50(r.e));
      if (r.e > 0) worst = std::max(worst, static_cast<double>(error / mp50(r.e)));
      ++checked;
      a = r;
      exact_a = exact_r;
    }
  }
  MESSAGE(checked, " operations (", cancellations, " cancellations); the largest error is ", worst,
          " of its bound");
  CHECK(checked > 15000);
  CHECK(cancellations > 500);
  // The bound is not vacuous: errors reach a noticeable fraction of it.
  CHECK(worst > 1e-4);
}

TEST_CASE("double-double arithmetic: each operation within dd_epsilon of its exact result") {
  std::mt19937_64 rng(106);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const auto random_dd = [&] {
    const double hi = (unit(rng) < 0.5 ? -1 : 1) * std::ldexp(1 + unit(rng), static_cast<int>(60 * unit(rng)) - 30);
    const double lo = hi * std::ldexp(unit(rng) - 0.5, -53);
    return detail::two_sum(hi, lo);
  };
  double worst = 0;
  for (int i = 0; i < 20000; ++i) {
    const detail::DoubleDouble x = random_dd(), y = random_dd();
    const mp50 ex = value_of(x), ey = value_of(y);
    for (int op = 0; op < 4; ++op) {
      const detail::DoubleDouble r = op == 0 ? x + y : op == 1 ? x - y : op == 2 ? x * y : x / y;
      const mp50 e = op == 0 ? ex + ey : op == 1 ? ex - ey : op == 2 ? ex * ey : ex / ey;
      if (e == 0) continue;
      const double rel = static_cast<double>(abs(value_of(r) - e) / abs(e));
      worst = std::max(worst, rel);
      CHECK(rel <= detail::dd_epsilon);
    }
  }
  MESSAGE("the largest relative error of one operation: ", worst, " (charged ", detail::dd_epsilon, ")");
  CHECK(worst > 0);
}

namespace {

using Case = cesr_test::RateCase;

std::vector<Case> random_cases() {
  return cesr_test::random_rate_cases({make_spectrum("powerlaw:d=300,alpha=1.5"), make_spectrum("loguniform:d=200,kappa=1e6"),
                                       cesr_test::weighted_loguniform(150, 1e4)},
                                      {1406, 8, 3, 5, 6, 30});
}

}  // namespace

TEST_CASE("double_double_certifies: certified gaps within rtol / 2 of 50 digits, refusals where they are not") {
  int cases = 0, unstable = 0, certified = 0, wrong_refused = 0, tiny_refused = 0;
  const double rtol = 1e-10;
  for (const Case& c : random_cases()) {
    const Rate<mp50> ref = contraction_rate<mp50>(c.spectrum, c.method, c.noise);
    const Rate<long double> ld = contraction_rate<long double>(c.spectrum, c.method, c.noise);
    if (!is_finite(ref.gap) || !std::isfinite(ld.gap) || ld.gap == 0) continue;
    ++cases;
    unstable += !ref.stable;
    CAPTURE(describe(c.method));
    CAPTURE(c.noise.batch);
    CAPTURE(to_double(ref.gap));
    CAPTURE(static_cast<double>(ld.gap));
    const mp50 exact_gap = ref.gap;
    const auto inside = [&](long double g, double r) {
      const mp50 a = mp50(g) * (1 - mp50(r) / 2), b = mp50(g) * (1 + mp50(r) / 2);
      return (a <= exact_gap && exact_gap <= b) || (b <= exact_gap && exact_gap <= a);
    };
    if (double_double_certifies(c.spectrum, c.method, c.noise, ld.gap, rtol)) {
      ++certified;
      // The bracket holds the exact gap, so the verdict is the exact one.
      CHECK(inside(ld.gap, rtol));
      CHECK((ld.gap > 0) == ref.stable);
    }
    // A gap 1e-8 off: the exact one lies outside its bracket, which must not certify.
    const long double off = ld.gap * (1 + 1e-8L);
    const bool off_certified = double_double_certifies(c.spectrum, c.method, c.noise, off, rtol);
    if (!inside(off, rtol)) {
      CHECK(!off_certified);
      wrong_refused += !off_certified;
    }
    // A tolerance below double-double's resolution: a long double gap is never that close.
    const bool tiny = double_double_certifies(c.spectrum, c.method, c.noise, ld.gap, 1e-31);
    CHECK(!tiny);
    tiny_refused += !tiny;
  }
  MESSAGE(cases, " methods (", unstable, " unstable): ", certified, " long double gaps certified to 1e-10; ",
          wrong_refused, " perturbed gaps and ", tiny_refused, " requests at 1e-31 refused");
  CHECK(cases > 70);
  CHECK(unstable > 3);
  // Double-double resolves what long double computed nearly everywhere.
  CHECK(certified * 10 >= cases * 9);
  CHECK(wrong_refused * 10 >= cases * 9);
}

TEST_CASE("RateConfirmation::Bound: where double is off by more than rtol, the certified long double instead of quad") {
  // test_rate.cpp's escalation case: critically damped heavy ball at
  // kappa = 1e4, B = 1e6, where double carries ~9 correct digits of the gap.
  const Spectrum s = make_spectrum("loguniform:d=30,kappa=1e4");
  const double lmin = s.lambda_min();
  const double lr = 4 / std::pow(1 + std::sqrt(lmin), 2), beta = std::pow((100.0 - 1) / (100.0 + 1), 2);
  const MethodSpec m = method_spec("hb", {{"lr", lr}, {"momentum", beta}});
  const NoiseModel noise{1'000'000, 3, 0};
  const Rate<mp50> exact = contraction_rate<mp50>(s, m, noise);
  const double gap = to_double(exact.gap);
  REQUIRE(std::abs(contraction_rate<double>(s, m, noise).gap - gap) > 1e-10 * std::abs(gap));
  const AutoRate agreement = contraction_rate_auto(s, m, noise, 1e-10);
  const AutoRate bound = contraction_rate_auto(s, m, noise, 1e-10, std::numeric_limits<double>::quiet_NaN(),
                                               RateConfirmation::Bound);
  CHECK(agreement.precision >= Precision::Quad);
  CHECK(!agreement.bounded);
  CHECK(bound.precision == Precision::Long);
  CHECK(bound.bounded);
  CHECK(bound.agreed);
  CHECK(bound.stable == exact.stable);
  CHECK(bound.stable == agreement.stable);
  CHECK(std::abs(bound.gap - gap) <= 0.5e-10 * std::abs(gap));
  CHECK(std::abs(agreement.gap - gap) <= 1e-10 * std::abs(gap));
  // Fewer secular evaluations: the certificate replaces quad's solve.
  CHECK(bound.evaluations < agreement.evaluations);
  // Where double already agrees with long double, the two rules are the same answer.
  const MethodSpec easy = method_spec("hb", {{"lr", 0.1}, {"momentum", 0.9}});
  const AutoRate a1 = contraction_rate_auto(s, easy, NoiseModel{8, 3, 0});
  const AutoRate a2 = contraction_rate_auto(s, easy, NoiseModel{8, 3, 0}, 1e-10,
                                            std::numeric_limits<double>::quiet_NaN(), RateConfirmation::Bound);
  CHECK(a1.gap_text == a2.gap_text);
  CHECK(a1.precision == a2.precision);
  CHECK(!a2.bounded);
}
