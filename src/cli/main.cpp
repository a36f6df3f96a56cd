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

void add_number_checks(CLI::App& app) {
  for (CLI::Option* opt : app.get_options()) {
    const std::string type = opt->get_type_name();
    if (type.rfind("UINT", 0) == 0) opt->transform(whole_number(false));
    else if (type.rfind("INT", 0) == 0) opt->transform(whole_number(true));
    else if (type.rfind("FLOAT", 0) == 0) opt->check(finite_number());
  }
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
      if (sub->parsed()) return run();
    return Exit::usage;
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
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
