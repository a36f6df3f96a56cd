#include "cesr/plot.hpp"

#include "cesr/report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <stdexcept>

namespace cesr::plot {

// ---- Scales, colours, limits, ticks ----

Scales parse_scales(std::string_view name) {
  if (name == "loglog") return {Scale::Log, Scale::Log};
  if (name == "semilogy") return {Scale::Linear, Scale::Log};
  if (name == "semilogx") return {Scale::Log, Scale::Linear};
  if (name == "linear") return {Scale::Linear, Scale::Linear};
  throw std::invalid_argument(
      fmt::format("--plot-scale: unknown scale '{}' (loglog, semilogy, semilogx or linear)", name));
}

std::string_view palette_color(int index) {
  // Okabe & Ito (2008), without the yellow, which is unreadable on white.
  static constexpr std::array<std::string_view, 7> colors = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                                             "#E69F00", "#56B4E9", "#000000"};
  if (index < 0) return "#777777";
  return colors[static_cast<std::size_t>(index) % colors.size()];
}

LegendPlace parse_legend_place(std::string_view name) {
  if (name == "outside") return LegendPlace::Outside;
  if (name == "northeast") return LegendPlace::NorthEast;
  if (name == "northwest") return LegendPlace::NorthWest;
  if (name == "southeast") return LegendPlace::SouthEast;
  if (name == "southwest") return LegendPlace::SouthWest;
  if (name == "none") return LegendPlace::None;
  throw std::invalid_argument(fmt::format(
      "--legend: unknown placement '{}' (outside, northeast, northwest, southeast, southwest or none)", name));
}

void apply_labels(Figure& fig, const Labels& labels) {
  const std::size_t columns = std::min(fig.panels.size(), static_cast<std::size_t>(std::max(fig.columns, 1)));
  const auto check = [&](const std::vector<std::string>& given, std::string_view flag) {
    if (given.size() > 1 && given.size() != columns)
      throw std::invalid_argument(fmt::format("{}: given {} times; give it once (every panel) or once per column of "
                                              "panels ({} here)",
                                              flag, given.size(), columns));
  };
  check(labels.xlabel, "--xlabel");
  check(labels.ylabel, "--ylabel");
  for (std::size_t i = 0; i < fig.panels.size(); ++i) {
    Panel& p = fig.panels[i];
    const std::size_t c = i % columns;
    if (!labels.xlabel.empty()) {
      p.xlabel = labels.xlabel[labels.xlabel.size() == 1 ? 0 : c];
      p.xlabel_tex.clear();  // the user's text, escaped
    }
    if (!labels.ylabel.empty()) {
      p.ylabel = labels.ylabel[labels.ylabel.size() == 1 ? 0 : c];
      p.ylabel_tex.clear();
    }
  }
  if (!labels.title.empty()) {
    if (fig.panels.size() == 1) fig.panels[0].title = labels.title;
    else fig.title = labels.title;
  }
  fig.legend = labels.legend;
}

bool plottable(double v, Scale scale) { return std::isfinite(v) && (scale == Scale::Linear || v > 0); }

