#include "common.hpp"

#include "cesr/parallel.hpp"
#include "cesr/plot.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <iostream>

#include <unistd.h>

namespace cesr::cli {

CLI::Validator writable_output() {
  return CLI::Validator(
      [](const std::string& path) -> std::string {
        namespace fs = std::filesystem;
        if (path.empty() || path == "-") return {};
        std::error_code ec;
        // A device or FIFO is written in place (write_output): no folder to write in.
        const fs::file_status st = fs::status(path, ec);
        if (!ec && fs::exists(st) && !fs::is_regular_file(st) && !fs::is_directory(st)) return {};
        // A symlink to an existing file is replaced at its target, in the target's folder.
        fs::path target(path);
        if (fs::is_symlink(fs::symlink_status(path, ec)) && fs::exists(st)) target = fs::canonical(path, ec);
        const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
        if (!fs::is_directory(dir, ec)) return fmt::format("'{}': no folder '{}'", path, dir.string());
        if (fs::is_directory(target, ec)) return fmt::format("'{}' is a folder", path);
        if (::access(dir.c_str(), W_OK) != 0) return fmt::format("'{}': folder '{}' is not writable", path, dir.string());
        return {};
      },
      "");
}

CLI::Option* add_plot_option(CLI::App& app, std::string& path, const std::string& what) {
  const CLI::Validator writable = writable_output();
  const CLI::Validator figure_path(
      [writable](std::string& p) -> std::string {
        if (p.empty()) return {};
        try {
          plot::check_plot_path(p);
        } catch (const std::invalid_argument& e) {
          // CLI11 prefixes the flag itself.
          std::string_view msg = e.what();
          if (msg.rfind("--plot: ", 0) == 0) msg.remove_prefix(8);
          return std::string(msg);
        }
        return writable(p);
      },
      "");
  return app
      .add_option("--plot", path,
                  "Also write a figure to FILE.svg (SVG) or FILE.tex (pgfplots)" + (what.empty() ? "" : ": " + what))
      ->check(figure_path)
      ->group("Output");
}

void add_figure_options(CLI::App& app, FigureOptions& o) {
  app.add_option("--title", o.title,
                 "Figure title (one panel: its title; several: a title above them); default: the problem in words")
      ->group("Output");
  app.add_option("--xlabel", o.xlabel,
                 "Label of the x axis: once for every panel, or once per column of panels (in order)")
      ->group("Output");
  app.add_option("--ylabel", o.ylabel,
                 "Label of the y axis: once for every panel, or once per column of panels (in order)")
      ->group("Output");
  app.add_option("--legend", o.legend,
                 "Legend placement: outside (right of the panels), northeast, northwest, southeast, southwest "
                 "(inside the first panel) or none")
      ->check(CLI::IsMember({"outside", "northeast", "northwest", "southeast", "southwest", "none"}))
      ->capture_default_str()
      ->group("Output");
}

void check_figure_options(const FigureOptions& o, int columns, bool figure) {
  if (!figure) {
    const char* given = !o.title.empty()    ? "--title"
                        : !o.xlabel.empty() ? "--xlabel"
                        : !o.ylabel.empty() ? "--ylabel"
                        : o.legend != "outside" ? "--legend"
                                                : nullptr;
    if (given)
      throw UsageError(fmt::format("{} applies to the figure: give --plot FILE.svg|FILE.tex or --format pgfplots", given));
  }
  for (const auto& [given, flag] : {std::pair{&o.xlabel, "--xlabel"}, std::pair{&o.ylabel, "--ylabel"}})
    if (given->size() > 1 && given->size() != static_cast<std::size_t>(columns))
      throw UsageError(fmt::format("{}: given {} times; give it once (every panel) or once per column of panels ({} "
                                   "here)",
                                   flag, given->size(), columns));
}

void apply_figure_options(plot::Figure& figure, const FigureOptions& o) {
  plot::Labels labels;
  labels.title = o.title;
  labels.xlabel = o.xlabel;
  labels.ylabel = o.ylabel;
  try {
    labels.legend = plot::parse_legend_place(o.legend);
    plot::apply_labels(figure, labels);
  } catch (const std::invalid_argument& e) {
    usage_error("--legend", e);
  }
}

std::string spectrum_title(std::string_view text) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) return std::string(text);
  const std::string_view kind = text.substr(0, colon), rest = text.substr(colon + 1);
  if (kind == "file" || kind == "npy") {
    const auto slash = rest.find_last_of('/');
    return fmt::format("spectrum of {}", slash == std::string_view::npos ? rest : rest.substr(slash + 1));
  }
  std::string out;
  if (kind == "loguniform") out = "log-uniform spectrum";
  else if (kind == "powerlaw") out = "power-law spectrum";
  else return std::string(text);
  // Parameters as symbols: d = 1000, alpha = 2 -> α = 2, kappa = 1e4 -> κ = 1e4.
  std::size_t pos = 0;
  while (pos <= rest.size()) {
    const auto comma = rest.find(',', pos);
    const std::string_view item = rest.substr(pos, comma == std::string_view::npos ? comma : comma - pos);
    const auto eq = item.find('=');
    if (eq != std::string_view::npos) {
      const std::string_view key = item.substr(0, eq), value = item.substr(eq + 1);
      const std::string symbol = key == "alpha" ? "\u03b1" : key == "kappa" ? "\u03ba" : std::string(key);
      out += fmt::format(", {} = {}", symbol, value);
    }
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return out;
}

