// Schedules (include/cesr/schedule.hpp): each shape against its formula
// written out here, parsing errors naming the field, and the exact loss under
// lr, momentum and batch schedules against the independent dense oracle with
// the oracle's own step-dependent coefficients (tests/oracle.hpp).
#include <doctest/doctest.h>

#include "cesr_run.hpp"
#include "oracle.hpp"

#include "cesr/dynamics.hpp"
#include "cesr/method.hpp"
#include "cesr/schedule.hpp"
#include "cesr/simulate.hpp"

#include <cmath>
#include <fstream>
#include <numbers>
#include <string>

namespace {

using cesr::Schedule;
doctest::Contains has(const std::string& text) { return doctest::Contains(text.c_str()); }
#define CHECK_FIELD(expr, text) CHECK_THROWS_WITH_AS(expr, has(text), cesr::FieldError)

const cesr::Spectrum problem{{1.0, 0.5, 0.25, 0.12, 0.06}, {1.0, 1.5, 0.7, 1.0, 2.0}};

std::vector<long double> ld(const std::vector<double>& v) { return {v.begin(), v.end()}; }

double worst_relative(const std::vector<long double>& a, const std::vector<long double>& b) {
  REQUIRE(a.size() == b.size());
  double w = 0;
  for (std::size_t i = 0; i < a.size(); ++i) w = std::max(w, static_cast<double>(std::abs(a[i] / b[i] - 1)));
  return w;
}

std::vector<long double> engine(const cesr::MethodSpec& spec, const cesr::NoiseModel& n, std::uint64_t steps) {
  spec.validate();
  const auto curve = cesr::loss_curve<double>(problem, cesr::make_path<double>(spec), n, steps, 1);
  return {curve.loss.begin(), curve.loss.end()};
}

}  // namespace

TEST_CASE("each learning-rate shape equals its formula") {
  const double pi = std::numbers::pi;
  const Schedule cos = Schedule::learning_rate("cosine:steps=100,warmup=10,final=0.1");
  for (std::uint64_t t : {0u, 5u, 9u}) CHECK(cos.at(t) == doctest::Approx((t + 1) / 10.0));
  for (std::uint64_t t : {10u, 37u, 99u})
    CHECK(cos.at(t) == doctest::Approx(0.1 + 0.9 * (1 + std::cos(pi * (t - 10.0) / 90.0)) / 2));
  CHECK(cos.at(100) == 0.1);
  CHECK(cos.at(5000) == 0.1);
  const Schedule lin = Schedule::learning_rate("linear:steps=50");
  CHECK(lin.at(0) == 1);
  CHECK(lin.at(25) == doctest::Approx(0.5));
  CHECK(lin.at(50) == 0);
  const Schedule wsd = Schedule::learning_rate("wsd:steps=100,decay=20,final=0.5");
  CHECK(wsd.at(79) == 1);
  CHECK(wsd.at(80) == 1);
  CHECK(wsd.at(90) == doctest::Approx(1 - 0.5 * 10 / 20.0));
  CHECK(wsd.at(100) == 0.5);
  const Schedule step = Schedule::learning_rate("step:every=30,factor=0.5,warmup=4");
  CHECK(step.at(3) == 1.0);  // (3 + 1)/4
  CHECK(step.at(4) == 1.0);
  CHECK(step.at(33) == 1.0);
  CHECK(step.at(34) == 0.5);   // t - W = 30
  CHECK(step.at(64) == 0.25);
  const Schedule inv = Schedule::learning_rate("invtime:t0=10,power=0.5");
  CHECK(inv.at(30) == doctest::Approx(std::pow(1 + 30 / 10.0, -0.5)));
  // Left-out steps and percentages take the horizon.
  const Schedule h = Schedule::learning_rate("cosine:warmup=5%");
  CHECK(h.needs_horizon());
  const Schedule r = h.resolve(200);
  CHECK(r.at(9) == doctest::Approx(1.0));  // warmup = 10 steps: (9 + 1)/10
  CHECK(r.at(200) == 0);
  const Schedule ramp = Schedule::batch("ramp:start=4,every=10,max=64");
  CHECK(ramp.at(0) == 4);
  CHECK(ramp.at(19) == 8);
  CHECK(ramp.at(45) == 64);
  CHECK(ramp.at(1000000) == 64);
}

