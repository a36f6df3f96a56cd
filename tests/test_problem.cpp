// cesr problem (include/cesr/problem.hpp, src/cli/cmd_problem.cpp): a data set
// with a closed-form answer (a rotated two-level design: H, w*, sigma^2 and
// K = 1 exact), null directions, the CSV reader's errors, the limits, the three
// files written together or not at all, and the files read by other commands.
// numpy's eigh/lstsq on Gaussian and Rademacher rows: python/tests/test_problem.py.
#include <doctest/doctest.h>

#include "cesr_run.hpp"

#include "cesr/error.hpp"
#include "cesr/problem.hpp"
#include "cesr/report.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

#define CHECK_INVALID(expr, text)                                                       \
  do {                                                                                  \
    try {                                                                               \
      (void)(expr);                                                                     \
      FAIL("no exception");                                                             \
    } catch (const std::invalid_argument& e) {                                          \
      INFO(e.what());                                                                   \
      CHECK(std::string(e.what()).find(text) != std::string::npos);                     \
    }                                                                                   \
  } while (0)

// All four sign patterns s of (s1, s2), each used `copies` times, scaled by
// (2, 1) and rotated by theta: x = R diag(2, 1) s. Then exactly
// H = R diag(4, 1) R^T, u_1 = R e_1, u_2 = R e_2, z = s (so E[z^4] = 1), and
// y = x.w + c s1 s2 has residual c s1 s2 (orthogonal to both columns).
struct Design {
  cesr::DataSet data;
  std::vector<double> y;
};

Design rotated_design(double theta, std::vector<double> w, double c, int copies) {
  Design out;
  const double cs = std::cos(theta), sn = std::sin(theta);
  for (int k = 0; k < copies; ++k)
    for (const double s1 : {-1.0, 1.0})
      for (const double s2 : {-1.0, 1.0}) {
        const double a = 2 * s1, b = s2;
        const double x1 = cs * a - sn * b, x2 = sn * a + cs * b;
        out.data.x.push_back(x1);
        out.data.x.push_back(x2);
        out.y.push_back(x1 * w[0] + x2 * w[1] + c * s1 * s2);
      }
  out.data.n = out.y.size();
  out.data.d = 2;
  return out;
}

std::string read(const fs::path& p) { return cesr_test::slurp(p); }

void write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

}  // namespace

TEST_CASE("a rotated two-level design: H, w*, init, sigma^2 and K = 1 in closed form") {
  const double theta = 0.3, c = 0.5;
  const std::vector<double> w{1.5, -0.75};
  const Design ds = rotated_design(theta, w, c, 3);  // n = 12
  const cesr::DataProblem p = cesr::fit_problem(ds.data, ds.y, false);
  REQUIRE(p.lambda.size() == 2);
  CHECK(p.lambda[0] == doctest::Approx(4.0).epsilon(1e-14));
  CHECK(p.lambda[1] == doctest::Approx(1.0).epsilon(1e-14));
  CHECK(p.w_star[0] == doctest::Approx(w[0]).epsilon(1e-13));
  CHECK(p.w_star[1] == doctest::Approx(w[1]).epsilon(1e-13));
  // u_1 = (cos, sin), u_2 = (-sin, cos): init = (u_i . w)^2.
  const double c1 = std::cos(theta) * w[0] + std::sin(theta) * w[1], c2 = -std::sin(theta) * w[0] + std::cos(theta) * w[1];
  CHECK(p.init[0] == doctest::Approx(c1 * c1).epsilon(1e-13));
  CHECK(p.init[1] == doctest::Approx(c2 * c2).epsilon(1e-13));
  CHECK(p.initial_loss == doctest::Approx(0.5 * (4 * c1 * c1 + c2 * c2)).epsilon(1e-13));
  CHECK(p.rss == doctest::Approx(12 * c * c).epsilon(1e-13));
  CHECK(p.noise == doctest::Approx(12 * c * c / 10).epsilon(1e-13));  // n - d = 10
  CHECK(p.noise_estimated);
  for (const double k : p.kurtosis) CHECK(k == doctest::Approx(1.0).epsilon(1e-13));
  // r^2 = c^2 on every row and z_i^2 = 1: E[r^2 z_i^2] / E[r^2] = 1 exactly.
  REQUIRE(p.noise_coupling.size() == 2);
  for (const double v : p.noise_coupling) CHECK(v == doctest::Approx(1.0).epsilon(1e-13));
  CHECK(p.kappa == doctest::Approx(4.0).epsilon(1e-14));
  CHECK(p.trace == doctest::Approx(5.0).epsilon(1e-14));
  CHECK(p.null_directions == 0);
  CHECK(p.line_weight == std::vector<double>{1, 1});

  // Centred: the columns already have mean 0, the labels too; one more
  // degree of freedom goes to the intercept.
  const cesr::DataProblem q = cesr::fit_problem(ds.data, ds.y, true);
  CHECK(q.noise == doctest::Approx(12 * c * c / 9).epsilon(1e-13));
  CHECK(q.intercept == doctest::Approx(0.0));
}

