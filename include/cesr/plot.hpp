// Figures: panels of line plots on log or linear axes, written as a
// self-contained SVG or as a pgfplots picture (LaTeX tikzpicture/axis) with
// the data inline. Both renderings draw the same points, limits and ticks.
//
// The renderer never writes NaN: a point whose coordinate is not finite, or is
// <= 0 on a log axis, is skipped and the line is broken there. Points closer
// than half a pixel (of the nominal 440 x 300 plot area) to the previously
// drawn point of the same series are not written; this only thins what is
// drawn, the tables keep every value.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cesr::plot {

enum class Scale { Linear, Log };

/// Scales of the two axes of a panel.
struct Scales {
  Scale x = Scale::Log;
  Scale y = Scale::Log;
};

/// Parses loglog | semilogy (linear x, log y) | semilogx (log x, linear y) |
/// linear; throws std::invalid_argument naming --plot-scale otherwise.
Scales parse_scales(std::string_view name);

enum class Stroke { Solid, Dashed, Dotted, DashDot };

/// Palette index of the gray used for reference lines.
inline constexpr int gray = -1;

/// Colour of palette entry `index` as "#RRGGBB": a colour-blind-safe palette
/// (Okabe and Ito), repeating after 7 entries; `gray` gives a mid gray.
std::string_view palette_color(int index);

/// One curve.
struct Series {
  std::string name;  ///< legend entry (empty: not in the legend)
  std::vector<double> x, y;
  int color = 0;  ///< palette index
  Stroke stroke = Stroke::Solid;
  bool markers = false;  ///< a dot at each drawn point
  /// A larger open circle at each drawn point (e.g. a critical batch on a
  /// trade-off curve); with `line` false only the marks are drawn.
  bool ring = false;
  bool line = true;  ///< false: no line through the points (marks only)
  /// Optional shaded band from lower to upper (both as long as x, or empty),
  /// e.g. a mean +- 2 standard errors. On a log axis a lower edge <= 0 is drawn
  /// at the bottom of the axis.
  std::vector<double> lower, upper;
};

/// A vertical line at x (e.g. a critical batch size), listed in the legend.
struct VerticalLine {
  double x = 0;
  std::string name;
  int color = 0;
};

/// The power law y = y0 (x / x0)^slope, drawn across the whole panel (clipped
/// to it) in dashed gray, e.g. slope -1 for perfect scaling. It does not
/// influence the axis limits.
struct PowerLaw {
  double x0 = 1, y0 = 1, slope = -1;
  std::string name;
};

struct Panel {
  std::string title, xlabel, ylabel;  ///< plain text (escaped for SVG and LaTeX)
  /// Optional LaTeX for the pgfplots axis labels (used as is), e.g. "step $t$".
  std::string xlabel_tex, ylabel_tex;
  Scale xscale = Scale::Log, yscale = Scale::Log;
  std::vector<Series> series;
  std::vector<VerticalLine> vlines;
  std::vector<PowerLaw> references;
};

/// Where the figure's one legend goes: outside (to the right of the first
/// row, the default), inside the first panel at a corner, or nowhere.
enum class LegendPlace { Outside, NorthEast, NorthWest, SouthEast, SouthWest, None };

/// Parses outside | northeast | northwest | southeast | southwest | none;
/// throws std::invalid_argument naming --legend otherwise.
LegendPlace parse_legend_place(std::string_view name);

/// Panels on a grid, `columns` per row (filled row by row), with one legend
/// (the union of the panels' named entries) placed by `legend`, and an
/// optional title above all panels.
struct Figure {
  Figure() = default;
  Figure(std::vector<Panel> panels_, int columns_ = 2) : panels(std::move(panels_)), columns(columns_) {}
  std::vector<Panel> panels;
  int columns = 2;
  std::string title;  ///< plain text above the grid (empty: none)
  LegendPlace legend = LegendPlace::Outside;
};

/// A user's labels for a figure (--title, --xlabel, --ylabel, --legend).
struct Labels {
  std::string title;  ///< one panel: its title; several: the figure's title above them
  /// Axis labels: one value for every panel, or one per grid column (in order);
  /// empty: the command's defaults.
  std::vector<std::string> xlabel, ylabel;
  LegendPlace legend = LegendPlace::Outside;
};

/// Applies `labels` to a figure. Throws std::invalid_argument naming --xlabel
/// or --ylabel when they are given neither once nor once per grid column.
void apply_labels(Figure& figure, const Labels& labels);

/// Self-contained SVG 1.1 document. Throws std::invalid_argument when the
/// figure has no panel or columns < 1.
std::string to_svg(const Figure& figure);

/// LaTeX: a tikzpicture with one axis per panel, coordinates inline. Needs
/// \usepackage{pgfplots} (compat 1.11 or newer) and nothing else.
std::string to_pgfplots(const Figure& figure);

