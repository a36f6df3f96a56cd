// Tables and output files: one table model rendered as CSV, JSON, an aligned
// text table, Markdown or a LaTeX booktabs table; files written atomically.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cesr {

/// A table cell: numbers keep the exact text they were formatted with (so a
/// 50-digit value survives into JSON), strings are quoted in JSON, null is empty.
struct Cell {
  enum class Kind { Number, String, Null };
  std::string text;
  Kind kind = Kind::Number;

  static Cell number(std::string text) { return {std::move(text), Kind::Number}; }
  static Cell string(std::string text) { return {std::move(text), Kind::String}; }
  static Cell null() { return {"", Kind::Null}; }
};

struct Table {
  std::vector<std::string> columns;
  std::vector<std::vector<Cell>> rows;
};

enum class Format { Csv, Json, Text, Markdown, Latex };

/// Parses csv|json|table|markdown|latex; throws std::invalid_argument otherwise.
Format parse_format(std::string_view name);
std::string_view to_string(Format f);

struct RenderOptions {
  /// Significant digits for non-integer numbers in Text, Markdown and LaTeX
  /// (scientific notation); 0 keeps them as formatted. CSV and JSON always keep
  /// the full text.
  int digits = 0;
  /// LaTeX caption (empty: none).
  std::string caption;
};

/// CSV: header line then rows (RFC 4180 quoting). JSON: an array of objects,
/// one per row (non-finite numbers become null). Text: aligned columns with the
/// raw column names. Markdown: a pipe table (numbers right-aligned, text
/// left-aligned). LaTeX: a booktabs table (\toprule, \midrule, \bottomrule)
/// inside a table float, numbers as $m\times10^{e}$. Markdown and LaTeX use the
/// paper names of known columns and methods (paper_column_name,
/// paper_method_name).
std::string render(const Table& table, Format format, const RenderOptions& options = {});

/// The name a paper gives a column, for Markdown (Unicode) or LaTeX (math):
/// batch -> B / $B$, lr -> η / $\eta$, momentum -> β / $\beta$, ce -> CE, gap -> gap 1−ρ,
/// step -> t, loss -> L_t, critical_batch -> B_crit, ... Other names come back
/// unchanged (escaped for LaTeX).
std::string paper_column_name(std::string_view column, Format format);

/// Method names as papers write them: sgd -> SGD, hb -> HB, nag -> NAG,
/// asgd -> AccSGD; anything else unchanged. Applied to string cells of a
/// column named "method" in Markdown and LaTeX.
std::string paper_method_name(std::string_view method);

/// Escapes LaTeX's special characters (\ { } _ % & # $ ~ ^) in text, and
/// writes the Unicode symbols cesr's labels use (± − · × ≈ √ and the Greek
/// letters α β η κ λ ξ ρ σ) as math, so the result compiles with pdfLaTeX.
std::string latex_escape(std::string_view s);

/// Escapes '|' and '\' for a Markdown table cell.
std::string markdown_escape(std::string_view s);

/// Rounds a number given as text to `digits` significant digits in scientific
/// notation ("1.23e-04"); integers (no '.', 'e' or 'E', e.g. step counts and
/// batch sizes), non-finite values and text that is not a number are returned
/// unchanged.
std::string round_number_text(const std::string& text, int digits);

/// JSON string literal with escapes.
std::string json_quote(std::string_view s);

/// Writes `content` to stdout when `path` is empty or "-", otherwise to `path`.
/// A regular file (or a new path) is replaced atomically: a hidden temporary
/// file .NAME.XXXXXX in the same folder, written in full and synced, then
/// renamed over it, so a failed run never leaves a partial file. Symlinks are
/// followed and the file at their end is replaced (the links stay links); an
/// existing file keeps its permission bits, a new one gets 0644 less the umask.
/// Character devices (/dev/null, /dev/full, a terminal) and FIFOs are written
/// in place, never replaced. SIGINT and SIGTERM during the write remove the
/// temporary file before ending the process. Messages start with `flag` (the
/// option that named the path). Throws cesr::IoError (cesr/io.hpp) when the
/// write fails (disk full, a file-size limit, standard output closed), and
/// std::invalid_argument for a path that cannot be written (a folder, a block
/// device or socket, a missing or unwritable folder, a symlink loop).
void write_output(const std::string& path, const std::string& content, std::string_view flag = "--output");

/// Writes several regular files as one: each (path, content) to a hidden
/// temporary file beside it, written in full and synced, then all renamed
/// over their paths, so that either every file has its new content or (a
/// write or rename failed, a stop signal arrived) none of them is left: the
/// temporaries are removed, and files renamed already are removed too. Paths
/// must be regular files or new (links followed, as write_output); anything
/// else is refused before a byte is written. At most 8 files. Errors as
/// write_output, starting with `flag`.
void write_files_together(const std::vector<std::pair<std::string, std::string>>& files,
                          std::string_view flag = "--output");

}  // namespace cesr
