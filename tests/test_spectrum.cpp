// Spectrum and initial-moment parsing (src/spectrum.cpp): every SPEC and INIT
// form against values computed here from the definitions, and every error.
#include <doctest/doctest.h>

#include "cesr/spectrum.hpp"
#include "npy_bytes.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>

namespace {

namespace fs = std::filesystem;

// A scratch file removed at the end of the test.
struct TempFile {
  fs::path path;
  explicit TempFile(const std::string& content) {
    std::random_device rd;
    path = fs::temp_directory_path() / ("cesr_test_spectrum_" + std::to_string(rd()) + ".txt");
    std::ofstream(path) << content;
  }
  ~TempFile() { fs::remove(path); }
  std::string str() const { return path.string(); }
};

doctest::Contains has(const std::string& text) { return doctest::Contains(text.c_str()); }

#define CHECK_INVALID(expr, text) CHECK_THROWS_WITH_AS(expr, has(text), std::invalid_argument)

}  // namespace

TEST_CASE("powerlaw and loguniform spectra follow their definitions") {
  const auto p = cesr::parse_spectrum("powerlaw:d=7,alpha=1.5");
  REQUIRE(p.size() == 7);
  for (std::size_t i = 0; i < 7; ++i) CHECK(p[i] == doctest::Approx(std::pow(double(i + 1), -1.5)).epsilon(1e-15));
  const auto ps = cesr::parse_spectrum("powerlaw:alpha=0.5,d=4,scale=3");  // keys in any order
  REQUIRE(ps.size() == 4);
  CHECK(ps[0] == 3.0);
  CHECK(ps[3] == doctest::Approx(1.5).epsilon(1e-15));

  const auto l = cesr::parse_spectrum("loguniform:d=5,kappa=1e4");
  REQUIRE(l.size() == 5);
  CHECK(l.front() == 1.0);
  CHECK(l.back() == doctest::Approx(1e-4).epsilon(1e-14));
  for (std::size_t i = 0; i + 1 < 5; ++i) CHECK(l[i] / l[i + 1] == doctest::Approx(10.0).epsilon(1e-13));
  const auto ls = cesr::parse_spectrum("loguniform:d=3,kappa=100,scale=2");
  CHECK(ls[0] == 2.0);
  CHECK(ls[1] == doctest::Approx(0.2).epsilon(1e-14));
  CHECK(ls[2] == doctest::Approx(0.02).epsilon(1e-14));
  // d = 1 with kappa = 1 is one eigenvalue, the scale.
  CHECK(cesr::parse_spectrum("loguniform:d=1,kappa=1,scale=0.5") == std::vector<double>{0.5});
  // Whitespace around keys and values is tolerated.
  CHECK(cesr::parse_spectrum("powerlaw: d = 2 , alpha = 1").size() == 2);

  const cesr::Spectrum s = cesr::make_spectrum("powerlaw:d=3,alpha=1");
  CHECK(s.init == std::vector<double>{1, 1, 1});
  CHECK(s.lambda_max() == 1.0);
  CHECK(s.lambda_min() == doctest::Approx(1.0 / 3));
  CHECK(s.kappa() == doctest::Approx(3.0));
  CHECK(s.trace() == doctest::Approx(1 + 0.5 + 1.0 / 3));
  CHECK(s.initial_loss() == doctest::Approx(0.5 * (1 + 0.5 + 1.0 / 3)));
}

TEST_CASE("spectrum files: one positive value per line, comments and blank lines ignored") {
  const TempFile f("# eigenvalues\n1.0\n\n  0.5   # half\n\t2.5e-1\r\n# end\n");
  CHECK(cesr::parse_spectrum("file:" + f.str()) == std::vector<double>{1.0, 0.5, 0.25});
}