namespace {

// Exponents of the smallest and largest normal-ish powers of ten a double holds
// (1e-323 is subnormal but nonzero).
constexpr int min_decade = -323;
constexpr int max_decade = 308;

double pow10(int k) { return std::strtod(fmt::format("1e{}", k).c_str(), nullptr); }

// log10 of a value, snapped to the integer when it is a power of ten up to
// rounding, so that floor/ceil do not step one decade too far.
double snapped_log10(double v) {
  const double l = std::log10(v);
  const double r = std::round(l);
  return std::abs(l - r) < 1e-9 ? r : l;
}

// A 1-2-5 step close to `raw`.
double nice_step(double raw) {
  const double p = pow10(static_cast<int>(std::floor(std::log10(raw))));
  const double f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

constexpr int max_labelled_ticks = 8;

}  // namespace

int decade(double power_of_ten) { return static_cast<int>(std::lround(std::log10(power_of_ten))); }

Limits axis_limits(const std::vector<double>& values, Scale scale) {
  double mn = HUGE_VAL, mx = -HUGE_VAL;
  for (double v : values)
    if (plottable(v, scale)) mn = std::min(mn, v), mx = std::max(mx, v);
  if (mn > mx) return scale == Scale::Log ? Limits{1, 10} : Limits{0, 1};
  if (scale == Scale::Log) {
    const double l0 = snapped_log10(mn), l1 = snapped_log10(mx);
    int e0 = static_cast<int>(std::floor(l0));
    int e1 = static_cast<int>(std::ceil(l1));
    if (e0 == e1) --e0, ++e1;
    e0 = std::max(e0, min_decade);
    e1 = std::min(e1, max_decade);
    const Limits decades{pow10(e0), pow10(e1)};
    // Each end goes to its power of ten when that wastes at most snap_decades
    // of the axis (or less than the padding would), otherwise it sits just
    // outside the data; with fewer than two
    // powers of ten inside, both ends go to the enclosing decades.
    constexpr double snap_decades = 0.3, pad_fraction = 0.02;
    const double pad = pad_fraction * (l1 - l0);
    const double snap = std::max(snap_decades, pad);  // padding never passes the power of ten
    const Limits mixed{l0 - e0 <= snap ? decades.lo : mn / std::pow(10.0, pad),
                       e1 - l1 <= snap ? decades.hi : mx * std::pow(10.0, pad)};
    const int inside = static_cast<int>(std::floor(snapped_log10(mixed.hi))) -
                       static_cast<int>(std::ceil(snapped_log10(mixed.lo))) + 1;
    return inside >= 2 ? mixed : decades;
  }
  if (mn == mx) {
    const double half = std::max(1.0, std::abs(mn)) * 0.5;
    mn -= half, mx += half;
  }
  const double step = nice_step((mx - mn) / 5);
  return {std::floor(mn / step) * step, std::ceil(mx / step) * step};
}

std::vector<double> major_ticks(Limits lim, Scale scale) {
  std::vector<double> ticks;
  if (scale == Scale::Log) {
    if (!(lim.lo > 0) || !(lim.hi > lim.lo)) return ticks;
    const int e0 = static_cast<int>(std::ceil(snapped_log10(lim.lo)));
    const int e1 = static_cast<int>(std::floor(snapped_log10(lim.hi)));
    const int stride = std::max(1, (e1 - e0 + max_labelled_ticks) / max_labelled_ticks);
    for (int k = e0; k <= e1; ++k)
      if (((k % stride) + stride) % stride == 0) ticks.push_back(pow10(k));
    return ticks;
  }
  if (!(lim.hi > lim.lo)) return ticks;
  const double step = nice_step((lim.hi - lim.lo) / 5);
  const double tol = step * 1e-9;
  for (double k = std::ceil((lim.lo - tol) / step); k * step <= lim.hi + tol; ++k) {
    const double v = k * step;
    ticks.push_back(std::abs(v) < tol ? 0.0 : v);
  }
  return ticks;
}

std::vector<double> minor_ticks(Limits lim, Scale scale) {
  std::vector<double> ticks;
  if (scale != Scale::Log) return ticks;
  const auto majors = major_ticks(lim, scale);
  if (majors.size() < 2 || decade(majors[1]) - decade(majors[0]) != 1 || majors.size() > 7) return ticks;
  const int e0 = static_cast<int>(std::floor(snapped_log10(lim.lo)));
  const int e1 = static_cast<int>(std::ceil(snapped_log10(lim.hi)));
  for (int k = e0; k < e1; ++k)
    for (int m = 2; m <= 9; ++m) {
      const double v = m * pow10(k);
      if (v > lim.lo && v < lim.hi) ticks.push_back(v);
    }
  return ticks;
}

double AxisMap::operator()(double v) const {
  const auto f = [this](double u) { return scale == Scale::Log ? std::log10(u) : u; };
  return from + (f(v) - f(limits.lo)) / (f(limits.hi) - f(limits.lo)) * (to - from);
}

namespace {

// ---- Geometry shared by both renderers ----

// Nominal plot area of one panel in SVG pixels; the pgfplots axis has the same
// aspect ratio and the same points.
constexpr double plot_w = 440, plot_h = 300;
constexpr double margin_left = 82, margin_right = 24, margin_top = 38, margin_bottom = 58;
constexpr double panel_w = margin_left + plot_w + margin_right;
constexpr double panel_h = margin_top + plot_h + margin_bottom;
constexpr double font_px = 14, tick_font_px = 13, legend_font_px = 13;
// Thinning tolerance in pixels.
constexpr double min_move = 0.5;

struct Frame {
  AxisMap x, y;  // data -> pixels inside the panel's plot area (y downwards)
  Limits xlim() const { return x.limits; }
  Limits ylim() const { return y.limits; }
};

Frame make_frame(const Panel& p, double left, double top) {
  std::vector<double> xs, ys;
  for (const Series& s : p.series) {
    xs.insert(xs.end(), s.x.begin(), s.x.end());
    ys.insert(ys.end(), s.y.begin(), s.y.end());
    ys.insert(ys.end(), s.upper.begin(), s.upper.end());
    // A band's lower edge may be <= 0 on a log axis; plottable() drops it.
    ys.insert(ys.end(), s.lower.begin(), s.lower.end());
  }
  for (const VerticalLine& v : p.vlines) xs.push_back(v.x);
  const Limits xl = axis_limits(xs, p.xscale), yl = axis_limits(ys, p.yscale);
  return {AxisMap{xl, p.xscale, left, left + plot_w}, AxisMap{yl, p.yscale, top + plot_h, top}};
}

using Point = std::array<double, 2>;
using Segment = std::vector<Point>;  // data coordinates, every point plottable

bool inside(double v, Limits l) {
  const double tol = 1e-12 * (std::abs(l.lo) + std::abs(l.hi));
  return v >= l.lo - tol && v <= l.hi + tol;
}

// Indices of the points to draw, in two passes that leave the drawing
// unchanged to within min_move pixels:
//  1. in each run of consecutive points that fall in the same column of width
//     min_move, keep the first, the last, and those with the smallest and the
//     largest value of every other coordinate (the "M4" decimation: a curve
//     that oscillates inside one column keeps its envelope);
//  2. of those, keep the first, the last, and every point that moved at least
//     min_move in some coordinate from the last kept one.
template <std::size_t N>
std::vector<std::size_t> thin(const std::vector<std::array<double, N>>& px) {
  std::vector<std::size_t> envelope;
  for (std::size_t begin = 0; begin < px.size();) {
    const double column = std::floor(px[begin][0] / min_move);
    std::size_t end = begin + 1;
    while (end < px.size() && std::floor(px[end][0] / min_move) == column) ++end;
    std::vector<std::size_t> run{begin, end - 1};
    for (std::size_t c = 1; c < N; ++c) {
      std::size_t lo = begin, hi = begin;
      for (std::size_t i = begin; i < end; ++i) {
        if (px[i][c] < px[lo][c]) lo = i;
        if (px[i][c] > px[hi][c]) hi = i;
      }
      run.push_back(lo);
      run.push_back(hi);
    }
    std::sort(run.begin(), run.end());
    run.erase(std::unique(run.begin(), run.end()), run.end());
    envelope.insert(envelope.end(), run.begin(), run.end());
    begin = end;
  }
  std::vector<std::size_t> keep;
  for (std::size_t n = 0; n < envelope.size(); ++n) {
    const std::size_t i = envelope[n];
    bool moved = keep.empty() || n + 1 == envelope.size();
    for (std::size_t c = 0; c < N && !moved; ++c) moved = std::abs(px[i][c] - px[keep.back()][c]) >= min_move;
    if (moved) keep.push_back(i);
  }
  return keep;
}

// A series' line as plottable runs of points, thinned in pixel space.
std::vector<Segment> line_segments(const Series& s, const Frame& f) {
  std::vector<Segment> out;
  const std::size_t n = std::min(s.x.size(), s.y.size());
  Segment run;
  const auto flush = [&] {
    if (run.empty()) return;
    std::vector<Point> px(run.size());
    for (std::size_t i = 0; i < run.size(); ++i) px[i] = {f.x(run[i][0]), f.y(run[i][1])};
    Segment kept;
    for (std::size_t i : thin(px)) kept.push_back(run[i]);
    out.push_back(std::move(kept));
    run.clear();
  };
  for (std::size_t i = 0; i < n; ++i) {
    if (plottable(s.x[i], f.x.scale) && plottable(s.y[i], f.y.scale)) run.push_back({s.x[i], s.y[i]});
    else flush();
  }
  flush();
  return out;
}

// A band as runs of (x, lower, upper); a lower edge <= 0 on a log axis is put
// at the bottom of the axis.
using BandPoint = std::array<double, 3>;
std::vector<std::vector<BandPoint>> band_segments(const Series& s, const Frame& f) {
  std::vector<std::vector<BandPoint>> out;
  const std::size_t n = std::min({s.x.size(), s.lower.size(), s.upper.size()});
  std::vector<BandPoint> run;
  const auto flush = [&] {
    if (run.size() >= 2) {
      std::vector<BandPoint> px(run.size());
      for (std::size_t i = 0; i < run.size(); ++i) px[i] = {f.x(run[i][0]), f.y(run[i][1]), f.y(run[i][2])};
      std::vector<BandPoint> kept;
      for (std::size_t i : thin(px)) kept.push_back(run[i]);
      out.push_back(std::move(kept));
    }
    run.clear();
  };
  for (std::size_t i = 0; i < n; ++i) {
    double lo = s.lower[i];
    const double hi = s.upper[i];
    if (f.y.scale == Scale::Log && std::isfinite(lo) && lo <= 0) lo = f.ylim().lo;
    if (plottable(s.x[i], f.x.scale) && plottable(lo, f.y.scale) && plottable(hi, f.y.scale))
      run.push_back({s.x[i], lo, hi});
    else flush();
  }
  flush();
  return out;
}

// The part of a power law inside the panel, as runs of points.
std::vector<Segment> power_law_segments(const PowerLaw& r, const Frame& f) {
  std::vector<Segment> out;
  const auto y_of = [&](double x) { return r.y0 * std::pow(x / r.x0, r.slope); };
  if (!(r.x0 > 0) || !(r.y0 > 0) || !std::isfinite(r.slope)) return out;
  const Limits xl = f.xlim(), yl = f.ylim();
  if (f.x.scale == Scale::Log && f.y.scale == Scale::Log) {
    // A straight line: clip it exactly to the box.
    double a = xl.lo, b = xl.hi;
    if (r.slope != 0) {
      const double xa = r.x0 * std::pow(yl.lo / r.y0, 1 / r.slope);
      const double xb = r.x0 * std::pow(yl.hi / r.y0, 1 / r.slope);
      a = std::max(a, std::min(xa, xb));
      b = std::min(b, std::max(xa, xb));
    } else if (!inside(r.y0, yl)) {
      return out;
    }
    if (!(a < b)) return out;
    out.push_back({{a, y_of(a)}, {b, y_of(b)}});
    return out;
  }
  // Otherwise sample it and keep the samples inside the box.
  constexpr int samples = 200;
  Segment run;
  for (int i = 0; i <= samples; ++i) {
    const double t = static_cast<double>(i) / samples;
    const double x = f.x.scale == Scale::Log ? xl.lo * std::pow(xl.hi / xl.lo, t) : xl.lo + t * (xl.hi - xl.lo);
    const double y = y_of(x);
    if (x > 0 && plottable(y, f.y.scale) && inside(y, yl)) {
      run.push_back({x, y});
    } else if (!run.empty()) {
      out.push_back(std::move(run));
      run.clear();
    }
  }
  if (run.size() >= 2) out.push_back(std::move(run));
  return out;
}

// ---- Legend ----

struct LegendEntry {
  std::string name;
  int color = 0;
  Stroke stroke = Stroke::Solid;
  bool markers = false;
  bool band = false;
  bool ring = false;
  bool line = true;
  bool operator==(const LegendEntry&) const = default;
};

std::vector<LegendEntry> legend_entries(const Figure& fig) {
  std::vector<LegendEntry> out;
  const auto add = [&](LegendEntry e) {
    if (!e.name.empty() && std::find(out.begin(), out.end(), e) == out.end()) out.push_back(std::move(e));
  };
  for (const Panel& p : fig.panels) {
    for (const Series& s : p.series) add({s.name, s.color, s.stroke, s.markers, !s.upper.empty(), s.ring, s.line});
    for (const PowerLaw& r : p.references) add({r.name, gray, Stroke::Dashed, false, false, false, true});
    for (const VerticalLine& v : p.vlines) add({v.name, v.color, Stroke::DashDot, false, false, false, true});
  }
  return out;
}

void check_panels(const Figure& fig) {
  if (fig.panels.empty()) throw std::invalid_argument("plot: a figure needs at least one panel");
  if (fig.columns < 1) throw std::invalid_argument(fmt::format("plot: columns must be >= 1, got {}", fig.columns));
}

// Panels per row and number of rows.
std::size_t grid_columns(const Figure& fig) {
  return std::min(fig.panels.size(), static_cast<std::size_t>(fig.columns));
}
std::size_t grid_rows(const Figure& fig) {
  return (fig.panels.size() + grid_columns(fig) - 1) / grid_columns(fig);
}

// ---- SVG ----

std::string xml_escape(std::string_view s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += ch;
    }
  }
  return out;
}

