#include "cesr/report.hpp"

#include "cesr/method.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <utility>

#include <sys/stat.h>
#include <unistd.h>

namespace cesr {

Format parse_format(std::string_view name) {
  if (name == "csv") return Format::Csv;
  if (name == "json") return Format::Json;
  if (name == "table") return Format::Text;
  if (name == "markdown") return Format::Markdown;
  if (name == "latex") return Format::Latex;
  throw std::invalid_argument(fmt::format("--format: unknown format '{}'", name));
}

std::string_view to_string(Format f) {
  switch (f) {
    case Format::Csv: return "csv";
    case Format::Json: return "json";
    case Format::Text: return "table";
    case Format::Markdown: return "markdown";
    case Format::Latex: return "latex";
  }
  return "?";
}

std::string json_quote(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20) out += fmt::format("\\u{:04x}", ch);
        else out += ch;
    }
  }
  return out + "\"";
}

// Rounds on the decimal text itself (half away from zero), so that values
// outside the range of double (from 50-digit arithmetic) round correctly.
std::string round_number_text(const std::string& text, int digits) {
  if (digits <= 0 || text.empty()) return text;
  // Integers (step counts, batch sizes) stay exact.
  if (text.find_first_of(".eE") == std::string::npos) return text;
  std::size_t i = 0;
  const bool negative = text[0] == '-';
  if (text[0] == '-' || text[0] == '+') ++i;
  std::string all;            // every mantissa digit
  long int_digits = -1;       // digits before the point
  for (; i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'); ++i) {
    if (text[i] == '.') {
      if (int_digits >= 0) return text;
      int_digits = static_cast<long>(all.size());
    } else {
      all += text[i];
    }
  }
  if (all.empty()) return text;
  if (int_digits < 0) int_digits = static_cast<long>(all.size());
  long exponent = 0;
  if (i < text.size()) {
    if (text[i] != 'e' && text[i] != 'E') return text;
    const std::string e = text.substr(i + 1);
    if (e.empty() || e.find_first_not_of("+-0123456789") != std::string::npos || e.find_first_of("+-", 1) != std::string::npos)
      return text;
    exponent = std::strtol(e.c_str(), nullptr, 10);
  }
  const auto first = all.find_first_not_of('0');
  if (first == std::string::npos) return fmt::format("{}{:.{}e}", negative ? "-" : "", 0.0, digits - 1);
  all.erase(0, first);
  long sci = int_digits - static_cast<long>(first) - 1 + exponent;
  const auto n = static_cast<std::size_t>(digits);
  if (all.size() > n) {
    const bool up = all[n] >= '5';
    all.resize(n);
    if (up) {
      std::size_t k = n;
      while (k > 0 && all[k - 1] == '9') all[--k] = '0';
      if (k == 0) {
        all.insert(all.begin(), '1');
        all.resize(n);
        ++sci;
      } else {
        ++all[k - 1];
      }
    }
  }
  all.resize(n, '0');
  std::string out = negative ? "-" : "";
  out += all[0];
  if (n > 1) {
    out += '.';
    out.append(all, 1, std::string::npos);
  }
  return out + fmt::format("e{}{:02d}", sci < 0 ? '-' : '+', sci < 0 ? -sci : sci);
}

std::string latex_escape(std::string_view s) {
  // A few Unicode symbols that cesr's labels use, as math (pdfLaTeX-safe).
  static constexpr std::pair<std::string_view, std::string_view> symbols[] = {
      {"\u00b1", "$\\pm$"},    {"\u2212", "$-$"},       {"\u00b7", "$\\cdot$"},  {"\u00d7", "$\\times$"},
      {"\u2248", "$\\approx$"}, {"\u221a", "$\\surd$"},  {"\u03b7", "$\\eta$"},   {"\u03b2", "$\\beta$"},
      {"\u03ba", "$\\kappa$"}, {"\u03c1", "$\\rho$"},   {"\u03be", "$\\xi$"},    {"\u03bb", "$\\lambda$"},
      {"\u03c3", "$\\sigma$"}, {"\u03b1", "$\\alpha$"},
  };
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char ch = s[i];
    if (static_cast<unsigned char>(ch) >= 0x80) {
      bool replaced = false;
      for (const auto& [utf8, tex] : symbols)
        if (s.substr(i, utf8.size()) == utf8) {
          out += tex;
          i += utf8.size() - 1;
          replaced = true;
          break;
        }
      if (!replaced) out += ch;
      continue;
    }
    switch (ch) {
      case '\\': out += "\\textbackslash{}"; break;
      case '~': out += "\\textasciitilde{}"; break;
      case '^': out += "\\textasciicircum{}"; break;
      case '_': case '%': case '&': case '#': case '$': case '{': case '}':
        out += '\\';
        out += ch;
        break;
      default: out += ch;
    }
  }
  return out;
}

std::string markdown_escape(std::string_view s) {
  std::string out;
  for (char ch : s) {
    if (ch == '|' || ch == '\\') out += '\\';
    out += ch;
  }
  return out;
}