TEST_CASE("spectrum errors name the problem") {
  CHECK_INVALID(cesr::parse_spectrum("gaussian:d=3"), "unknown spectrum");
  CHECK_INVALID(cesr::parse_spectrum("powerlaw"), "missing d=");
  CHECK_INVALID(cesr::parse_spectrum("powerlaw:d=3"), "missing alpha=");
  CHECK_INVALID(cesr::parse_spectrum("loguniform:d=3,alpha=1"), "missing kappa=");
  CHECK_INVALID(cesr::parse_spectrum("powerlaw:d=3,alpha=1,beta=2"), "unknown key 'beta'");
  CHECK_INVALID(cesr::parse_spectrum("powerlaw:d=3,alpha=1,d=4"), "'d' given twice");
  CHECK_INVALID(cesr::parse_spectrum("powerlaw:d=3,alpha"), "expected key=value");
  // d < 1, not an integer, beyond memory
  CHECK_INVALID(cesr::parse_spectrum("powerlaw:d=0,alpha=1"), "d must be >= 1, got 0");
  CHECK_INVALID(cesr::parse_spectrum("powerlaw:d=-3,alpha=1"), "d must be a positive integer, got '-3'");
  CHECK_INVALID(cesr::parse_spectrum("powerlaw:d=2.5,alpha=1"), "d must be a positive integer, got '2.5'");
  CHECK_INVALID(cesr::parse_spectrum("powerlaw:d=,alpha=1"), "d must be a positive integer");
  CHECK_INVALID(cesr::parse_spectrum("powerlaw:d=1000000000000,alpha=1"), "exceeds the maximum");
  CHECK_INVALID(cesr::parse_spectrum("powerlaw:d=99999999999999999999999,alpha=1"), "positive integer");
  CHECK_INVALID(cesr::check_fits_in_memory(std::size_t{1} << 40, "d"), "more than this machine's memory");
  CHECK_NOTHROW(cesr::check_fits_in_memory(1000, "d"));
  // kappa < 1, d = 1 with kappa != 1, scale <= 0
  CHECK_INVALID(cesr::parse_spectrum("loguniform:d=3,kappa=0.5"), "kappa must be >= 1");
  CHECK_INVALID(cesr::parse_spectrum("loguniform:d=1,kappa=10"), "d = 1 needs kappa = 1");
  CHECK_INVALID(cesr::parse_spectrum("powerlaw:d=3,alpha=1,scale=0"), "scale must be > 0");
  CHECK_INVALID(cesr::parse_spectrum("powerlaw:d=3,alpha=1,scale=-2"), "scale must be > 0");
  // non-finite or unparsable numbers
  CHECK_INVALID(cesr::parse_spectrum("powerlaw:d=3,alpha=nan"), "'nan' is not a finite number");
  CHECK_INVALID(cesr::parse_spectrum("powerlaw:d=3,alpha=inf"), "'inf' is not a finite number");
  CHECK_INVALID(cesr::parse_spectrum("powerlaw:d=3,alpha=1e999"), "'1e999' is not a finite number");
  CHECK_INVALID(cesr::parse_spectrum("loguniform:d=3,kappa=abc"), "'abc' is not a finite number");
  CHECK_INVALID(cesr::parse_spectrum("loguniform:d=3,kappa=1e4x"), "'1e4x' is not a finite number");
  // eigenvalues that under- or overflow
  CHECK_INVALID(cesr::parse_spectrum("powerlaw:d=10,alpha=400"), "under- or overflow");
  CHECK_INVALID(cesr::parse_spectrum("powerlaw:d=3,alpha=1,scale=1e308,alpha=1"), "given twice");
  CHECK_INVALID(cesr::parse_spectrum("loguniform:d=3,kappa=1e300,scale=1e-300"), "under- or overflow");
}

