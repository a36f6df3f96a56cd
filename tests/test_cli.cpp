// End-to-end tests of `cesr loss` and `cesr steps`: the built binary is run
// through the shell, its standard output, standard error and exit code are
// captured and checked. Numbers are checked against the closed form of SGD on
// one eigendirection (L_t = L_0 rho^t, rho = (1 - eta lambda)^2 + (K - 1) eta^2
// lambda^2 / B), not against the program's own output.
#include <doctest/doctest.h>

#include "cesr_run.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;

// A scratch folder for inputs and outputs, removed at the end.
struct Scratch {
  fs::path dir;
  Scratch() {
    std::random_device rd;
    dir = fs::temp_directory_path() / ("cesr_test_cli_" + std::to_string(rd()));
    fs::create_directories(dir);
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string write(const std::string& name, const std::string& content) const {
    std::ofstream(dir / name) << content;
    return (dir / name).string();
  }
  std::string path(const std::string& name) const { return (dir / name).string(); }
};

using cesr_test::Run;
using cesr_test::slurp;
Run cesr_run(const std::string& args, const std::string& cwd = "") { return cesr_test::run_cesr(args, cwd); }

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);) out.push_back(line);
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, sep);) out.push_back(item);
  return out;
}

// Significant digits of a number written in scientific notation.
int significant_digits(const std::string& number) {
  const auto e = number.find_first_of("eE");
  int n = 0;
  for (std::size_t i = 0; i < std::min(e, number.size()); ++i) n += std::isdigit(static_cast<unsigned char>(number[i])) != 0;
  return n;
}

// Shortest text that reads back as the same double.
std::string num(double x) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  return buf;
}

// d = 1, lambda = 0.5, E[e_0^2] = 2, SGD eta = 0.4, batch 2, K = 3: rho and L_0.
constexpr double lambda = 0.5, m0 = 2.0, eta = 0.4;
constexpr std::uint64_t batch = 2;
double rho() { return std::pow(1 - eta * lambda, 2) + 2 * eta * eta * lambda * lambda / double(batch); }
double closed_form(std::uint64_t t) { return 0.5 * lambda * m0 * std::pow(rho(), double(t)); }

struct OneDirection {
  Scratch s;
  std::string spectrum = s.write("lambda.txt", "# one eigenvalue\n0.5\n");
  std::string init = s.write("init.txt", "2\n");
  std::string problem() const {
    return "--spectrum file:" + spectrum + " --init file:" + init + " --method sgd --lr 0.4 --batch 2";
  }
};

}  // namespace

TEST_CASE("--help, --version and the command list") {
  const Run top = cesr_run("--help");
  CHECK(top.code == 0);
  CHECK(top.out.find("loss") != std::string::npos);
  CHECK(top.out.find("steps") != std::string::npos);
  const Run version = cesr_run("--version");
  CHECK(version.code == 0);
  CHECK(version.out == std::string("cesr ") + CESR_VERSION + "\n");
  const Run loss = cesr_run("loss --help");
  CHECK(loss.code == 0);
  CHECK(loss.err.empty());
  for (const char* word : {"Usage: cesr loss", "--spectrum", "--init", "--method", "--lr", "--momentum", "--kappa",
                           "--xi", "--small-const", "--method-file", "--batch", "--steps", "--every", "--kurtosis",
                           "--noise", "--precision", "--format", "--output", "Example"}) {
    CAPTURE(word);
    CHECK(loss.out.find(word) != std::string::npos);
  }
  const Run steps = cesr_run("steps --help");
  CHECK(steps.code == 0);
  for (const char* word : {"Usage: cesr steps", "--spectrum", "--method", "--target", "--relative", "--max-steps",
                           "--output", "Example"}) {
    CAPTURE(word);
    CHECK(steps.out.find(word) != std::string::npos);
  }
}