namespace {

struct PaperName {
  std::string_view column, markdown, latex;
};

// Column names used by cesr's commands and their names in a paper.
constexpr PaperName paper_names[] = {
    {"method", "method", "method"},
    {"batch", "B", "$B$"},
    {"step", "t", "$t$"},
    {"steps", "steps", "steps"},
    {"loss", "L_t", "$L_t$"},
    {"ce", "CE", "CE"},
    {"gap", "gap 1\u2212\u03c1", "gap $1-\\rho$"},
    {"rho", "\u03c1", "$\\rho$"},
    {"lr", "\u03b7", "$\\eta$"},
    {"momentum", "\u03b2", "$\\beta$"},
    {"kappa", "\u03ba", "$\\kappa$"},
    {"xi", "\u03be", "$\\xi$"},
    {"best_ce", "best CE", "best CE"},
    {"best_ce_batch", "B at best CE", "$B$ at best CE"},
    {"critical_batch", "B_crit", "$B_{\\mathrm{crit}}$"},
    {"mccandlish_batch", "E_min/S_min", "$E_{\\min}/S_{\\min}$"},
    {"theory", "exact L_t", "exact $L_t$"},
    {"mean", "simulated mean", "simulated mean"},
    {"std_error", "standard error", "standard error"},
    {"stderr", "standard error", "standard error"},
};

// A JSON number: digits, sign, point and exponent only (so "inf" and "nan" are
// not, while 1e-400 from 50-digit arithmetic is).
bool is_finite_number(const std::string& text) {
  return !text.empty() && text.find_first_not_of("0123456789+-.eE") == std::string::npos;
}

std::string cell_text(const Cell& c, const RenderOptions& o) {
  if (c.kind == Cell::Kind::Null) return "";
  if (c.kind == Cell::Kind::Number) return round_number_text(c.text, o.digits);
  return c.text;
}

// 1.23e-04 -> $1.23\times10^{-4}$; inf -> $\infty$; integers as they are.
std::string latex_number(const std::string& text) {
  if (text == "inf" || text == "+inf") return "$\\infty$";
  if (text == "-inf") return "$-\\infty$";
  if (text == "nan" || text == "-nan") return "--";
  const auto e = text.find_first_of("eE");
  if (e == std::string::npos) return "$" + text + "$";
  const int exponent = std::atoi(text.c_str() + e + 1);
  const std::string mantissa = text.substr(0, e);
  if (exponent == 0) return "$" + mantissa + "$";
  return fmt::format("${}\\times10^{{{}}}$", mantissa, exponent);
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"') out += '"';
    out += ch;
  }
  return out + "\"";
}

// A column is text when it has a string cell and no number cell.
std::vector<bool> text_columns(const Table& t) {
  std::vector<bool> has_string(t.columns.size()), has_number(t.columns.size());
  for (const auto& row : t.rows)
    for (std::size_t j = 0; j < t.columns.size() && j < row.size(); ++j) {
      if (row[j].kind == Cell::Kind::String) has_string[j] = true;
      if (row[j].kind == Cell::Kind::Number) has_number[j] = true;
    }
  std::vector<bool> out(t.columns.size());
  for (std::size_t j = 0; j < out.size(); ++j) out[j] = has_string[j] && !has_number[j];
  return out;
}

void check_row_sizes(const Table& t) {
  for (std::size_t i = 0; i < t.rows.size(); ++i)
    if (t.rows[i].size() != t.columns.size())
      throw std::logic_error(fmt::format("render: row {} has {} cells for {} columns", i, t.rows[i].size(),
                                         t.columns.size()));
}

}  // namespace

std::string paper_column_name(std::string_view column, Format format) {
  for (const auto& p : paper_names)
    if (p.column == column) return std::string(format == Format::Latex ? p.latex : p.markdown);
  if (format == Format::Latex) return latex_escape(column);
  if (format == Format::Markdown) return markdown_escape(column);
  return std::string(column);
}

std::string paper_method_name(std::string_view method) {
  for (const auto& row : methods())
    if (row.name == method) return std::string(row.paper_name.empty() ? row.name : row.paper_name);
  return std::string(method);
}