std::string_view svg_dash(Stroke s) {
  switch (s) {
    case Stroke::Solid: return "";
    case Stroke::Dashed: return R"( stroke-dasharray="7 4")";
    case Stroke::Dotted: return R"( stroke-dasharray="2 3")";
    case Stroke::DashDot: return R"( stroke-dasharray="8 3 2 3")";
  }
  return "";
}

// "10^k" as SVG text with a raised exponent (U+2212 for the minus sign).
std::string svg_power_label(int k) {
  const std::string exponent = k < 0 ? "\u2212" + std::to_string(-k) : std::to_string(k);
  return fmt::format(R"(10<tspan dy="-0.45em" font-size="{:g}">{}</tspan>)", tick_font_px * 0.8, exponent);
}

std::string linear_label(double v) { return fmt::format("{:g}", v); }

// Polyline points "x,y x,y ...".
template <class Points, class Map>
std::string svg_points(const Points& pts, Map&& map) {
  std::string out;
  for (const auto& p : pts) {
    const auto [px, py] = map(p);
    out += fmt::format("{}{:.2f},{:.2f}", out.empty() ? "" : " ", px, py);
  }
  return out;
}

void svg_panel(std::string& out, const Panel& p, int index, double left0, double top0) {
  const double left = left0 + margin_left, top = top0 + margin_top;
  const Frame f = make_frame(p, left, top);
  const double right = left + plot_w, bottom = top + plot_h;

  out += fmt::format(R"(<clipPath id="plot{}"><rect x="{:.2f}" y="{:.2f}" width="{:.2f}" height="{:.2f}"/></clipPath>)"
                     "\n",
                     index, left, top, plot_w, plot_h);
  // Grid at the major ticks.
  const auto xt = major_ticks(f.xlim(), p.xscale), yt = major_ticks(f.ylim(), p.yscale);
  out += R"(<g stroke="#e3e3e3" stroke-width="1">)";
  for (double v : xt) out += fmt::format(R"(<line x1="{0:.2f}" y1="{1:.2f}" x2="{0:.2f}" y2="{2:.2f}"/>)", f.x(v), top, bottom);
  for (double v : yt) out += fmt::format(R"(<line x1="{1:.2f}" y1="{0:.2f}" x2="{2:.2f}" y2="{0:.2f}"/>)", f.y(v), left, right);
  out += "</g>\n";

  out += fmt::format(R"~(<g clip-path="url(#plot{})" fill="none" stroke-linejoin="round" stroke-linecap="round">)~"
                     "\n",
                     index);
  const auto to_px = [&](const Point& q) { return Point{f.x(q[0]), f.y(q[1])}; };
  for (const Series& s : p.series) {
    for (const auto& band : band_segments(s, f)) {
      std::string pts = svg_points(band, [&](const BandPoint& q) { return Point{f.x(q[0]), f.y(q[2])}; });
      std::vector<BandPoint> back(band.rbegin(), band.rend());
      pts += ' ';
      pts += svg_points(back, [&](const BandPoint& q) { return Point{f.x(q[0]), f.y(q[1])}; });
      out += fmt::format(R"(<polygon points="{}" fill="{}" fill-opacity="0.2" stroke="none"/>)"
                         "\n",
                         pts, palette_color(s.color));
    }
  }
  for (const PowerLaw& r : p.references)
    for (const Segment& seg : power_law_segments(r, f))
      out += fmt::format(R"(<polyline points="{}" stroke="{}" stroke-width="1.5"{}/>)"
                         "\n",
                         svg_points(seg, to_px), palette_color(gray), svg_dash(Stroke::Dashed));
  for (const VerticalLine& v : p.vlines)
    if (plottable(v.x, p.xscale))
      out += fmt::format(R"(<line x1="{0:.2f}" y1="{1:.2f}" x2="{0:.2f}" y2="{2:.2f}" stroke="{3}" stroke-width="1.5"{4}/>)"
                         "\n",
                         f.x(v.x), top, bottom, palette_color(v.color), svg_dash(Stroke::DashDot));
  for (const Series& s : p.series) {
    const auto segments = line_segments(s, f);
    if (s.line)
      for (const Segment& seg : segments)
        out += fmt::format(R"(<polyline points="{}" stroke="{}" stroke-width="2"{}/>)"
                           "\n",
                           svg_points(seg, to_px), palette_color(s.color), svg_dash(s.stroke));
    if (s.markers) {
      out += fmt::format(R"(<g fill="{}" stroke="none">)", palette_color(s.color));
      for (const Segment& seg : segments)
        for (const Point& q : seg) out += fmt::format(R"(<circle cx="{:.2f}" cy="{:.2f}" r="3.2"/>)", f.x(q[0]), f.y(q[1]));
      out += "</g>\n";
    }
    if (s.ring) {
      out += fmt::format(R"(<g fill="none" stroke="{}" stroke-width="2">)", palette_color(s.color));
      for (const Segment& seg : segments)
        for (const Point& q : seg) out += fmt::format(R"(<circle cx="{:.2f}" cy="{:.2f}" r="7"/>)", f.x(q[0]), f.y(q[1]));
      out += "</g>\n";
    }
  }
  out += "</g>\n";

  // Frame, ticks and labels.
  out += fmt::format(R"(<rect x="{:.2f}" y="{:.2f}" width="{:.2f}" height="{:.2f}" fill="none" stroke="#222" stroke-width="1.2"/>)"
                     "\n",
                     left, top, plot_w, plot_h);
  out += R"(<g stroke="#222" stroke-width="1">)";
  for (double v : xt) out += fmt::format(R"(<line x1="{0:.2f}" y1="{1:.2f}" x2="{0:.2f}" y2="{2:.2f}"/>)", f.x(v), bottom, bottom - 6);
  for (double v : yt) out += fmt::format(R"(<line x1="{1:.2f}" y1="{0:.2f}" x2="{2:.2f}" y2="{0:.2f}"/>)", f.y(v), left, left + 6);
  for (double v : minor_ticks(f.xlim(), p.xscale))
    out += fmt::format(R"(<line x1="{0:.2f}" y1="{1:.2f}" x2="{0:.2f}" y2="{2:.2f}"/>)", f.x(v), bottom, bottom - 3);
  for (double v : minor_ticks(f.ylim(), p.yscale))
    out += fmt::format(R"(<line x1="{1:.2f}" y1="{0:.2f}" x2="{2:.2f}" y2="{0:.2f}"/>)", f.y(v), left, left + 3);
  out += "</g>\n";
  out += fmt::format(R"(<g font-size="{:g}" fill="#222">)", tick_font_px);
  for (double v : xt)
    out += fmt::format(R"(<text x="{:.2f}" y="{:.2f}" text-anchor="middle">{}</text>)", f.x(v), bottom + 20,
                       p.xscale == Scale::Log ? svg_power_label(decade(v)) : linear_label(v));
  for (double v : yt)
    out += fmt::format(R"(<text x="{:.2f}" y="{:.2f}" text-anchor="end" dy="0.35em">{}</text>)", left - 8, f.y(v),
                       p.yscale == Scale::Log ? svg_power_label(decade(v)) : linear_label(v));
  out += "</g>\n";
  out += fmt::format(R"(<g font-size="{:g}" fill="#111">)", font_px);
  if (!p.xlabel.empty())
    out += fmt::format(R"(<text x="{:.2f}" y="{:.2f}" text-anchor="middle">{}</text>)", (left + right) / 2,
                       bottom + 46, xml_escape(p.xlabel));
  if (!p.ylabel.empty())
    out += fmt::format(R"~(<text transform="translate({:.2f},{:.2f}) rotate(-90)" text-anchor="middle">{}</text>)~",
                       left - 60, (top + bottom) / 2, xml_escape(p.ylabel));
  if (!p.title.empty())
    out += fmt::format(R"(<text x="{:.2f}" y="{:.2f}" text-anchor="middle" font-weight="bold">{}</text>)",
                       (left + right) / 2, top - 14, xml_escape(p.title));
  out += "</g>\n";
}

// Width of text in pixels, roughly (DejaVu Sans averages ~0.6 em per glyph).
double text_width(std::string_view s, double size) {
  std::size_t glyphs = 0;
  for (char ch : s)
    if ((static_cast<unsigned char>(ch) & 0xC0) != 0x80) ++glyphs;  // count UTF-8 code points
  return 0.6 * size * static_cast<double>(glyphs);
}

constexpr double legend_swatch = 30, legend_row = 22, legend_pad = 10;

double legend_width(const std::vector<LegendEntry>& entries) {
  if (entries.empty()) return 0;
  double w = 0;
  for (const auto& e : entries) w = std::max(w, text_width(e.name, legend_font_px));
  return legend_pad * 3 + legend_swatch + 8 + w;
}

double legend_height(const std::vector<LegendEntry>& entries) {
  return legend_pad * 2 + legend_row * static_cast<double>(entries.size()) - 6;
}

// The legend box with its top left corner at (x, y).
void svg_legend(std::string& out, const std::vector<LegendEntry>& entries, double x, double y) {
  if (entries.empty()) return;
  const double h = legend_height(entries);
  out += fmt::format(R"(<g font-size="{:g}" fill="#111">)"
                     "\n",
                     legend_font_px);
  out += fmt::format(R"(<rect x="{:.2f}" y="{:.2f}" width="{:.2f}" height="{:.2f}" fill="white" stroke="#bbb"/>)"
                     "\n",
                     x, y, legend_width(entries) - legend_pad * 2, h);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const LegendEntry& e = entries[i];
    const double cy = y + legend_pad + 8 + legend_row * static_cast<double>(i);
    const double sx = x + legend_pad;
    const std::string_view color = palette_color(e.color);
    if (e.band)
      out += fmt::format(R"(<rect x="{:.2f}" y="{:.2f}" width="{:g}" height="12" fill="{}" fill-opacity="0.2"/>)",
                         sx, cy - 6, legend_swatch, color);
    if (!e.line) {
      // marks only
    } else if (e.stroke == Stroke::DashDot)  // vertical marker line: draw it upright
      out += fmt::format(R"(<line x1="{0:.2f}" y1="{1:.2f}" x2="{0:.2f}" y2="{2:.2f}" stroke="{3}" stroke-width="1.5"{4}/>)",
                         sx + legend_swatch / 2, cy - 9, cy + 9, color, R"( stroke-dasharray="5 2 2 2")");
    else
      out += fmt::format(R"(<line x1="{:.2f}" y1="{:.2f}" x2="{:.2f}" y2="{:.2f}" stroke="{}" stroke-width="{}"{}/>)", sx,
                         cy, sx + legend_swatch, cy, color, e.color == gray ? 1.5 : 2, svg_dash(e.stroke));
    if (e.markers)
      out += fmt::format(R"(<circle cx="{:.2f}" cy="{:.2f}" r="3.2" fill="{}"/>)", sx + legend_swatch / 2, cy, color);
    if (e.ring)
      out += fmt::format(R"(<circle cx="{:.2f}" cy="{:.2f}" r="7" fill="none" stroke="{}" stroke-width="2"/>)",
                         sx + legend_swatch / 2, cy, color);
    out += fmt::format(R"(<text x="{:.2f}" y="{:.2f}" dy="0.35em">{}</text>)"
                       "\n",
                       sx + legend_swatch + 8, cy, xml_escape(e.name));
  }
  out += "</g>\n";
}

// ---- pgfplots ----

std::string tex_number(double v) { return fmt::format("{:.7g}", v); }

std::string color_name(int index) { return index < 0 ? "cesrgray" : fmt::format("cesr{}", index % 7); }

std::string_view tex_dash(Stroke s) {
  switch (s) {
    case Stroke::Solid: return "solid";
    case Stroke::Dashed: return "dashed";
    case Stroke::Dotted: return "dotted";
    case Stroke::DashDot: return "dashdotted";
  }
  return "solid";
}

std::string tex_ticks(const std::vector<double>& ticks) {
  std::string out;
  for (double v : ticks) {
    if (!out.empty()) out += ',';
    out += tex_number(v);
  }
  return out;
}

template <class Points, class Get>
std::string tex_coordinates(const Points& pts, Get&& get) {
  std::string out;
  int on_line = 0;
  for (const auto& p : pts) {
    const auto [x, y] = get(p);
    out += fmt::format("({},{})", tex_number(x), tex_number(y));
    out += ++on_line % 6 == 0 ? "\n" : " ";
  }
  return out;
}

std::string tex_line_style(int color, Stroke stroke, bool markers, bool ring = false, bool line = true) {
  return fmt::format("color={}, {}, {}, {}{}", color_name(color), tex_dash(stroke), color == gray ? "semithick" : "thick",
                     ring      ? "mark=o, mark size=3.2pt, mark options={solid}"
                     : markers ? "mark=*, mark size=1.3pt, mark options={solid}"
                               : "mark=none",
                     line ? "" : ", only marks");
}

// pgfplots' legend style for a placement (empty: no legend on this axis).
std::string tex_legend_style(LegendPlace place) {
  const auto inside = [](const char* at, const char* anchor) {
    return fmt::format("legend style={{at={{{}}}, anchor={}, font=\\small, cells={{anchor=west}}, "
                       "fill=white, fill opacity=0.9, text opacity=1}}",
                       at, anchor);
  };
  switch (place) {
    case LegendPlace::Outside:
      return "legend style={at={(1.04,1)}, anchor=north west, font=\\small, cells={anchor=west}}";
    case LegendPlace::NorthEast: return inside("(0.97,0.97)", "north east");
    case LegendPlace::NorthWest: return inside("(0.03,0.97)", "north west");
    case LegendPlace::SouthEast: return inside("(0.97,0.03)", "south east");
    case LegendPlace::SouthWest: return inside("(0.03,0.03)", "south west");
    case LegendPlace::None: return "";
  }
  return "";
}

// An axis; the legend goes on it when `legend_style` is not empty.
void tex_axis(std::string& out, const Panel& p, int index, const std::string& placement,
              const std::string& legend_style, const std::vector<LegendEntry>& legend) {
  const bool last = !legend_style.empty();
  const Frame f = make_frame(p, 0, 0);
  std::vector<std::string> opt;
  opt.push_back(fmt::format("name=panel{}", index));
  if (!placement.empty()) opt.push_back(placement);
  opt.push_back("width=7cm, height=4.77cm, scale only axis");
  opt.push_back(fmt::format("xmode={}, ymode={}", p.xscale == Scale::Log ? "log" : "normal",
                            p.yscale == Scale::Log ? "log" : "normal"));
  opt.push_back(fmt::format("xmin={}, xmax={}, ymin={}, ymax={}", tex_number(f.xlim().lo), tex_number(f.xlim().hi),
                            tex_number(f.ylim().lo), tex_number(f.ylim().hi)));
  opt.push_back(fmt::format("xtick={{{}}}, ytick={{{}}}", tex_ticks(major_ticks(f.xlim(), p.xscale)),
                            tex_ticks(major_ticks(f.ylim(), p.yscale))));
  const auto xm = minor_ticks(f.xlim(), p.xscale), ym = minor_ticks(f.ylim(), p.yscale);
  opt.push_back(fmt::format("minor xtick={{{}}}, minor ytick={{{}}}", tex_ticks(xm), tex_ticks(ym)));
  opt.push_back("scaled ticks=false, /pgf/number format/1000 sep={}, grid=major, major grid style={black!12}");
  opt.push_back("tick align=inside, clip=true");
  const std::string xlabel = p.xlabel_tex.empty() ? latex_escape(p.xlabel) : p.xlabel_tex;
  const std::string ylabel = p.ylabel_tex.empty() ? latex_escape(p.ylabel) : p.ylabel_tex;
  if (!xlabel.empty()) opt.push_back(fmt::format("xlabel={{{}}}", xlabel));
  if (!ylabel.empty()) opt.push_back(fmt::format("ylabel={{{}}}", ylabel));
  if (!p.title.empty()) opt.push_back(fmt::format("title={{{}}}", latex_escape(p.title)));
  if (last && !legend.empty()) opt.push_back(legend_style);
  out += "\\begin{axis}[\n";
  for (std::size_t i = 0; i < opt.size(); ++i) out += "  " + opt[i] + (i + 1 < opt.size() ? ",\n" : "\n");
  out += "]\n";

  for (const Series& s : p.series)
    for (const auto& band : band_segments(s, f)) {
      std::vector<BandPoint> back(band.rbegin(), band.rend());
      out += fmt::format("\\addplot[forget plot, draw=none, fill={}, fill opacity=0.2] coordinates {{\n", color_name(s.color));
      out += tex_coordinates(band, [](const BandPoint& q) { return Point{q[0], q[2]}; });
      out += tex_coordinates(back, [](const BandPoint& q) { return Point{q[0], q[1]}; });
      out += "} -- cycle;\n";
    }
  const auto xy = [](const Point& q) { return q; };
  for (const PowerLaw& r : p.references)
    for (const Segment& seg : power_law_segments(r, f))
      out += fmt::format("\\addplot[forget plot, {}] coordinates {{\n{}}};\n", tex_line_style(gray, Stroke::Dashed, false),
                         tex_coordinates(seg, xy));
  for (const VerticalLine& v : p.vlines)
    if (plottable(v.x, p.xscale))
      out += fmt::format("\\addplot[forget plot, {}] coordinates {{({},{}) ({},{})}};\n",
                         tex_line_style(v.color, Stroke::DashDot, false), tex_number(v.x), tex_number(f.ylim().lo),
                         tex_number(v.x), tex_number(f.ylim().hi));
  for (const Series& s : p.series) {
    if (!s.name.empty()) out += "% " + s.name + "\n";
    for (const Segment& seg : line_segments(s, f))
      out += fmt::format("\\addplot[forget plot, {}] coordinates {{\n{}}};\n",
                         tex_line_style(s.color, s.stroke, s.markers, s.ring, s.line), tex_coordinates(seg, xy));
  }
  if (last)
    for (const LegendEntry& e : legend) {
      if (e.band)
        out += fmt::format("\\addlegendimage{{area legend, draw={0}, thick, fill={0}, fill opacity=0.2}}\n",
                           color_name(e.color));
      else
        out += fmt::format("\\addlegendimage{{{}}}\n", tex_line_style(e.color, e.stroke, e.markers, e.ring, e.line));
      out += fmt::format("\\addlegendentry{{{}}}\n", latex_escape(e.name));
    }
  out += "\\end{axis}\n";
}

}  // namespace

std::string to_svg(const Figure& fig) {
  check_panels(fig);
  const auto legend = legend_entries(fig);
  const std::size_t columns = grid_columns(fig), rows = grid_rows(fig);
  const bool outside = fig.legend == LegendPlace::Outside;
  const double title_h = fig.title.empty() ? 0 : 34;
  const double width = panel_w * static_cast<double>(columns) + (outside ? legend_width(legend) : 0);
  const double height = title_h + panel_h * static_cast<double>(rows);
  std::string out;
  out += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += fmt::format(
      R"(<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{0:.0f}" height="{1:.0f}" viewBox="0 0 {0:.0f} {1:.0f}" )"
      R"(font-family="DejaVu Sans, Helvetica, Arial, sans-serif">)"
      "\n",
      std::ceil(width), height);
  out += "<desc>Figure made by cesr</desc>\n";
  out += R"(<rect width="100%" height="100%" fill="white"/>)"
         "\n";
  if (!fig.title.empty())
    out += fmt::format(R"(<text x="{:.2f}" y="24" text-anchor="middle" font-size="{:g}" font-weight="bold" fill="#111">{}</text>)"
                       "\n",
                       panel_w * static_cast<double>(columns) / 2, font_px + 2, xml_escape(fig.title));
  for (std::size_t i = 0; i < fig.panels.size(); ++i)
    svg_panel(out, fig.panels[i], static_cast<int>(i), panel_w * static_cast<double>(i % columns),
              title_h + panel_h * static_cast<double>(i / columns));
  if (!legend.empty() && fig.legend != LegendPlace::None) {
    // Outside: right of the first row; inside: a corner of the first panel's plot area.
    const double w = legend_width(legend) - legend_pad * 2, h = legend_height(legend), inset = 8;
    const double left = margin_left, top = title_h + margin_top, right = left + plot_w, bottom = top + plot_h;
    double x = panel_w * static_cast<double>(columns) - margin_right + legend_pad, y = top;
    if (fig.legend == LegendPlace::NorthEast || fig.legend == LegendPlace::SouthEast) x = right - inset - w;
    if (fig.legend == LegendPlace::NorthWest || fig.legend == LegendPlace::SouthWest) x = left + inset;
    if (fig.legend == LegendPlace::NorthEast || fig.legend == LegendPlace::NorthWest) y = top + inset;
    if (fig.legend == LegendPlace::SouthEast || fig.legend == LegendPlace::SouthWest) y = bottom - inset - h;
    svg_legend(out, legend, x, y);
  }
  out += "</svg>\n";
  return out;
}