TEST_CASE("every example in the help runs and succeeds") {
  // Lines of the form "  cesr COMMAND ..." in the help footer.
  for (const char* command : {"loss", "steps"}) {
    CAPTURE(command);
    const Run help = cesr_run(std::string(command) + " --help");
    int examples = 0;
    for (const auto& line : lines(help.out)) {
      const auto at = line.find("cesr " + std::string(command) + " ");
      if (at == std::string::npos || line.find_first_not_of(' ') != at) continue;
      ++examples;
      CAPTURE(line);
      Scratch dir;  // examples may write files: run them in a scratch folder
      const Run r = cesr_run(line.substr(at + 5), dir.dir.string());
      CHECK(r.code == 0);
      CHECK(r.err.empty());
      bool wrote = !r.out.empty();
      for (const auto& entry : fs::directory_iterator(dir.dir)) wrote |= fs::file_size(entry.path()) > 0;
      CHECK(wrote);
      // An example should show a method that converges: the last loss printed
      // is below the first (a growing curve means the example diverges).
      if (std::string(command) == "loss" && !r.out.empty()) {
        const auto rows = lines(r.out);
        REQUIRE(rows.size() >= 3);
        const auto first = split(rows[1], ','), last = split(rows.back(), ',');
        CHECK(std::stod(last.back()) < std::stod(first.back()));
      }
    }
    CHECK(examples >= 1);
  }
}

TEST_CASE("loss --format csv: header, every-th rows, the last step, 17 significant digits, closed-form values") {
  const OneDirection p;
  const Run r = cesr_run("loss " + p.problem() + " --steps 23 --every 5");
  REQUIRE(r.code == 0);
  CHECK(r.err.empty());
  const auto rows = lines(r.out);
  REQUIRE(rows.size() == 7);
  CHECK(rows[0] == "step,loss");
  const std::vector<std::uint64_t> want_steps{0, 5, 10, 15, 20, 23};
  for (std::size_t i = 1; i < rows.size(); ++i) {
    const auto cells = split(rows[i], ',');
    REQUIRE(cells.size() == 2);
    CHECK(std::stoull(cells[0]) == want_steps[i - 1]);
    CHECK(significant_digits(cells[1]) >= 17);
    CHECK(std::stod(cells[1]) == doctest::Approx(closed_form(want_steps[i - 1])).epsilon(1e-14));
  }
  // T a multiple of N: the last step is printed once; N > T: only 0 and T.
  CHECK(lines(cesr_run("loss " + p.problem() + " --steps 20 --every 5").out).size() == 6);
  const auto few = lines(cesr_run("loss " + p.problem() + " --steps 3 --every 100").out);
  REQUIRE(few.size() == 3);
  CHECK(few[1].rfind("0,", 0) == 0);
  CHECK(few[2].rfind("3,", 0) == 0);
  // Default --every 1: every step.
  CHECK(lines(cesr_run("loss " + p.problem() + " --steps 7").out).size() == 9);
}

TEST_CASE("json and table carry the same numbers as csv; quad and mp50 print more digits") {
  const OneDirection p;
  const Run csv = cesr_run("loss " + p.problem() + " --steps 40 --every 10 --format csv");
  const Run json = cesr_run("loss " + p.problem() + " --steps 40 --every 10 --format json");
  const Run table = cesr_run("loss " + p.problem() + " --steps 40 --every 10 --format table");
  REQUIRE(csv.code == 0);
  REQUIRE(json.code == 0);
  REQUIRE(table.code == 0);
  const auto csv_rows = lines(csv.out);
  const auto j = nlohmann::json::parse(json.out);
  const auto table_rows = lines(table.out);
  REQUIRE(j.is_array());
  REQUIRE(j.size() == csv_rows.size() - 1);
  REQUIRE(table_rows.size() == csv_rows.size());
  for (std::size_t i = 0; i < j.size(); ++i) {
    const auto cells = split(csv_rows[i + 1], ',');
    CHECK(j[i].size() == 2);
    CHECK(j[i]["step"].get<std::uint64_t>() == std::stoull(cells[0]));
    CHECK(j[i]["loss"].get<double>() == std::stod(cells[1]));
    std::istringstream t(table_rows[i + 1]);
    std::string step, loss;
    t >> step >> loss;
    CHECK(step == cells[0]);
    CHECK(loss == cells[1]);
  }
  for (const auto& [precision, digits] : {std::pair{"quad", 33}, std::pair{"mp50", 50}}) {
    CAPTURE(precision);
    const Run hi = cesr_run("loss " + p.problem() + " --steps 40 --every 10 --precision " + precision);
    REQUIRE(hi.code == 0);
    const auto rows = lines(hi.out);
    REQUIRE(rows.size() == csv_rows.size());
    for (std::size_t i = 1; i < rows.size(); ++i) {
      const auto cells = split(rows[i], ',');
      CHECK(significant_digits(cells[1]) >= digits);
      CHECK(std::stod(cells[1]) == doctest::Approx(std::stod(split(csv_rows[i], ',')[1])).epsilon(1e-15));
    }
  }
}