std::string render(const Table& t, Format format, const RenderOptions& o) {
  check_row_sizes(t);
  std::string out;
  const std::size_t ncol = t.columns.size();
  switch (format) {
    case Format::Csv: {
      for (std::size_t j = 0; j < ncol; ++j) out += (j ? "," : "") + csv_field(t.columns[j]);
      out += '\n';
      for (const auto& row : t.rows) {
        for (std::size_t j = 0; j < ncol; ++j) out += (j ? "," : "") + csv_field(cell_text(row[j], RenderOptions{}));
        out += '\n';
      }
      return out;
    }
    case Format::Json: {
      out += "[\n";
      for (std::size_t i = 0; i < t.rows.size(); ++i) {
        out += "  {";
        for (std::size_t j = 0; j < ncol; ++j) {
          const Cell& c = t.rows[i][j];
          out += fmt::format("{}{}: ", j ? ", " : "", json_quote(t.columns[j]));
          if (c.kind == Cell::Kind::String) out += json_quote(c.text);
          else if (c.kind == Cell::Kind::Number && is_finite_number(c.text)) out += c.text;
          else out += "null";
        }
        out += i + 1 < t.rows.size() ? "},\n" : "}\n";
      }
      out += "]\n";
      return out;
    }
    case Format::Text:
    case Format::Markdown: {
      const bool md = format == Format::Markdown;
      const auto is_text = text_columns(t);
      const auto method_col = std::find(t.columns.begin(), t.columns.end(), "method") - t.columns.begin();
      std::vector<std::string> header;
      for (const auto& c : t.columns) header.push_back(md ? paper_column_name(c, format) : c);
      std::vector<std::vector<std::string>> cells;
      for (const auto& row : t.rows) {
        auto& line = cells.emplace_back();
        for (std::size_t j = 0; j < ncol; ++j) {
          std::string s = cell_text(row[j], o);
          if (md && row[j].kind == Cell::Kind::String)
            s = markdown_escape(static_cast<std::ptrdiff_t>(j) == method_col ? paper_method_name(s) : s);
          if (s.empty()) s = md ? "\u2013" : "-";
          line.push_back(std::move(s));
        }
      }
      // Widths in code points, so that Greek letters and dashes align.
      const auto width_of = [](const std::string& s) {
        std::size_t n = 0;
        for (char ch : s) n += (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
        return n;
      };
      std::vector<std::size_t> width(ncol);
      for (std::size_t j = 0; j < ncol; ++j) {
        width[j] = std::max<std::size_t>(width_of(header[j]), 3);
        for (const auto& line : cells) width[j] = std::max(width[j], width_of(line[j]));
      }
      const auto pad = [&](const std::string& s, std::size_t j) {
        const std::string fill(width[j] - width_of(s), ' ');
        return is_text[j] ? s + fill : fill + s;
      };
      const auto emit = [&](const std::vector<std::string>& line) {
        for (std::size_t j = 0; j < ncol; ++j) out += (md ? "| " : (j ? "  " : "")) + pad(line[j], j) + (md ? " " : "");
        // No trailing blanks in the text table.
        if (!md) out.erase(out.find_last_not_of(' ') + 1);
        out += md ? "|\n" : "\n";
      };
      emit(header);
      if (md) {
        for (std::size_t j = 0; j < ncol; ++j)
          out += is_text[j] ? "|:" + std::string(width[j] + 1, '-') : "|" + std::string(width[j] + 1, '-') + ":";
        out += "|\n";
      }
      for (const auto& line : cells) emit(line);
      return out;
    }
    case Format::Latex: {
      const auto is_text = text_columns(t);
      std::string align;
      for (std::size_t j = 0; j < ncol; ++j) align += is_text[j] ? 'l' : 'r';
      out += "% Needs \\usepackage{booktabs}.\n";
      out += "\\begin{table}[t]\n\\centering\n";
      if (!o.caption.empty()) out += "\\caption{" + latex_escape(o.caption) + "}\n";
      out += "\\begin{tabular}{" + align + "}\n\\toprule\n";
      for (std::size_t j = 0; j < ncol; ++j) out += (j ? " & " : "") + paper_column_name(t.columns[j], format);
      out += " \\\\\n\\midrule\n";
      for (const auto& row : t.rows) {
        for (std::size_t j = 0; j < ncol; ++j) {
          const Cell& c = row[j];
          std::string s;
          if (c.kind == Cell::Kind::Null) s = "--";
          else if (c.kind == Cell::Kind::String)
            s = latex_escape(t.columns[j] == "method" ? paper_method_name(c.text) : c.text);
          else s = latex_number(cell_text(c, o));
          out += (j ? " & " : "") + s;
        }
        out += " \\\\\n";
      }
      out += "\\bottomrule\n\\end{tabular}\n\\end{table}\n";
      return out;
    }
  }
  return out;
}

void write_output(const std::string& path, const std::string& content, std::string_view flag) {
  if (path.empty() || path == "-") {
    std::cout << content << std::flush;
    if (!std::cout) throw std::runtime_error("error writing to standard output");
    return;
  }
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string name = ".";
  name += target.filename().string();
  name += ".XXXXXX";
  std::string tmpl = (dir / name).string();
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0)
    throw std::runtime_error(fmt::format("{}: cannot create a file in '{}': {}", flag, dir.string(),
                                         std::strerror(errno)));
  std::FILE* f = ::fdopen(fd, "w");
  bool ok = f && std::fwrite(content.data(), 1, content.size(), f) == content.size();
  ok = (f && std::fclose(f) == 0) && ok;
  if (!f) ::close(fd);
  if (ok) ::chmod(tmpl.c_str(), 0644);
  if (!ok || std::rename(tmpl.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmpl.c_str());
    throw std::runtime_error(fmt::format("{}: cannot write '{}': {}", flag, path, std::strerror(err)));
  }
}

}  // namespace cesr