TEST_CASE("a shifted design: centring removes the mean and fits the intercept") {
  Design ds = rotated_design(0.3, {1.0, 2.0}, 0.25, 2);
  for (std::size_t r = 0; r < ds.data.n; ++r) {
    ds.data.x[2 * r] += 5;
    ds.data.x[2 * r + 1] -= 3;
    ds.y[r] += 5 * 1.0 - 3 * 2.0 + 10;  // the same slopes, intercept 10
  }
  const cesr::DataProblem p = cesr::fit_problem(ds.data, ds.y, true);
  CHECK(p.lambda[0] == doctest::Approx(4.0).epsilon(1e-13));
  CHECK(p.lambda[1] == doctest::Approx(1.0).epsilon(1e-13));
  CHECK(p.w_star[0] == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(p.w_star[1] == doctest::Approx(2.0).epsilon(1e-12));
  CHECK(p.intercept == doctest::Approx(10.0).epsilon(1e-12));
  CHECK(p.column_mean[0] == doctest::Approx(5.0));
  // Uncentred, the mean is a direction of its own: lambda_max >= |mean|^2 = 34.
  CHECK(cesr::fit_problem(ds.data, ds.y, false).lambda_max > 34);
}

TEST_CASE("a repeated column is a null direction: left out, counted, minimum-norm w*") {
  Design ds = rotated_design(0.0, {1.0, 1.0}, 0.5, 2);  // columns 2 s1 and s2
  cesr::DataSet three;
  three.n = ds.data.n;
  three.d = 3;
  for (std::size_t r = 0; r < three.n; ++r)
    for (const double v : {ds.data.x[2 * r], ds.data.x[2 * r + 1], ds.data.x[2 * r]}) three.x.push_back(v);
  const cesr::DataProblem p = cesr::fit_problem(three, ds.y, false);
  CHECK(p.null_directions == 1);
  CHECK(p.rank == 2);
  CHECK(p.lambda.size() == 2);
  // H = [[4,0,4],[0,1,0],[4,0,4]]: eigenvalues 8, 1 and 0; the weight on x1
  // splits evenly between the two copies.
  CHECK(p.lambda[0] == doctest::Approx(8.0).epsilon(1e-14));
  CHECK(p.w_star[0] == doctest::Approx(0.5).epsilon(1e-13));
  CHECK(p.w_star[2] == doctest::Approx(0.5).epsilon(1e-13));
  CHECK(p.noise == doctest::Approx(8 * 0.25 / 6).epsilon(1e-13));  // n - rank = 6
  CHECK(p.null_cutoff > 0);
  CHECK(p.null_cutoff < 1e-12);
}

TEST_CASE("limits and bad data name the field") {
  cesr::DataSet big;
  big.n = 2;
  big.d = cesr::max_data_dimension + 1;
  CHECK_INVALID(cesr::fit_problem(big, {1, 2}, false), "d = 4097 columns exceeds the limit of 4096");
  cesr::DataSet long_one;  // never allocated: the limit comes first
  long_one.n = 200'000;
  long_one.d = 1000;
  CHECK_INVALID(cesr::fit_problem(long_one, {}, false), "exceeds the limit of 1e+11");
  Design ds = rotated_design(0.1, {1, 1}, 0, 1);
  try {
    (void)cesr::fit_problem(ds.data, {1.0, 2.0}, false);
    FAIL("no exception");
  } catch (const cesr::FieldError& e) {
    CHECK(e.field == "labels");
    CHECK(std::string(e.what()) == "labels: 2 values, the data has 4 rows");
  }
  cesr::DataSet zero = ds.data;
  for (double& v : zero.x) v = 0;
  CHECK_INVALID(cesr::fit_problem(zero, ds.y, false), "H = X^T X / n is zero to rounding");
  cesr::DataSet one = ds.data;
  one.n = 1;
  one.x.resize(2);
  CHECK_INVALID(cesr::fit_problem(one, {1.0}, false), "data: 1 row, at least 2 are needed");
}

TEST_CASE("CSV: a header row, then rows of numbers; errors name the line") {
  const cesr::DataSet s = cesr::parse_data_csv("a, b\n# comment\n1,+2\n\n3,4.5\n", "X.csv");
  CHECK(s.n == 2);
  CHECK(s.d == 2);
  CHECK(s.x == std::vector<double>{1, 2, 3, 4.5});
  CHECK(s.columns == std::vector<std::string>{"a", "b"});
  CHECK_INVALID(cesr::parse_data_csv("1,2\n3,4\n", "X.csv"), "X.csv line 1: expected a header row");
  CHECK_INVALID(cesr::parse_data_csv("a,b\n1,2\n3\n", "X.csv"), "X.csv line 3: 1 fields, the header (line 1) has 2");
  CHECK_INVALID(cesr::parse_data_csv("a,b\n1,2,3\n", "X.csv"), "X.csv line 2: more than the 2 fields");
  CHECK_INVALID(cesr::parse_data_csv("a,b\n1,x\n", "X.csv"), "X.csv line 2 field 2: 'x' is not a finite number");
  CHECK_INVALID(cesr::parse_data_csv("a,b\n1,nan\n", "X.csv"), "'nan' is not a finite number");
  CHECK_INVALID(cesr::parse_data_csv("a,b\n1,+-2\n", "X.csv"), "'+-2' is not a finite number");
  CHECK_INVALID(cesr::parse_data_csv("a,b\n", "X.csv"), "X.csv: no data rows");
  CHECK_INVALID(cesr::parse_data_csv("", "X.csv"), "X.csv: empty file");
  CHECK(cesr::parse_labels_csv("y\n1\n2\n", "y.csv") == std::vector<double>{1, 2});
  CHECK_INVALID(cesr::parse_labels_csv("y,z\n1,2\n", "y.csv"), "y.csv: 2 columns, labels need one");
  CHECK_INVALID(cesr::read_data("X.txt"), "must end in .csv or .npy");
}

TEST_CASE("write_files_together: all files or none") {
  const cesr_test::ScratchWorkingDirectory scratch("cesr_test_problem_files");
  write("old.a", "old a\n");
  cesr::write_files_together({{"old.a", "new a\n"}, {"new.b", "new b\n"}});
  CHECK(read("old.a") == "new a\n");
  CHECK(read("new.b") == "new b\n");
  // A folder among the paths: refused before anything is written.
  fs::create_directory("dir.c");
  CHECK_INVALID(cesr::write_files_together({{"old.a", "newer\n"}, {"dir.c", "x"}}), "'dir.c' is a folder");
  CHECK(read("old.a") == "new a\n");
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(".")) ++entries;
  CHECK(entries == 3);  // old.a, new.b, dir.c: no temporary left
}