TEST_CASE("--output writes the same bytes as standard output") {
  const OneDirection p;
  const std::string file = p.s.path("curve.csv");
  const Run to_file = cesr_run("loss " + p.problem() + " --steps 10 --output " + file);
  CHECK(to_file.code == 0);
  CHECK(to_file.out.empty());
  CHECK(slurp(file) == cesr_run("loss " + p.problem() + " --steps 10").out);
  const std::string json = p.s.path("steps.json");
  CHECK(cesr_run("steps " + p.problem() + " --target 1e-3 --output " + json).code == 0);
  CHECK(nlohmann::json::parse(slurp(json))["reached"] == true);
}

TEST_CASE("steps: JSON shape, absolute and relative targets against the closed form, exit 1 when not reached") {
  const OneDirection p;
  const double L0 = closed_form(0);
  const auto first_below = [&](double goal) {
    std::uint64_t t = 0;
    while (closed_form(t) > goal) ++t;
    return t;
  };
  for (const double eps : {1e-2, 1e-6, 1e-12}) {
    CAPTURE(eps);
    const Run abs_run = cesr_run("steps " + p.problem() + " --target " + num(eps * L0));
    const Run rel_run = cesr_run("steps " + p.problem() + " --relative --target " + num(eps));
    REQUIRE(abs_run.code == 0);
    REQUIRE(rel_run.code == 0);
    const auto ja = nlohmann::json::parse(abs_run.out), jr = nlohmann::json::parse(rel_run.out);
    CHECK(ja.size() == 5);
    CHECK((ja["horizon"] == "exact" || ja["horizon"] == "stepping"));
    CHECK(ja["reached"] == true);
    CHECK(jr["reached"] == true);
    CHECK(ja["steps"].get<std::uint64_t>() == first_below(eps * L0));
    CHECK(jr["steps"].get<std::uint64_t>() == first_below(eps * L0));
    CHECK(jr["loss"].get<double>() == doctest::Approx(closed_form(first_below(eps * L0))).epsilon(1e-12));
    CHECK(jr["initial_loss"].get<double>() == L0);
  }
  // --max-steps caps time stepping only (the exact path would answer).
  const Run miss = cesr_run("steps " + p.problem() + " --target 1e-12 --max-steps 10 --horizon stepping");
  CHECK(miss.code == 1);
  const auto jm = nlohmann::json::parse(miss.out);
  CHECK(jm["steps"].is_null());
  CHECK(jm["reached"] == false);
  CHECK(jm["loss"].get<double>() == doctest::Approx(closed_form(10)).epsilon(1e-13));
  CHECK(lines(miss.err).size() == 1);
  CHECK(miss.err.find("--max-steps 10") != std::string::npos);
}

TEST_CASE("a diverging method exits 3 with one line on stderr and no rows") {
  // d = 1, lambda = 1, eta = 1.9, B = 1: rho = 0.81 + 2 * 3.61 = 8.03; L_t = rho^t / 2
  // first exceeds the largest double at t = floor(log(2 DBL_MAX) / log(rho)) + 1.
  Scratch s;
  const std::string spectrum = s.write("one.txt", "1\n");
  const auto expect =
      static_cast<std::uint64_t>(std::floor((std::log(2.0) + std::log(1.7976931348623157e308)) / std::log(0.81 + 2 * 3.61)) + 1);
  const std::string problem = "--spectrum file:" + spectrum + " --method sgd --lr 1.9";
  const std::string out = s.path("diverged.csv");
  for (const char* precision : {"double", "mp50"}) {
    CAPTURE(precision);
    const Run loss = cesr_run(std::string("loss ") + problem + " --steps 1000 --precision " + precision + " --output " + out);
    CHECK(loss.code == 3);
    CHECK(loss.out.empty());
    CHECK(lines(loss.err).size() == 1);
    CHECK(loss.err.find("diverges") != std::string::npos);
    CHECK(loss.err.find("at step " + std::to_string(expect)) != std::string::npos);
    CHECK_FALSE(fs::exists(out));
    const Run steps = cesr_run(std::string("steps ") + problem + " --target 1e-3 --precision " + precision);
    CHECK(steps.code == 3);
    CHECK(steps.out.empty());
    CHECK(lines(steps.err).size() == 1);
    CHECK(steps.err.find("at step " + std::to_string(expect)) != std::string::npos);
  }
  // Stopping before the divergence is not an error.
  CHECK(cesr_run("loss " + problem + " --steps 300 --every 100").code == 0);
}