std::string method_label(const MethodSpec& s) {
  const MethodInfo& row = s.info();
  std::string out = paper_method_name(row.name);
  if (row.hyperparameters.empty()) out += fmt::format(" (k = {})", s.custom.k);
  for (const auto& h : row.hyperparameters) {
    const auto v = s.get(h.name);
    if (!v) continue;
    std::string value;
    if (!h.choices.empty() && *v >= 0 && *v < static_cast<double>(h.choices.size()))
      value = std::string(h.choices[static_cast<std::size_t>(*v)]);
    else if (h.flag) value = *v != 0 ? "true" : "false";
    else value = fmt::format("{}", *v);
    out += fmt::format(", {} = {}", paper_column_name(h.name, Format::Markdown), value);
  }
  if (s.average.given()) out += ", average " + to_string(s.average);
  if (!s.lr_schedule.constant()) out += ", lr schedule " + s.lr_schedule.text();
  if (!s.momentum_schedule.constant()) out += ", momentum schedule " + s.momentum_schedule.text();
  return out;
}

void write_plot(const std::string& path, const std::string& content) {
  if (!path.empty()) write_output(path, content, "--plot");
}

std::string flag_of(std::string_view field) {
  std::string out = "--";
  for (char c : field) out += c == '_' ? '-' : c;
  return out;
}

std::string cli_message(const std::exception& e) {
  const std::string what = e.what();
  if (const auto* f = dynamic_cast<const FieldError*>(&e); f && what.rfind(f->field, 0) == 0)
    return flag_of(f->field) + what.substr(f->field.size());
  return what;
}

void usage_error(std::string_view flag, const std::exception& e) {
  const std::string what = cli_message(e);
  if (what.rfind("--", 0) == 0) throw UsageError(what);
  throw UsageError(fmt::format("{}: {}", flag, what));
}

Spectrum ProblemOptions::make_spectrum() const {
  Spectrum s;
  try {
    s = read_spectrum(spectrum);
  } catch (const std::invalid_argument& e) {
    usage_error("--spectrum", e);
  }
  try {
    s.init = parse_init(init, s.lambda.size());
  } catch (const std::invalid_argument& e) {
    usage_error("--init", e);
  }
  nqm.apply(s);
  note_weights(s);
  return s;
}

namespace {
std::vector<std::string>& pending_notes() {
  static std::vector<std::string> notes;
  return notes;
}
}  // namespace

void defer_note(std::string line) { pending_notes().push_back(std::move(line)); }

void flush_notes() {
  for (const std::string& line : pending_notes()) std::cerr << line;
  pending_notes().clear();
}

void note_weights(const Spectrum& s) {
  if (s.fractional())
    defer_note(fmt::format(
        "cesr: note: the spectrum has fractional weights: a spectral measure of total weight {:g} over {} lines, "
        "not a finite dimension\n",
        s.directions(), s.dim()));
}

