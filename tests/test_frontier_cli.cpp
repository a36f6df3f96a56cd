// End-to-end: `cesr tune` and `cesr frontier` as a user runs them. JSON layouts
// (normative keys), every output format, thread-count independence, the steps
// objective reproduced by `cesr steps` with the printed hyperparameters, and
// bad input (exit 2, one line naming the flag, no output file).
#include <doctest/doctest.h>

#include "cesr_run.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

namespace {

using cesr_test::Run;
Run cesr(const std::string& args) { return cesr_test::run_cesr(args); }

const std::string problem = "--spectrum loguniform:d=50,kappa=1e3";

}  // namespace

TEST_CASE("cesr frontier --format json has the normative layout") {
  const Run r = cesr("frontier " + problem + " --methods sgd,hb,asgd --batches 1:256:x4 --format json");
  REQUIRE(r.code == 0);
  CHECK(r.err.empty());
  const auto list = nlohmann::json::parse(r.out);
  REQUIRE(list.is_array());  // one shape for every run: a list of problem objects
  REQUIRE(list.size() == 1);
  const auto& j = list[0];
  REQUIRE(j.is_object());
  for (const char* k : {"problem", "rows", "summary"}) CHECK(j.contains(k));
  CHECK(j["problem"]["spectrum"] == "loguniform:d=50,kappa=1e3");
  REQUIRE(j["rows"].size() == 3 * 5);
  for (const auto& row : j["rows"]) {
    for (const char* k : {"method", "batch", "gap", "steps", "ce", "params"}) CHECK(row.contains(k));
    const std::string m = row["method"];
    CHECK(row["params"].contains("lr"));
    CHECK(row["params"].contains("momentum") == (m == "hb"));
    CHECK(row["params"].contains("kappa") == (m == "asgd"));
    CHECK(row["params"].contains("xi") == (m == "asgd"));
    // ce = gap / B for the rate objective; steps = ceil(ln(1e6) / -ln(1 - gap)).
    const double gap = row["gap"], ce = row["ce"];
    const double batch = row["batch"];
    CHECK(ce == doctest::Approx(gap / batch).epsilon(1e-12));
    CHECK(row["steps"].get<double>() == std::ceil(std::log(1e6) / -std::log1p(-gap)));
  }
  const auto& s = j["summary"];
  for (const char* k : {"methods", "window_ratio", "sqrt_kappa", "trace_over_max", "kappa"}) CHECK(s.contains(k));
  for (const char* m : {"sgd", "hb", "asgd"}) {
    REQUIRE(s["methods"].contains(m));
    for (const char* k : {"best_ce", "best_ce_batch", "critical_batch", "mccandlish_batch"})
      CHECK(s["methods"][m].contains(k));
  }
  CHECK(s["sqrt_kappa"].get<double>() == doctest::Approx(std::sqrt(1e3)));
  CHECK(s["kappa"].get<double>() == doctest::Approx(1e3));
}

TEST_CASE("cesr frontier: every format, and the same output whatever the thread count") {
  const std::string base = "frontier " + problem + " --methods sgd,hb --batches 1,4,64,1024";
  const Run one = cesr(base + " --format csv --threads 1");
  const Run two = cesr(base + " --format csv --threads 2");
  REQUIRE(one.code == 0);
  CHECK(one.out == two.out);
  // One column per hyperparameter the methods of the run tune (registry order).
  CHECK(one.out.rfind("problem,spectrum,init,method,batch,gap,steps,ce,lr,momentum\n", 0) == 0);
  CHECK(std::count(one.out.begin(), one.out.end(), '\n') == 1 + 8);
  const Run table = cesr(base + " --format table");
  REQUIRE(table.code == 0);
  CHECK(table.out.find("critical_batch") != std::string::npos);
  CHECK(table.out.find("window B_crit(hb)/B_crit(sgd)") != std::string::npos);
  const Run md = cesr(base + " --format markdown");
  REQUIRE(md.code == 0);
  CHECK(md.out.find("| method") != std::string::npos);
  const Run tex = cesr(base + " --format latex");
  REQUIRE(tex.code == 0);
  CHECK(tex.out.find("\\begin{tabular}") != std::string::npos);
  // --output writes the same bytes to a file.
  const auto path = std::filesystem::temp_directory_path() / fmt::format("cesr_frontier_{}.csv", getpid());
  const Run to_file = cesr(base + " --format csv --threads 2 --output " + path.string());
  REQUIRE(to_file.code == 0);
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  CHECK(ss.str() == one.out);
  std::filesystem::remove(path);
}

