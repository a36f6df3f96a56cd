#include "cesr/report.hpp"

#include "cesr/io.hpp"
#include "cesr/method.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <utility>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

namespace cesr {

Format parse_format(std::string_view text) {
  std::string name(text);
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));  // JSON = json
  if (name == "csv") return Format::Csv;
  if (name == "json") return Format::Json;
  if (name == "table") return Format::Text;
  if (name == "markdown") return Format::Markdown;
  if (name == "latex") return Format::Latex;
  throw std::invalid_argument(
      fmt::format("--format: unknown format '{}' (expected csv, json, table, markdown or latex)", text));
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
    // The window (cesr window; the frontier summary's CSV): the same names as the frontier table.
    {"critical_batch_sgd", "B_crit SGD", "$B_{\\mathrm{crit}}$ SGD"},
    {"critical_batch_hb", "B_crit HB", "$B_{\\mathrm{crit}}$ HB"},
    {"window_ratio", "window", "window"},
    {"window_over_sqrt_kappa", "window/\u221a\u03ba", "window$/\\sqrt{\\kappa}$"},
    {"sqrt_kappa", "\u221a\u03ba", "$\\sqrt{\\kappa}$"},
    {"trace_over_max", "tr H/\u03bb_max", "$\\mathrm{tr}\\,H/\\lambda_{\\max}$"},
    {"best_loss", "best L_T", "best $L_T$"},
    {"best_batch", "B at best L_T", "$B$ at best $L_T$"},
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

// Scientific text with a decimal exponent in [-2, 4] in fixed notation with the
// same significant digits, as papers print moderate numbers (3.162e+01 ->
// 31.62, 5.00e-01 -> 0.500, 1.816e+04 -> 18160); empty when it does not apply.
std::string fixed_notation(const std::string& mantissa, int exponent) {
  if (exponent < -2 || exponent > 4) return {};
  std::string sign, digits;
  std::size_t i = 0;
  if (i < mantissa.size() && (mantissa[i] == '-' || mantissa[i] == '+')) {
    if (mantissa[i] == '-') sign = "-";
    ++i;
  }
  // One digit before the point: d.ddd
  if (i >= mantissa.size() || !std::isdigit(static_cast<unsigned char>(mantissa[i]))) return {};
  digits += mantissa[i++];
  if (i < mantissa.size() && mantissa[i] == '.') ++i;
  for (; i < mantissa.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(mantissa[i]))) return {};
    digits += mantissa[i];
  }
  if (digits[0] == '0' && digits.find_first_not_of('0') != std::string::npos) return {};  // not normalised
  std::string out;
  if (exponent < 0) {
    out = "0." + std::string(static_cast<std::size_t>(-exponent - 1), '0') + digits;
  } else {
    const auto whole = static_cast<std::size_t>(exponent) + 1;
    if (digits.size() <= whole) out = digits + std::string(whole - digits.size(), '0');
    else out = digits.substr(0, whole) + "." + digits.substr(whole);
  }
  return sign + out;
}

// 1.23e-04 -> $1.23\times10^{-4}$, 3.16e+01 -> $31.6$; inf -> $\infty$;
// integers as they are.
std::string latex_number(const std::string& text) {
  if (text == "inf" || text == "+inf") return "$\\infty$";
  if (text == "-inf") return "$-\\infty$";
  if (text == "nan" || text == "-nan") return "--";
  const auto e = text.find_first_of("eE");
  if (e == std::string::npos) return "$" + text + "$";
  const int exponent = std::atoi(text.c_str() + e + 1);
  const std::string mantissa = text.substr(0, e);
  if (const std::string fixed = fixed_notation(mantissa, exponent); !fixed.empty()) return "$" + fixed + "$";
  if (exponent == 0) return "$" + mantissa + "$";
  // A power of ten: 1.000e+08 -> 10^8.
  if (mantissa.find_first_not_of("0.", mantissa[0] == '1' ? 1 : 0) == std::string::npos && mantissa[0] == '1')
    return fmt::format("$10^{{{}}}$", exponent);
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
      // Narrower column gaps than LaTeX's 6pt (the tables fit an article's 345pt text width).
      out += "\\setlength{\\tabcolsep}{4pt}\n";
      if (ncol > 7) out += "\\small\n";
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

namespace {

// The temporary file of the write in progress, for the signal handler, which
// may only make async-signal-safe calls: a fixed buffer and a flag. One write
// at a time, as the command line does (signal dispositions are per process).
char pending_temp[PATH_MAX];
volatile std::sig_atomic_t pending_armed = 0;
// The temporary files of a write_files_together in progress (their count).
constexpr std::size_t max_files_together = 8;
char pending_group[max_files_together][PATH_MAX];
volatile std::sig_atomic_t pending_group_count = 0;

void remove_pending_temp(int sig) {
  if (pending_armed) ::unlink(pending_temp);
  for (std::sig_atomic_t i = 0; i < pending_group_count; ++i) ::unlink(pending_group[i]);
  // SA_RESETHAND restored the default action; the signal, blocked while this
  // handler runs, then ends the process as it would have without cesr's help.
  ::raise(sig);
}

constexpr int stop_signals[] = {SIGINT, SIGTERM};

// Blocks SIGINT and SIGTERM while it lives, so that a handler never sees a
// temporary file that exists but is not recorded yet (or is renamed already).
struct BlockStopSignals {
  sigset_t old;
  BlockStopSignals() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : stop_signals) sigaddset(&set, sig);
    ::pthread_sigmask(SIG_BLOCK, &set, &old);
  }
  ~BlockStopSignals() { ::pthread_sigmask(SIG_SETMASK, &old, nullptr); }
};

