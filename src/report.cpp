#include "cesr/report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <stdexcept>

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

std::string round_number_text(const std::string& text, int digits) {
  if (digits <= 0 || text.empty()) return text;
  char* end = nullptr;
  const double x = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return text;
  // Integers (step counts, batch sizes) stay exact.
  if (text.find_first_of(".eE") == std::string::npos) return text;
  return fmt::format("{:.{}e}", x, digits - 1);
}

namespace {

std::string cell_text(const Cell& c, const RenderOptions& o) {
  if (c.kind == Cell::Kind::Null) return "";
  if (c.kind == Cell::Kind::Number) return round_number_text(c.text, o.digits);
  return c.text;
}

std::string latex_escape(std::string_view s) {
  std::string out;
  for (char ch : s) {
    if (ch == '_' || ch == '%' || ch == '&' || ch == '#' || ch == '$') out += '\\';
    out += ch;
  }
  return out;
}

// 1.23e-04 -> $1.23\times10^{-4}$
std::string latex_number(const std::string& text) {
  const auto e = text.find_first_of("eE");
  if (e == std::string::npos) return text;
  const int exponent = std::atoi(text.c_str() + e + 1);
  const std::string mantissa = text.substr(0, e);
  if (exponent == 0) return "$" + mantissa + "$";
  return fmt::format("${}\\times10^{{{}}}$", mantissa, exponent);
}

}  // namespace

std::string render(const Table& t, Format format, const RenderOptions& o) {
  std::string out;
  const std::size_t ncol = t.columns.size();
  switch (format) {
    case Format::Csv: {
      for (std::size_t j = 0; j < ncol; ++j) out += (j ? "," : "") + t.columns[j];
      out += '\n';
      for (const auto& row : t.rows) {
        for (std::size_t j = 0; j < ncol; ++j) {
          std::string s = cell_text(row[j], RenderOptions{});
          if (s.find_first_of(",\"\n") != std::string::npos) s = json_quote(s);
          out += (j ? "," : "") + s;
        }
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
          if (c.kind == Cell::Kind::Null) out += "null";
          else if (c.kind == Cell::Kind::String) out += json_quote(c.text);
          else out += c.text;
        }
        out += i + 1 < t.rows.size() ? "},\n" : "}\n";
      }
      out += "]\n";
      return out;
    }
    case Format::Text:
    case Format::Markdown: {
      std::vector<std::vector<std::string>> cells;
      std::vector<std::size_t> width(ncol);
      for (std::size_t j = 0; j < ncol; ++j) width[j] = t.columns[j].size();
      for (const auto& row : t.rows) {
        auto& line = cells.emplace_back();
        for (std::size_t j = 0; j < ncol; ++j) {
          line.push_back(cell_text(row[j], o));
          if (line.back().empty() && format == Format::Text) line.back() = "-";
          width[j] = std::max(width[j], line.back().size());
        }
      }
      const bool md = format == Format::Markdown;
      const auto emit = [&](const std::vector<std::string>& line) {
        for (std::size_t j = 0; j < ncol; ++j) {
          out += md ? "| " : (j ? "  " : "");
          out += fmt::format("{:>{}}", line[j], width[j]);
          out += md ? " " : "";
        }
        out += md ? "|\n" : "\n";
      };
      emit(t.columns);
      if (md) {
        for (std::size_t j = 0; j < ncol; ++j) out += "|" + std::string(width[j] + 1, '-') + ":";
        out += "|\n";
      }
      for (const auto& line : cells) emit(line);
      return out;
    }
    case Format::Latex: {
      out += "\\begin{table}[t]\n\\centering\n";
      if (!o.caption.empty()) out += "\\caption{" + latex_escape(o.caption) + "}\n";
      out += "\\begin{tabular}{" + std::string(ncol, 'r') + "}\n\\toprule\n";
      for (std::size_t j = 0; j < ncol; ++j) out += (j ? " & " : "") + latex_escape(t.columns[j]);
      out += " \\\\\n\\midrule\n";
      for (const auto& row : t.rows) {
        for (std::size_t j = 0; j < ncol; ++j) {
          const Cell& c = row[j];
          std::string s = c.kind == Cell::Kind::Null     ? "--"
                          : c.kind == Cell::Kind::String ? latex_escape(c.text)
                                                         : latex_number(cell_text(c, o));
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

void write_output(const std::string& path, const std::string& content) {
  if (path.empty() || path == "-") {
    std::cout << content << std::flush;
    if (!std::cout) throw std::runtime_error("error writing to standard output");
    return;
  }
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string tmpl = (dir / ("." + target.filename().string() + ".XXXXXX")).string();
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0)
    throw std::runtime_error(fmt::format("--output: cannot create a file in '{}': {}", dir.string(),
                                         std::strerror(errno)));
  std::FILE* f = ::fdopen(fd, "w");
  bool ok = f && std::fwrite(content.data(), 1, content.size(), f) == content.size();
  ok = (f && std::fclose(f) == 0) && ok;
  if (!f) ::close(fd);
  if (ok) ::chmod(tmpl.c_str(), 0644);
  if (!ok || std::rename(tmpl.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmpl.c_str());
    throw std::runtime_error(fmt::format("--output: cannot write '{}': {}", path, std::strerror(err)));
  }
}

}  // namespace cesr
