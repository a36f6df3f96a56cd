// cesr: exact compute-efficiency / serial-runtime trade-offs of stochastic momentum methods.
#include "common.hpp"
#include "registry.hpp"

#include "cesr/io.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string_view>
#include <vector>

namespace cesr::cli {
std::vector<Command>& commands() {
  static std::vector<Command> all;
  return all;
}

namespace {

// CLI11 2.1 reads integers with strtoull/strtoll in base 0, so "-1" wraps to
// 2^64 - 1 for an unsigned option, "010" is octal and "0x10" hexadecimal, and
// it reads "nan", "inf" and "1e999" into a double. These checks, added to every
// option of every command by its type, accept plain decimal numbers only (and
// strip leading zeros so that CLI11 reads them as decimal).
CLI::Validator whole_number(bool allow_sign) {
  return CLI::Validator(
      [allow_sign](std::string& text) -> std::string {
        std::size_t digits = 0;
        if (allow_sign && !text.empty() && (text[0] == '-' || text[0] == '+')) digits = 1;
        bool ok = text.size() > digits && text.find_first_not_of("0123456789", digits) == std::string::npos;
        if (!ok && text.find_first_of("eE.") != std::string::npos) {
          // 1e3 or 2.5e6: accepted when it is a whole number that a double holds
          // exactly (up to 2^53), and rewritten in digits for CLI11.
          char* end = nullptr;
          const double x = std::strtod(text.c_str(), &end);
          if (!text.empty() && end == text.c_str() + text.size() && std::isfinite(x) && x == std::floor(x) &&
              std::abs(x) <= 9007199254740992.0 && (allow_sign || x >= 0)) {
            text = fmt::format("{:.0f}", x);
            digits = text[0] == '-' ? 1 : 0;
            ok = true;
          }
        }
        if (!ok)
          return fmt::format("'{}' is not {}", text, allow_sign ? "an integer" : "a whole number >= 0");
        const auto first = std::min(text.find_first_not_of('0', digits), text.size() - 1);
        text.erase(digits, first - digits);
        // Out of the 64-bit range: strtoull would saturate silently.
        std::uint64_t magnitude = 0;
        const char* end = text.data() + text.size();
        if (std::from_chars(text.data() + digits, end, magnitude).ec != std::errc{} ||
            magnitude > (allow_sign ? std::uint64_t(INT64_MAX) : UINT64_MAX))
          return fmt::format("'{}' is too large", text);
        return {};
      },
      "");
}

CLI::Validator finite_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        char* end = nullptr;
        const double x = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size()) return {};  // CLI11 reports "Could not convert"
        if (!std::isfinite(x)) return fmt::format("'{}' is not a finite number", text);
        return {};
      },
      "");
}

// A list (1,8,64 or 1:64:x2) given to an option of one value: refused before
// the number checks, naming the option of the command that takes a list.
CLI::Validator list_given_for_one(std::string list_flag) {
  return CLI::Validator(
      [list_flag](std::string& text) -> std::string {
        if (text.find_first_of(",:") == std::string::npos) return {};
        return fmt::format("takes one value, got the list '{}'{}", text,
                           list_flag.empty() ? "" : fmt::format(" (for several: {} {})", list_flag, text));
      },
      "");
}

void add_number_checks(CLI::App& app) {
  for (CLI::Option* opt : app.get_options()) {
    const std::string type = opt->get_type_name();
    if (type.rfind("UINT", 0) == 0) opt->transform(whole_number(false));
    else if (type.rfind("INT", 0) == 0) opt->transform(whole_number(true));
    else if (type.rfind("FLOAT", 0) == 0) opt->check(finite_number());
  }
}

/// Edit distance (insertions, deletions, substitutions, adjacent swaps)
/// between two short option names.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i)
    for (std::size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

/// The message for an argument that `sub` does not take: an unknown option
/// with the nearest option names ("did you mean --lr?"), or a stray value.
std::string unexpected_argument(const CLI::App& sub, const std::string& arg) {
  if (arg.size() < 2 || arg[0] != '-')
    return fmt::format("unexpected argument '{}' (every value follows its option, e.g. --steps 100)", arg);
  const std::string name = arg.substr(0, arg.find('='));
  const std::string bare = name.substr(name.find_first_not_of('-'));
  std::vector<std::string> all;
  for (const CLI::Option* opt : sub.get_options()) {
    for (const auto& l : opt->get_lnames()) all.push_back("--" + l);
    for (const auto& s : opt->get_snames()) all.push_back("-" + s);
  }
  // Close names: within a third of the length (at least 2 edits), or the typed
  // name as a prefix (--spec for --spectrum).
  std::size_t best = std::string::npos;
  std::vector<std::string> near;
  for (const auto& candidate : all) {
    const std::string cbare = candidate.substr(candidate.find_first_not_of('-'));
    std::size_t dist = edit_distance(bare, cbare);
    if (bare.size() >= 3 && cbare.rfind(bare, 0) == 0) dist = 1;
    if (dist > std::max<std::size_t>(2, bare.size() / 3)) continue;
    if (dist < best) {
      best = dist;
      near.clear();
    }
    if (dist == best && std::find(near.begin(), near.end(), candidate) == near.end()) near.push_back(candidate);
  }
  std::string hint;
  for (std::size_t i = 0; i < near.size() && i < 3; ++i) hint += (i ? " or " : "") + near[i];
  return fmt::format("unknown option {}{} (see cesr {} --help)", name,
                     hint.empty() ? "" : fmt::format(" (did you mean {}?)", hint), sub.get_name());
}

}  // namespace
}  // namespace cesr::cli