void NoiseModelOptions::add(CLI::App& app) {
  app.add_option("--noise-model", model,
                 "Gradient noise: multiplicative (sampled Gaussian data: --kurtosis, --noise) or additive "
                 "(the noisy quadratic model: noise of covariance C/B independent of the iterate)")
      ->capture_default_str()
      ->group("Problem");
  scale_option = app.add_option("--noise-scale", scale, "Additive model: C = c H with this c")
                     ->capture_default_str()
                     ->group("Problem");
  app.add_option("--noise-covariance", covariance,
                 "Additive model: diagonal C from file:PATH or npy:PATH, one C_ii per spectrum line (replaces c H)")
      ->group("Problem");
  app.add_option("--precondition", precondition,
                 "none or power:p=GAMMA: step multiplier (lambda_i/lambda_max)^-GAMMA on the whole stochastic "
                 "gradient, 0 <= GAMMA <= 1")
      ->capture_default_str()
      ->group("Problem");
}

NoiseKind NoiseModelOptions::kind() const {
  NoiseKind k = NoiseKind::Multiplicative;
  if (model == "additive") k = NoiseKind::Additive;
  else if (model != "multiplicative")
    throw UsageError(fmt::format("--noise-model: '{}' is not one of multiplicative, additive", model));
  const auto given = [](const CLI::Option* o) { return o && o->count() > 0; };
  if (k == NoiseKind::Additive) {
    if (given(kurtosis_option))
      throw UsageError("--kurtosis does not apply to --noise-model additive (no data-sampling term)");
    if (given(noise_option))
      throw UsageError("--noise does not apply to --noise-model additive (its noise is C/B: --noise-scale, "
                       "--noise-covariance)");
  } else {
    if (given(scale_option)) throw UsageError("--noise-scale applies only to --noise-model additive");
    if (!covariance.empty()) throw UsageError("--noise-covariance applies only to --noise-model additive");
  }
  return k;
}

void NoiseModelOptions::apply(Spectrum& s) const {
  (void)kind();
  if (!covariance.empty()) {
    try {
      s.noise_covariance = parse_noise_covariance(covariance, s.dim());
    } catch (const std::invalid_argument& e) {
      usage_error("--noise-covariance", e);
    }
  }
  try {
    // Without a preconditioner the spectrum is left as it is (no copy: a
    // freed copy of a large spectrum would move glibc's mmap threshold and
    // leave the engine's arrays at a cache-line offset, 15-25% slower at d = 1e6).
    if (const double gamma = parse_precondition(precondition); gamma != 0) s = cesr::precondition(s, gamma);
  } catch (const std::invalid_argument& e) {
    usage_error("--precondition", e);
  }
}

void NoiseModelOptions::apply(NoiseModel& n) const {
  n.model = kind();
  n.noise_scale = scale;
}

namespace {
/// The registry's hyperparameters by name, each once (the first row that has it).
std::vector<const Hyperparameter*> all_hyperparameters() {
  std::vector<const Hyperparameter*> out;
  for (const auto& row : methods())
    for (const auto& h : row.hyperparameters)
      if (std::none_of(out.begin(), out.end(), [&](const Hyperparameter* g) { return g->name == h.name; }))
        out.push_back(&h);
  return out;
}

/// "hb, nag, torch-sgd": the rows that have the hyperparameter `name`.
std::string rows_with(std::string_view name) {
  std::string out;
  for (const auto& row : methods())
    if (row.find(name)) out += (out.empty() ? "" : ", ") + std::string(row.name);
  return out;
}
}  // namespace

std::map<std::string, double, std::less<>> ProblemOptions::given_hyperparameters() const {
  std::map<std::string, double, std::less<>> out;
  for (const Hyperparameter* h : all_hyperparameters()) {
    const std::string name(h->name);
    if (h->flag) {
      if (const auto it = switches.find(name); it != switches.end() && it->second) out[name] = 1;
      continue;
    }
    const auto it = hyper.find(name);
    if (it == hyper.end() || it->second.empty()) continue;
    if (!h->choices.empty()) {
      // A choice: its index among the names every row that has it lists (the same list).
      const auto c = std::find(h->choices.begin(), h->choices.end(), it->second);
      if (c == h->choices.end())
        throw UsageError(fmt::format("{} '{}' is not {}", flag_of(name), it->second, h->range_text()));
      out[name] = static_cast<double>(c - h->choices.begin());
      continue;
    }
    try {
      out[name] = parse_finite(it->second, flag_of(name));
    } catch (const std::invalid_argument& e) {
      usage_error(flag_of(name), e);
    }
  }
  return out;
}