std::string to_pgfplots(const Figure& fig) {
  check_panels(fig);
  const auto legend = legend_entries(fig);
  std::string out;
  out += "% Figure made by cesr. Needs \\usepackage{pgfplots} (compat 1.11 or newer).\n";
  out += "\\begin{tikzpicture}\n";
  for (int i = 0; i < 7; ++i) out += fmt::format("\\definecolor{{cesr{}}}{{HTML}}{{{}}}\n", i, palette_color(i).substr(1));
  out += fmt::format("\\definecolor{{cesrgray}}{{HTML}}{{{}}}\n", palette_color(gray).substr(1));
  const std::size_t columns = grid_columns(fig);
  for (std::size_t i = 0; i < fig.panels.size(); ++i) {
    // The legend goes with the last panel of the first row (outside) or inside the first.
    const bool legend_here = fig.legend == LegendPlace::Outside ? i + 1 == columns : i == 0;
    std::string placement;
    if (i % columns != 0)
      placement = fmt::format("at={{(panel{}.outer east)}}, anchor=outer west, xshift=0.4cm", i - 1);
    else if (i > 0)
      placement = fmt::format("at={{(panel{}.outer south west)}}, anchor=outer north west, yshift=-0.2cm", i - columns);
    tex_axis(out, fig.panels[i], static_cast<int>(i), placement, legend_here ? tex_legend_style(fig.legend) : "",
             legend);
  }
  if (!fig.title.empty())
    out += fmt::format("\\node[anchor=south, font=\\bfseries] at (current bounding box.north) {{{}}};\n",
                       latex_escape(fig.title));
  out += "\\end{tikzpicture}\n";
  return out;
}

