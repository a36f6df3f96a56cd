// Options shared by the commands that describe one problem: spectrum, initial
// moments, method and hyperparameters, noise model and precision.
#pragma once

#include "registry.hpp"

#include "cesr/dynamics.hpp"
#include "cesr/horizon.hpp"
#include "cesr/method.hpp"
#include "cesr/plot.hpp"
#include "cesr/progress.hpp"
#include "cesr/real.hpp"
#include "cesr/report.hpp"
#include "cesr/spectrum.hpp"
#include "cesr/stop.hpp"
#include "cesr/tune.hpp"

#include <map>
#include <optional>
#include <string>

#include <csignal>

namespace cesr::cli {

/// The default problem used when --spectrum is not given.
inline constexpr const char* default_spectrum = "loguniform:d=100,kappa=1e4";

/// The noise model and the preconditioner (--noise-model, --noise-scale,
/// --noise-covariance, --precondition), shared by every command that takes a
/// problem; frontier has its own copy.
struct NoiseModelOptions {
  std::string model = "multiplicative";
  double scale = 1;
  std::string covariance;
  std::string precondition = "none";
  const CLI::Option* scale_option = nullptr;
  const CLI::Option* kurtosis_option = nullptr;  ///< set by the command: refused under additive
  const CLI::Option* noise_option = nullptr;     ///< likewise (--noise, label noise)
  /// Adds the four options (group Problem).
  void add(CLI::App& app);
  /// The kind (a UsageError naming --noise-model otherwise); refuses --kurtosis
  /// and --noise under additive, --noise-scale and --noise-covariance under multiplicative.
  NoiseKind kind() const;
  /// Loads the noise covariance into `s` and applies the preconditioner (one
  /// place for the whole CLI: cesr::precondition).
  void apply(Spectrum& s) const;
  /// Sets the model and scale of `n`.
  void apply(NoiseModel& n) const;
};

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
  NoiseModelOptions nqm;