TEST_CASE("bad input: one line on stderr naming the flag and the value, exit 2, no output file") {
  Scratch s;
  const std::string good = s.write("good.txt", "1\n0.5\n0.25\n");
  const std::string bad_line = s.write("bad_line.txt", "1\n# comment\n\nabc\n");
  const std::string zero_line = s.write("zero_line.txt", "1\n0\n");
  const std::string two_init = s.write("two_init.txt", "1\n1\n");
  const std::string bad_json = s.write("bad.json", R"({"P": [[1]], "q": [1]})");
  const std::string problem = "--spectrum file:" + good;
  const std::string sgd = problem + " --method sgd --lr 0.1";
  struct Bad {
    std::string args;
    std::vector<std::string> names;  // the flag and the value the message must contain
  };
  const std::vector<Bad> cases{
      {"frobnicate --steps 3", {"frobnicate"}},
      {"loss " + sgd + " --steps 3 --bogus 1", {"--bogus"}},
      {"loss " + problem + " --method adam --lr 0.1 --steps 3", {"--method", "adam"}},
      {"loss " + problem + " --lr 0.1 --steps 3", {"--method"}},
      {"loss " + problem + " --method sgd --steps 3", {"--lr"}},
      {"loss " + problem + " --method hb --lr 0.1 --steps 3", {"--momentum"}},
      {"loss " + problem + " --method asgd --lr 0.1 --kappa 10 --steps 3", {"--xi"}},
      {"loss " + sgd + " --momentum 0.5 --steps 3", {"--momentum", "0.5"}},
      {"loss " + problem + " --method hb --lr 0.1 --momentum 0.5 --kappa 3 --steps 3", {"--kappa", "3"}},
      {"loss " + sgd + " --method-file " + good + " --steps 3", {"--method-file", good}},
      {"loss " + problem + " --method sgd --lr 0 --steps 3", {"--lr", "0"}},
      {"loss " + problem + " --method sgd --lr -0.5 --steps 3", {"--lr", "-0.5"}},
      {"loss " + problem + " --method sgd --lr abc --steps 3", {"--lr", "abc"}},
      {"loss " + problem + " --method hb --lr 0.1 --momentum 1 --steps 3", {"--momentum", "1"}},
      {"loss " + problem + " --method nag --lr 0.1 --momentum -0.1 --steps 3", {"--momentum", "-0.1"}},
      {"loss " + problem + " --method asgd --lr 0.1 --kappa 0.5 --xi 1 --steps 3", {"--kappa", "0.5"}},
      {"loss " + sgd + " --batch 0 --steps 3", {"--batch", "0"}},
      {"loss " + sgd + " --batch -3 --steps 3", {"--batch", "-3"}},
      {"loss " + sgd + " --batch 2.5 --steps 3", {"--batch", "2.5"}},
      {"loss --spectrum powerlaw:d=0,alpha=1 --method sgd --lr 0.1 --steps 3", {"--spectrum", "powerlaw:d=0,alpha=1"}},
      {"loss --spectrum powerlaw:d=100000000000,alpha=1 --method sgd --lr 0.1 --steps 3",
       {"--spectrum", "d = 100000000000"}},
      {"loss --spectrum loguniform:d=10,kappa=0.5 --method sgd --lr 0.1 --steps 3", {"--spectrum", "kappa"}},
      {"loss --spectrum powerlaw:d=10,alpha=nan --method sgd --lr 0.1 --steps 3", {"--spectrum", "nan"}},
      {"loss --spectrum gauss:d=10 --method sgd --lr 0.1 --steps 3", {"--spectrum", "gauss:d=10"}},
      {"loss " + problem + " --method sgd --lr nan --steps 3", {"--lr", "nan"}},
      {"loss " + problem + " --method sgd --lr inf --steps 3", {"--lr", "inf"}},
      {"loss " + problem + " --method hb --lr 0.1 --momentum nan --steps 3", {"--momentum", "nan"}},
      {"loss " + sgd + " --noise nan --steps 3", {"--noise", "nan"}},
      {"loss " + sgd + " --noise -1 --steps 3", {"--noise", "-1"}},
      {"loss " + sgd + " --kurtosis inf --steps 3", {"--kurtosis", "inf"}},
      {"loss " + sgd + " --kurtosis 0.5 --steps 3", {"--kurtosis", "0.5"}},
      {"loss --spectrum file:" + bad_line + " --method sgd --lr 0.1 --steps 3", {"--spectrum", "line 4", "abc"}},
      {"loss --spectrum file:" + zero_line + " --method sgd --lr 0.1 --steps 3", {"--spectrum", "line 2"}},
      {"loss " + sgd + " --init file:" + two_init + " --steps 3", {"--init", two_init, "2 values", "has 3"}},
      {"loss " + sgd + " --init powerlaw:beta=x --steps 3", {"--init", "x"}},
      {"loss --spectrum file:" + s.path("missing.txt") + " --method sgd --lr 0.1 --steps 3",
       {"--spectrum", s.path("missing.txt")}},
      {"loss " + sgd + " --init file:" + s.path("missing.txt") + " --steps 3", {"--init", s.path("missing.txt")}},
      {"loss " + problem + " --method custom --steps 3", {"--method-file"}},
      {"loss " + problem + " --method custom --method-file " + s.path("missing.json") + " --steps 3",
       {"--method-file", s.path("missing.json")}},
      {"loss " + problem + " --method custom --method-file " + bad_json + " --steps 3", {"--method-file", bad_json}},
      {"loss " + sgd, {"--steps"}},
      {"loss " + sgd + " --steps -1", {"--steps", "-1"}},
      {"loss " + sgd + " --steps 99999999999999999999999", {"--steps", "99999999999999999999999"}},
      {"loss " + sgd + " --steps 10000000000000", {"--steps 10000000000000", "--every 1", "memory"}},
      {"loss " + sgd + " --steps 3 --every 0", {"--every", "0"}},
      {"loss " + sgd + " --steps 3 --every -2", {"--every", "-2"}},
      {"loss " + sgd + " --steps 3 --format xml", {"--format", "xml"}},
      {"loss " + sgd + " --steps 3 --precision half", {"--precision", "half"}},
      {"loss " + sgd + " --steps 3 extra", {"extra"}},
      {"steps " + sgd, {"--target"}},
      {"steps " + sgd + " --target 0", {"--target", "0"}},
      {"steps " + sgd + " --target -1", {"--target", "-1"}},
      {"steps " + sgd + " --target nan", {"--target", "nan"}},
      {"steps " + sgd + " --target 1e-3 --max-steps -5", {"--max-steps", "-5"}},
      {"steps " + problem + " --method hb --lr 0 --momentum 0.5 --target 1e-3", {"--lr", "0"}},
  };
  const std::string fresh = s.path("out.txt");
  const std::string existing = s.write("existing.txt", "keep me\n");
  for (const Bad& c : cases) {
    CAPTURE(c.args);
    for (const std::string& out : {fresh, existing}) {
      const Run r = cesr_run(c.args + " --output " + out);
      CAPTURE(r.err);
      CHECK(r.code == 2);
      CHECK(r.out.empty());
      CHECK(lines(r.err).size() == 1);
      CHECK((!r.err.empty() && r.err.back() == '\n'));
      for (const auto& name : c.names) CHECK(r.err.find(name) != std::string::npos);
    }
    CHECK_FALSE(fs::exists(fresh));
    CHECK(slurp(existing) == "keep me\n");
  }
  // --output itself: a missing folder or a folder.
  for (const std::string& out : {s.path("no/such/folder/x.csv"), s.dir.string()}) {
    const Run r = cesr_run("loss " + sgd + " --steps 3 --output " + out);
    CHECK(r.code == 2);
    CHECK(lines(r.err).size() == 1);
    CHECK(r.err.find("--output") != std::string::npos);
    CHECK(r.err.find(out) != std::string::npos);
  }
  // Nothing but the inputs and the untouched file is left in the folder (no temporary files).
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(s.dir)) ++files;
  CHECK(files == 6);
}

TEST_CASE("d above what fits in memory is refused before allocating") {
  // 2^31 directions need about 128 GiB; skip on machines that have that much.
  const double physical = double(::sysconf(_SC_PHYS_PAGES)) * double(::sysconf(_SC_PAGESIZE));
  if (physical > 100e9) return;
  const Run r = cesr_run("loss --spectrum powerlaw:d=2147483648,alpha=1 --method sgd --lr 0.1 --steps 1");
  CHECK(r.code == 2);
  CHECK(lines(r.err).size() == 1);
  CHECK(r.err.find("--spectrum") != std::string::npos);
  CHECK(r.err.find("memory") != std::string::npos);
}
