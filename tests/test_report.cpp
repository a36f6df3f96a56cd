// Tables: rounding against an independent route (binary formatting by {fmt}),
// LaTeX booktabs and Markdown structure, escaping, CSV quoting, JSON validity.
#include <doctest/doctest.h>

#include "cesr/report.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using cesr::Cell;
using cesr::Format;
using cesr::render;
using cesr::RenderOptions;
using cesr::round_number_text;
using cesr::Table;

namespace {

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

Table paper_table() {
  return Table{{"method", "batch", "steps", "ce", "lr", "momentum"},
               {{Cell::string("sgd"), Cell::number("1"), Cell::number("1234"), Cell::number("8.1037e-04"),
                 Cell::number("0.99951"), Cell::null()},
                {Cell::string("hb"), Cell::number("64"), Cell::number("87"), Cell::number("1.7960000000000001e-04"),
                 Cell::number("0.5"), Cell::number("0.90449")},
                {Cell::string("asgd"), Cell::number("1024"), Cell::null(), Cell::number("1.2345e-400"),
                 Cell::number("2.5"), Cell::null()}}};
}

}  // namespace

TEST_CASE("rounding to significant digits") {
  CHECK(round_number_text("0.00012345", 3) == "1.23e-04");
  CHECK(round_number_text("9.996e-05", 3) == "1.00e-04");
  CHECK(round_number_text("99.95", 3) == "1.00e+02");
  CHECK(round_number_text("-2.5e-300", 2) == "-2.5e-300");
  CHECK(round_number_text("1.2355e-400", 4) == "1.236e-400");  // beyond the range of double
  CHECK(round_number_text("7.77e+1234", 1) == "8e+1234");
  CHECK(round_number_text("0.0", 3) == "0.00e+00");
  CHECK(round_number_text("1.5", 5) == "1.5000e+00");
  // Left alone: integers, non-finite values, not numbers, digits <= 0.
  CHECK(round_number_text("123456", 3) == "123456");
  CHECK(round_number_text("inf", 3) == "inf");
  CHECK(round_number_text("-nan", 3) == "-nan");
  CHECK(round_number_text("1.2.3", 3) == "1.2.3");
  CHECK(round_number_text("1e5x", 3) == "1e5x");
  CHECK(round_number_text("0.123456", 0) == "0.123456");
}

TEST_CASE("decimal rounding agrees with {fmt}'s rounding of the binary value") {
  // 17 significant digits identify the double; rounding that text to d digits
  // must give what {fmt} gives for the double itself (ties have probability ~0).
  std::mt19937_64 rng(2024);
  std::uniform_real_distribution<double> exponent(-300, 300), mantissa(1, 10);
  for (int i = 0; i < 20000; ++i) {
    const double x = (i % 2 ? -1 : 1) * mantissa(rng) * std::pow(10.0, std::floor(exponent(rng)));
    const int digits = 1 + i % 8;
    const std::string full = fmt::format("{:.16e}", x);
    REQUIRE(round_number_text(full, digits) == fmt::format("{:.{}e}", x, digits - 1));
  }
}

TEST_CASE("LaTeX: a booktabs table with paper names, scientific numbers and escapes") {
  RenderOptions ro;
  ro.digits = 3;
  ro.caption = "Tuned frontier: 100% of d_eff & more";
  const std::string tex = render(paper_table(), Format::Latex, ro);
  const auto lines = lines_of(tex);
  // Structure, in order.
  std::vector<std::string> skeleton;
  for (const auto& l : lines)
    if (l.rfind("\\", 0) == 0 && l.find(" & ") == std::string::npos) skeleton.push_back(l);
  CHECK(skeleton == std::vector<std::string>{"\\begin{table}[t]", "\\centering",
                                             "\\caption{Tuned frontier: 100\\% of d\\_eff \\& more}", "\\setlength{\\tabcolsep}{4pt}",
                                             "\\begin{tabular}{lrrrrr}", "\\toprule", "\\midrule", "\\bottomrule",
                                             "\\end{tabular}", "\\end{table}"});
  const auto at = [&](const std::string& l) { return std::find(lines.begin(), lines.end(), l) - lines.begin(); };
  CHECK(at("\\toprule") + 2 == at("\\midrule"));
  CHECK(at("\\midrule") + 4 == at("\\bottomrule"));
  CHECK(lines[at("\\toprule") + 1] == "method & $B$ & steps & CE & $\\eta$ & $\\beta$ \\\\");
  CHECK(lines[at("\\midrule") + 1] == "SGD & $1$ & $1234$ & $8.10\\times10^{-4}$ & $1.00$ & -- \\\\");
  // Exponents -2..3 in fixed notation with the same digits, as papers print them.
  CHECK(lines[at("\\midrule") + 2] == "HB & $64$ & $87$ & $1.80\\times10^{-4}$ & $0.500$ & $0.904$ \\\\");
  CHECK(lines[at("\\midrule") + 3] == "AccSGD & $1024$ & -- & $1.23\\times10^{-400}$ & $2.50$ & -- \\\\");
  // Every data and header row has one cell per column.
  for (std::size_t i = at("\\toprule") + 1; i < static_cast<std::size_t>(at("\\bottomrule")); ++i)
    if (lines[i] != "\\midrule") CHECK(std::count(lines[i].begin(), lines[i].end(), '&') == 5);
}

