// Schedules (include/cesr/schedule.hpp): parsing and evaluation.
#include "cesr/schedule.hpp"

#include "cesr/io.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <numbers>
#include <sstream>

namespace cesr {

namespace {

struct Parsed {
  std::string kind;
  std::map<std::string, std::string> keys;
};

Parsed split(std::string_view text, const std::string& field) {
  Parsed p;
  const auto colon = text.find(':');
  p.kind = std::string(text.substr(0, colon));
  if (p.kind == "file" && colon == std::string_view::npos)
    throw FieldError(field, fmt::format("{} '{}': expected file:PATH", field, text));
  if (colon == std::string_view::npos || p.kind == "file") return p;
  std::string_view rest = text.substr(colon + 1);
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    const auto eq = item.find('=');
    if (eq == std::string_view::npos)
      throw FieldError(field, fmt::format("{} '{}': '{}' is not key=value", field, text, item));
    if (!p.keys.emplace(std::string(item.substr(0, eq)), std::string(item.substr(eq + 1))).second)
      throw FieldError(field, fmt::format("{} '{}': '{}' is given twice", field, text, item.substr(0, eq)));
  }
  return p;
}

double number(const std::string& value, const std::string& what, const std::string& field, std::string_view text) {
  std::size_t used = 0;
  double x = 0;
  try {
    x = std::stod(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (value.empty() || used != value.size() || !std::isfinite(x))
    throw FieldError(field, fmt::format("{} '{}': {} '{}' is not a finite number", field, text, what, value));
  return x;
}

std::uint64_t whole(const std::string& value, const std::string& what, const std::string& field,
                    std::string_view text, std::uint64_t min) {
  const double x = number(value, what, field, text);
  if (!(x >= static_cast<double>(min) && x == std::floor(x) && x < 9.2e18))
    throw FieldError(field, fmt::format("{} '{}': {} must be a whole number >= {}, got {}", field, text, what, min,
                                        value));
  return static_cast<std::uint64_t>(x);
}

/// CSV "step,NAME" with a header, first row step 0, steps increasing; values
/// checked by `valid` (a rule text for the message).
std::vector<std::pair<std::uint64_t, double>> read_table(const std::string& path, const std::string& column,
                                                         const std::string& field, bool (*valid)(double),
                                                         const char* rule) {
  const auto fail = [&](const std::string& why) {
    return FieldError(field, fmt::format("{}: '{}': {}", field, path, why));
  };
  std::string text;
  try {
    text = read_text_file(path, "schedule file");
  } catch (const std::invalid_argument& e) {
    throw FieldError(field, fmt::format("{}: {}", field, e.what()));
  }
  std::istringstream in(text);
  std::string line;
  std::size_t lineno = 0;
  std::vector<std::pair<std::uint64_t, double>> out;
  bool header = false;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    if (!header) {
      if (line != "step," + column) throw fail(fmt::format("line {}: the header must be step,{}", lineno, column));
      header = true;
      continue;
    }
    const auto comma = line.find(',');
    if (comma == std::string::npos) throw fail(fmt::format("line {}: expected step,{}", lineno, column));
    const std::string where = fmt::format("line {}", lineno);
    std::uint64_t step = 0;
    double value = 0;
    try {
      step = whole(line.substr(0, comma), "step", field, where, 0);
      value = number(line.substr(comma + 1), column, field, where);
    } catch (const FieldError&) {
      throw fail(fmt::format("line {}: '{}' is not step,{} with a whole step and a finite number", lineno, line,
                             column));
    }
    if (!valid(value)) throw fail(fmt::format("line {}: {} must be {}, got {}", lineno, column, rule, value));
    if (out.empty() && step != 0) throw fail(fmt::format("line {}: the first row must be step 0", lineno));
    if (!out.empty() && step <= out.back().first)
      throw fail(fmt::format("line {}: steps must increase (step {} after {})", lineno, step, out.back().first));
    out.emplace_back(step, value);
  }
  if (out.empty()) throw fail("no rows");
  return out;
}

}  // namespace

Schedule Schedule::learning_rate(std::string_view text, std::string_view field_name) {
  Schedule s;
  const std::string field(field_name);
  s.field_ = field;
  s.text_ = std::string(text);
  if (text.empty() || text == "constant") {
    s.text_ = "constant";
    return s;
  }
  const Parsed p = split(text, field);
  const auto fail = [&](const std::string& why) {
    return FieldError(field, fmt::format("{} '{}': {}", field, text, why));
  };
  if (p.kind == "file") {
    s.shape_ = Shape::Table;
    s.table_ = read_table(std::string(text.substr(5)), "factor", field, [](double x) { return x >= 0; }, ">= 0");
    return s;
  }
  const std::map<std::string, Shape> shapes{{"cosine", Shape::Cosine}, {"linear", Shape::Linear}, {"wsd", Shape::Wsd},
                                            {"step", Shape::Step},     {"invtime", Shape::InvTime}};
  const auto it = shapes.find(p.kind);
  if (it == shapes.end())
    throw fail("unknown shape (expected constant, cosine, linear, wsd, step, invtime or file:PATH)");
  s.shape_ = it->second;
  const bool horizon_shape = s.shape_ == Shape::Cosine || s.shape_ == Shape::Linear || s.shape_ == Shape::Wsd;
  std::vector<std::string> allowed{"warmup"};
  if (horizon_shape) allowed.insert(allowed.end(), {"steps", "final"});
  if (s.shape_ == Shape::Wsd) allowed.push_back("decay");
  if (s.shape_ == Shape::Step) allowed.insert(allowed.end(), {"every", "factor"});
  if (s.shape_ == Shape::InvTime) allowed.insert(allowed.end(), {"t0", "power"});
  for (const auto& [key, value] : p.keys)
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
      throw fail(fmt::format("unknown key '{}' for {}", key, p.kind));
  const auto get = [&](const char* key) -> const std::string* {
    const auto k = p.keys.find(key);
    return k == p.keys.end() ? nullptr : &k->second;
  };
  // warmup / decay: whole steps, or (horizon shapes) a percentage of the horizon.
  const auto steps_or_percent = [&](const char* key, std::uint64_t& steps, std::optional<double>& fraction) {
    const std::string* v = get(key);
    if (!v) return;
    if (!v->empty() && v->back() == '%') {
      if (!horizon_shape) throw fail(fmt::format("{} as a percentage needs cosine, linear or wsd", key));
      const double pct = number(v->substr(0, v->size() - 1), key, field, text);
      if (!(pct >= 0 && pct <= 100)) throw fail(fmt::format("{} must be a percentage in [0, 100], got {}", key, *v));
      fraction = pct / 100;
    } else {
      steps = whole(*v, key, field, text, 0);
    }
  };
  steps_or_percent("warmup", s.warmup_, s.warmup_fraction_);
  if (s.shape_ == Shape::Wsd) {
    if (!get("decay")) throw fail("wsd needs decay=D");
    steps_or_percent("decay", s.decay_, s.decay_fraction_);
  }
  if (const std::string* v = get("steps")) s.steps_ = whole(*v, "steps", field, text, 1);
  if (const std::string* v = get("final")) {
    s.final_ = number(*v, "final", field, text);
    if (!(s.final_ >= 0)) throw fail(fmt::format("final must be >= 0, got {}", *v));
  }
  if (s.shape_ == Shape::Step) {
    if (!get("every") || !get("factor")) throw fail("step needs every=N and factor=G");
    s.every_ = whole(*get("every"), "every", field, text, 1);
    s.factor_ = number(*get("factor"), "factor", field, text);
    if (!(s.factor_ > 0)) throw fail(fmt::format("factor must be > 0, got {}", *get("factor")));
  }
  if (s.shape_ == Shape::InvTime) {
    if (!get("t0")) throw fail("invtime needs t0=T0");
    s.t0_ = number(*get("t0"), "t0", field, text);
    if (!(s.t0_ > 0)) throw fail(fmt::format("t0 must be > 0, got {}", *get("t0")));
    if (const std::string* v = get("power")) {
      s.power_ = number(*v, "power", field, text);
      if (!(s.power_ >= 0)) throw fail(fmt::format("power must be >= 0, got {}", *v));
    }
  }
  if (!s.needs_horizon()) s = s.resolve(0);  // checks the relations now
  return s;
}

Schedule Schedule::momentum(std::string_view text, std::string_view field_name) {
  Schedule s;
  s.field_ = std::string(field_name);
  if (text.empty() || text == "constant") return s;
  s.text_ = std::string(text);
  if (text.rfind("file:", 0) != 0)
    throw FieldError(s.field_, fmt::format("{} '{}': expected constant or file:PATH (CSV step,momentum)", s.field_, text));
  s.shape_ = Shape::Table;
  s.table_ = read_table(std::string(text.substr(5)), "momentum", s.field_,
                        [](double x) { return x >= 0 && x < 1; }, "in [0, 1)");
  return s;
}

Schedule Schedule::batch(std::string_view text, std::string_view field_name) {
  Schedule s;
  const std::string field(field_name);
  s.field_ = field;
  if (text.empty() || text == "constant") return s;
  s.text_ = std::string(text);
  const auto fail = [&](const std::string& why) {
    return FieldError(field, fmt::format("{} '{}': {}", field, text, why));
  };
  const Parsed p = split(text, field);
  if (p.kind == "file") {
    s.shape_ = Shape::Table;
    s.table_ = read_table(std::string(text.substr(5)), "batch", field,
                          [](double x) { return x >= 1 && x == std::floor(x) && x < 1.8e19; },
                          "a whole number >= 1");
    return s;
  }
  if (p.kind != "ramp") throw fail("expected constant, ramp:start=B0,every=N,max=BMAX[,factor=F] or file:PATH");
  for (const auto& [key, value] : p.keys)
    if (key != "start" && key != "every" && key != "max" && key != "factor")
      throw fail(fmt::format("unknown key '{}' for ramp", key));
  for (const char* key : {"start", "every", "max"})
    if (!p.keys.count(key)) throw fail(fmt::format("ramp needs {}=", key));
  s.shape_ = Shape::Ramp;
  s.start_ = static_cast<double>(whole(p.keys.at("start"), "start", field, text, 1));
  s.every_ = whole(p.keys.at("every"), "every", field, text, 1);
  s.max_ = static_cast<double>(whole(p.keys.at("max"), "max", field, text, 1));
  if (p.keys.count("factor")) {
    s.factor_ = number(p.keys.at("factor"), "factor", field, text);
    if (!(s.factor_ >= 1)) throw fail(fmt::format("factor must be >= 1, got {}", p.keys.at("factor")));
  }
  if (s.max_ < s.start_) throw fail("max must be >= start");
  return s;
}

bool Schedule::needs_horizon() const {
  const bool horizon_shape = shape_ == Shape::Cosine || shape_ == Shape::Linear || shape_ == Shape::Wsd;
  return horizon_shape && (!steps_ || warmup_fraction_ || decay_fraction_);
}

Schedule Schedule::resolve(std::uint64_t horizon) const {
  Schedule s = *this;
  if (!needs_horizon()) {
    if (s.shape_ == Shape::Cosine || s.shape_ == Shape::Linear || s.shape_ == Shape::Wsd) {
      const auto fail = [&](const std::string& why) {
        return FieldError(field_, fmt::format("{} '{}': {}", field_, text_, why));
      };
      if (*s.steps_ <= s.warmup_)
        throw fail(fmt::format("steps {} must exceed warmup {}", *s.steps_, s.warmup_));
      if (s.shape_ == Shape::Wsd && (s.decay_ < 1 || s.decay_ > *s.steps_ - s.warmup_))
        throw fail(fmt::format("decay {} must be in [1, steps - warmup] = [1, {}]", s.decay_, *s.steps_ - s.warmup_));
    }
    return s;
  }
  if (!s.steps_) {
    if (horizon < 1)
      throw FieldError(field_, fmt::format("{} '{}': steps is left out and the run has no horizon", field_, text_));
    s.steps_ = horizon;
  }
  const double T = static_cast<double>(*s.steps_);
  if (s.warmup_fraction_) s.warmup_ = static_cast<std::uint64_t>(std::llround(*s.warmup_fraction_ * T));
  if (s.decay_fraction_) s.decay_ = static_cast<std::uint64_t>(std::llround(*s.decay_fraction_ * T));
  s.warmup_fraction_.reset();
  s.decay_fraction_.reset();
  return s.resolve(horizon);
}

double Schedule::at(std::uint64_t t) const {
  switch (shape_) {
    case Shape::Constant: return 1;
    case Shape::Table: {
      const auto it = std::upper_bound(table_.begin(), table_.end(), t,
                                       [](std::uint64_t v, const auto& row) { return v < row.first; });
      return std::prev(it)->second;
    }
    case Shape::Ramp: {
      const double k = static_cast<double>(t / every_);
      return std::min(max_, std::floor(start_ * std::pow(factor_, k)));
    }
    default: break;
  }
  if (t < warmup_) return static_cast<double>(t + 1) / static_cast<double>(warmup_);
  const double u = static_cast<double>(t - warmup_);
  switch (shape_) {
    case Shape::Cosine: {
      if (t >= *steps_) return final_;
      const double span = static_cast<double>(*steps_ - warmup_);
      return final_ + (1 - final_) * (1 + std::cos(std::numbers::pi * u / span)) / 2;
    }
    case Shape::Linear: {
      if (t >= *steps_) return final_;
      return 1 - (1 - final_) * u / static_cast<double>(*steps_ - warmup_);
    }
    case Shape::Wsd: {
      if (t >= *steps_) return final_;
      const std::uint64_t begin = *steps_ - decay_;
      if (t < begin) return 1;
      return 1 - (1 - final_) * static_cast<double>(t - begin) / static_cast<double>(decay_);
    }
    case Shape::Step: return std::pow(factor_, std::floor(u / static_cast<double>(every_)));
    case Shape::InvTime: return std::pow(1 + u / t0_, -power_);
    default: return 1;
  }
}

}  // namespace cesr