Average ProblemOptions::make_average() const {
  try {
    return parse_average(average);
  } catch (const std::invalid_argument& e) {
    usage_error("--average", e);
  }
}

MethodSpec ProblemOptions::make_method() const {
  MethodSpec m;
  if (method.find(',') != std::string::npos)
    throw UsageError(fmt::format("--method takes one method, got the list '{}' (several methods: cesr frontier "
                                 "--methods, or cesr loss --compare NAME:key=value)",
                                 method));
  try {
    const MethodInfo& row = method_info(method);
    m.name = std::string(row.name);
    m.values = given_hyperparameters();
    m.average = make_average();
    try {
      m.lr_schedule = Schedule::learning_rate(lr_schedule);
      if (m.lr_schedule.needs_horizon() && horizon > 0) m.lr_schedule = m.lr_schedule.resolve(horizon);
      m.momentum_schedule = Schedule::momentum(momentum_schedule);
    } catch (const std::invalid_argument& e) {
      usage_error("--lr-schedule", e);
    }
    if (row.from_file) {
      if (method_file.empty()) throw UsageError(fmt::format("--method-file is required for --method {}", row.name));
      m.custom = read_method_file(method_file);
    } else if (!method_file.empty()) {
      throw UsageError(fmt::format("--method-file {} applies only to --method custom", method_file));
    }
    m.validate();
  } catch (const std::invalid_argument& e) {
    usage_error("--method", e);
  }
  return m;
}

NoiseModel ProblemOptions::make_noise() const {
  NoiseModel n{batch, kurtosis, noise};
  nqm.apply(n);
  try {
    n.batch_schedule = Schedule::batch(batch_schedule);
  } catch (const std::invalid_argument& e) {
    usage_error("--batch-schedule", e);
  }
  if (!n.batch_schedule.constant()) {
    if (batch_option && batch_option->count() > 0)
      throw UsageError("--batch-schedule replaces --batch: give one of them");
    n.batch = n.batch_at(0);
  }
  try {
    n.validate();
  } catch (const std::invalid_argument& e) {
    usage_error("--batch", e);
  }
  return n;
}

std::optional<Precision> ProblemOptions::make_auto_precision() const {
  if (precision == "auto") return std::nullopt;
  try {
    return parse_precision(precision);
  } catch (const std::invalid_argument&) {
    throw UsageError(
        fmt::format("--precision: unknown precision '{}' (expected auto, double, long, quad or mp50)", precision));
  }
}

Precision ProblemOptions::make_precision() const {
  try {
    return parse_precision(precision);
  } catch (const std::invalid_argument& e) {
    usage_error("--precision", e);
  }
}

void add_threads_option(CLI::App& app) {
  app.add_option_function<unsigned>(
         "--threads", [](unsigned n) { set_default_kernel_threads(n); },
         "Threads of the rate's O(d) kernels for d >= 65536 (0: all cores); the output does not depend on it")
      ->check(CLI::Range(0u, 4096u))
      ->group("Problem");
}

HorizonMode HorizonOptions::make_mode() const {
  if (!std::isfinite(rtol) || !(rtol > 0) || !(rtol < 1))
    throw UsageError(fmt::format("--horizon-rtol must be in (0, 1), got {}", rtol));
  try {
    return parse_horizon(mode);
  } catch (const std::invalid_argument& e) {
    throw UsageError(cli_message(e));
  }
}

void add_horizon_options(CLI::App& app, HorizonOptions& o) {
  app.add_option("--horizon", o.mode,
                 "How large steps are reached: exact (certified spectral path, constant-coefficient "
                 "methods with k = 1 to 4 states), stepping (time stepping), auto (exact where it applies and pays "
                 "off)")
      ->capture_default_str()
      ->group("Run");
  app.add_option("--horizon-rtol", o.rtol, "Relative tolerance the exact path certifies")
      ->capture_default_str()
      ->group("Run");
}

