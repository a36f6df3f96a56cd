// cesr: exact compute-efficiency / serial-runtime trade-offs of stochastic momentum methods.
#include "registry.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <memory>

namespace cesr::cli {
std::vector<Command>& commands() {
  static std::vector<Command> all;
  return all;
}
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
  }
  std::string command = "cesr";
  try {
    app.parse(argc, argv);
    for (auto& [sub, run] : runners) {
      if (!sub->parsed()) continue;
      command = "cesr " + sub->get_name();
      return run();
    }
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
    std::cerr << fmt::format("{}: error: {}\n", command, e.what());
    return Exit::usage;
  } catch (const std::bad_alloc&) {
    std::cerr << fmt::format("{}: error: out of memory (the problem is too large for this machine)\n", command);
    return Exit::usage;
  } catch (const std::exception& e) {
    std::cerr << fmt::format("{}: error: {}\n", command, e.what());
    return 4;
  }
}
