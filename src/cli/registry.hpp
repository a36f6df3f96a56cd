// Subcommand registry: each src/cli/cmd_*.cpp registers one subcommand with a
// static Registrar, so adding a command touches no other file.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace cesr::cli {

/// Exit codes shared by every command.
enum Exit : int {
  ok = 0,
  not_reached = 1,  ///< a target was not reached / a check disagreed
  usage = 2,        ///< bad input: the message names the flag and the value
  diverged = 3,     ///< the method diverges
  io = 5,           ///< an I/O failure on a valid request (disk full, standard output closed): cesr::IoError
};

/// Bad input found after parsing (a value out of range, an unreadable file).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Adds options to the subcommand and returns the function that runs it.
using Setup = std::function<std::function<int()>(CLI::App&)>;

struct Command {
  std::string name;
  std::string help;
  int order;  ///< position in `cesr --help`
  Setup setup;
};

std::vector<Command>& commands();

struct Registrar {
  explicit Registrar(Command c) { commands().push_back(std::move(c)); }
};

}  // namespace cesr::cli
