// End to end: weighted and npy spectra, the additive noise model and the
// preconditioner through the command line (every command that takes a
// problem), and the bad inputs (exit 2, one line naming the flag).
#include <doctest/doctest.h>

#include "cesr_run.hpp"
#include "npy_bytes.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>

namespace {

using cesr_test::Run;

Run cesr(const std::string& args) { return cesr_test::run_cesr(args); }

std::string write(const std::string& name, const std::string& content) {
  const auto path = cesr_test::capture_dir() / name;
  std::ofstream(path, std::ios::binary) << content;
  return path.string();
}

int lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

std::string npy(const std::vector<double>& v) { return cesr_test::npy_f8(v); }

}  // namespace

TEST_CASE("weighted file, expanded file and npy give the same loss, rate, steps and tune") {
  const std::string weighted = write("w.spectrum", "# lambda w\n1 3\n0.1 2\n0.01 4\n");
  const std::string expanded = write("e.spectrum", "1\n1\n1\n0.1\n0.1\n0.01\n0.01\n0.01\n0.01\n");
  const std::string as_npy = write("e.npy", npy({1, 1, 1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01}));
  const std::string method = " --method hb --lr 0.1 --momentum 0.8 --batch 2";
  for (const std::string cmd : {"loss --steps 200 --every 50", "rate", "steps --target 1e-3 --relative"}) {
    const Run w = cesr(cmd + " --spectrum file:" + weighted + method);
    const Run e = cesr(cmd + " --spectrum file:" + expanded + method);
    const Run n = cesr(cmd + " --spectrum npy:" + as_npy + method);
    REQUIRE(w.code == 0);
    REQUIRE(e.code == 0);
    CHECK(e.out == n.out);  // npy and text: the same doubles
    CHECK(w.err.find("fractional") == std::string::npos);  // whole weights: no note
    if (cmd == "rate") {
      const auto jw = nlohmann::json::parse(w.out), je = nlohmann::json::parse(e.out);
      CHECK(double(jw["gap"]) == doctest::Approx(double(je["gap"])).epsilon(1e-13));
    } else if (cmd.rfind("steps", 0) == 0) {
      CHECK(nlohmann::json::parse(w.out)["steps"] == nlohmann::json::parse(e.out)["steps"]);
    } else {
      // CSV step,loss rows: equal to 1e-13 relative.
      std::istringstream a(w.out), b(e.out);
      std::string la, lb;
      std::getline(a, la);
      std::getline(b, lb);
      int rows = 0;
      while (std::getline(a, la) && std::getline(b, lb)) {
        const double x = std::stod(la.substr(la.find(',') + 1)), y = std::stod(lb.substr(lb.find(',') + 1));
        CHECK(x == doctest::Approx(y).epsilon(1e-13));
        ++rows;
      }
      CHECK(rows == 5);
    }
  }
  const Run tw = cesr("tune --spectrum file:" + weighted + " --method hb --batch 4 --format json");
  const Run te = cesr("tune --spectrum file:" + expanded + " --method hb --batch 4 --format json");
  REQUIRE(tw.code == 0);
  REQUIRE(te.code == 0);
  const auto a = nlohmann::json::parse(tw.out), b = nlohmann::json::parse(te.out);
  CHECK(double(a["gap"]) == doctest::Approx(double(b["gap"])).epsilon(1e-9));
  // One initial moment per line.
  const std::string init = write("w.init", "1\n2\n0.5\n");
  CHECK(cesr("rate --spectrum file:" + weighted + " --init file:" + init + method).code == 0);
  const Run bad_init = cesr("loss --steps 3 --spectrum file:" + weighted + " --init file:" + expanded + method);
  CHECK(bad_init.code == 2);
  CHECK(bad_init.err.find("--init") != std::string::npos);
  CHECK(bad_init.err.find("holds 9 values but the spectrum has 3") != std::string::npos);
}

TEST_CASE("fractional weights: a note on stderr; simulate refuses them") {
  const std::string frac = write("f.spectrum", "1 2.5\n0.1 0.5\n");
  const Run r = cesr("rate --spectrum file:" + frac + " --method sgd --lr 0.2");
  REQUIRE(r.code == 0);
  CHECK(r.err.find("note: the spectrum has fractional weights") != std::string::npos);
  CHECK(lines(r.err) == 1);
  const Run s = cesr("simulate --spectrum file:" + frac + " --method sgd --lr 0.5 --steps 5 --runs 10");
  CHECK(s.code == 2);
  CHECK(s.out.empty());
  CHECK(s.err.find("needs whole directions") != std::string::npos);
}

