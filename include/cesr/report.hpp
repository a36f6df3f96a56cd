// Tables and output files: one table model rendered as CSV, JSON, an aligned
// text table, Markdown or a LaTeX booktabs table; files written atomically.
#pragma once

#include <string>
#include <string_view>
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
  /// Significant digits for numbers in Markdown and LaTeX (0: as formatted).
  int digits = 0;
  /// LaTeX caption (empty: none).
  std::string caption;
};

/// CSV: header line then rows. JSON: an array of objects (one per row).
/// Text: aligned columns. Markdown: a pipe table. LaTeX: booktabs tabular.
std::string render(const Table& table, Format format, const RenderOptions& options = {});

/// Rounds a number given as text to `digits` significant digits in scientific
/// notation ("1.23e-04"); text that is not a number is returned unchanged.
std::string round_number_text(const std::string& text, int digits);

/// JSON string literal with escapes.
std::string json_quote(std::string_view s);

/// Writes `content` to stdout when `path` is empty or "-", otherwise to `path`
/// atomically (a temporary file in the same folder, then rename), so a failed
/// run never leaves a partial file. Throws std::runtime_error on I/O failure.
void write_output(const std::string& path, const std::string& content);

}  // namespace cesr