void check_plot_path(std::string_view path) {
  const auto ends_with = [&](std::string_view suffix) {
    return path.size() > suffix.size() && path.substr(path.size() - suffix.size()) == suffix;
  };
  if (!ends_with(".svg") && !ends_with(".tex"))
    throw std::invalid_argument(
        fmt::format("--plot: '{}' must end in .svg (SVG image) or .tex (pgfplots figure)", path));
}

std::string render_for_file(const Figure& figure, std::string_view path) {
  check_plot_path(path);
  return path.substr(path.size() - 4) == ".svg" ? to_svg(figure) : to_pgfplots(figure);
}

namespace {
// A method's curve as a series: its legend entry, colour and dash, a dot at
// each point, and the given coordinates.
Series curve_series(const FrontierCurve& c, std::vector<double> x, std::vector<double> y) {
  Series s;
  s.name = c.name;
  s.color = c.color;
  s.stroke = c.stroke;
  s.markers = true;
  s.x = std::move(x);
  s.y = std::move(y);
  return s;
}
}  // namespace

std::vector<Panel> frontier_panels(const std::vector<FrontierCurve>& curves, const std::string& title,
                                   const std::string& serial_label, const std::string& ce_label) {
  const auto titled = [&](const std::string& what) { return title.empty() ? what : title + ": " + what; };
  Panel serial, ce;
  serial.title = titled("serial runtime");
  ce.title = titled("compute efficiency");
  serial.xlabel = ce.xlabel = "batch size B";
  serial.ylabel = serial_label;
  ce.ylabel = ce_label;
  for (const FrontierCurve& c : curves) {
    serial.series.push_back(curve_series(c, c.batch, c.serial));
    ce.series.push_back(curve_series(c, c.batch, c.ce));
    if (c.critical_batch) {
      const VerticalLine v{*c.critical_batch, "critical batch, " + c.name, c.color};
      serial.vlines.push_back(v);
      ce.vlines.push_back(v);
    }
  }
  // Perfect scaling: steps proportional to 1/B, through the first drawable point.
  for (const FrontierCurve& c : curves) {
    std::size_t i = 0;
    while (i < std::min(c.batch.size(), c.serial.size()) &&
           !(plottable(c.batch[i], Scale::Log) && plottable(c.serial[i], Scale::Log)))
      ++i;
    if (i < std::min(c.batch.size(), c.serial.size())) {
      serial.references.push_back({c.batch[i], c.serial[i], -1, "perfect scaling (slope \u22121)"});
      break;
    }
  }
  return {std::move(serial), std::move(ce)};
}

