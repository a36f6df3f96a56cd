#include "common.hpp"

#include "cesr/plot.hpp"

#include <fmt/format.h>

#include <filesystem>

#include <unistd.h>

namespace cesr::cli {

CLI::Validator writable_output() {
  return CLI::Validator(
      [](const std::string& path) -> std::string {
        namespace fs = std::filesystem;
        if (path.empty() || path == "-") return {};
        const fs::path target(path);
        const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
        std::error_code ec;
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

void write_plot(const std::string& path, const std::string& content) {
  if (!path.empty()) write_output(path, content, "--plot");
}

void usage_error(std::string_view flag, const std::exception& e) {
  const std::string what = e.what();
  if (what.rfind("--", 0) == 0) throw UsageError(what);
  throw UsageError(fmt::format("{}: {}", flag, what));
}

Spectrum ProblemOptions::make_spectrum() const {
  Spectrum s;
  try {
    s.lambda = parse_spectrum(spectrum);
  } catch (const std::invalid_argument& e) {
    usage_error("--spectrum", e);
  }
  try {
    s.init = parse_init(init, s.lambda.size());
  } catch (const std::invalid_argument& e) {
    usage_error("--init", e);
  }
  return s;
}

MethodSpec ProblemOptions::make_method() const {
  MethodSpec m;
  try {
    m.kind = parse_method_kind(method);
    m.lr = lr;
    m.momentum = momentum;
    m.kappa = kappa;
    m.xi = xi;
    m.small_const = small_const;
    if (m.kind == MethodKind::Custom) {
      if (method_file.empty()) throw UsageError("--method-file is required for --method custom");
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

void add_problem_options(CLI::App& app, ProblemOptions& o, const ProblemFlags& flags) {
  app.add_option("--spectrum", o.spectrum,
                 "Eigenvalues of H: powerlaw:d=N,alpha=A[,scale=S] (S i^-A), "
                 "loguniform:d=N,kappa=K[,scale=S] (S K^(-(i-1)/(N-1))) or file:PATH "
                 "(one value per line, # comments)")
      ->capture_default_str()
      ->group("Problem");
  app.add_option("--init", o.init,
                 "Initial second moments E[e_0,i^2]: isotropic, powerlaw:beta=B (i^-B) or file:PATH")
      ->capture_default_str()
      ->group("Problem");
  app.add_option("--kurtosis", o.kurtosis,
                 "Fourth moment K of the whitened covariates (3 Gaussian, 1 Rademacher)")
      ->capture_default_str()
      ->group("Problem");
  app.add_option("--noise", o.noise, "Label-noise variance sigma^2")->capture_default_str()->group("Problem");
  app.add_option("--batch", o.batch, "Batch size B (fresh samples per step)")
      ->capture_default_str()
      ->group("Problem");
  if (flags.method) {
    auto* m = app.add_option("--method", o.method, "Method: sgd, hb, nag, asgd or custom")->group("Method");
    if (flags.method_required) m->required();
    if (flags.hyperparameters) {
      app.add_option("--lr", o.lr, "Step size eta (sgd, hb, nag, asgd)")->group("Method");
      app.add_option("--momentum", o.momentum, "Momentum beta in [0, 1) (hb, nag)")->group("Method");
      app.add_option("--kappa", o.kappa, "AccSGD long-step parameter kappa_a >= 1 (asgd)")->group("Method");
      app.add_option("--xi", o.xi, "AccSGD statistical advantage parameter xi > 0 (asgd)")->group("Method");
      app.add_option("--small-const", o.small_const, "AccSGD constant c (asgd)")
          ->capture_default_str()
          ->group("Method");
    }
    app.add_option("--method-file", o.method_file,
                   "JSON file {\"P\": [[..],[..]], \"q\": [..], \"r\": [..], \"o\": [..]} (custom)")
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

Format parse_json_or_table(const std::string& name) {
  const Format format = parse_format(name);
  if (format != Format::Json && format != Format::Text)
    throw UsageError(fmt::format("--format: '{}' is not one of json, table", name));
  return format;
}

void add_output_options(CLI::App& app, std::string& format, std::string& output, const std::string& choices,
                        const std::string& default_format) {
  format = default_format;
  app.add_option("--format", format, "Output format: " + choices)->capture_default_str()->group("Output");
  app.add_option("--output,-o", output, "Write to FILE (atomically) instead of standard output")
      ->check(writable_output())
      ->group("Output");
}

}  // namespace cesr::cli
