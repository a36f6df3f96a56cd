// Runs the built cesr binary as a user would, for the end-to-end tests: the
// shell splits ARGS, standard input is empty, and standard output and error
// are captured in full through files in a per-process scratch folder.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

namespace cesr_test {

struct Run {
  int code = -1;  ///< exit status (-1 if the process did not exit normally)
  std::string out, err;
};

inline std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// A folder of this test process under the system temporary folder, removed
/// when the process exits.
inline const std::filesystem::path& capture_dir() {
  struct Folder {
    std::filesystem::path path =
        std::filesystem::temp_directory_path() / ("cesr_test_capture_" + std::to_string(::getpid()));
    Folder() { std::filesystem::create_directories(path); }
    ~Folder() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static const Folder folder;
  return folder.path;
}

/// Moves the test process into a private scratch folder for as long as it
/// lives (removed at the end), so end-to-end cases may write files with
/// relative names wherever the test is started from.
struct ScratchWorkingDirectory {
  std::filesystem::path home, dir;
  explicit ScratchWorkingDirectory(const std::string& name)
      : home(std::filesystem::current_path()),
        dir(std::filesystem::temp_directory_path() / (name + "_" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(dir);
    std::filesystem::current_path(dir);
  }
  ~ScratchWorkingDirectory() {
    std::error_code ec;
    std::filesystem::current_path(home, ec);
    std::filesystem::remove_all(dir, ec);
  }
  ScratchWorkingDirectory(const ScratchWorkingDirectory&) = delete;
  ScratchWorkingDirectory& operator=(const ScratchWorkingDirectory&) = delete;
};

/// `cesr ARGS`, run from folder `cwd` (empty: the current folder).
inline Run run_cesr(const std::string& args, const std::filesystem::path& cwd = {}) {
  const auto out = capture_dir() / "stdout", err = capture_dir() / "stderr";
  const std::string cd = cwd.empty() ? "" : "cd '" + cwd.string() + "' && ";
  const std::string cmd =
      cd + std::string(CESR_BINARY) + " " + args + " >'" + out.string() + "' 2>'" + err.string() + "' </dev/null";
  const int status = std::system(cmd.c_str());
  Run r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

}  // namespace cesr_test