TEST_CASE("spectrum file errors name the file and the line") {
  const TempFile bad("1.0\n# comment\n0.5\nfoo\n");
  CHECK_INVALID(cesr::parse_spectrum("file:" + bad.str()), bad.str() + " line 4: 'foo' is not a finite number");
  const TempFile zero("1.0\n\n0\n");
  CHECK_INVALID(cesr::parse_spectrum("file:" + zero.str()), zero.str() + " line 3: 0 must be > 0");
  const TempFile negative("-1\n");
  CHECK_INVALID(cesr::parse_spectrum("file:" + negative.str()), "line 1: -1 must be > 0");
  const TempFile three("1 2 3\n");
  CHECK_INVALID(cesr::read_spectrum("file:" + three.str()), "line 1: '1 2 3' has more than two columns");
  const TempFile bad_weight("1 0\n");
  CHECK_INVALID(cesr::read_spectrum("file:" + bad_weight.str()), "line 1: the weight 0 must be > 0");
  const TempFile word_weight("1 x\n");
  CHECK_INVALID(cesr::read_spectrum("file:" + word_weight.str()), "line 1 (weight): 'x' is not a finite number");
  const TempFile two("1 2\n");
  CHECK_INVALID(cesr::parse_spectrum("file:" + two.str()), "is a weighted spectrum");
  const TempFile nan_line("1\nnan\n");
  CHECK_INVALID(cesr::parse_spectrum("file:" + nan_line.str()), "line 2: 'nan' is not a finite number");
  const TempFile empty("# nothing\n\n");
  CHECK_INVALID(cesr::parse_spectrum("file:" + empty.str()), "holds no values");
  CHECK_INVALID(cesr::parse_spectrum("file:/nonexistent/cesr/eigenvalues.txt"),
                "cannot read file '/nonexistent/cesr/eigenvalues.txt'");
  CHECK_INVALID(cesr::parse_spectrum("file:"), "needs a path");
  // A directory is not a readable file of values.
  CHECK_INVALID(cesr::parse_spectrum("file:" + fs::temp_directory_path().string()), "is a folder, not a file");
}

TEST_CASE("weighted spectrum files: 'lambda w' lines, w directions each") {
  const TempFile f("# lambda w\n1.0 2\n0.5\n0.25\t3.5  # fractional\n");
  const cesr::Spectrum s = cesr::make_spectrum("file:" + f.str(), "powerlaw:beta=1");
  CHECK(s.lambda == std::vector<double>{1.0, 0.5, 0.25});
  CHECK(s.weight == std::vector<double>{2, 1, 3.5});
  CHECK(s.dim() == 3);  // lines
  CHECK(s.init == std::vector<double>{1, 0.5, 1.0 / 3});  // powerlaw:beta counts lines
  CHECK(s.directions() == 6.5);
  CHECK(s.fractional());
  CHECK(s.trace() == 2 * 1.0 + 0.5 + 3.5 * 0.25);
  CHECK(s.initial_loss() == doctest::Approx(0.5 * (2 * 1.0 + 0.5 * 0.5 + 3.5 * 0.25 / 3)).epsilon(1e-15));
  CHECK_INVALID(cesr::expand_weights(s, "simulate"), "simulate needs whole directions, but spectrum line 3 has weight 3.5");
  // All weights 1: the same as an unweighted file.
  const TempFile ones("1 1\n0.5 1\n");
  CHECK_FALSE(cesr::read_spectrum("file:" + ones.str()).weighted());
  // Whole weights expand line by line.
  const TempFile whole("1 2\n0.5\n0.25 3\n");
  const cesr::Spectrum w = cesr::make_spectrum("file:" + whole.str(), "powerlaw:beta=1");
  CHECK_FALSE(w.fractional());
  const cesr::Spectrum e = cesr::expand_weights(w, "x");
  CHECK_FALSE(e.weighted());
  CHECK(e.lambda == std::vector<double>{1, 1, 0.5, 0.25, 0.25, 0.25});
  CHECK(e.init == std::vector<double>{1, 1, 0.5, 1.0 / 3, 1.0 / 3, 1.0 / 3});
  CHECK(e.trace() == w.trace());
  CHECK(e.initial_loss() == doctest::Approx(w.initial_loss()).epsilon(1e-15));
}