template <class Real>
LossCurve<Real> horizon_curve(std::string_view command, const Spectrum& spectrum, const MethodSpec& spec,
                              const NoiseModel& noise, std::uint64_t steps, std::uint64_t every,
                              const HorizonOptions& o, HorizonReport* report) {
  const HorizonMode mode = o.make_mode();
  HorizonReport local;
  HorizonReport& rep = report ? *report : local;
  rep.exact = false;
  const double d = static_cast<double>(spectrum.dim());
  const bool pays = static_cast<double>(steps) > 32 * d;
  if (mode == HorizonMode::Exact || (mode == HorizonMode::Auto && pays)) {
    if (auto curve = horizon_loss_curve<Real>(spectrum, spec, noise, steps, every, o.rtol, rep)) return *curve;
    if (mode == HorizonMode::Exact)
      throw std::runtime_error(fmt::format("--horizon exact cannot answer: {}", rep.reason));
    if (rep.reason.find("does not contract") == std::string::npos)  // time stepping reports the divergence
      std::cerr << fmt::format("cesr {}: {}: time stepping ({})\n", command, describe(spec), rep.reason);
  } else {
    rep.reason = mode == HorizonMode::Stepping ? "--horizon stepping" : "few steps";
  }
  return loss_curve<Real>(spectrum, make_path<Real>(spec), noise, steps, every);
}

#define CESR_INSTANTIATE(Real)                                                                                \
  template LossCurve<Real> horizon_curve<Real>(std::string_view, const Spectrum&, const MethodSpec&,         \
                                               const NoiseModel&, std::uint64_t, std::uint64_t,              \
                                               const HorizonOptions&, HorizonReport*);
CESR_FOR_EACH_REAL(CESR_INSTANTIATE)
#undef CESR_INSTANTIATE

void add_hyperparameter_options(CLI::App& app, ProblemOptions& o, bool step_size, const std::string& group) {
  // One option per hyperparameter of the registry, described by the first
  // row that has it, with the rows that take it.
  for (const Hyperparameter* h : all_hyperparameters()) {
    const std::string name(h->name);
    if (name == "lr" && !step_size) continue;
    const std::string help = fmt::format("{} ({})", h->description, rows_with(name));
    if (h->flag) {
      app.add_flag(flag_of(name), o.switches[name], help)->group(group);
    } else {
      app.add_option(flag_of(name), o.hyper[name], help)
          ->type_name(!h->choices.empty() ? "NAME" : h->integer ? "UINT" : "FLOAT")
          ->group(group);
    }
  }
}

void mark_tuned_hyperparameters(CLI::App& app) {
  for (const auto& row : methods())
    for (const auto& h : row.hyperparameters)
      if (h.search != Search::None)
        if (CLI::Option* opt = app.get_option_no_throw(flag_of(h.name))) {
          const std::string d = opt->get_description();
          if (d.find(" -- fixed;") == std::string::npos) opt->description(d + " -- fixed; tuned when absent");
        }
}