Panel final_loss_panel(const std::vector<FrontierCurve>& curves, const std::string& title) {
  Panel p;
  p.title = title.empty() ? "loss at a sample budget" : title;
  p.xlabel = "batch size B";
  p.ylabel = "tuned loss L_T after T = N/B steps";
  p.ylabel_tex = "tuned loss $L_T$ after $T = N/B$ steps";
  for (const FrontierCurve& c : curves) {
    p.series.push_back(curve_series(c, c.batch, c.loss));
    if (c.critical_batch) p.vlines.push_back({*c.critical_batch, "critical batch, " + c.name, c.color});
  }
  return p;
}

std::optional<std::array<double, 2>> tradeoff_point(const FrontierCurve& c, double batch) {
  const std::size_t n = std::min(c.batch.size(), c.steps.size());
  std::optional<std::size_t> prev;
  for (std::size_t i = 0; i < n; ++i) {
    if (!(plottable(c.batch[i], Scale::Log) && plottable(c.steps[i], Scale::Log))) {
      prev.reset();  // the curve is broken here
      continue;
    }
    if (c.batch[i] == batch) return std::array<double, 2>{batch * c.steps[i], c.steps[i]};
    if (prev && c.batch[*prev] < batch && batch < c.batch[i]) {
      const double x0 = std::log(c.batch[*prev]), x1 = std::log(c.batch[i]);
      const double t = (std::log(batch) - x0) / (x1 - x0);
      const double steps = std::exp(std::log(c.steps[*prev]) + t * (std::log(c.steps[i]) - std::log(c.steps[*prev])));
      return std::array<double, 2>{batch * steps, steps};
    }
    prev = i;
  }
  return std::nullopt;
}