// Around the final write only: SIGINT and SIGTERM remove the temporary file
// before ending the process, and SIGXFSZ (a file-size limit, ulimit -f) is
// ignored so that the write fails with EFBIG and is reported, instead of
// killing the process with the temporary file in place. A signal the caller
// ignores stays ignored.
class WriteGuard {
 public:
  WriteGuard() {
    const BlockStopSignals block;
    struct sigaction on_stop {};
    on_stop.sa_handler = remove_pending_temp;
    sigemptyset(&on_stop.sa_mask);
    on_stop.sa_flags = SA_RESETHAND;
    for (std::size_t i = 0; i < std::size(stop_signals); ++i) {
      ::sigaction(stop_signals[i], nullptr, &old_stop_[i]);
      if (old_stop_[i].sa_handler != SIG_IGN) ::sigaction(stop_signals[i], &on_stop, nullptr);
    }
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    ::sigaction(SIGXFSZ, &ignore, &old_xfsz_);
  }
  ~WriteGuard() {
    const BlockStopSignals block;
    pending_armed = 0;
    pending_group_count = 0;
    for (std::size_t i = 0; i < std::size(stop_signals); ++i) ::sigaction(stop_signals[i], &old_stop_[i], nullptr);
    ::sigaction(SIGXFSZ, &old_xfsz_, nullptr);
  }
  WriteGuard(const WriteGuard&) = delete;
  WriteGuard& operator=(const WriteGuard&) = delete;

 private:
  struct sigaction old_stop_[std::size(stop_signals)] {};
  struct sigaction old_xfsz_ {};
};

// 0 or the errno of the failed write. Bounded: every pass writes at least one
// byte or fails (EINTR retries).
int write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = ::write(fd, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;
    s.remove_prefix(static_cast<std::size_t>(n));
  }
  return 0;
}

// Errors the user can fix by naming another path (exit 2), as opposed to I/O
// failures on a valid path (exit 5).
bool is_bad_path(int err) {
  return err == EACCES || err == EPERM || err == ENOENT || err == ENOTDIR || err == EROFS || err == ELOOP ||
         err == ENAMETOOLONG || err == EISDIR || err == ENXIO;
}

[[noreturn]] void fail(int err, const std::string& message) {
  if (is_bad_path(err)) throw std::invalid_argument(message);
  throw IoError(message);
}

std::string loop_or(int err) {
  return err == ELOOP ? "a loop of symbolic links" : std::strerror(err);
}

// The file a chain of symbolic links ends at (possibly not existing yet), by
// readlink rather than realpath, which refuses a link to a file to be created.
// Link text is resolved against the link's folder by the kernel, not
// lexically, so "..", and links among the folders, mean what they mean to open.
std::string follow_links(std::string path, std::string_view flag) {
  for (int hops = 0; hops < 40; ++hops) {  // Linux's own limit
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return path;
    char link[PATH_MAX];
    const ssize_t n = ::readlink(path.c_str(), link, sizeof link);
    if (n < 0 || static_cast<std::size_t>(n) >= sizeof link) {
      const int err = n < 0 ? errno : ENAMETOOLONG;
      fail(err, fmt::format("{}: cannot follow the link '{}': {}", flag, path, std::strerror(err)));
    }
    const std::string target(link, static_cast<std::size_t>(n));
    const auto slash = path.rfind('/');
    path = target.front() == '/' || slash == std::string::npos ? target : path.substr(0, slash + 1) + target;
  }
  fail(ELOOP, fmt::format("{}: '{}': {}", flag, path, loop_or(ELOOP)));
}