void add_problem_options(CLI::App& app, ProblemOptions& o, const ProblemFlags& flags) {
  app.add_option("--spectrum", o.spectrum,
                 "Eigenvalues of H: powerlaw:d=N,alpha=A[,scale=S] (S i^-A), "
                 "loguniform:d=N,kappa=K[,scale=S] (S K^(-(i-1)/(N-1))), file:PATH "
                 "(per line lambda, or lambda w for w directions; # comments) or npy:PATH (1-D float64/float32)")
      ->capture_default_str()
      ->group("Problem");
  app.add_option("--init", o.init,
                 "Initial second moments E[e_0,i^2], one per spectrum line: isotropic, powerlaw:beta=B (i^-B), "
                 "file:PATH or npy:PATH")
      ->capture_default_str()
      ->group("Problem");
  o.nqm.kurtosis_option = app.add_option("--kurtosis", o.kurtosis,
                                         "Fourth moment K of the whitened covariates (3 Gaussian, 1 Rademacher)")
                              ->capture_default_str()
                              ->group("Problem");
  o.nqm.noise_option =
      app.add_option("--noise", o.noise, "Label-noise variance sigma^2")->capture_default_str()->group("Problem");
  o.nqm.add(app);
  // One batch size; --batches is the same option unless the command has a
  // list of batch sizes of its own (loss: --batches = --compare-batches). A
  // list given to --batch is refused in main.cpp (list_given_for_one).
  o.batch_option =
      app.add_option(flags.batch_list_flag.empty() ? "--batch,--batches" : "--batch", o.batch,
                     "Batch size B (fresh samples per step)")
          ->capture_default_str()
          ->group("Problem");
  if (flags.schedules) {
    app.add_option("--lr-schedule", o.lr_schedule,
                   "Factor m_t on --lr at step t: constant, cosine:steps=T[,warmup=W][,final=F], linear:..., "
                   "wsd:steps=T,decay=D[,...], step:every=N,factor=G, invtime:t0=T0[,power=P], file:PATH "
                   "(docs/schedules.md)")
        ->capture_default_str()
        ->group("Schedules");
    app.add_option("--momentum-schedule", o.momentum_schedule,
                   "Momentum at step t: constant or file:PATH (CSV step,momentum); replaces --momentum")
        ->capture_default_str()
        ->group("Schedules");
    app.add_option("--batch-schedule", o.batch_schedule,
                   "Batch size at step t: constant, ramp:start=B0,every=N,max=BMAX[,factor=F] or file:PATH "
                   "(CSV step,batch); replaces --batch")
        ->capture_default_str()
        ->group("Schedules");
  }
  if (flags.method) {
    auto* m = app.add_option("--method,--methods", o.method, "Method: " + method_names() + " (cesr methods lists them)")
                  ->group("Method");
    if (flags.method_required) m->required();
    if (flags.hyperparameters) add_hyperparameter_options(app, o, flags.step_size);
    app.add_option("--method-file", o.method_file,
                   "JSON file {\"P\": [[..],..], \"q\": [..], \"r\": [..], \"o\": [..], \"s0\": [..]} "
                   "with k <= 4 states (custom; s0 optional, default all ones)")
        ->group("Method");
    if (flags.average)
      app.add_option("--average", o.average,
                     "Report the loss of an average of the iterate: ema:decay=G, polyak or tail:start=S "
                     "(adds one state; any method with k <= 3)")
          ->group("Method");
  }
  if (flags.precision && flags.auto_precision) o.precision = "auto";
  if (flags.precision)
    app.add_option("--precision", o.precision,
                   flags.auto_precision
                       ? "Arithmetic: auto|double|long|quad|mp50 (auto: double, then higher precisions until two agree)"
                       : "Arithmetic: double|long|quad|mp50")
        ->capture_default_str()
        ->group("Numerics");
}

std::map<std::string, Box, std::less<>> parse_search_boxes(const std::vector<std::string>& items) {
  std::map<std::string, Box, std::less<>> out;
  for (const std::string& item : items) {
    const auto eq = item.find('='), colon = item.find(':', eq == std::string::npos ? 0 : eq);
    if (eq == std::string::npos || colon == std::string::npos)
      throw UsageError(fmt::format("--search: '{}' is not NAME=LO:HI", item));
    std::string name = item.substr(0, eq);
    std::replace(name.begin(), name.end(), '-', '_');
    Box b;
    try {
      b.lo = parse_finite(item.substr(eq + 1, colon - eq - 1), "--search");
      b.hi = parse_finite(item.substr(colon + 1), "--search");
    } catch (const std::invalid_argument& e) {
      throw UsageError(fmt::format("--search: '{}': {}", item, e.what()));
    }
    if (!out.emplace(name, b).second) throw UsageError(fmt::format("--search: {} is given twice", name));
  }
  return out;
}

void check_digits(int digits, Precision precision) {
  const int limit = with_precision(precision, [](auto zero) { return round_trip_digits<decltype(zero)>(); });
  if (digits < 1 || digits > limit)
    throw UsageError(fmt::format("--digits must be in 1..{} (the significant digits of a value in {}), got {}", limit,
                                 to_string(precision), digits));
}

void add_digits_option(CLI::App& app, int& digits) {
  app.add_option("--digits", digits,
                 "Significant digits of the markdown and latex tables (at most what the precision holds: 17 in "
                 "double)")
      ->capture_default_str()
      ->group("Output");
}

