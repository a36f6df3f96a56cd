// Options shared by the commands that describe one problem: spectrum, initial
// moments, method and hyperparameters, noise model and precision.
#pragma once

#include "registry.hpp"

#include "cesr/dynamics.hpp"
#include "cesr/method.hpp"
#include "cesr/real.hpp"
#include "cesr/report.hpp"
#include "cesr/spectrum.hpp"
#include "cesr/tune.hpp"

#include <map>
#include <optional>
#include <string>

namespace cesr::cli {

/// The default problem used when --spectrum is not given.
inline constexpr const char* default_spectrum = "loguniform:d=100,kappa=1e4";

struct ProblemOptions {
  std::string spectrum = default_spectrum;
  std::string init = "isotropic";
  std::string method;
  std::string method_file;
  std::string average;
  std::string lr_schedule = "constant", momentum_schedule = "constant", batch_schedule = "constant";
  /// The run's horizon for schedules that leave out steps= (0: none; set by
  /// commands with --steps before make_method).
  std::uint64_t horizon = 0;
  const CLI::Option* batch_option = nullptr;  ///< --batch, to refuse it beside --batch-schedule
  /// Hyperparameter values as typed, by field name ("" when not given), one
  /// slot per hyperparameter of the registry; switches (e.g. nesterov) apart.
  std::map<std::string, std::string, std::less<>> hyper;
  std::map<std::string, bool, std::less<>> switches;
  std::uint64_t batch = 1;
  double kurtosis = 3;
  double noise = 0;
  std::string precision = "double";

  /// Spectrum and init (validated).
  Spectrum make_spectrum() const;
  /// Method and hyperparameters (validated).
  MethodSpec make_method() const;
  /// The hyperparameters given, as numbers (choices as their index), not
  /// checked against any method (tune and frontier hold them fixed).
  std::map<std::string, double, std::less<>> given_hyperparameters() const;
  /// --average (none when not given).
  Average make_average() const;
  /// Batch, kurtosis and label noise (validated).
  NoiseModel make_noise() const;
  Precision make_precision() const;
  /// For commands with automatic precision: empty for "auto", else the fixed one.
  std::optional<Precision> make_auto_precision() const;
};

struct ProblemFlags {
  bool method = true;            ///< --method and hyperparameters
  bool method_required = true;   ///< --method must be given
  bool hyperparameters = true;   ///< --lr, --momentum, ... (every hyperparameter of the registry)
  bool step_size = true;         ///< ... including --lr (stability searches it)
  bool average = true;           ///< --average
  bool schedules = true;         ///< --lr-schedule, --momentum-schedule, --batch-schedule
  bool precision = true;         ///< --precision
  bool auto_precision = false;   ///< --precision also takes auto (the default): see make_auto_precision
};

/// --threads N: the threads of the rate's O(d) kernels (secular function,
/// its derivative) for spectra of d >= 65536 directions; 0 (default) all cores. The
/// output does not depend on it (include/cesr/parallel.hpp).
void add_threads_option(CLI::App& app);

/// --search NAME=LO:HI, repeatable: the tuner's box for a hyperparameter
/// (names with '-' or '_'); a UsageError naming --search otherwise.
std::map<std::string, Box, std::less<>> parse_search_boxes(const std::vector<std::string>& items);

/// Adds the problem options to a subcommand.
void add_problem_options(CLI::App& app, ProblemOptions& o, const ProblemFlags& flags = {});

/// Adds --format (with the given choices and default) and --output.
void add_output_options(CLI::App& app, std::string& format, std::string& output,
                        const std::string& choices, const std::string& default_format);

/// Check for an --output FILE option: "-" (standard output) or a path whose
/// folder exists and is writable, so a bad path fails before any computation
/// (exit 2, naming the flag and the path).
CLI::Validator writable_output();

/// Adds --plot FILE (group Output): "Also write a figure to FILE.svg (SVG) or
/// FILE.tex (pgfplots)", followed by ": WHAT" when `what` is not empty. The name
/// must end in .svg or .tex and its folder must be writable (as for --output), so
/// a bad path fails at parse time (exit 2, naming --plot and the path). An empty
/// `path` (the default) means no figure.
CLI::Option* add_plot_option(CLI::App& app, std::string& path, const std::string& what);

/// Writes the rendered figure `content` to `path` (nothing when `path` is
/// empty); I/O errors name --plot.
void write_plot(const std::string& path, const std::string& content);

/// --format for the commands that print one JSON object or a small table:
/// json or table, anything else a UsageError naming --format.
Format parse_json_or_table(const std::string& name);

/// The CLI flag of a library field: "--" and the field with '_' as '-'
/// (lr -> --lr, small_const -> --small-const, method_file -> --method-file).
std::string flag_of(std::string_view field);

/// The message of a library error in the CLI's words: a FieldError's leading
/// field becomes its flag ("lr must be > 0" -> "--lr must be > 0").
std::string cli_message(const std::exception& e);

/// Rethrows std::invalid_argument from a parser as a UsageError: a FieldError
/// in the CLI's words (cli_message), anything else prefixed by `flag` unless
/// the message already names a flag.
[[noreturn]] void usage_error(std::string_view flag, const std::exception& e);

}  // namespace cesr::cli