int main(int argc, char** argv) {
  using namespace cesr::cli;
  CLI::App app{
      "cesr: exact compute efficiency vs. serial runtime of SGD, heavy ball, Nesterov and AccSGD\n"
      "on linear regression with diagonal covariance (expected loss from the exact second-moment\n"
      "recursion, no sampling). Run `cesr COMMAND --help` for a command's options.",
      "cesr"};
  app.set_version_flag("--version", std::string("cesr ") + CESR_VERSION);
  app.require_subcommand(1);
  app.fallthrough(false);
  auto& cmds = commands();
  std::sort(cmds.begin(), cmds.end(), [](const Command& a, const Command& b) { return a.order < b.order; });
  std::vector<std::pair<CLI::App*, std::function<int()>>> runners;
  for (auto& c : cmds) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    runners.emplace_back(sub, c.setup(*sub));
    add_number_checks(*sub);
    // (transform() puts a check first: this one runs before the number check)
    if (CLI::Option* batch = sub->get_option_no_throw("--batch")) {
      const CLI::Option* list = sub->get_option_no_throw("--batches");
      // (frontier's --batch is its list option --batches: nothing to add)
      if (batch->get_lnames().front() == "batch") batch->transform(list_given_for_one(list != batch ? "--batches" : ""));
    }
    if (CLI::Option* method = sub->get_option_no_throw("--method")) {
      const CLI::Option* list = sub->get_option_no_throw("--methods");
      if (list != method) method->transform(list_given_for_one(list ? "--methods" : ""));
    }
    sub->allow_extras();  // reported below, with the nearest option names

  }
  // Error messages name the command being run: the first argument that is a
  // command name (options of `cesr` itself come before it).
  std::string command = "cesr";
  for (int i = 1; i < argc && command == "cesr"; ++i)
    for (const auto& c : cmds)
      if (c.name == argv[i]) command = "cesr " + c.name;
  if (argc > 1 && argv[1][0] != '-' && command == "cesr") {
    std::string names;
    for (const auto& c : cmds) names += (names.empty() ? "" : ", ") + c.name;
    std::cerr << fmt::format("cesr: error: unknown command '{}' (commands: {}; see cesr --help)\n", argv[1], names);
    return Exit::usage;
  }
  try {
    app.parse(argc, argv);
    for (auto& [sub, run] : runners)
      if (sub->parsed()) {
        if (const auto extra = sub->remaining(); !extra.empty()) {
          std::cerr << fmt::format("{}: error: {}\n", command, unexpected_argument(*sub, extra.front()));
          return Exit::usage;
        }
        const int code = run();
        flush_notes();  // (not on a usage error: that is one line)
        return code;
      }
    return Exit::usage;
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // An unknown option explains a missing required one (--step for --steps): name it first.
    for (auto& [sub, run] : runners)
      if (const auto extra = sub->remaining(); !extra.empty()) {
        std::cerr << fmt::format("{}: error: {}\n", command, unexpected_argument(*sub, extra.front()));
        return Exit::usage;
      }
    std::string msg = e.what();
    std::replace(msg.begin(), msg.end(), '\n', ' ');
    std::cerr << fmt::format("{}: error: {}\n", command, msg);
    return Exit::usage;
  } catch (const UsageError& e) {
    std::cerr << fmt::format("{}: error: {}\n", command, e.what());
    return Exit::usage;
  } catch (const std::invalid_argument& e) {
    std::cerr << fmt::format("{}: error: {}\n", command, cli_message(e));
    return Exit::usage;
  } catch (const cesr::IoError& e) {
    std::cerr << fmt::format("{}: error: {}\n", command, e.what());
    return Exit::io;
  } catch (const std::bad_alloc&) {
    std::cerr << fmt::format("{}: error: out of memory (the problem is too large for this machine)\n", command);
    return Exit::usage;
  } catch (const std::exception& e) {
    std::cerr << fmt::format("{}: error: {}\n", command, e.what());
    return 4;
  }
}
