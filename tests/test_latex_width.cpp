// The LaTeX tables of `cesr frontier` and `cesr window` fit the text width of
// LaTeX's article class at 10pt (345pt), by an estimate of each column's
// natural width from Computer Modern's glyph widths (no TeX is needed). The
// estimate errs wide: glyphs it does not know count as 5pt (an average
// lower-case letter), and math spacing around binary operators is added.
#include <doctest/doctest.h>

#include "cesr_run.hpp"

#include <algorithm>
#include <map>
#include <regex>
#include <string>
#include <vector>

namespace {

constexpr double article_text_width = 345;  // pt: \textwidth of article, 10pt, letter or A4

// Advance widths in pt of cmr10 / cmmi10 at 10pt.
double glyph(char c) {
  static const std::map<char, double> w{
      {'.', 2.78}, {',', 2.78}, {' ', 3.33}, {'/', 5.0}, {'-', 3.33}, {'(', 3.89}, {')', 3.89}, {'=', 7.78},
      {'+', 7.78}, {'a', 5.0},  {'b', 5.56}, {'c', 4.44}, {'d', 5.56}, {'e', 4.44}, {'f', 3.06}, {'g', 5.0},
      {'h', 5.56}, {'i', 2.78}, {'j', 3.06}, {'k', 5.28}, {'l', 2.78}, {'m', 8.33}, {'n', 5.56}, {'o', 5.0},
      {'p', 5.56}, {'q', 5.28}, {'r', 3.92}, {'s', 3.94}, {'t', 3.89}, {'u', 5.56}, {'v', 5.28}, {'w', 7.22},
      {'x', 5.28}, {'y', 5.28}, {'z', 4.44}};
  if (c >= '0' && c <= '9') return 5.0;
  if (const auto it = w.find(c); it != w.end()) return it->second;
  if (c >= 'A' && c <= 'Z') return 7.5;
  return 5.0;
}

double command(const std::string& name) {
  static const std::map<std::string, double> w{
      {"times", 7.78 + 4.44},  // with the medium spaces around a binary operator
      {"rho", 5.2},  {"eta", 4.9},   {"beta", 5.7}, {"kappa", 5.8}, {"xi", 4.4}, {"lambda", 5.8}, {"alpha", 6.4},
      {"infty", 10}, {",", 1.67},    {"min", 13.9}, {"max", 14.7},  {"sqrt", 8.3}, {"mathrm", 0}, {"_", 5},
      {"%", 8.3},    {"&", 7.78}};
  const auto it = w.find(name);
  return it == w.end() ? 8.0 : it->second;
}

// Width of a cell's text in pt at `scale` (sub- and superscripts at 0.7).
double width(const std::string& s, double scale = 1.0) {
  double w = 0;
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (c == '\\') {
      std::size_t j = i + 1;
      while (j < s.size() && std::isalpha(static_cast<unsigned char>(s[j]))) ++j;
      if (j == i + 1) ++j;  // a one-character command: \, \_ \%
      w += command(s.substr(i + 1, j - i - 1)) * scale;
      i = j;
    } else if (c == '^' || c == '_') {
      ++i;
      if (i < s.size() && s[i] == '{') {
        int depth = 1;
        std::size_t j = i + 1;
        for (; j < s.size() && depth; ++j) depth += s[j] == '{' ? 1 : s[j] == '}' ? -1 : 0;
        w += width(s.substr(i + 1, j - i - 2), scale * 0.7);
        i = j;
      } else if (i < s.size()) {
        w += glyph(s[i++]) * scale * 0.7;
      }
    } else if (c == '{' || c == '}' || c == '$') {
      ++i;
    } else {
      w += glyph(c) * scale;
      ++i;
    }
  }
  return w;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \n");
  return b == std::string::npos ? "" : s.substr(b, s.find_last_not_of(" \n") - b + 1);
}