// ---- Figures of cesr's commands, from plain data ----

/// One method's sweep over batch sizes.
struct FrontierCurve {
  std::string name;                       ///< legend entry, e.g. "HB"
  int color = 0;                          ///< palette index (keep it fixed per method)
  std::vector<double> batch;              ///< batch sizes
  std::vector<double> serial;             ///< serial runtime (steps or 1/gap); non-finite: not drawn
  std::vector<double> ce;                 ///< compute efficiency; <= 0 (unstable): not drawn
  std::optional<double> critical_batch;   ///< drawn as a vertical line when set
  /// Steps to the target (the table's steps column); non-finite: not drawn.
  std::vector<double> steps;
  Stroke stroke = Stroke::Solid;  ///< keep it fixed per method too (curves stay apart in gray)
  /// Final objective: the tuned loss L_T at each batch (same sample budget); non-finite: not drawn.
  std::vector<double> loss;
};

/// Two log-log panels: serial runtime against batch (with a slope -1 line for
/// perfect scaling through the first point of the first curve) and compute
/// efficiency against batch; the critical batch sizes as vertical lines.
/// `title` prefixes both panel titles (may be empty).
std::vector<Panel> frontier_panels(const std::vector<FrontierCurve>& curves, const std::string& title,
                                   const std::string& serial_label, const std::string& ce_label);

/// The trade-off of Shallue et al. and McCandlish et al.: steps to the target
/// against samples B * steps, log-log, one curve per method (its steps), the
/// critical batch marked with a ring where the curve passes it (steps
/// interpolated linearly in (log B, log steps) between the neighbouring rows).
Panel tradeoff_panel(const std::vector<FrontierCurve>& curves, const std::string& title);

/// The budget frontier (final objective): the tuned loss L_T after floor(N/B)
/// steps against batch size B at one sample budget N, log-log, one curve per
/// method (its `loss`), and each method's critical batch (the largest B whose
/// L_T is within 20% of its best) as a vertical line. `title` heads the panel.
Panel final_loss_panel(const std::vector<FrontierCurve>& curves, const std::string& title);

/// The point (samples, steps) of a curve at batch size `batch`, interpolated in
/// (log B, log steps) between its neighbouring drawable rows; empty outside them.
std::optional<std::array<double, 2>> tradeoff_point(const FrontierCurve& curve, double batch);

/// The exact curve, the simulated mean with a band of +-2 standard errors, on
/// the given scales (step 0 is dropped on a log step axis).
Figure simulation_figure(const std::vector<double>& step, const std::vector<double>& exact,
                         const std::vector<double>& mean, const std::vector<double>& std_error,
                         const std::string& title, Scales scales);

/// The figure for a file named by --plot: SVG for a name ending in ".svg",
/// pgfplots for ".tex". Throws std::invalid_argument naming --plot otherwise.
std::string render_for_file(const Figure& figure, std::string_view path);

/// Checks --plot's file name (".svg" or ".tex") before any work is done.
void check_plot_path(std::string_view path);

// ---- Building blocks (exposed for tests) ----

/// True when v can be drawn on an axis of this scale (finite, and > 0 on log).
bool plottable(double v, Scale scale);

struct Limits {
  double lo = 1, hi = 10;
};

/// Axis limits enclosing `values` (non-plottable ones ignored). Log axis: each
/// end is the next power of ten when that leaves at most 0.3 decades empty (or
/// no more than the padding would),
/// otherwise 2% of the data's span (in log) beyond the data; if that leaves
/// fewer than two powers of ten inside, the enclosing powers of ten (at least
/// one decade apart). Linear axis: multiples of a 1-2-5 step. With no
/// plottable value: [1, 10] or [0, 1].
Limits axis_limits(const std::vector<double>& values, Scale scale);

/// Major tick positions inside [lo, hi]: powers of ten on a log axis (every
/// decade, or every k-th decade with exponents divisible by k so that at most
/// 8 are labelled), multiples of a 1-2-5 step on a linear axis.
std::vector<double> major_ticks(Limits limits, Scale scale);

/// Minor ticks of a log axis (2..9 times each power of ten) when the majors are
/// every decade and there are at most 6 decades; none otherwise.
std::vector<double> minor_ticks(Limits limits, Scale scale);

/// The decimal exponent k of a power of ten 10^k (rounded).
int decade(double power_of_ten);

/// Maps a data value to a position: limits.lo -> from, limits.hi -> to,
/// linearly in v (linear axis) or in log10 v (log axis).
struct AxisMap {
  Limits limits;
  Scale scale = Scale::Linear;
  double from = 0, to = 1;
  double operator()(double v) const;
};

}  // namespace cesr::plot