TEST_CASE("cesr problem: the files, the JSON keys, and other commands read them") {
  const cesr_test::ScratchWorkingDirectory scratch("cesr_test_problem_cli");
  const Design ds = rotated_design(0.3, {1.5, -0.75}, 0.5, 3);
  std::string x = "x1,x2\n", y = "y\n";
  for (std::size_t r = 0; r < ds.data.n; ++r) {
    x += fmt::format("{:.17g},{:.17g}\n", ds.data.x[2 * r], ds.data.x[2 * r + 1]);
    y += fmt::format("{:.17g}\n", ds.y[r]);
  }
  write("X.csv", x);
  write("y.csv", y);
  const auto r = cesr_test::run_cesr("problem --data X.csv --labels y.csv --output out", fs::current_path());
  REQUIRE_MESSAGE(r.code == 0, r.err);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j == nlohmann::json::parse(read("out.json")));
  for (const char* key : {"d", "n", "kappa", "trace", "noise", "kurtosis_mean", "kurtosis_min", "kurtosis_max",
                          "null_directions", "spectrum", "init", "rank", "lines", "w_star"})
    CHECK_MESSAGE(j.contains(key), key);
  CHECK(j["d"] == 2);
  CHECK(j["n"] == 12);
  CHECK(j["noise"].get<double>() == doctest::Approx(0.3).epsilon(1e-13));
  CHECK(j["kurtosis_mean"].get<double>() == doctest::Approx(1.0).epsilon(1e-13));
  CHECK(j["spectrum"] == "file:out.spectrum");
  {
    std::ifstream in("out.spectrum");
    std::vector<std::pair<double, double>> lines;
    for (std::string line; std::getline(in, line);)
      if (!line.empty() && line[0] != '#') {
        std::istringstream fields(line);
        double l = 0, w = 0;
        fields >> l >> w;
        lines.emplace_back(l, w);
      }
    REQUIRE(lines.size() == 2);
    CHECK(lines[0].first == doctest::Approx(4.0).epsilon(1e-14));
    CHECK(lines[1].first == doctest::Approx(1.0).epsilon(1e-14));
    CHECK(lines[0].second == 1);
    CHECK(lines[1].second == 1);
  }
  // cesr loss reads both files: L_0 = 1/2 w*^T H w* = 1/2 (4 c1^2 + c2^2).
  const double c1 = std::cos(0.3) * 1.5 - std::sin(0.3) * 0.75, c2 = -std::sin(0.3) * 1.5 - std::cos(0.3) * 0.75;
  const auto loss = cesr_test::run_cesr(
      "loss --spectrum file:out.spectrum --init file:out.init --method sgd --lr 0.1 --steps 0 --noise 0.3 --kurtosis 1",
      fs::current_path());
  REQUIRE_MESSAGE(loss.code == 0, loss.err);
  const double l0 = std::stod(loss.out.substr(loss.out.find("\n0,") + 3));
  CHECK(l0 == doctest::Approx(0.5 * (4 * c1 * c1 + c2 * c2)).epsilon(1e-13));
}