TEST_CASE("LaTeX and Markdown escaping") {
  CHECK(cesr::latex_escape("a_b%c&d#e$f{g}h~i^j\\k") ==
        "a\\_b\\%c\\&d\\#e\\$f\\{g\\}h\\textasciitilde{}i\\textasciicircum{}j\\textbackslash{}k");
  CHECK(cesr::markdown_escape("a|b\\c") == "a\\|b\\\\c");
  CHECK(cesr::latex_escape("mean \u00b1 2 SE, slope \u22121, \u221a\u03ba, \u00e9") ==
        "mean $\\pm$ 2 SE, slope $-$1, $\\surd$$\\kappa$, \u00e9");
  const Table t{{"name", "x_y"}, {{Cell::string("p|q"), Cell::number("1.5")}}};
  const std::string md = render(t, Format::Markdown);
  CHECK(md.find("p\\|q") != std::string::npos);
  const std::string tex = render(t, Format::Latex);
  CHECK(tex.find("name & x\\_y \\\\") != std::string::npos);
}

TEST_CASE("Markdown: pipe table with paper names, alignment and rounding") {
  RenderOptions ro;
  ro.digits = 2;
  const auto lines = lines_of(render(paper_table(), Format::Markdown, ro));
  REQUIRE(lines.size() == 5);
  for (const auto& l : lines) {
    CHECK(l.front() == '|');
    CHECK(l.back() == '|');
    CHECK(std::count(l.begin(), l.end(), '|') == 7);
  }
  CHECK(lines[0].find("| method ") == 0);
  CHECK(lines[0].find(" \u03b7 ") != std::string::npos);
  CHECK(lines[0].find(" \u03b2 ") != std::string::npos);
  CHECK(lines[0].find(" CE ") != std::string::npos);
  // Text left-aligned (":---"), numbers right-aligned ("---:").
  CHECK(lines[1].rfind("|:-", 0) == 0);
  CHECK(lines[1].find("-:|") != std::string::npos);
  CHECK(lines[2].find("| SGD ") == 0);
  CHECK(lines[2].find(" 8.1e-04 ") != std::string::npos);
  CHECK(lines[3].find(" 9.0e-01 ") != std::string::npos);
  CHECK(lines[4].find("| AccSGD ") == 0);
  CHECK(lines[4].find(" 1.2e-400 ") != std::string::npos);
  CHECK(lines[4].find(" 1024 ") != std::string::npos);
}

TEST_CASE("CSV keeps full text and quotes like RFC 4180; text tables keep raw names") {
  const Table t{{"method", "loss"},
                {{Cell::string("hb(lr=0.5, momentum=0.9)"), Cell::number("1.2345678901234567e-05")},
                 {Cell::string("say \"hi\""), Cell::null()}}};
  RenderOptions ro;
  ro.digits = 3;  // ignored by CSV
  CHECK(render(t, Format::Csv, ro) ==
        "method,loss\n\"hb(lr=0.5, momentum=0.9)\",1.2345678901234567e-05\n\"say \"\"hi\"\"\",\n");
  const auto text = lines_of(render(t, Format::Text, ro));
  REQUIRE(text.size() == 3);
  CHECK(text[0].rfind("method", 0) == 0);
  CHECK(text[0].find("loss") != std::string::npos);
  CHECK(text[1].find("1.23e-05") != std::string::npos);
  CHECK(text[2].back() == '-');
}

TEST_CASE("JSON is valid, keeps every digit, and writes non-finite numbers as null") {
  const Table t{{"step", "loss", "z", "note"},
                {{Cell::number("3"), Cell::number("1.2345678901234567890123e-05"), Cell::number("inf"),
                  Cell::string("a \"quoted\"\nline")},
                 {Cell::number("4"), Cell::number("-nan"), Cell::null(), Cell::string("")}}};
  const std::string json = render(t, Format::Json);
  CHECK(json.find("1.2345678901234567890123e-05") != std::string::npos);
  const auto parsed = nlohmann::json::parse(json);
  REQUIRE(parsed.size() == 2);
  CHECK(parsed[0]["step"] == 3);
  CHECK(parsed[0]["z"].is_null());
  CHECK(parsed[0]["note"] == "a \"quoted\"\nline");
  CHECK(parsed[1]["loss"].is_null());
  CHECK(parsed[1]["z"].is_null());
}

TEST_CASE("paper names, formats, and malformed tables") {
  CHECK(cesr::paper_column_name("critical_batch", Format::Latex) == "$B_{\\mathrm{crit}}$");
  CHECK(cesr::paper_column_name("gap", Format::Markdown) == "gap 1\u2212\u03c1");
  CHECK(cesr::paper_column_name("my_col", Format::Latex) == "my\\_col");
  CHECK(cesr::paper_method_name("nag") == "NAG");
  CHECK(cesr::paper_method_name("custom") == "custom");
  for (auto f : {Format::Csv, Format::Json, Format::Text, Format::Markdown, Format::Latex})
    CHECK(cesr::parse_format(cesr::to_string(f)) == f);
  CHECK_THROWS_WITH_AS(cesr::parse_format("xlsx"), doctest::Contains("--format"), std::invalid_argument);
  const Table bad{{"a", "b"}, {{Cell::number("1")}}};
  CHECK_THROWS_AS(render(bad, Format::Csv), std::logic_error);
}
