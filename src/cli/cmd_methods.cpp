// cesr methods: the method registry as a table or JSON.
#include "common.hpp"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

namespace cesr::cli {
namespace {

struct MethodsOptions {
  std::string format, output;
};

/// "2", or "2-3" for a row whose options add states.
std::string states_text(const MethodInfo& row) {
  if (row.states_max > row.states) return fmt::format("{}-{}", row.states, row.states_max);
  return std::to_string(row.states);
}

std::string methods_json() {
  using json = nlohmann::ordered_json;
  json out = json::array();
  for (const auto& row : methods()) {
    json hp = json::array();
    for (const auto& h : row.hyperparameters) {
      json def = nullptr;
      if (h.default_value) {
        if (!h.choices.empty()) def = std::string(h.choices.at(static_cast<std::size_t>(*h.default_value)));
        else if (h.flag) def = *h.default_value != 0;
        else def = *h.default_value;
      }
      hp.push_back({{"name", std::string(h.name)},
                    {"flag", flag_of(h.name)},
                    {"default", def},
                    {"required", !h.default_value && !h.optional},
                    {"range", h.range_text()},
                    {"tuned", h.search != Search::None},
                    {"search", std::string(to_string(h.search))},
                    {"description", std::string(h.description)}});
    }
    out.push_back({{"name", std::string(row.name)},
                   {"states", row.states},
                   {"states_max", std::max(row.states, row.states_max)},
                   {"constant", row.time == Time::Constant},
                   {"rate", row.time != Time::Varying},
                   {"description", std::string(row.description)},
                   {"hyperparameters", hp}});
  }
  return out.dump(2) + "\n";
}

std::string methods_table() {
  Table t{{"method", "states", "coefficients", "hyperparameters", "description"}, {}};
  for (const auto& row : methods()) {
    std::string hp;
    for (const auto& h : row.hyperparameters) {
      std::string item = flag_of(h.name);
      if (h.default_value) {
        if (!h.choices.empty()) item += "=" + std::string(h.choices.at(static_cast<std::size_t>(*h.default_value)));
        else if (!h.flag) item += fmt::format("={}", *h.default_value);
      } else if (h.optional) {
        item = "[" + item + "]";
      }
      if (h.search != Search::None) item += "*";
      hp += (hp.empty() ? "" : " ") + item;
    }
    if (row.from_file) hp = "--method-file";
    const char* time = row.time == Time::Constant           ? "constant"
                       : row.time == Time::ConstantAfterOne ? "constant after step 0"
                                                            : "varying";
    t.rows.push_back({Cell::string(std::string(row.name)), Cell::string(states_text(row)), Cell::string(time),
                      Cell::string(hp), Cell::string(std::string(row.description))});
  }
  return render(t, Format::Text) +
         "(* tuned by cesr tune and frontier; NAME=VALUE: default; [optional]. Any method with k <= 3 also takes\n"
         " --average ema:decay=G|polyak|tail:start=S. Details: docs/methods.md)\n";
}

int run_methods(const MethodsOptions& o) {
  const Format format = parse_json_or_table(o.format);
  write_output(o.output, format == Format::Json ? methods_json() : methods_table());
  return Exit::ok;
}

const Registrar registrar{{"methods", "List the methods, their hyperparameters and search spaces", 5,
                           [](CLI::App& app) {
  auto o = std::make_shared<MethodsOptions>();
  add_output_options(app, o->format, o->output, "table|json", "table");
  app.footer(
      "JSON: [{\"name\", \"states\" (k of the defaults), \"states_max\", \"constant\" (the same coefficients at every\n"
      "step), \"rate\" (constant from step 1 on: rate, stability and tune's rate objective apply),\n"
      "\"description\", \"hyperparameters\": [{\"name\", \"flag\",\n"
      "\"default\", \"required\", \"range\", \"tuned\", \"search\", \"description\"}]}].\n"
      "Example:\n  cesr methods --format json");
  return [o] { return run_methods(*o); };
}}};

}  // namespace
}  // namespace cesr::cli