TEST_CASE("cesr problem: bad input is exit 2 naming the option; a failed write leaves no file") {
  const cesr_test::ScratchWorkingDirectory scratch("cesr_test_problem_errors");
  write("X.csv", "a,b\n1,2\n3,4\n5,7\n");
  write("bad.csv", "a,b\n1,2\n3\n");
  write("y.csv", "y\n1\n2\n3\n");
  write("y2.csv", "y\n1\n2\n");
  const auto here = fs::current_path();
  auto r = cesr_test::run_cesr("problem --data bad.csv --labels y.csv --output o", here);
  CHECK(r.code == 2);
  CHECK(r.err == "cesr problem: error: --data: bad.csv line 3: 1 fields, the header (line 1) has 2\n");
  r = cesr_test::run_cesr("problem --data X.csv --labels y2.csv --output o", here);
  CHECK(r.code == 2);
  CHECK(r.err == "cesr problem: error: --labels: 2 values, the data has 3 rows\n");
  r = cesr_test::run_cesr("problem --data missing.csv --labels y.csv --output o", here);
  CHECK(r.code == 2);
  CHECK(r.err.rfind("cesr problem: error: --data: cannot read file 'missing.csv'", 0) == 0);
  r = cesr_test::run_cesr("problem --data X.csv --labels y.csv", here);
  CHECK(r.code == 2);
  CHECK(r.err.find("--output") != std::string::npos);
  r = cesr_test::run_cesr("problem --data X.csv --labels y.csv --output nofolder/o", here);
  CHECK(r.code == 2);
  CHECK(r.err.find("--output") != std::string::npos);
  // A file-size limit that the small spectrum and init files fit in but the
  // JSON (with its arrays) does not: the write fails (exit 5) and none of
  // the three files, nor a temporary, is left.
  std::string x = "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p\n", y = "y\n";
  for (int i = 0; i < 60; ++i) {
    for (int j = 0; j < 16; ++j) x += fmt::format("{}{}", j ? "," : "", std::sin(1.0 + i * 16 + j) * (j + 1));
    x += "\n";
    y += fmt::format("{}\n", std::cos(double(i)));
  }
  write("X8.csv", x);
  write("y8.csv", y);
  REQUIRE(cesr_test::run_cesr("problem --data X8.csv --labels y8.csv --output full", here).code == 0);
  const auto sizes = std::vector<std::uintmax_t>{fs::file_size("full.spectrum"), fs::file_size("full.init"),
                                                 fs::file_size("full.json")};
  REQUIRE(sizes[0] < 1024);
  REQUIRE(sizes[1] < 1024);
  REQUIRE(sizes[2] > 1024);
  for (const char* f : {"full.spectrum", "full.init", "full.json"}) fs::remove(f);
  const int status = std::system(
      fmt::format("cd '{}' && ulimit -f 2 && {} problem --data X8.csv --labels y8.csv --output lim >out 2>err",
                  here.string(), CESR_BINARY)
          .c_str());
  CHECK(WEXITSTATUS(status) == 5);
  CHECK(read("err").find("none of the 3 files written") != std::string::npos);
  for (const auto& e : fs::directory_iterator(".")) {
    const std::string name = e.path().filename().string();
    CHECK_MESSAGE(name.find("lim") == std::string::npos, name);
  }
}