Panel tradeoff_panel(const std::vector<FrontierCurve>& curves, const std::string& title) {
  Panel p;
  p.title = title.empty() ? "steps against samples" : title;
  p.xlabel = "samples processed (B \u00b7 steps)";
  p.ylabel = "serial runtime (steps)";
  p.xlabel_tex = "samples processed ($B \\cdot$ steps)";
  for (const FrontierCurve& c : curves) {
    std::vector<double> samples, steps;
    for (std::size_t i = 0; i < std::min(c.batch.size(), c.steps.size()); ++i) {
      samples.push_back(c.batch[i] * c.steps[i]);
      steps.push_back(c.steps[i]);
    }
    p.series.push_back(curve_series(c, std::move(samples), std::move(steps)));
  }
  for (const FrontierCurve& c : curves)
    if (c.critical_batch)
      if (const auto q = tradeoff_point(c, *c.critical_batch)) {
        Series mark;
        mark.name = "critical batch, " + c.name;
        mark.color = c.color;
        mark.ring = true;
        mark.line = false;
        mark.x = {(*q)[0]};
        mark.y = {(*q)[1]};
        p.series.push_back(std::move(mark));
      }
  return p;
}

Figure simulation_figure(const std::vector<double>& step, const std::vector<double>& exact,
                         const std::vector<double>& mean, const std::vector<double>& std_error,
                         const std::string& title, Scales scales) {
  Panel p;
  p.title = title;
  p.xscale = scales.x;
  p.yscale = scales.y;
  p.xlabel = "step t";
  p.ylabel = "loss";
  p.xlabel_tex = "step $t$";
  p.ylabel_tex = "loss";
  Series sim;
  sim.name = "simulated mean \u00b1 2 standard errors";
  sim.color = 1;
  sim.x = step;
  sim.y = mean;
  for (std::size_t i = 0; i < std::min(mean.size(), std_error.size()); ++i) {
    sim.lower.push_back(mean[i] - 2 * std_error[i]);
    sim.upper.push_back(mean[i] + 2 * std_error[i]);
  }
  Series ex;
  ex.name = "exact expected loss";
  ex.color = 6;
  ex.stroke = Stroke::Dashed;
  ex.x = step;
  ex.y = exact;
  p.series.push_back(std::move(sim));
  p.series.push_back(std::move(ex));
  Figure fig;
  fig.panels.push_back(std::move(p));
  fig.columns = 1;
  return fig;
}

}  // namespace cesr::plot