namespace {
using cesr_test::npy_bytes;
template <class T>
std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}
struct BinaryFile {
  fs::path path;
  explicit BinaryFile(const std::string& content) {
    std::random_device rd;
    path = fs::temp_directory_path() / ("cesr_test_spectrum_" + std::to_string(rd()) + ".npy");
    std::ofstream(path, std::ios::binary) << content;
  }
  ~BinaryFile() { fs::remove(path); }
  std::string str() const { return path.string(); }
};
}  // namespace

TEST_CASE("npy: spectra and initial moments from 1-D float64/float32 arrays, equal to the text file") {
  const std::vector<double> lam{1.0, 0.3, 1e-7, 0.123456789012345678};
  const BinaryFile f8(npy_bytes("<f8", "(4,)", raw(lam)));
  CHECK(cesr::parse_spectrum("npy:" + f8.str()) == lam);
  const TempFile text("1.0\n0.3\n1e-7\n0.123456789012345678\n");
  CHECK(cesr::parse_spectrum("npy:" + f8.str()) == cesr::parse_spectrum("file:" + text.str()));
  const std::vector<float> lamf{1.0f, 0.25f, 3e-3f};
  const BinaryFile f4(npy_bytes("<f4", "(3,)", raw(lamf)));
  CHECK(cesr::parse_spectrum("npy:" + f4.str()) == std::vector<double>{1.0, 0.25, double(3e-3f)});
  const std::vector<double> init{0, 2, 0.5};
  const BinaryFile i8(npy_bytes("<f8", "(3,)", raw(init)));
  const cesr::Spectrum s = cesr::make_spectrum("npy:" + f4.str(), "npy:" + i8.str());
  CHECK(s.init == init);
  // Version 2 (a 4-byte header length) reads the same.
  std::string v2 = npy_bytes("<f8", "(4,)", raw(lam));
  const std::string header = v2.substr(10, v2.size() - 10 - 32);
  v2 = std::string("\x93NUMPY") + char(2) + char(0) + char(header.size() & 0xff) + char(header.size() >> 8) + char(0) +
       char(0) + header + raw(lam);
  const BinaryFile f8v2(v2);
  CHECK(cesr::parse_spectrum("npy:" + f8v2.str()) == lam);
}

TEST_CASE("npy errors: one line each") {
  const std::vector<double> v{1, 2, 3, 4};
  const BinaryFile i8(npy_bytes("<i8", "(4,)", raw(v)));
  CHECK_INVALID(cesr::parse_spectrum("npy:" + i8.str()), "dtype '<i8' is not little-endian float64");
  const BinaryFile big(npy_bytes(">f8", "(4,)", raw(v)));
  CHECK_INVALID(cesr::parse_spectrum("npy:" + big.str()), "dtype '>f8'");
  const BinaryFile two_d(npy_bytes("<f8", "(2, 2)", raw(v)));
  CHECK_INVALID(cesr::parse_spectrum("npy:" + two_d.str()), "shape (2, 2) is not one-dimensional");
  const BinaryFile scalar(npy_bytes("<f8", "()", raw(std::vector<double>{1})));
  CHECK_INVALID(cesr::parse_spectrum("npy:" + scalar.str()), "shape () is not one-dimensional");
  const BinaryFile fortran(npy_bytes("<f8", "(4,)", raw(v), "True"));
  CHECK_INVALID(cesr::parse_spectrum("npy:" + fortran.str()), "Fortran-order");
  const BinaryFile short_data(npy_bytes("<f8", "(5,)", raw(v)));
  CHECK_INVALID(cesr::parse_spectrum("npy:" + short_data.str()), "needs 40 data bytes, the file has 32");
  const BinaryFile not_npy(std::string("1.0\n2.0\n"));
  CHECK_INVALID(cesr::parse_spectrum("npy:" + not_npy.str()), "not a .npy file");
  const BinaryFile negative(npy_bytes("<f8", "(2,)", raw(std::vector<double>{1, -1})));
  CHECK_INVALID(cesr::parse_spectrum("npy:" + negative.str()), "entry 2: -1 must be finite and > 0");
  CHECK_INVALID(cesr::parse_init("npy:" + negative.str(), 2), "entry 2: -1 must be finite and >= 0");
  const BinaryFile nan(npy_bytes("<f8", "(1,)", raw(std::vector<double>{std::nan("")})));
  CHECK_INVALID(cesr::parse_init("npy:" + nan.str(), 1), "must be finite");
  const BinaryFile ok(npy_bytes("<f8", "(4,)", raw(v)));
  CHECK_INVALID(cesr::parse_init("npy:" + ok.str(), 3), "holds 4 values but the spectrum has 3");
  CHECK_INVALID(cesr::parse_spectrum("npy:"), "needs a path");
  CHECK_INVALID(cesr::parse_spectrum("npy:/nonexistent/cesr/x.npy"), "cannot read file");
  const BinaryFile empty(npy_bytes("<f8", "(0,)", ""));
  CHECK_INVALID(cesr::parse_spectrum("npy:" + empty.str()), "the array is empty");
}