  /// Spectrum and init (validated), with the noise covariance and the
  /// preconditioner applied.
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

/// One line on stderr when the spectrum has fractional weights (a spectral
/// measure, not a finite d); nothing otherwise.
/// A note for standard error, printed when the command has run (flush_notes
/// in main): a run refused as a usage error prints its one error line only.
void defer_note(std::string line);
void flush_notes();

void note_weights(const Spectrum& s);

struct ProblemFlags {
  bool method = true;            ///< --method and hyperparameters
  bool method_required = true;   ///< --method must be given
  bool hyperparameters = true;   ///< --lr, --momentum, ... (every hyperparameter of the registry)
  bool step_size = true;         ///< ... including --lr (stability searches it)
  bool average = true;           ///< --average
  bool schedules = true;         ///< --lr-schedule, --momentum-schedule, --batch-schedule
  bool precision = true;         ///< --precision
  bool auto_precision = false;   ///< --precision also takes auto (the default): see make_auto_precision
  /// The command's option for several batch sizes (loss: --batches), named
  /// when a list is given to --batch; empty: --batches is an alias of --batch.
  std::string batch_list_flag;
};

/// --threads N: the threads of the rate's O(d) kernels (secular function,
/// its derivative) for spectra of d >= 65536 directions; 0 (default) all cores. The
/// output does not depend on it (include/cesr/parallel.hpp).
void add_threads_option(CLI::App& app);

/// --search NAME=LO:HI, repeatable: the tuner's box for a hyperparameter
/// (names with '-' or '_'); a UsageError naming --search otherwise.
std::map<std::string, Box, std::less<>> parse_search_boxes(const std::vector<std::string>& items);

/// --horizon auto|exact|stepping and --horizon-rtol (loss, steps, check).
struct HorizonOptions {
  std::string mode = "auto";
  double rtol = default_horizon_rtol;
  /// Parsed and validated (UsageError naming the flag).
  HorizonMode make_mode() const;
};
void add_horizon_options(CLI::App& app, HorizonOptions& o);

/// The loss curve of one method through the certified spectral path where
/// `o` asks for it and it applies (Auto: only when time stepping would cost
/// more than the spectral set-up, steps > 32 d), else time stepping; a note
/// on standard error (prefixed "cesr COMMAND: ") when Auto falls back, an
/// error (exit 4) when Exact cannot answer.
template <class Real>
LossCurve<Real> horizon_curve(std::string_view command, const Spectrum& spectrum, const MethodSpec& spec,
                              const NoiseModel& noise, std::uint64_t steps, std::uint64_t every,
                              const HorizonOptions& o, HorizonReport* report = nullptr);

/// Adds one option per hyperparameter of the registry (--lr, --momentum, ...,
/// without --lr unless `step_size`), stored in o.hyper / o.switches.
void add_hyperparameter_options(CLI::App& app, ProblemOptions& o, bool step_size = true,
                                const std::string& group = "Method");

/// Appends " -- fixed; tuned when absent" to the help of the hyperparameter
/// options that a tuner searches (tune, frontier).
void mark_tuned_hyperparameters(CLI::App& app);

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

/// --title, --xlabel, --ylabel and --legend of the commands that plot.
struct FigureOptions {
  std::string title;
  std::vector<std::string> xlabel, ylabel;  ///< once: every panel; once per panel column: in order
  std::string legend = "outside";
};

/// Adds --title, --xlabel, --ylabel (repeatable) and --legend (group Output).
void add_figure_options(CLI::App& app, FigureOptions& o);

/// Checks the options against a figure with `columns` panel columns before
/// any work (a UsageError naming --xlabel / --ylabel), and that there is a
/// figure (`figure`: --plot or --format pgfplots) when one of them is given.
void check_figure_options(const FigureOptions& o, int columns, bool figure);

/// Applies the options to a figure (the user's words replace the defaults).
void apply_figure_options(plot::Figure& figure, const FigureOptions& o);

/// A spectrum in the words of a paper, for figure titles:
/// "loguniform:d=100,kappa=1e4" -> "log-uniform spectrum, d = 100, κ = 1e4",
/// "powerlaw:d=1000,alpha=2" -> "power-law spectrum, d = 1000, α = 2",
/// "file:data/h.txt" -> "spectrum of h.txt". Unknown forms come back as given.
std::string spectrum_title(std::string_view text);

/// A method as figures name it: the registry's paper name and the given
/// hyperparameters in symbols, "HB, η = 0.1, β = 0.9" (schedules and
/// averaging appended in words).
std::string method_label(const MethodSpec& spec);

/// Writes the rendered figure `content` to `path` (nothing when `path` is
/// empty); I/O errors name --plot.
void write_plot(const std::string& path, const std::string& content);

/// The one rule for --digits (significant digits of markdown and LaTeX
/// tables): 1 up to the digits the values carry in `precision` (17 for
/// double, 21 long, 36 quad, 53 mp50), so that rounding never pads digits the
/// arithmetic did not compute; a UsageError naming --digits and the limit.
void check_digits(int digits, Precision precision);

/// Adds --digits (group Output, default 3); check it with check_digits.
void add_digits_option(CLI::App& app, int& digits);

/// --progress and --quiet (group Output): the progress line of a long run.
struct ProgressFlags {
  bool progress = false, quiet = false;
  /// Always with --progress, Never with --quiet, else Auto (a terminal, after 2 s).
  ProgressReporter::Mode mode() const;
};
void add_progress_options(CLI::App& app, ProgressFlags& flags);

/// While in scope, SIGINT and SIGTERM set a stop flag (installed with
/// StopScope for this thread) instead of ending the process at once, so that a
/// command can keep what it finished; a second signal ends the process as
/// before (one more than 0.1 s after the first: `timeout` and job schedulers
/// deliver one request twice, to the process and to its group). After the command has written its partial output, end_as_interrupted()
/// ends the process by the signal received (the exit status of an interrupt).
class InterruptScope {
 public:
  InterruptScope();
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;
  /// The signal received (0: none).
  int signal() const;
  /// Restores the default action of the signal received and raises it.
  [[noreturn]] void end_as_interrupted() const;

 private:
  StopScope stop_;
  struct sigaction old_int_ {}, old_term_ {};
};

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
