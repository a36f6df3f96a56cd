// The tuned frontier: for each method and batch size the tuned serial runtime
// (1/gap or exact steps) and compute efficiency (gap/B or 1/(B steps)), and per
// method the best compute efficiency, the critical batch size and McCandlish's
// E_min/S_min; across methods the heavy-ball window B_crit(hb)/B_crit(sgd)
// next to sqrt(kappa). See docs/frontier.md.
//
// The result is plain data (rows + summary) so that any renderer (tables,
// JSON, plots) can consume it.
#pragma once

#include "cesr/report.hpp"
#include "cesr/spectrum.hpp"
#include "cesr/tune.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cesr {

/// Batch sizes from "LO:HI:xF" (LO, LO F, LO F^2, ... up to HI) or a list "1,8,64"
/// (kept as given). Throws std::invalid_argument naming --batches.
std::vector<std::uint64_t> parse_batches(std::string_view text);

/// Registry names from "sgd,hb,asgd" (no duplicates, none that has nothing to
/// tune). Throws naming --methods.
std::vector<std::string> parse_methods(std::string_view text);

struct FrontierOptions {
  std::vector<std::string> methods{"sgd", "hb", "asgd"};
  std::vector<std::uint64_t> batches;  ///< default: 1, 2, 4, ..., 65536
  /// Objective, target, averaging; a fixed hyperparameter applies to the
  /// methods that have it (at least one must).
  TuneOptions tune;
  /// The sample budget N of the final objective: batch B runs T = floor(N / B) steps.
  std::uint64_t samples = 0;
  unsigned threads = 0;                ///< 0: all cores
  /// Called after each finished (method, batch) with (done, total), from the
  /// worker threads but never concurrently. An exception it throws stops the
  /// sweep (each worker stops after its current row) and compute_frontier
  /// rethrows it (the Python bindings stop on Ctrl-C this way).
  std::function<void(std::size_t, std::size_t)> progress;
  /// On a cooperative stop (cesr::Stopped, cesr/stop.hpp) return the rows
  /// finished so far, with Frontier::complete false, instead of rethrowing.
  bool keep_partial = false;
};

struct FrontierRow {
  std::string method = "sgd";
  std::uint64_t batch = 1;
  TuneResult tuned;                    ///< hyperparameters, gap, steps
  double ce = 0;                       ///< gap/B (rate) or 1/(B steps) (steps); 0 when unstable / not reached (printed as null)
};

struct MethodSummary {
  std::string method = "sgd";
  /// The largest CE over the sweep and its batch; empty when no row is usable
  /// (every tuned row unstable, or none reached the target).
  std::optional<double> best_ce;
  std::optional<std::uint64_t> best_ce_batch;
  /// Where CE falls to half of best_ce past best_ce_batch, interpolated
  /// linearly in (log B, log CE); empty when it never does within the sweep.
  std::optional<double> critical_batch;
  /// McCandlish et al.'s E_min / S_min = B_lo S(B_lo) / S(B_hi) from the smallest
  /// and largest batch of the sweep (S = steps, or 1/gap for the rate objective).
  std::optional<double> mccandlish_batch;
  /// Final objective: the smallest tuned L_T over the sweep and its batch; the
  /// critical batch is then the largest batch whose tuned L_T is within
  /// final_tolerance (20%) of that best, at the same sample budget.
  std::optional<double> best_loss;
  std::optional<std::uint64_t> best_batch;
};

/// The tolerance of the final objective's critical batch (L_T <= 1.2 best).
inline constexpr double final_tolerance = 0.2;

struct FrontierSummary {
  std::vector<MethodSummary> methods;   ///< in the order of FrontierOptions::methods
  std::optional<double> window_ratio;   ///< B_crit(hb) / B_crit(sgd), when both exist
  double sqrt_kappa = 0, trace_over_max = 0;
  double kappa = 0;        ///< lambda_max / lambda_min; NaN (printed as null) when beyond the double range
  double log10_kappa = 0;  ///< its decimal logarithm, always finite
};

/// kappa with 4 significant digits, from its logarithm when it exceeds the
/// double range ("2.5e+311").
std::string kappa_text(const FrontierSummary& s);

struct Frontier {
  std::string spectrum_text, init_text;  ///< the problem as the user named it
  Spectrum spectrum;
  NoiseModel noise;                      ///< kurtosis and label noise (batch varies per row)
  FrontierOptions options;
  std::vector<FrontierRow> rows;         ///< method-major, batches in the given order
  FrontierSummary summary;
  /// False when stopped early with FrontierOptions::keep_partial: `rows` are
  /// the finished ones (in their usual order), the summary is theirs.
  bool complete = true;
};

/// Tunes every (method, batch) on `threads` threads (rows come out in the same
/// order whatever the thread count) and summarises. Throws std::invalid_argument
/// on bad options.
Frontier compute_frontier(const Spectrum& spectrum, const NoiseModel& noise, const FrontierOptions& options);

/// The summary of given rows (exposed for tests).
FrontierSummary summarize(const Spectrum& spectrum, const std::vector<FrontierRow>& rows,
                          const std::vector<std::string>& methods, Objective objective);

/// The critical batch from (batch, ce) pairs sorted by batch: where ce falls to
/// half of its maximum after the maximum, interpolated in (log B, log ce).
std::optional<double> critical_batch(const std::vector<std::uint64_t>& batch, const std::vector<double>& ce);

/// Rows as a table (method, batch, gap, steps, ce, then one column per tuned
/// hyperparameter of the methods, in registry order: lr, momentum, kappa, xi
/// for the default methods).
Table rows_table(const Frontier& f);
/// Summary as a table (method, best_ce, best_ce_batch, critical_batch, mccandlish_batch).
Table summary_table(const Frontier& f);
/// The summary with the problem's window columns on every method row
/// (window_ratio, sqrt_kappa, trace_over_max, kappa; the final objective has
/// none): one loadable table, the CSV form of the summary.
Table summary_csv_table(const Frontier& f);
/// The normative JSON object {"problem", "rows", "summary"} (pretty, no trailing newline).
std::string frontier_json(const Frontier& f);
/// Which tables a text rendering shows: the rows, the summary (with the
/// window line), or both (the default).
enum class FrontierParts { Both, Rows, Summary };

/// The frontier in a format: csv (rows, or the summary with `parts` Summary),
/// json, table, markdown or latex (rows, summary table, then the window line;
/// `parts` keeps one of them). `title` heads the text formats. Markdown and
/// LaTeX numbers carry `digits` significant digits (the aligned text table
/// always 4; csv and json every digit).
std::string render_frontier(const Frontier& f, Format format, const std::string& title = {}, int digits = 3,
                            FrontierParts parts = FrontierParts::Both);

}  // namespace cesr