TEST_CASE("initial moments: isotropic, powerlaw:beta=b, file with the right count") {
  CHECK(cesr::parse_init("isotropic", 3) == std::vector<double>{1, 1, 1});
  const auto p = cesr::parse_init("powerlaw:beta=2", 4);
  REQUIRE(p.size() == 4);
  for (std::size_t i = 0; i < 4; ++i) CHECK(p[i] == doctest::Approx(1.0 / double((i + 1) * (i + 1))));
  const TempFile f("0\n2.5\n# third\n1e-3\n");
  CHECK(cesr::parse_init("file:" + f.str(), 3) == std::vector<double>{0, 2.5, 1e-3});  // zero allowed
  const auto s = cesr::make_spectrum("powerlaw:d=3,alpha=1", "file:" + f.str());
  CHECK(s.init == std::vector<double>{0, 2.5, 1e-3});
  CHECK(s.initial_loss() == doctest::Approx(0.5 * (2.5 / 2 + 1e-3 / 3)));
}

TEST_CASE("initial-moment errors") {
  const TempFile f("1\n2\n");
  CHECK_INVALID(cesr::parse_init("file:" + f.str(), 3), "holds 2 values but the spectrum has 3");
  CHECK_INVALID(cesr::parse_init("file:" + f.str(), 1), "holds 2 values but the spectrum has 1");
  const TempFile neg("1\n-0.5\n");
  CHECK_INVALID(cesr::parse_init("file:" + neg.str(), 2), "line 2: -0.5 must be >= 0");
  const TempFile inf_line("1\ninf\n");
  CHECK_INVALID(cesr::parse_init("file:" + inf_line.str(), 2), "line 2: 'inf' is not a finite number");
  CHECK_INVALID(cesr::parse_init("powerlaw:beta=x", 3), "'x' is not a finite number");
  CHECK_INVALID(cesr::parse_init("powerlaw:alpha=1", 3), "missing beta=");
  CHECK_INVALID(cesr::parse_init("powerlaw:beta=1,gamma=2", 3), "unknown key 'gamma'");
  CHECK_INVALID(cesr::parse_init("gaussian", 3), "unknown init");
  // i^200 overflows double from i = 35 on: bad input, not a diverging method
  CHECK_INVALID(cesr::parse_init("powerlaw:beta=-200", 100), "value 35 is inf (overflow)");
  CHECK_INVALID(cesr::parse_init("file:/nonexistent/cesr/init.txt", 3), "cannot read file");
}

TEST_CASE("parse_finite accepts exactly one finite number") {
  CHECK(cesr::parse_finite("1e-3", "x") == 1e-3);
  CHECK(cesr::parse_finite("  -2.5 ", "x") == -2.5);
  CHECK_INVALID(cesr::parse_finite("", "--lr"), "--lr: '' is not a finite number");
  CHECK_INVALID(cesr::parse_finite("1.5.2", "--lr"), "'1.5.2' is not a finite number");
  CHECK_INVALID(cesr::parse_finite("-inf", "--lr"), "'-inf' is not a finite number");
  CHECK_INVALID(cesr::parse_finite("0x10", "--lr"), "is not a finite number");
}