TEST_CASE("schedule errors name the field and the rule") {
  CHECK_FIELD(Schedule::learning_rate("cosine:steps=10,warmup=10"), "lr_schedule 'cosine:steps=10,warmup=10': steps 10 must exceed warmup 10");
  CHECK_FIELD(Schedule::learning_rate("triangle:steps=3"), "unknown shape");
  CHECK_FIELD(Schedule::learning_rate("cosine:steps=10,foo=1"), "unknown key 'foo' for cosine");
  CHECK_FIELD(Schedule::learning_rate("step:every=10"), "step needs every=N and factor=G");
  CHECK_FIELD(Schedule::learning_rate("step:every=10,factor=0.5,warmup=5%"), "a percentage needs cosine");
  CHECK_FIELD(Schedule::learning_rate("wsd:steps=10,decay=11"), "decay 11 must be in [1, steps - warmup]");
  CHECK_FIELD(Schedule::learning_rate("cosine:steps=1.5"), "steps must be a whole number >= 1");
  CHECK_FIELD(Schedule::batch("ramp:start=4,every=10"), "ramp needs max=");
  CHECK_FIELD(Schedule::momentum("cosine:steps=3"), "expected constant or file:PATH");
  CHECK_FIELD(Schedule::learning_rate("file:/nonexistent/cesr.csv"), "cannot read file '/nonexistent/cesr.csv'");
  CHECK_FIELD(Schedule::learning_rate("cosine:warmup=5%").resolve(0), "the run has no horizon");
}

TEST_CASE("file schedules: piecewise constant from each listed step; malformed files are refused") {
  cesr_test::ScratchWorkingDirectory dir("schedule_files");
  std::ofstream("lr.csv") << "step,factor\n0,1\n10,0.5\n25,0.1\n";
  const Schedule s = Schedule::learning_rate("file:lr.csv");
  CHECK(s.at(0) == 1);
  CHECK(s.at(9) == 1);
  CHECK(s.at(10) == 0.5);
  CHECK(s.at(24) == 0.5);
  CHECK(s.at(1000) == 0.1);
  std::ofstream("bad1.csv") << "step,factor\n1,1\n";
  CHECK_FIELD(Schedule::learning_rate("file:bad1.csv"), "the first row must be step 0");
  std::ofstream("bad2.csv") << "step,factor\n0,1\n5,1\n5,2\n";
  CHECK_FIELD(Schedule::learning_rate("file:bad2.csv"), "steps must increase");
  std::ofstream("bad3.csv") << "step,lr\n0,1\n";
  CHECK_FIELD(Schedule::learning_rate("file:bad3.csv"), "the header must be step,factor");
  std::ofstream("mom.csv") << "step,momentum\n0,0.5\n3,1.2\n";
  CHECK_FIELD(Schedule::momentum("file:mom.csv"), "momentum must be in [0, 1), got 1.2");
}

TEST_CASE("exact loss under schedules equals the dense oracle with the oracle's own coefficients") {
  const Schedule lr = Schedule::learning_rate("cosine:steps=60,warmup=8,final=0.05");
  const oracle::ScalarFn lr_t = [lr](std::uint64_t t) { return 0.4L * static_cast<long double>(lr.at(t)); };
  const auto dense = [&](const oracle::Method& m, const cesr::NoiseModel& n, oracle::BatchFn batch) {
    return oracle::dense_loss(ld(problem.lambda), ld(problem.init), m.s0, n.kurtosis, n.label_noise, batch, m.coeffs,
                              80);
  };
  const cesr::NoiseModel n{4, 3.0, 0.2};
  SUBCASE("sgd and torch-sgd under warmup + cosine") {
    cesr::MethodSpec sgd = cesr::method_spec("sgd", {{"lr", 0.4}});
    sgd.lr_schedule = lr;
    CHECK(worst_relative(engine(sgd, n, 80), dense(oracle::coeffs_sgd(lr_t), n, oracle::constant_batch(4))) <= 1e-12);
    cesr::MethodSpec torch = cesr::method_spec("torch-sgd", {{"lr", 0.4}, {"momentum", 0.7}, {"dampening", 0.3}});
    torch.lr_schedule = lr;
    CHECK(worst_relative(engine(torch, n, 80),
                         dense(oracle::coeffs_torch_sgd(lr_t, 0.7L, 0.3L, false), n, oracle::constant_batch(4))) <= 1e-12);
  }
  SUBCASE("schedule-free: its weights follow the warmup (the authors' lr_max and weight_sum)") {
    cesr::MethodSpec sf = cesr::method_spec("schedule-free", {{"lr", 0.4}, {"momentum", 0.9}});
    sf.lr_schedule = Schedule::learning_rate("linear:steps=1000,warmup=10,final=1");  // warmup, then constant
    CHECK(worst_relative(engine(sf, n, 80),
                         dense(oracle::coeffs_schedule_free(0.4L, 0.9L, 10), n, oracle::constant_batch(4))) <= 1e-12);
  }
  SUBCASE("a batch ramp") {
    cesr::NoiseModel ramp = n;
    ramp.batch_schedule = Schedule::batch("ramp:start=1,every=7,max=32");
    const cesr::MethodSpec hb = cesr::method_spec("hb", {{"lr", 0.3}, {"momentum", 0.5}});
    const auto batch = [&](std::uint64_t t) { return ramp.batch_at(t); };
    CHECK(worst_relative(engine(hb, ramp, 80), dense(oracle::coeffs_heavy_ball(0.3L, 0.5L), n, batch)) <= 1e-12);
  }
  SUBCASE("a momentum schedule") {
    cesr_test::ScratchWorkingDirectory dir("schedule_momentum");
    std::ofstream("m.csv") << "step,momentum\n0,0.2\n20,0.8\n50,0.5\n";
    cesr::MethodSpec hb = cesr::method_spec("hb", {{"lr", 0.3}});
    hb.momentum_schedule = Schedule::momentum("file:m.csv");
    const auto beta = [](std::uint64_t t) { return t < 20 ? 0.2L : t < 50 ? 0.8L : 0.5L; };
    const oracle::Method m{[beta](std::uint64_t t) { return oracle::coeffs_heavy_ball(0.3L, beta(t)).coeffs(t); },
                           oracle::coeffs_heavy_ball(0.3L, 0.2L).s0};
    CHECK(worst_relative(engine(hb, n, 80), dense(m, n, oracle::constant_batch(4))) <= 1e-12);
    CHECK_FIELD([&] { cesr::MethodSpec both = hb; both.set("momentum", 0.5); both.validate(); }(),
                "momentum_schedule replaces momentum");
  }
}