ProgressReporter::Mode ProgressFlags::mode() const {
  if (progress && quiet) throw UsageError("--progress and --quiet: give one of them");
  return progress ? ProgressReporter::Mode::Always : quiet ? ProgressReporter::Mode::Never
                                                           : ProgressReporter::Mode::Auto;
}

void add_progress_options(CLI::App& app, ProgressFlags& flags) {
  app.add_flag("--progress", flags.progress,
               "Show progress (elapsed, estimated time left) on stderr after 2 s, also when stderr is not a "
               "terminal (default: only on a terminal)")
      ->group("Output");
  app.add_flag("--quiet", flags.quiet, "No progress line")->group("Output");
}

namespace {
std::atomic<bool> interrupt_flag{false};
volatile std::sig_atomic_t interrupt_signal = 0;
// When the first signal came (CLOCK_MONOTONIC, ns; 0: none yet).
std::atomic<std::int64_t> interrupt_first_ns{0};
static_assert(std::atomic<std::int64_t>::is_always_lock_free);

std::int64_t monotonic_ns() {
  timespec now {};
  ::clock_gettime(CLOCK_MONOTONIC, &now);  // async-signal-safe
  return std::int64_t(now.tv_sec) * 1000000000 + now.tv_nsec;
}

// A second stop request ends the process at once, but not one that arrives
// with the first: `timeout` signals the child and then its process group, and
// a job scheduler may do the same, so one request often arrives twice within
// microseconds. Requests within this window of the first count as one.
constexpr std::int64_t same_request_ns = 100'000'000;

extern "C" void on_interrupt(int sig) {
  const std::int64_t now = monotonic_ns();
  std::int64_t first = 0;
  if (!interrupt_first_ns.compare_exchange_strong(first, now) && now - first > same_request_ns) {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ::sigaction(sig, &dfl, nullptr);
    ::raise(sig);  // blocked while this handler runs: ends the process on return
    return;
  }
  if (interrupt_signal == 0) interrupt_signal = sig;
  interrupt_flag.store(true, std::memory_order_relaxed);  // lock-free: async-signal-safe
}
}  // namespace

InterruptScope::InterruptScope() : stop_(&interrupt_flag) {
  struct sigaction on {};
  on.sa_handler = on_interrupt;
  sigemptyset(&on.sa_mask);
  on.sa_flags = 0;  // stays installed: on_interrupt tells a second request from a repeated first
  ::sigaction(SIGINT, nullptr, &old_int_);
  ::sigaction(SIGTERM, nullptr, &old_term_);
  if (old_int_.sa_handler != SIG_IGN) ::sigaction(SIGINT, &on, nullptr);
  if (old_term_.sa_handler != SIG_IGN) ::sigaction(SIGTERM, &on, nullptr);
}

InterruptScope::~InterruptScope() {
  ::sigaction(SIGINT, &old_int_, nullptr);
  ::sigaction(SIGTERM, &old_term_, nullptr);
}

int InterruptScope::signal() const { return interrupt_signal; }

void InterruptScope::end_as_interrupted() const {
  const int sig = interrupt_signal ? interrupt_signal : SIGINT;
  std::signal(sig, SIG_DFL);
  ::raise(sig);
  std::_Exit(128 + sig);  // not reached
}

Format parse_json_or_table(const std::string& name) {
  Format format = Format::Csv;
  try {
    format = parse_format(name);
  } catch (const std::invalid_argument&) {
    // named below with this command's choices
  }
  if (format != Format::Json && format != Format::Text)
    throw UsageError(fmt::format("--format: '{}' is not one of json, table", name));
  return format;
}

void add_output_options(CLI::App& app, std::string& format, std::string& output, const std::string& choices,
                        const std::string& default_format) {
  format = default_format;
  app.add_option("--format", format, "Output format: " + choices)
      ->transform(CLI::Validator(
          [](std::string& text) {
            for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));  // JSON = json
            return std::string();
          },
          ""))
      ->capture_default_str()
      ->group("Output");
  app.add_option("--output,-o", output, "Write to FILE (atomically) instead of standard output")
      ->check(writable_output())
      ->group("Output");
}

}  // namespace cesr::cli