TEST_CASE("cesr tune prints the normative JSON, and cesr steps reproduces the steps objective") {
  for (const char* method : {"sgd", "hb", "asgd"}) {
    const Run t = cesr("tune " + problem + fmt::format(" --method {} --batch 8 --objective steps --target 1e-4 --relative", method));
    REQUIRE(t.code == 0);
    const auto j = nlohmann::json::parse(t.out);
    for (const char* k : {"method", "batch", "objective", "params", "gap", "steps", "evaluations"}) CHECK(j.contains(k));
    CHECK(j["method"] == method);
    CHECK(j["objective"] == "steps");
    // Paste the printed hyperparameters (17 significant digits, as text) back.
    std::string args;
    for (const auto& [k, v] : j["params"].items()) {
      const auto at = t.out.find("\"" + k + "\": ");
      REQUIRE(at != std::string::npos);
      const auto from = at + k.size() + 4;
      args += fmt::format(" --{} {}", k, t.out.substr(from, t.out.find_first_of(",}", from) - from));
    }
    const Run s = cesr("steps " + problem + fmt::format(" --method {} --batch 8 --target 1e-4 --relative{}", method, args));
    REQUIRE(s.code == 0);
    CAPTURE(args);
    CHECK(nlohmann::json::parse(s.out)["steps"] == j["steps"]);
  }
  const Run rate = cesr("tune " + problem + " --method nag --batch 4 --format table");
  REQUIRE(rate.code == 0);
  CHECK(rate.out.find("momentum") != std::string::npos);
}