TEST_CASE("Monte Carlo of the real iteration under warmup + cosine and a batch ramp") {
  cesr::MethodSpec spec = cesr::method_spec("torch-sgd", {{"lr", 0.3}, {"momentum", 0.6}});
  spec.lr_schedule = Schedule::learning_rate("cosine:steps=60,warmup=6");
  cesr::NoiseModel n{1, 3.0, 0.1};
  n.batch_schedule = Schedule::batch("ramp:start=2,every=15,max=16");
  cesr::SimulationConfig cfg;
  cfg.steps = 60;
  cfg.every = 10;
  cfg.runs = 6000;
  cfg.seed = 31;
  const auto r = cesr::simulate(problem, spec, n, cfg);
  REQUIRE(r.step.size() == 7);
  double worst = 0;
  for (std::size_t i = 1; i < r.step.size(); ++i) worst = std::max(worst, std::abs(*r.z(i)));
  MESSAGE("max |z| under schedules: ", worst);
  CHECK(worst <= 3.6);  // Bonferroni over 6 points at alpha = 1e-3
}

TEST_CASE("cesr loss, steps and check take schedules; rate and stability refuse them") {
  using cesr_test::run_cesr;
  const std::string p = " --spectrum loguniform:d=10,kappa=100 ";
  const auto loss = run_cesr("loss" + p + "--method sgd --lr 0.5 --batch-schedule ramp:start=2,every=5,max=8 --steps 20 --every 5");
  REQUIRE(loss.code == 0);
  CHECK(loss.out.rfind("step,loss,samples\n", 0) == 0);
  CHECK(loss.out.find("\n10,") != std::string::npos);
  CHECK(loss.out.find(",30\n") != std::string::npos);  // 5 steps of 2 + 5 of 4
  CHECK(run_cesr("loss" + p + "--method sgd --lr 0.5 --lr-schedule cosine:warmup=10% --steps 50").code == 0);
  CHECK(run_cesr("steps" + p + "--method sgd --lr 0.5 --lr-schedule cosine:steps=400 --target 0.1 --relative").code ==
        0);
  const auto both = run_cesr("loss" + p + "--method sgd --lr 0.5 --batch 4 --batch-schedule ramp:start=2,every=5,max=8 --steps 5");
  CHECK(both.code == 2);
  CHECK(both.err.find("--batch-schedule replaces --batch") != std::string::npos);
  for (const std::string& cmd : std::vector<std::string>{"rate" + p + "--method sgd --lr 0.5 --lr-schedule cosine:steps=100",
                                "rate" + p + "--method sgd --lr 0.5 --batch-schedule ramp:start=2,every=5,max=8",
                                "stability" + p + "--method hb --lr-schedule step:every=10,factor=0.5 --momentum 0.5",
                                "tune" + p + "--method sgd --lr-schedule cosine:steps=100"}) {
    const auto r = run_cesr(cmd);
    INFO(cmd, "\n", r.err);
    CHECK(r.code == 2);
    CHECK(r.err.find("steps") != std::string::npos);
  }
}