// Writes a FIFO, a character device (/dev/null, /dev/full, a terminal) or a
// file behind a /proc link where it is: replacing it would destroy it. Opening
// a FIFO waits for a reader, as the shell's redirection does.
void write_in_place(const std::string& path, const std::string& content, std::string_view flag, bool truncate) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_NOCTTY | O_CLOEXEC | (truncate ? O_TRUNC : 0));
  if (fd < 0) {
    const int err = errno;
    fail(err, fmt::format("{}: cannot write '{}': {}", flag, path, loop_or(err)));
  }
  int err = write_all(fd, content);
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err) throw IoError(fmt::format("{}: cannot write '{}': {}", flag, path, std::strerror(err)));
}

// A fresh hidden name .NAME.XXXXXX beside `target`, created with O_EXCL; its
// permission bits are 0644 less the umask. Recorded for the signal handler.
int create_temp(const std::string& target, std::string& temp, std::string_view flag) {
  const auto slash = target.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : target.substr(0, slash + 1);
  const std::string name = target.substr(dir.size());
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  timespec now {};
  ::clock_gettime(CLOCK_REALTIME, &now);
  std::uint64_t state = std::uint64_t(now.tv_nsec) ^ (std::uint64_t(now.tv_sec) << 30) ^ (std::uint64_t(::getpid()) << 40);
  int err = EEXIST;
  for (int attempt = 0; attempt < 100 && err == EEXIST; ++attempt) {  // a name taken 100 times is not chance
    temp = dir + "." + name + ".";
    for (int i = 0; i < 6; ++i) {
      state = state * 6364136223846793005u + 1442695040888963407u;
      temp += alphabet[(state >> 33) % (sizeof alphabet - 1)];
    }
    if (temp.size() >= sizeof pending_temp) {
      err = ENAMETOOLONG;
      break;
    }
    const BlockStopSignals block;
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOCTTY | O_CLOEXEC, 0644);
    if (fd >= 0) {
      std::memcpy(pending_temp, temp.c_str(), temp.size() + 1);
      pending_armed = 1;
      return fd;
    }
    err = errno;
  }
  const std::string shown = dir.empty() ? "." : dir.size() == 1 ? dir : dir.substr(0, dir.size() - 1);
  fail(err, fmt::format("{}: cannot create a file in '{}': {}", flag, shown, std::strerror(err)));
}

// Replaces the regular file `target` (or creates it) atomically: a temporary
// file in the same folder, written in full and synced, then renamed over it.
// An existing file keeps its permission bits and, where allowed, its owner.
void replace_atomically(const std::string& target, const struct stat* existing, const std::string& content,
                        std::string_view flag) {
  std::string temp;
  const int fd = create_temp(target, temp, flag);
  int err = 0;
  if (existing) {
    // The owner first: changing it clears set-user-ID bits. Refused (not an
    // error) for another user's file unless root: the new file is then ours.
    if (::fchown(fd, existing->st_uid, existing->st_gid) != 0) errno = 0;
    if (::fchmod(fd, existing->st_mode & 07777) != 0) err = errno;
  }
  if (!err) err = write_all(fd, content);
  if (!err && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && !err) err = errno;
  {
    const BlockStopSignals block;
    if (!err && std::rename(temp.c_str(), target.c_str()) != 0) err = errno;
    if (err) ::unlink(temp.c_str());
    pending_armed = 0;
  }
  if (err) throw IoError(fmt::format("{}: cannot write '{}': {}", flag, target, std::strerror(err)));
}

}  // namespace