TEST_CASE("additive noise model: loss floor in steps, refused options, simulate and check") {
  const std::string p = "--spectrum loguniform:d=20,kappa=100 --noise-model additive --method sgd --lr 0.5 --batch 4";
  const Run st = cesr("steps " + p + " --target 0.2");
  REQUIRE(st.code == 0);
  const auto j = nlohmann::json::parse(st.out);
  CHECK(j.contains("loss_floor"));
  const double floor = j["loss_floor"];
  CHECK(floor > 0);
  const Run never = cesr("steps " + p + " --target " + std::to_string(0.5 * floor));
  CHECK(never.code == 1);
  CHECK(never.err.find("at or below the loss floor") != std::string::npos);
  // The rate is the noiseless one: the same at every batch size.
  const Run r1 = cesr("rate --spectrum loguniform:d=20,kappa=100 --noise-model additive --method sgd --lr 0.5 --batch 1");
  const Run r2 = cesr("rate --spectrum loguniform:d=20,kappa=100 --noise-model additive --method sgd --lr 0.5 --batch 64");
  REQUIRE(r1.code == 0);
  CHECK(r1.out == r2.out);
  for (const std::string bad : {" --kurtosis 1", " --noise 0.1"}) {
    const Run b = cesr("loss " + p + " --steps 5" + bad);
    CHECK(b.code == 2);
    CHECK(b.out.empty());
    CHECK(lines(b.err) == 1);
    CHECK(b.err.find(bad.substr(1, bad.find(' ', 1) - 1) + " does not apply to --noise-model additive") !=
          std::string::npos);
  }
  const Run scale_mult = cesr("loss --spectrum loguniform:d=5,kappa=10 --method sgd --lr 0.5 --steps 3 --noise-scale 2");
  CHECK(scale_mult.code == 2);
  CHECK(scale_mult.err.find("--noise-scale applies only to --noise-model additive") != std::string::npos);
  const Run bad_model = cesr("loss " + std::string("--spectrum loguniform:d=5,kappa=10 --method sgd --lr 0.5 --steps 3 --noise-model gaussian"));
  CHECK(bad_model.code == 2);
  CHECK(bad_model.err.find("--noise-model") != std::string::npos);
  const Run neg = cesr("loss " + p + " --steps 3 --noise-scale -1");
  CHECK(neg.code == 2);
  CHECK(neg.err.find("--noise-scale must be a finite number >= 0") != std::string::npos);
  const std::string cov = write("c.txt", "1\n2\n");
  const Run short_cov = cesr("loss " + p + " --steps 3 --noise-covariance file:" + cov);
  CHECK(short_cov.code == 2);
  CHECK(short_cov.err.find("--noise-covariance") != std::string::npos);
  // simulate with additive noise, then check its output against the recursion.
  const std::string csv = (cesr_test::capture_dir() / "additive.csv").string();
  const Run sim = cesr("simulate " + p + " --steps 40 --every 10 --runs 3000 --seed 5 --output " + csv);
  REQUIRE(sim.code == 0);
  const Run chk = cesr("check --input " + csv + " " + p);
  CHECK(chk.code == 0);
  const Run rad = cesr("simulate " + p + " --steps 4 --runs 10 --covariates rademacher");
  CHECK(rad.code == 2);
  // tune and frontier with the steps objective; frontier refuses the rate objective.
  const Run tune = cesr("tune --spectrum loguniform:d=20,kappa=100 --noise-model additive --method sgd --batch 8 "
                        "--objective steps --target 0.2 --format json");
  REQUIRE(tune.code == 0);
  CHECK(!nlohmann::json::parse(tune.out)["steps"].is_null());
  const Run fr = cesr("frontier --spectrum loguniform:d=20,kappa=100 --noise-model additive --methods sgd --batches 1,64");
  CHECK(fr.code == 2);
  CHECK(fr.err.find("--objective rate does not apply to --noise-model additive") != std::string::npos);
}

TEST_CASE("--precondition power:p=gamma: every command, p = 1 makes every direction lambda_max") {
  // gamma = 1: p_i lambda_i = lambda_max for every i, i.e. the problem of one
  // eigenvalue lambda_max repeated d times with init_i lambda_i / lambda_max.
  const std::string pre = "--spectrum loguniform:d=4,kappa=1000 --precondition power:p=1 --method sgd --lr 0.3 --batch 2";
  const std::string init = write("pinit.txt", "1\n0.1\n0.01\n0.001\n");
  const std::string flat = write("flat.txt", "1\n1\n1\n1\n");
  const Run a = cesr("loss " + pre + " --steps 30 --every 10");
  const Run b = cesr("loss --spectrum file:" + flat + " --init file:" + init + " --method sgd --lr 0.3 --batch 2 --steps 30 --every 10");
  REQUIRE(a.code == 0);
  REQUIRE(b.code == 0);
  std::istringstream x(a.out), y(b.out);
  std::string lx, ly;
  std::getline(x, lx);
  std::getline(y, ly);
  while (std::getline(x, lx) && std::getline(y, ly))
    CHECK(std::stod(lx.substr(lx.find(',') + 1)) == doctest::Approx(std::stod(ly.substr(ly.find(',') + 1))).epsilon(1e-13));
  for (const std::string cmd : {"rate", "stability", "steps --target 1e-3 --relative", "tune --format json"}) {
    const Run r = cesr(cmd + " --spectrum loguniform:d=30,kappa=1e4 --precondition power:p=0.5 --method hb --momentum 0.5 --batch 4" +
                       (cmd == "rate" || cmd.rfind("steps", 0) == 0 ? " --lr 0.2" : ""));
    const std::string why = cmd + ": " + r.err;
    CHECK_MESSAGE(r.code == 0, why);
  }
  const Run bad = cesr("rate --spectrum loguniform:d=5,kappa=10 --method sgd --lr 0.5 --precondition power:p=2");
  CHECK(bad.code == 2);
  CHECK(bad.err.find("--precondition") != std::string::npos);
  CHECK(lines(bad.err) == 1);
}