/// The estimated natural width of every table in a LaTeX text.
std::vector<double> table_widths(const std::string& tex) {
  std::vector<double> out;
  const std::regex table(R"(\\begin\{table\}([\s\S]*?)\\end\{table\})");
  for (std::sregex_iterator it(tex.begin(), tex.end(), table), end; it != end; ++it) {
    const std::string env = (*it)[1];
    std::smatch m;
    const double sep = std::regex_search(env, m, std::regex(R"(\\tabcolsep\}\{(\d+)pt\})")) ? 2 * std::stod(m[1]) : 12;
    const double scale = env.find("\\small") != std::string::npos ? 0.9 : 1.0;
    const auto b = env.find("\\toprule"), e = env.find("\\bottomrule");
    REQUIRE(b != std::string::npos);
    std::string body = env.substr(b + 8, e - b - 8);
    body = std::regex_replace(body, std::regex(R"(\\midrule)"), "");
    std::vector<double> cols;
    std::size_t pos = 0;
    for (;;) {
      const auto next = body.find("\\\\", pos);
      if (next == std::string::npos) break;
      const std::string line = body.substr(pos, next - pos);
      pos = next + 2;
      std::vector<double> cells;
      std::size_t from = 0;
      for (;;) {
        const auto amp = line.find(" & ", from);
        cells.push_back(width(trim(line.substr(from, amp == std::string::npos ? amp : amp - from))) * scale);
        if (amp == std::string::npos) break;
        from = amp + 3;
      }
      if (cols.empty()) cols = cells;
      REQUIRE(cells.size() == cols.size());
      for (std::size_t j = 0; j < cols.size(); ++j) cols[j] = std::max(cols[j], cells[j]);
    }
    double total = 0;
    for (double c : cols) total += c + sep;
    out.push_back(total);
  }
  return out;
}

}  // namespace

TEST_CASE("the estimate itself: known widths") {
  CHECK(width("$1234$") == doctest::Approx(20));
  CHECK(width("$10^{8}$") == doctest::Approx(13.5));
  // Six columns of "$1.000\times10^{-4}$" with LaTeX's default gaps (12pt a column) exceed 345pt.
  std::string row = "\\begin{table}\n\\begin{tabular}{rrrrrr}\n\\toprule\n";
  for (int j = 0; j < 6; ++j) row += std::string(j ? " & " : "") + "$1.000\\times10^{-4}$";
  row += " \\\\\n\\bottomrule\n\\end{tabular}\n\\end{table}\n";
  const auto w = table_widths(row);
  REQUIRE(w.size() == 1);
  CHECK(w[0] > article_text_width);
}

TEST_CASE("cesr window and cesr frontier LaTeX tables fit an article's text width") {
  const auto window = cesr_test::run_cesr("window --kappas 1e2,1e4,1e6,1e8 --d 30 --format latex");
  REQUIRE(window.code == 0);
  const auto frontier = cesr_test::run_cesr(
      "frontier --spectrum loguniform:d=30,kappa=1e3 --methods sgd,hb,asgd --batches 1,64,4096,65536 --format latex");
  REQUIRE(frontier.code == 0);
  const auto final_objective = cesr_test::run_cesr(
      "frontier --spectrum loguniform:d=30,kappa=1e3 --methods sgd,hb,asgd --batches 1,64,4096 --objective final "
      "--samples 100000 --format latex");
  REQUIRE(final_objective.code == 0);
  int tables = 0;
  for (const auto* tex : {&window.out, &frontier.out, &final_objective.out})
    for (double w : table_widths(*tex)) {
      CAPTURE(*tex);
      CHECK(w < article_text_width);
      ++tables;
    }
  CHECK(tables == 1 + 2 + 2);
  // The window table uses the frontier table's names for the same quantities.
  CHECK(window.out.find("$B_{\\mathrm{crit}}$ SGD") != std::string::npos);
  CHECK(frontier.out.find("$B_{\\mathrm{crit}}$") != std::string::npos);
  CHECK(window.out.find("\\_") == std::string::npos);  // no raw column names
}