void write_output(const std::string& path, const std::string& content, std::string_view flag) {
  const WriteGuard guard;
  if (path.empty() || path == "-") {
    // Straight to the descriptor, so that the failure has its errno; earlier
    // buffered text goes first.
    std::cout.flush();
    std::fflush(stdout);
    if (const int err = write_all(STDOUT_FILENO, content))
      throw IoError(fmt::format("{}: cannot write to standard output: {}", flag, std::strerror(err)));
    return;
  }
  // stat follows links as open does (including /proc/self/fd links, which
  // readlink cannot): what kind of file would be written?
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err != ENOENT) fail(err, fmt::format("{}: cannot write '{}': {}", flag, path, loop_or(err)));
    // A new file, or a link to one.
    replace_atomically(follow_links(path, flag), nullptr, content, flag);
    return;
  }
  if (S_ISDIR(st.st_mode)) throw std::invalid_argument(fmt::format("{}: '{}' is a folder", flag, path));
  if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) return write_in_place(path, content, flag, false);
  if (!S_ISREG(st.st_mode))
    throw std::invalid_argument(fmt::format(
        "{}: '{}' is a {}; cesr writes regular files, FIFOs and character devices", flag, path,
        S_ISBLK(st.st_mode) ? "block device" : "socket"));
  // A regular file, maybe behind links: replace the file the links end at, so
  // that they stay links. A link whose end is not that file (a /proc link to an
  // open descriptor) is written through in place.
  const std::string target = follow_links(path, flag);
  struct stat end {};
  if (::lstat(target.c_str(), &end) != 0 || !S_ISREG(end.st_mode) || end.st_dev != st.st_dev || end.st_ino != st.st_ino)
    return write_in_place(path, content, flag, true);
  replace_atomically(target, &st, content, flag);
}

}  // namespace cesr

namespace cesr {

void write_files_together(const std::vector<std::pair<std::string, std::string>>& files, std::string_view flag) {
  if (files.size() > max_files_together)
    throw std::logic_error(fmt::format("write_files_together: {} files, at most {}", files.size(), max_files_together));
  const WriteGuard guard;
  // Every path must be a regular file or a new one (links followed), checked
  // before anything is written.
  std::vector<std::string> targets;
  std::vector<std::optional<struct stat>> existing;
  for (const auto& [path, content] : files) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      const int err = errno;
      if (err != ENOENT) fail(err, fmt::format("{}: cannot write '{}': {}", flag, path, loop_or(err)));
      targets.push_back(follow_links(path, flag));
      existing.emplace_back();
      continue;
    }
    if (S_ISDIR(st.st_mode)) throw std::invalid_argument(fmt::format("{}: '{}' is a folder", flag, path));
    if (!S_ISREG(st.st_mode))
      throw std::invalid_argument(
          fmt::format("{}: '{}' is not a regular file (the files of one run are replaced together)", flag, path));
    targets.push_back(follow_links(path, flag));
    existing.emplace_back(st);
  }
  std::vector<std::string> temps;
  const auto discard = [&temps] {
    const BlockStopSignals block;
    for (const auto& t : temps) ::unlink(t.c_str());
    pending_group_count = 0;
  };
  for (std::size_t i = 0; i < files.size(); ++i) {
    std::string temp;
    int fd = -1;
    try {
      fd = create_temp(targets[i], temp, flag);
    } catch (...) {
      discard();
      throw;
    }
    {
      // Moved from the one-file record to the group's.
      const BlockStopSignals block;
      std::memcpy(pending_group[pending_group_count], pending_temp, temp.size() + 1);
      pending_group_count = pending_group_count + 1;
      pending_armed = 0;
    }
    temps.push_back(temp);
    int err = 0;
    if (existing[i]) {
      if (::fchown(fd, existing[i]->st_uid, existing[i]->st_gid) != 0) errno = 0;
      if (::fchmod(fd, existing[i]->st_mode & 07777) != 0) err = errno;
    }
    if (!err) err = write_all(fd, files[i].second);
    if (!err && ::fsync(fd) != 0) err = errno;
    if (::close(fd) != 0 && !err) err = errno;
    if (err) {
      discard();
      throw IoError(fmt::format("{}: cannot write '{}': {} (none of the {} files written)", flag, targets[i],
                                std::strerror(err), files.size()));
    }
  }
  // All renamed with the stop signals blocked; a failed rename removes the
  // files already renamed, so that no part of the set is left.
  const BlockStopSignals block;
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (std::rename(temps[i].c_str(), targets[i].c_str()) == 0) continue;
    const int err = errno;
    for (std::size_t j = 0; j < i; ++j) ::unlink(targets[j].c_str());
    for (std::size_t j = i; j < files.size(); ++j) ::unlink(temps[j].c_str());
    pending_group_count = 0;
    throw IoError(fmt::format("{}: cannot write '{}': {} (none of the {} files left)", flag, targets[i],
                              std::strerror(err), files.size()));
  }
  pending_group_count = 0;
}

}  // namespace cesr