TEST_CASE("bad input: exit 2, one line naming the flag, nothing written") {
  const auto path = std::filesystem::temp_directory_path() / fmt::format("cesr_frontier_bad_{}.json", getpid());
  std::filesystem::remove(path);
  const std::pair<const char*, const char*> cases[] = {
      {"frontier --batches 0:8:x2", "--batches"},
      {"frontier --batches 1,2,2", "--batches"},
      {"frontier --methods sgd,foo", "--methods"},
      {"frontier --methods custom", "--methods"},
      {"frontier --target -1", "--target"},
      {"frontier --target 2 --relative", "--target"},
      {"frontier --objective fast", "--objective"},
      {"frontier --format xml", "--format"},
      {"frontier --spectrum powerlaw:d=0,alpha=1", "--spectrum"},
      {"frontier --kurtosis 0.5", "--kurtosis"},
      {"frontier --threads -1", "--threads"},
      {"tune --method custom", "--method"},
      {"tune --method hb --xi 2", "--xi"},
      {"tune --method sgd --lr -1", "--lr"},
      {"tune --method hb --momentum 1.5", "--momentum"},
      {"tune --method sgd --batch 0", "--batch"},
      {"tune --method sgd --objective steps --target 1e9", "--target"},
  };
  for (const auto& [args, flag] : cases) {
    const std::string spectrum =
        std::string(args).find("--spectrum") == std::string::npos ? " --spectrum loguniform:d=20,kappa=1e2" : "";
    const Run r = cesr(fmt::format("{}{} --output {}", args, spectrum, path.string()));
    CAPTURE(args);
    CHECK(r.code == 2);
    CHECK(r.err.find(flag) != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK_FALSE(std::filesystem::exists(path));
  }
}

TEST_CASE("cesr window: a kappa given twice is bad input; cesr tune never prints a negative zero") {
  const Run twice = cesr("window --kappas 1e2,1e4,1e2 --d 10");
  CHECK(twice.code == 2);
  CHECK(twice.err.find("--kappas") != std::string::npos);
  CHECK(std::count(twice.err.begin(), twice.err.end(), '\n') == 1);
  // d = 1, B = 1: the best heavy ball is SGD (momentum 0) with eta = 1/(K lambda) = 1/3 and
  // rho = (1 - 1/3)^2 + 2/9 = 2/3 (closed form of d = 1 SGD with K = 3).
  const Run t = cesr("tune --spectrum powerlaw:d=1,alpha=1 --method hb --batch 1");
  REQUIRE(t.code == 0);
  const auto j = nlohmann::json::parse(t.out);
  CHECK(j["params"]["momentum"].get<double>() == doctest::Approx(0).epsilon(1e-6));
  CHECK(t.out.find("-0,") == std::string::npos);
  CHECK(t.out.find("\"momentum\": -") == std::string::npos);
  CHECK(j["gap"].get<double>() == doctest::Approx(1.0 / 3).epsilon(1e-6));
  CHECK(j["params"]["lr"].get<double>() == doctest::Approx(1.0 / 3).epsilon(1e-4));
}

TEST_CASE("cesr window: the heavy-ball window grows like sqrt(kappa)") {
  const Run r = cesr("window --kappas 1e2,1e4 --d 100 --format json");
  REQUIRE(r.code == 0);
  const auto j = nlohmann::json::parse(r.out);
  REQUIRE(j.size() == 2);
  for (const auto& row : j) {
    const double over = row["window_over_sqrt_kappa"];
    CHECK(over > 0.2);
    CHECK(over < 2.0);
    CHECK(row["window_ratio"].get<double>() ==
          doctest::Approx(row["critical_batch_hb"].get<double>() / row["critical_batch_sgd"].get<double>()));
  }
  const Run bad = cesr("window --kappas 1e2,0.5");
  CHECK(bad.code == 2);
  CHECK(bad.err.find("--kappas") != std::string::npos);
}

TEST_CASE("--help describes the commands with a working example") {
  for (const char* cmd : {"frontier", "tune", "window"}) {
    const Run r = cesr(fmt::format("{} --help", cmd));
    CHECK(r.code == 0);
    CHECK(r.out.find("Example") != std::string::npos);
    const bool threads_documented = r.out.find("--threads") != std::string::npos;
    CHECK(threads_documented);  // tune: the threads of the rate's kernels
  }
}

TEST_CASE("cesr frontier --digits sets the significant digits of latex and markdown tables") {
  const Run json = cesr("frontier " + problem + " --methods sgd --batches 1,64 --format json");
  REQUIRE(json.code == 0);
  const auto rows = nlohmann::json::parse(json.out)[0]["rows"];
  for (int digits : {2, 5}) {
    const Run md = cesr(fmt::format("frontier {} --methods sgd --batches 1,64 --format markdown --digits {}", problem,
                                    digits));
    REQUIRE(md.code == 0);
    // Each gap appears rounded to `digits` significant digits, computed here from the JSON value.
    for (const auto& row : rows) {
      const std::string rounded = fmt::format("{:.{}e}", row["gap"].get<double>(), digits - 1);
      CHECK_MESSAGE(md.out.find(rounded) != std::string::npos, rounded);
    }
  }
  const Run bad = cesr("frontier " + problem + " --digits 0");
  CHECK(bad.code == 2);
  CHECK(bad.err.find("--digits") != std::string::npos);
}

TEST_CASE("cesr frontier: a method with no usable row has null best CE and the run exits 1") {
  // Ten steps cannot reach 1e-6 L_0: every row is "not reached". The output
  // still lists the tuned rows (steps and ce null), and says so on stderr.
  const Run r = cesr("frontier --spectrum loguniform:d=10,kappa=100 --methods sgd,hb --batches 1,4 --objective steps "
                     "--target 1e-6 --relative --max-steps 10 --horizon stepping --format json");
  CHECK(r.code == 1);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.find("--max-steps") != std::string::npos);
  const auto j = nlohmann::json::parse(r.out).at(0);
  for (const auto& row : j["rows"]) {
    CHECK(row["steps"].is_null());
    CHECK(row["ce"].is_null());
  }
  for (const char* m : {"sgd", "hb"}) {
    CHECK(j["summary"]["methods"][m]["best_ce"].is_null());
    CHECK(j["summary"]["methods"][m]["best_ce_batch"].is_null());
  }
}

TEST_CASE("frontier on a spectrum whose kappa exceeds the double range: refused in one line, nothing written") {
  // lambda = 1e308 and 4e-4: kappa = 2.5e311 overflows double. The summary
  // printed sqrt(kappa) = inf; the tuner then said "no stable hyperparameters"
  // (the rate objective: gaps about 4e-312) or lr = 0 (the final objective).
  const auto file = cesr_test::capture_dir() / "huge_kappa.txt";
  {
    std::ofstream f(file);
    f << "1e308\n4e-4\n";
  }
  const std::string args = "frontier --spectrum file:" + file.string() + " --methods sgd,hb --batches 1:4:x2";
  for (const std::string form : {"json", "table", "csv --table summary", "csv --objective final --samples 100"}) {
    CAPTURE(form);
    const Run r = cesr(args + " --format " + form);
    CHECK(r.code == 2);
    CHECK(r.out.empty());
    CHECK(r.err.find("--spectrum: kappa = lambda_max/lambda_min = 1e+308/0.0004 exceeds the double range") !=
          std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  }
}
