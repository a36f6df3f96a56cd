#include "cesr/frontier.hpp"

#include "cesr/parallel.hpp"
#include "cesr/stop.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <thread>

namespace cesr {

namespace {

std::string_view trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

std::uint64_t parse_batch(std::string_view text, std::string_view whole) {
  const std::string t(trim(text));
  double x = 0;
  try {
    x = parse_finite(t, "--batches");
  } catch (const std::invalid_argument&) {
    throw std::invalid_argument(fmt::format("--batches '{}': '{}' is not a number", whole, t));
  }
  if (!(x >= 1) || x != std::floor(x) || x > 9.0e15)
    throw std::invalid_argument(fmt::format("--batches '{}': '{}' is not a whole number >= 1", whole, t));
  return static_cast<std::uint64_t>(x);
}

}  // namespace

std::vector<std::uint64_t> parse_batches(std::string_view text) {
  std::vector<std::uint64_t> out;
  if (trim(text).empty()) throw std::invalid_argument("--batches: empty list");
  if (text.find(':') != std::string_view::npos) {
    const auto c1 = text.find(':'), c2 = text.find(':', c1 + 1);
    if (c2 == std::string_view::npos || text.find(':', c2 + 1) != std::string_view::npos)
      throw std::invalid_argument(fmt::format("--batches '{}': expected LO:HI:xF (e.g. 1:65536:x2)", text));
    const std::uint64_t lo = parse_batch(text.substr(0, c1), text);
    const std::uint64_t hi = parse_batch(text.substr(c1 + 1, c2 - c1 - 1), text);
    std::string_view factor_text = trim(text.substr(c2 + 1));
    if (factor_text.empty() || (factor_text[0] != 'x' && factor_text[0] != 'X'))
      throw std::invalid_argument(fmt::format("--batches '{}': the factor must be written xF (e.g. x2)", text));
    factor_text.remove_prefix(1);
    double factor = 0;
    try {
      factor = parse_finite(factor_text, "--batches");
    } catch (const std::invalid_argument&) {
      throw std::invalid_argument(fmt::format("--batches '{}': factor '{}' is not a number", text, factor_text));
    }
    if (!(factor > 1)) throw std::invalid_argument(fmt::format("--batches '{}': the factor must be > 1", text));
    if (hi < lo) throw std::invalid_argument(fmt::format("--batches '{}': HI must be >= LO", text));
    // LO F^k rounded to whole batches, distinct, up to HI (with a little slack
    // so that 1:65536:x2 ends exactly at 65536).
    // The loop runs log(HI/LO)/log(F) times: bounded before it starts (a factor
    // like x1.0000000000000002 would repeat the same rounded size for ever).
    const double iterations = std::log(static_cast<double>(hi) / static_cast<double>(lo)) / std::log(factor);
    if (!(iterations <= 1e6))
      throw std::invalid_argument(fmt::format("--batches '{}': the factor is too close to 1 (more than 10^6 steps "
                                              "from LO to HI)", text));
    for (int k = 0; k <= static_cast<int>(iterations) + 1; ++k) {
      const double b = std::round(static_cast<double>(lo) * std::pow(factor, k));
      if (b > static_cast<double>(hi) * (1 + 1e-12)) break;
      const auto v = static_cast<std::uint64_t>(b);
      if (out.empty() || v != out.back()) out.push_back(v);
      if (out.size() > 10000) throw std::invalid_argument(fmt::format("--batches '{}': more than 10000 sizes", text));
    }
    return out;
  }
  std::size_t pos = 0;
  for (;;) {
    const auto comma = text.find(',', pos);
    out.push_back(parse_batch(text.substr(pos, comma == std::string_view::npos ? comma : comma - pos), text));
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  std::vector<std::uint64_t> sorted = out;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
    throw std::invalid_argument(fmt::format("--batches '{}': a batch size is listed twice", text));
  return out;
}

std::vector<std::string> parse_methods(std::string_view text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  for (;;) {
    const auto comma = text.find(',', pos);
    const std::string name(trim(text.substr(pos, comma == std::string_view::npos ? comma : comma - pos)));
    const MethodInfo* row = nullptr;
    try {
      row = &method_info(name);
    } catch (const std::invalid_argument&) {
      throw FieldError("methods", fmt::format("methods '{}': unknown method '{}' (expected one of {})", text, name,
                                              method_names()));
    }
    if (row->from_file)
      throw FieldError("methods", fmt::format("methods '{}': {} methods have nothing to tune", text, name));
    if (std::find(out.begin(), out.end(), name) != out.end())
      throw FieldError("methods", fmt::format("methods '{}': '{}' is listed twice", text, name));
    out.push_back(name);
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return out;
}

std::optional<double> critical_batch(const std::vector<std::uint64_t>& batch, const std::vector<double>& ce) {
  if (batch.empty() || batch.size() != ce.size()) return std::nullopt;
  const std::size_t best = static_cast<std::size_t>(std::max_element(ce.begin(), ce.end()) - ce.begin());
  if (!(ce[best] > 0)) return std::nullopt;
  const double half = ce[best] / 2;
  for (std::size_t j = best + 1; j < ce.size(); ++j) {
    if (ce[j] > half) continue;
    // Between j-1 (above half) and j (at or below half): linear in (log B, log CE).
    const double x0 = std::log(static_cast<double>(batch[j - 1])), x1 = std::log(static_cast<double>(batch[j]));
    if (!(ce[j] > 0)) return std::exp(x0);  // fell off a cliff (unstable): the last good batch
    const double y0 = std::log(ce[j - 1]), y1 = std::log(ce[j]), y = std::log(half);
    const double t = y0 == y1 ? 1.0 : (y0 - y) / (y0 - y1);
    return std::exp(x0 + std::clamp(t, 0.0, 1.0) * (x1 - x0));
  }
  return std::nullopt;
}

std::string kappa_text(const FrontierSummary& s) {
  if (std::isfinite(s.kappa)) return fmt::format("{:.4g}", s.kappa);
  const double e = std::floor(s.log10_kappa);
  return fmt::format("{:.4g}e+{:.0f}", std::pow(10.0, s.log10_kappa - e), e);
}

FrontierSummary summarize(const Spectrum& spectrum, const std::vector<FrontierRow>& rows,
                          const std::vector<std::string>& methods, Objective objective) {
  FrontierSummary s;
  // lambda_max / lambda_min can exceed the double range (a spectrum holding
  // 1e308 and 4e-4): kappa is then NaN, the documented null of the JSON and
  // CSV forms (the text form prints it from its logarithm), while sqrt(kappa)
  // and tr(H)/lambda_max are formed so that they stay finite.
  const double lmax = spectrum.lambda_max(), lmin = spectrum.lambda_min();
  s.kappa = lmax / lmin;
  if (!std::isfinite(s.kappa)) s.kappa = std::numeric_limits<double>::quiet_NaN();
  s.log10_kappa = std::log10(lmax) - std::log10(lmin);
  s.sqrt_kappa = std::sqrt(lmax) / std::sqrt(lmin);
  s.trace_over_max = 0;
  for (std::size_t i = 0; i < spectrum.lambda.size(); ++i)
    s.trace_over_max += spectrum.weight_at(i) * (spectrum.lambda[i] / lmax);
  std::optional<double> crit_sgd, crit_hb;
  for (const std::string& m : methods) {
    std::vector<const FrontierRow*> mine;
    for (const auto& r : rows)
      if (r.method == m) mine.push_back(&r);
    std::sort(mine.begin(), mine.end(), [](auto* a, auto* b) { return a->batch < b->batch; });
    MethodSummary ms;
    ms.method = m;
    std::vector<std::uint64_t> batch;
    std::vector<double> ce;
    for (auto* r : mine) {
      batch.push_back(r->batch);
      ce.push_back(r->ce);
      if (r->ce > 0 && (!ms.best_ce || r->ce > *ms.best_ce)) {
        ms.best_ce = r->ce;
        ms.best_ce_batch = r->batch;
      }
    }
    if (objective == Objective::Final) {
      for (auto* r : mine)
        if (r->tuned.final_loss && (!ms.best_loss || *r->tuned.final_loss < *ms.best_loss)) {
          ms.best_loss = *r->tuned.final_loss;
          ms.best_batch = r->batch;
        }
      if (ms.best_loss)
        for (auto* r : mine)
          if (r->tuned.final_loss && *r->tuned.final_loss <= (1 + final_tolerance) * *ms.best_loss)
            ms.critical_batch = std::max(ms.critical_batch.value_or(0.0), static_cast<double>(r->batch));
      s.methods.push_back(ms);
      continue;
    }
    ms.critical_batch = critical_batch(batch, ce);
    if (mine.size() >= 2) {
      const FrontierRow& lo = *mine.front();
      const FrontierRow& hi = *mine.back();
      // Serial runtime S(B): steps, or 1/gap for the rate objective.
      if (objective == Objective::Steps) {
        if (lo.tuned.steps && hi.tuned.steps && *hi.tuned.steps > 0)
          ms.mccandlish_batch = static_cast<double>(lo.batch) * static_cast<double>(*lo.tuned.steps) /
                                static_cast<double>(*hi.tuned.steps);
      } else if (lo.tuned.has_rate && hi.tuned.has_rate && lo.tuned.stable && hi.tuned.stable && lo.tuned.gap > 0 &&
                 hi.tuned.gap > 0) {
        ms.mccandlish_batch = static_cast<double>(lo.batch) * hi.tuned.gap / lo.tuned.gap;
      }
    }
    // The heavy-ball window of the paper: heavy ball's critical batch over SGD's.
    if (m == "sgd") crit_sgd = ms.critical_batch;
    if (m == "hb") crit_hb = ms.critical_batch;
    s.methods.push_back(ms);
  }
  if (crit_sgd && crit_hb) s.window_ratio = *crit_hb / *crit_sgd;
  return s;
}

Frontier compute_frontier(const Spectrum& spectrum, const NoiseModel& noise, const FrontierOptions& options) {
  noise.validate();
  if (options.methods.empty()) throw FieldError("methods", "methods: no method given");
  for (const std::string& m : options.methods)
    if (method_info(m).from_file) throw FieldError("methods", fmt::format("methods: {} methods have nothing to tune", m));
  // A fixed hyperparameter applies to the methods that have it.
  for (const auto& [field, v] : options.tune.fixed) {
    bool used = false;
    for (const std::string& m : options.methods) used |= method_info(m).find(field) != nullptr;
    if (!used) throw FieldError(field, fmt::format("{} {} does not apply to any of the methods", field, v));
  }
  const auto options_for = [&](const std::string& m) {
    TuneOptions t = options.tune;
    const MethodInfo& row = method_info(m);
    for (auto it = t.fixed.begin(); it != t.fixed.end();) it = row.find(it->first) ? std::next(it) : t.fixed.erase(it);
    for (auto it = t.boxes.begin(); it != t.boxes.end();) it = row.find(it->first) ? std::next(it) : t.boxes.erase(it);
    return t;
  };
  Frontier f;
  f.spectrum = spectrum;
  f.noise = noise;
  f.options = options;
  if (f.options.batches.empty()) f.options.batches = parse_batches("1:65536:x2");
  const bool final_objective = options.tune.objective == Objective::Final;
  if (final_objective && options.samples < 1)
    throw FieldError("samples", "samples: the final objective needs a sample budget N >= 1");
  if (!final_objective) options.tune.target.validate(spectrum.initial_loss());

  const std::size_t nb = f.options.batches.size();
  const std::size_t total = options.methods.size() * nb;
  f.rows.resize(total);
  for (std::size_t i = 0; i < total; ++i) {
    f.rows[i].method = options.methods[i / nb];
    f.rows[i].batch = f.options.batches[i % nb];
  }
  // Fast search: each method's batches form a chain, tuned in the order given,
  // each batch starting from the optimum of the one before (continuation);
  // chains run in parallel, so the rows do not depend on the thread count.
  // Global search: every row on its own.
  const bool chained = options.tune.search_mode == SearchMode::Fast && !final_objective;
  std::vector<std::size_t> units;  // first row of each unit of work
  if (chained) {
    for (std::size_t m = 0; m < options.methods.size(); ++m) units.push_back(m * nb);
    // The methods with more hyperparameters take longer: start them first.
    const auto tuned_axes = [&](std::size_t first) {
      int n = 0;
      for (const auto& h : method_info(f.rows[first].method).hyperparameters) n += h.search != Search::None;
      return n;
    };
    std::stable_sort(units.begin(), units.end(),
                     [&](std::size_t a, std::size_t b) { return tuned_axes(a) > tuned_axes(b); });
  } else {
    for (std::size_t i = 0; i < total; ++i) units.push_back(i);
  }
  const std::size_t unit_rows = chained ? nb : 1;
  unsigned threads = options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  threads = static_cast<unsigned>(std::min<std::size_t>(threads, units.size()));

  std::atomic<std::size_t> next{0};
  std::mutex mutex;
  std::size_t done = 0;
  std::vector<char> finished(total, 0);
  std::exception_ptr failure;
  const std::atomic<bool>* stop = stop_flag();  // the workers poll the caller's flag
  // Kernel threads: the cores divided among the workers; a worker that runs
  // out of work hands its share to the ones still running (the rows do not
  // depend on it: the kernels reduce in a fixed order).
  const unsigned cores = options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  const unsigned share = std::max(1u, cores / std::max(1u, threads));
  std::atomic<unsigned> idle{0};
  auto work = [&] {
    const StopScope scope(stop);
    const KernelThreads kernels(share, &idle);
    struct Leave {
      std::atomic<unsigned>& idle;
      unsigned share;
      ~Leave() { idle += share; }
    } leave{idle, share};
    for (;;) {
      const std::size_t u = next.fetch_add(1);
      if (u >= units.size()) return;
      std::vector<double> start;  // the previous batch's optimum (chains)
      for (std::size_t i = units[u]; i < units[u] + unit_rows; ++i) {
        {
          std::lock_guard lock(mutex);
          if (failure) return;
        }
        FrontierRow& row = f.rows[i];
        try {
          NoiseModel n = noise;
          n.batch = row.batch;
          TuneOptions t = options_for(row.method);
          if (final_objective) t.horizon = options.samples / row.batch;  // T = floor(N / B)
          if (chained) t.start = start;
          if (!final_objective || t.horizon >= 1) row.tuned = tune(spectrum, row.method, n, t);
          if (chained && row.tuned.stable && !row.tuned.coordinates.empty()) start = row.tuned.coordinates;
          const double B = static_cast<double>(row.batch);
          if (final_objective)
            row.ce = 0.0;  // not a rate: the final objective compares losses at one budget
          else if (options.tune.objective == Objective::Rate)
            row.ce = row.tuned.has_rate && row.tuned.stable && row.tuned.gap > 0 ? row.tuned.gap / B : 0.0;
          else
            row.ce = row.tuned.steps && *row.tuned.steps > 0 ? 1.0 / (B * static_cast<double>(*row.tuned.steps)) : 0.0;
        } catch (...) {
          std::lock_guard lock(mutex);
          if (!failure) failure = std::current_exception();
          return;
        }
        std::lock_guard lock(mutex);
        ++done;
        finished[i] = 1;
        if (options.progress) {
          // An exception from the callback stops the sweep (it is rethrown below);
          // escaping a worker thread it would end the program.
          try {
            options.progress(done, total);
          } catch (...) {
            if (!failure) failure = std::current_exception();
            return;
          }
        }
      }
    }
  };
  if (threads <= 1) {
    work();
  } else {
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t) pool.emplace_back(work);
    for (auto& t : pool) t.join();
  }
  if (failure && options.keep_partial) {
    // Stopped on request: keep the finished rows (any other failure is rethrown).
    try {
      std::rethrow_exception(failure);
    } catch (const Stopped&) {
      std::vector<FrontierRow> kept;
      for (std::size_t i = 0; i < total; ++i)
        if (finished[i]) kept.push_back(std::move(f.rows[i]));
      f.rows = std::move(kept);
      f.complete = false;
      failure = nullptr;
    }
  }
  if (failure) std::rethrow_exception(failure);
  f.summary = summarize(spectrum, f.rows, options.methods, options.tune.objective);
  return f;
}

namespace {

Cell num(double x) { return std::isfinite(x) ? Cell::number(format_real(x, 17)) : Cell::null(); }
Cell opt_num(const std::optional<double>& x) { return x ? num(*x) : Cell::null(); }
Cell whole(std::uint64_t x) { return Cell::number(std::to_string(x)); }

}  // namespace

namespace {

/// The tuned hyperparameters of the frontier's methods, in registry order of
/// first appearance (one column each).
std::vector<std::string> parameter_columns(const Frontier& f) {
  std::vector<std::string> out;
  for (const std::string& m : f.options.methods)
    for (const auto& h : method_info(m).hyperparameters)
      if (h.search != Search::None && std::find(out.begin(), out.end(), h.name) == out.end())
        out.emplace_back(h.name);
  return out;
}

/// The hyperparameters of a row that its method tunes (or that were fixed).
std::vector<std::pair<std::string, double>> row_parameters(const FrontierRow& r) {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& h : method_info(r.method).hyperparameters) {
    if (h.search == Search::None && !r.tuned.method.values.count(h.name)) continue;
    if (const auto v = r.tuned.method.get(h.name)) out.emplace_back(h.name, *v);
  }
  return out;
}

}  // namespace

Table rows_table(const Frontier& f) {
  const std::vector<std::string> columns = parameter_columns(f);
  const bool final_objective = f.options.tune.objective == Objective::Final;
  Table t{final_objective ? std::vector<std::string>{"method", "batch", "steps", "loss"}
                          : std::vector<std::string>{"method", "batch", "gap", "steps", "ce"},
          {}};
  for (const auto& c : columns) t.columns.push_back(c);
  for (const auto& r : f.rows) {
    const bool stable = r.tuned.stable && r.tuned.has_rate;
    std::vector<Cell> cells;
    if (final_objective)
      cells = {Cell::string(r.method), whole(r.batch), whole(f.options.samples / r.batch),
               r.tuned.final_loss ? num(*r.tuned.final_loss) : Cell::null()};
    else
      cells = {Cell::string(r.method), whole(r.batch), stable ? num(r.tuned.gap) : Cell::null(),
               r.tuned.steps ? whole(*r.tuned.steps) : Cell::null(), r.ce > 0 ? num(r.ce) : Cell::null()};
    const auto params = row_parameters(r);
    for (const auto& c : columns) {
      const auto it = std::find_if(params.begin(), params.end(), [&](const auto& p) { return p.first == c; });
      cells.push_back(it == params.end() ? Cell::null() : num(it->second));
    }
    t.rows.push_back(std::move(cells));
  }
  return t;
}

Table summary_table(const Frontier& f) {
  if (f.options.tune.objective == Objective::Final) {
    Table t{{"method", "best_loss", "best_batch", "critical_batch"}, {}};
    for (const auto& m : f.summary.methods)
      t.rows.push_back({Cell::string(m.method), opt_num(m.best_loss),
                        m.best_batch ? whole(*m.best_batch) : Cell::null(), opt_num(m.critical_batch)});
    return t;
  }
  Table t{{"method", "best_ce", "best_ce_batch", "critical_batch", "mccandlish_batch"}, {}};
  for (const auto& m : f.summary.methods)
    t.rows.push_back({Cell::string(m.method), opt_num(m.best_ce),
                      m.best_ce_batch ? whole(*m.best_ce_batch) : Cell::null(),
                      opt_num(m.critical_batch), opt_num(m.mccandlish_batch)});
  return t;
}

Table summary_csv_table(const Frontier& f) {
  Table t = summary_table(f);
  if (f.options.tune.objective == Objective::Final) return t;
  const auto& s = f.summary;
  for (const char* c : {"window_ratio", "sqrt_kappa", "trace_over_max", "kappa"}) t.columns.push_back(c);
  for (auto& row : t.rows) {
    row.push_back(opt_num(s.window_ratio));
    row.push_back(num(s.sqrt_kappa));
    row.push_back(num(s.trace_over_max));
    row.push_back(num(s.kappa));
  }
  return t;
}

std::string frontier_json(const Frontier& f) {
  using json = nlohmann::ordered_json;  // keys in the order of the normative layout
  const auto opt = [](const std::optional<double>& x) { return x ? json(*x) : json(nullptr); };
  const auto finite = [](double x) { return std::isfinite(x) ? json(x) : json(nullptr); };
  json problem = {
      {"spectrum", f.spectrum_text},
      {"init", f.init_text},
      {"d", f.spectrum.weighted() ? json(f.spectrum.directions()) : json(f.spectrum.dim())},
      {"lambda_max", f.spectrum.lambda_max()},
      {"lambda_min", f.spectrum.lambda_min()},
      {"trace", finite(f.spectrum.trace())},
      {"kurtosis", f.noise.kurtosis},
      {"noise", f.noise.label_noise},
      {"objective", std::string(to_string(f.options.tune.objective))},
      {"target", f.options.tune.target.eps},
      {"relative", f.options.tune.target.relative},
  };
  if (f.spectrum.weighted()) {
    problem["lines"] = f.spectrum.dim();
    problem["fractional_weights"] = f.spectrum.fractional();
  }
  if (f.noise.additive()) {
    problem["noise_model"] = "additive";
    problem["noise_scale"] = f.spectrum.noise_covariance.empty() ? json(f.noise.noise_scale) : json(nullptr);
  }
  const bool final_objective = f.options.tune.objective == Objective::Final;
  if (final_objective) {
    problem.erase("target");
    problem.erase("relative");
    problem["samples"] = f.options.samples;
  }
  json rows = json::array();
  for (const auto& r : f.rows) {
    json params = json::object();
    for (const auto& [name, v] : row_parameters(r)) params[name] = finite(v);
    if (final_objective) {
      rows.push_back({{"method", r.method},
                      {"batch", r.batch},
                      {"steps", f.options.samples / r.batch},
                      {"loss", r.tuned.final_loss ? finite(*r.tuned.final_loss) : json(nullptr)},
                      {"params", params}});
      continue;
    }
    rows.push_back({{"method", r.method},
                    {"batch", r.batch},
                    {"gap", r.tuned.stable && r.tuned.has_rate ? finite(r.tuned.gap) : json(nullptr)},
                    {"steps", r.tuned.steps ? json(*r.tuned.steps) : json(nullptr)},
                    {"ce", r.ce > 0 ? finite(r.ce) : json(nullptr)},
                    {"params", params}});
  }
  json methods = json::object();
  for (const auto& m : f.summary.methods)
    if (final_objective)
      methods[m.method] = {{"best_loss", opt(m.best_loss)},
                           {"best_batch", m.best_batch ? json(*m.best_batch) : json(nullptr)},
                           {"critical_batch", opt(m.critical_batch)}};
    else
      methods[m.method] = {{"best_ce", opt(m.best_ce)},
                                                 {"best_ce_batch", m.best_ce_batch ? json(*m.best_ce_batch) : json(nullptr)},
                                                 {"critical_batch", opt(m.critical_batch)},
                                                 {"mccandlish_batch", opt(m.mccandlish_batch)}};
  json summary = {{"methods", methods},
                  {"window_ratio", opt(f.summary.window_ratio)},
                  {"sqrt_kappa", f.summary.sqrt_kappa},
                  {"trace_over_max", f.summary.trace_over_max},
                  {"kappa", f.summary.kappa}};
  json out = {{"problem", problem}, {"rows", rows}, {"summary", summary}};
  if (!f.complete) out["complete"] = false;  // interrupted: the rows finished before the stop
  return out.dump(2);
}

std::string render_frontier(const Frontier& f, Format format, const std::string& title, int digits,
                            FrontierParts parts) {
  if (format == Format::Json) return frontier_json(f) + "\n";
  if (format == Format::Csv)
    return render(parts == FrontierParts::Summary ? summary_csv_table(f) : rows_table(f), Format::Csv);
  const bool rows = parts != FrontierParts::Summary, summary = parts != FrontierParts::Rows;
  RenderOptions ro;
  ro.digits = format == Format::Text ? 4 : digits;
  const auto window_text = [&] {
    const auto& s = f.summary;
    if (f.options.tune.objective == Objective::Final)
      return fmt::format("samples N = {}: batch B runs floor(N/B) steps; critical_batch = the largest B whose tuned "
                         "L_T is within {:.0f}% of the best",
                         f.options.samples, 100 * final_tolerance);
    return fmt::format("window B_crit(hb)/B_crit(sgd) = {}, sqrt(kappa) = {:.4g}, tr(H)/lambda_max = {:.4g}, "
                       "kappa = {}",
                       s.window_ratio ? fmt::format("{:.4g}", *s.window_ratio) : std::string("n/a"), s.sqrt_kappa,
                       s.trace_over_max, kappa_text(s));
  };
  std::string out;
  if (format == Format::Text) {
    if (!title.empty()) out += "== " + title + " ==\n";
    if (rows) out += render(rows_table(f), Format::Text, ro) + (summary ? "\n" : "");
    if (summary) out += render(summary_table(f), Format::Text, ro) + window_text() + "\n";
  } else if (format == Format::Markdown) {
    if (!title.empty()) out += "### " + title + "\n\n";
    if (rows) out += render(rows_table(f), Format::Markdown, ro) + (summary ? "\n" : "");
    if (summary) out += render(summary_table(f), Format::Markdown, ro) + "\n" + window_text() + "\n";
  } else {
    ro.caption = title.empty() ? "Tuned frontier" : "Tuned frontier: " + title;
    if (rows) out += render(rows_table(f), Format::Latex, ro);
    ro.caption = (title.empty() || rows ? "Summary: " : "Summary, " + title + ": ") + window_text();
    if (summary) out += render(summary_table(f), Format::Latex, ro);
  }
  return out;
}

}  // namespace cesr
