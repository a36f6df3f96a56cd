// cesr window: the heavy-ball window B_crit(hb)/B_crit(sgd) against sqrt(kappa)
// on log-uniform spectra, one tuned sgd + hb frontier per kappa (the table in
// docs/window.md is this command's output).
#include "common.hpp"

#include "cesr/frontier.hpp"

#include <fmt/format.h>

#include <algorithm>

#include <cmath>
#include <iostream>
#include <optional>
#include <vector>

#include <unistd.h>

namespace cesr::cli {
namespace {

struct WindowOptions {
  std::string kappas = "1e2,1e4,1e6,1e8";
  std::uint64_t d = 1000;
  double kurtosis = 3;
  unsigned threads = 0;
  std::string format, output;
  ProgressFlags progress;
};

int run_window(const WindowOptions& o) {
  const Format format = parse_format(o.format);
  std::vector<double> kappas;
  std::string_view rest = o.kappas;
  for (;;) {
    const auto comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    double k = 0;
    try {
      k = parse_finite(item, "--kappas");
    } catch (const std::invalid_argument&) {
      throw UsageError(fmt::format("--kappas '{}': '{}' is not a number", o.kappas, item));
    }
    if (!(k > 1)) throw UsageError(fmt::format("--kappas '{}': each kappa must be > 1, got {}", o.kappas, k));
    if (std::find(kappas.begin(), kappas.end(), k) != kappas.end())
      throw UsageError(fmt::format("--kappas '{}': kappa {} is given twice", o.kappas, k));
    kappas.push_back(k);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (o.d < 2) throw UsageError(fmt::format("--d must be >= 2, got {}", o.d));
  NoiseModel noise{1, o.kurtosis, 0};
  try {
    noise.validate();
  } catch (const std::invalid_argument& e) {
    usage_error("--kurtosis", e);
  }
  // SIGINT/SIGTERM stop after the rows in progress; the kappas finished are
  // written (marked incomplete) before the process ends by the signal.
  const InterruptScope interrupt;
  bool complete = true;
  // The spectra and batch lists first (cheap), so that progress counts rows.
  std::vector<Spectrum> spectra;
  std::vector<std::vector<std::uint64_t>> batch_lists;
  std::size_t all_rows = 0;
  for (const double kappa : kappas) {
    ProblemOptions po;
    po.spectrum = fmt::format("loguniform:d={},kappa={}", o.d, kappa);
    const Spectrum& s = spectra.emplace_back(po.make_spectrum());
    // Batches 1, 2, 4, ... far enough past the expected heavy-ball critical
    // batch ~ sqrt(kappa) tr(H)/lambda_max that both methods' CE halves.
    const double reach = 256 * std::sqrt(s.kappa()) * std::max(1.0, s.trace() / s.lambda_max());
    const auto top = static_cast<std::uint64_t>(std::exp2(std::ceil(std::log2(reach))));
    all_rows += 2 * batch_lists.emplace_back(parse_batches(fmt::format("1:{}:x2", top))).size();
  }
  std::optional<ProgressReporter> progress;
  progress.emplace("cesr window", "rows tuned", all_rows, o.progress.mode());
  std::size_t rows_before = 0;
  Table t{{"kappa", "sqrt_kappa", "trace_over_max", "critical_batch_sgd", "critical_batch_hb", "window_ratio",
           "window_over_sqrt_kappa"},
          {}};
  for (std::size_t i = 0; i < kappas.size(); ++i) {
    const Spectrum& s = spectra[i];
    FrontierOptions fo;
    fo.methods = {"sgd", "hb"};
    fo.batches = batch_lists[i];
    fo.threads = o.threads;
    fo.progress = [&](std::size_t done, std::size_t) { progress->set(rows_before + done, all_rows); };
    Frontier f;
    try {
      f = compute_frontier(s, noise, fo);
    } catch (const Stopped&) {
      complete = false;
      progress->mark_stopped();
      break;
    }
    rows_before += f.rows.size();
    for (const auto& r : f.rows)
      if (r.tuned.confirm_failed)
        std::cerr << fmt::format(
            "cesr window: warning: kappa {} {} at batch {}: the automatic-precision rate failed at the tuned "
            "point; its gap is the {} value\n",
            kappas[i], r.method, r.batch, to_string(r.tuned.gap_precision));
    const auto& sgd = f.summary.methods[0];
    const auto& hb = f.summary.methods[1];
    const auto cell = [](const std::optional<double>& x) {
      return x ? Cell::number(format_real(*x, 17)) : Cell::null();
    };
    std::optional<double> over;
    if (f.summary.window_ratio) over = *f.summary.window_ratio / f.summary.sqrt_kappa;
    t.rows.push_back({std::isfinite(f.summary.kappa) ? Cell::number(format_real(f.summary.kappa, 17)) : Cell::null(), Cell::number(format_real(f.summary.sqrt_kappa, 17)),
                      Cell::number(format_real(f.summary.trace_over_max, 17)), cell(sgd.critical_batch),
                      cell(hb.critical_batch), cell(f.summary.window_ratio), cell(over)});
  }
  progress.reset();
  RenderOptions ro;
  if (format != Format::Csv && format != Format::Json) ro.digits = 4;
  if (format == Format::Csv)  // a null number as nan, as in frontier's CSV (numpy reads a column of empty fields as False)
    for (auto& row : t.rows)
      for (Cell& c : row)
        if (c.kind == Cell::Kind::Null) c = Cell::number("nan");
  std::string out = render(t, format, ro);
  if (!complete) {
    const std::string note =
        fmt::format("incomplete: interrupted after {} of {} kappas", t.rows.size(), kappas.size());
    if (format == Format::Json)
      out = fmt::format("{{\"complete\": false, \"note\": {}, \"rows\": {}}}\n", json_quote(note), out);
    else if (format == Format::Csv) out += "# " + note + "\n";
    else if (format == Format::Latex) out += "% " + note + "\n";
    else out += "\n(" + note + ")\n";
    std::cerr << fmt::format("cesr window: {}; writing them\n", note);
  }
  write_output(o.output, out);
  // (a signal after the last row: the output is complete, the exit still an interrupt's)
  if (!complete || interrupt.signal() != 0) interrupt.end_as_interrupted();
  return Exit::ok;
}

const Registrar registrar{{"window", "The heavy-ball window B_crit(hb)/B_crit(sgd) against sqrt(kappa)", 55,
                           [](CLI::App& app) {
  auto o = std::make_shared<WindowOptions>();
  app.add_option("--kappas", o->kappas, "Comma-separated condition numbers of loguniform:d=D,kappa=K spectra")
      ->capture_default_str()
      ->group("Problem");
  app.add_option("--d", o->d, "Dimension D of each spectrum")->capture_default_str()->group("Problem");
  app.add_option("--kurtosis", o->kurtosis, "Fourth moment K of the whitened covariates (3 Gaussian)")
      ->capture_default_str()
      ->group("Problem");
  app.add_option("--threads", o->threads, "Worker threads (0: all cores)")->capture_default_str()->group("Sweep");
  add_output_options(app, o->format, o->output, "table|csv|json|markdown|latex", "table");
  add_progress_options(app, o->progress);
  app.footer(
      "For each kappa: tuned sgd and hb frontiers (rate objective) over batches 1, 2, 4, ... up to\n"
      "~256 sqrt(kappa) tr(H)/lambda_max; critical batch = where CE falls to half its best.\n"
      "Example:\n  cesr window --kappas 1e2,1e4,1e6,1e8 --d 1000 --format markdown");
  return [o] { return run_window(*o); };
}}};

}  // namespace
}  // namespace cesr::cli
