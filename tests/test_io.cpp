// Files in and out (src/report.cpp write_output, src/io.cpp read_text_file):
// output replaces regular files atomically through symlinks and keeps their
// mode, writes devices and FIFOs in place, reports a failed write as exit 5
// and leaves no temporary file, also when interrupted; input files are
// refused, quickly and with exit 2, when they are FIFOs, devices, folders,
// symlink loops, binary or over the size limit.
#include <doctest/doctest.h>

#include "cesr_run.hpp"

#include "cesr/io.hpp"
#include "cesr/report.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;

/// The end-to-end cases write files with relative names: run them in a private
/// scratch folder (removed at exit), wherever the test is started from.
const cesr_test::ScratchWorkingDirectory scratch("cesr_test_io");

using cesr_test::Run;
using cesr_test::slurp;
Run cesr_run(const std::string& args) { return cesr_test::run_cesr(args); }

void write(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

std::size_t count_lines(const std::string& s) { return std::size_t(std::count(s.begin(), s.end(), '\n')); }

const std::string loss = "loss --spectrum powerlaw:d=10,alpha=1.5 --method sgd --lr 0.5 --steps 10";

/// What `loss` prints on standard output.
const std::string& loss_text() {
  static const std::string text = [] {
    const Run r = cesr_run(loss);
    REQUIRE(r.code == 0);
    REQUIRE(r.out.size() > 100);
    return r.out;
  }();
  return text;
}

/// Hidden files (write_output's temporaries are .NAME.XXXXXX) in `dir`.
std::vector<std::string> hidden_files(const fs::path& dir = ".") {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().front() == '.') out.push_back(e.path().filename().string());
  return out;
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st.st_mode;
}

ino_t inode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st.st_ino;
}

/// A character device `name` in the scratch folder with the numbers of
/// /dev/NAME (as root), so that a regression replaces a copy and never the
/// machine's own /dev/null; without the right to create one, /dev/NAME itself,
/// which a user without that right cannot replace either.
std::string device(const std::string& name) {
  struct stat st {};
  REQUIRE(::stat(("/dev/" + name).c_str(), &st) == 0);
  REQUIRE(S_ISCHR(st.st_mode));
  if (::mknod(name.c_str(), S_IFCHR | 0666, st.st_rdev) == 0 || errno == EEXIST) return name;
  return "/dev/" + name;
}

/// `cesr ARGS` with the shell redirections `redirect` for standard output and
/// the shell commands `before` (e.g. ulimit); standard error is captured.
Run cesr_shell(const std::string& before, const std::string& args, const std::string& redirect) {
  const std::string cmd = before + std::string(CESR_BINARY) + " " + args + " " + redirect + " 2>io_stderr.txt </dev/null";
  const int status = std::system(cmd.c_str());
  Run r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = slurp("io_stderr.txt");
  fs::remove("io_stderr.txt");
  return r;
}

}  // namespace

TEST_CASE("--output through a symlink replaces the file it points to; the link stays a link, the mode stays") {
  write("target.csv", "old\n");
  fs::permissions("target.csv", fs::perms::owner_read | fs::perms::owner_write);
  fs::create_symlink("target.csv", "link.csv");
  // A chain of two links, the second relative to its own folder.
  fs::create_directories("sub");
  write("sub/deep.csv", "old\n");
  fs::permissions("sub/deep.csv", fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  fs::create_symlink("sub/to_deep.csv", "chain.csv");
  fs::create_symlink("deep.csv", "sub/to_deep.csv");
  for (const auto& [link, target, mode] :
       {std::tuple{"link.csv", "target.csv", 0600}, std::tuple{"chain.csv", "sub/deep.csv", 0640}}) {
    const ino_t before = inode_of(target);
    const Run r = cesr_run(loss + " --output " + link);
    INFO(link, ": ", r.err);
    CHECK(r.code == 0);
    CHECK(r.out.empty());
    CHECK(fs::is_symlink(link));
    CHECK(slurp(target) == loss_text());
    CHECK((mode_of(target) & 07777) == mode_t(mode));
    CHECK(inode_of(target) != before);  // replaced by a new file (renamed), not rewritten in place
  }
  CHECK(fs::read_symlink("link.csv") == "target.csv");
  CHECK(fs::read_symlink("chain.csv") == "sub/to_deep.csv");
  CHECK(hidden_files().empty());
  CHECK(hidden_files("sub").empty());
  // A link to a file that does not exist yet creates that file.
  fs::create_symlink("sub/created.csv", "dangling.csv");
  CHECK(cesr_run(loss + " --output dangling.csv").code == 0);
  CHECK(fs::is_symlink("dangling.csv"));
  CHECK(slurp("sub/created.csv") == loss_text());
  // ... unless its folder is missing: bad input, exit 2.
  fs::create_symlink("no_folder/x.csv", "nowhere.csv");
  const Run nowhere = cesr_run(loss + " --output nowhere.csv");
  CHECK(nowhere.code == 2);
  CHECK(nowhere.err.find("--output") != std::string::npos);
  CHECK(count_lines(nowhere.err) == 1);
  // A symlink loop: exit 2, not an internal failure.
  fs::create_symlink("out_loop_b.csv", "out_loop_a.csv");
  fs::create_symlink("out_loop_a.csv", "out_loop_b.csv");
  const Run loop = cesr_run(loss + " --output out_loop_a.csv");
  CHECK(loop.code == 2);
  CHECK(loop.err.find("loop of symbolic links") != std::string::npos);
}

TEST_CASE("--output keeps an existing file's mode; a new file is 0644 less the umask") {
  write("mode.csv", "old\n");
  ::chmod("mode.csv", 0604);
  const ino_t before = inode_of("mode.csv");
  REQUIRE(cesr_run(loss + " --output mode.csv").code == 0);
  CHECK(inode_of("mode.csv") != before);
  CHECK((mode_of("mode.csv") & 07777) == 0604);
  CHECK(slurp("mode.csv") == loss_text());
  for (const mode_t mask : {mode_t(022), mode_t(077), mode_t(0)}) {
    const mode_t old = ::umask(mask);  // inherited by cesr through the shell
    const std::string name = "new_" + std::to_string(mask) + ".csv";
    const Run r = cesr_run(loss + " --output " + name);
    ::umask(old);
    REQUIRE(r.code == 0);
    CHECK((mode_of(name) & 07777) == (0644 & ~mask));
  }
}

TEST_CASE("--output to /dev/null and /dev/full writes the device in place") {
  const std::string null = device("null"), full = device("full");
  const auto rdev = [](const std::string& p) {
    struct stat st {};
    REQUIRE(::stat(p.c_str(), &st) == 0);
    return st.st_rdev;
  };
  const Run to_null = cesr_run(loss + " --output " + null);
  CHECK(to_null.code == 0);
  CHECK(to_null.err.empty());
  CHECK(S_ISCHR(mode_of(null)));
  CHECK(rdev(null) == makedev(1, 3));
  const Run to_full = cesr_run(loss + " --output " + full);
  INFO(to_full.err);
  CHECK(to_full.code == 5);
  CHECK(count_lines(to_full.err) == 1);
  CHECK(to_full.err.find("--output: cannot write '" + full + "': No space left on device") != std::string::npos);
  CHECK(to_full.out.empty());
  CHECK(S_ISCHR(mode_of(full)));
  CHECK(rdev(full) == makedev(1, 7));
  CHECK(hidden_files().empty());
  // The figure goes through the same writer; its errors name --plot.
  if (full == "full") {
    REQUIRE(::mknod("full.svg", S_IFCHR | 0666, makedev(1, 7)) == 0);
    const Run plot = cesr_run(loss + " --plot full.svg");
    CHECK(plot.code == 5);
    CHECK(plot.err.find("--plot: cannot write 'full.svg'") != std::string::npos);
    CHECK(S_ISCHR(mode_of("full.svg")));
    // A block device (a disk) is refused, neither replaced nor written.
    REQUIRE(::mknod("disk.csv", S_IFBLK | 0600, makedev(7, 250)) == 0);
    const Run disk = cesr_run(loss + " --output disk.csv");
    CHECK(disk.code == 2);
    CHECK(disk.err.find("block device") != std::string::npos);
    CHECK(S_ISBLK(mode_of("disk.csv")));
  }
}

TEST_CASE("standard output full or closed is exit 5 with one line") {
  const std::string full = device("full");
  for (const std::string& redirect : {">" + full, std::string(">&-")}) {
    const Run r = cesr_shell("", loss, redirect);
    INFO(redirect, ": ", r.err);
    CHECK(r.code == 5);
    CHECK(count_lines(r.err) == 1);
    CHECK(r.err.find("cannot write to standard output") != std::string::npos);
  }
  CHECK(cesr_shell("", loss, ">/dev/null").code == 0);
}

TEST_CASE("--output to a FIFO is written in place for its reader") {
  REQUIRE(::mkfifo("out.fifo", 0644) == 0);
  std::string got;
  std::thread reader([&] {
    const int fd = ::open("out.fifo", O_RDONLY);  // waits for the writer
    if (fd < 0) return;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) got.append(buf, std::size_t(n));
    ::close(fd);
  });
  const Run r = cesr_run(loss + " --output out.fifo");
  // Releases the reader if cesr never opened the FIFO (the test then fails below).
  if (const int fd = ::open("out.fifo", O_WRONLY | O_NONBLOCK); fd >= 0) ::close(fd);
  reader.join();
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(got == loss_text());
  CHECK(S_ISFIFO(mode_of("out.fifo")));
  CHECK(hidden_files().empty());
}

TEST_CASE("a failed write (file-size limit) is exit 5 and leaves the old file and no temporary file") {
  write("limited.csv", "old\n");
  // 1 block (512 or 1024 bytes) is less than the 1001-row curve (28 kB).
  const Run r = cesr_shell("ulimit -f 1 && ", loss + "00 --output limited.csv", ">/dev/null");
  INFO(r.err);
  CHECK(r.code == 5);
  CHECK(count_lines(r.err) == 1);
  CHECK(r.err.find("--output: cannot write 'limited.csv': File too large") != std::string::npos);
  CHECK(slurp("limited.csv") == "old\n");
  CHECK(hidden_files().empty());
}

TEST_CASE("SIGINT or SIGTERM during the write removes the temporary file") {
  const std::string path = "signals/big.csv";
  // Waits up to 20 s for the child, then kills it: a failing case must not hang.
  const auto reap = [](pid_t child) {
    int status = 0;
    for (int i = 0; i < 20000 && ::waitpid(child, &status, WNOHANG) != child; ++i) {
      if (i + 1 == 20000) {
        ::kill(child, SIGKILL);
        ::waitpid(child, &status, 0);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return status;
  };
  for (const int sig : {SIGTERM, SIGINT}) {
    bool interrupted = false;
    // The signal must arrive while the temporary file exists: larger contents
    // until it does (a few tries, each bounded by 20 s).
    for (std::size_t size = std::size_t{16} << 20; !interrupted && size <= (std::size_t{1} << 30); size *= 4) {
      fs::remove_all("signals");  // what a failed try left
      fs::create_directories("signals");
      const pid_t child = ::fork();
      REQUIRE(child >= 0);
      if (child == 0) {
        std::signal(SIGINT, SIG_DFL);  // as in the command line, not the test runner's handlers
        std::signal(SIGTERM, SIG_DFL);
        try {
          cesr::write_output(path, std::string(size, 'x'));
        } catch (...) {
          ::_exit(1);
        }
        ::_exit(0);
      }
      // Until the temporary file appears (only after the child reset its
      // handlers) or the child is done.
      int status = 0;
      bool seen = false, done = false;
      const auto start = std::chrono::steady_clock::now();
      while (!seen && !done && std::chrono::steady_clock::now() - start < std::chrono::seconds(20)) {
        seen = !hidden_files("signals").empty();
        done = !seen && ::waitpid(child, &status, WNOHANG) == child;
        if (!seen && !done) std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      if (!done) {
        ::kill(child, seen ? sig : SIGKILL);
        status = reap(child);
      }
      INFO("signal ", sig, ", ", size, " bytes, status ", status);
      // Killed by the signal before the rename: the temporary file must be gone.
      if (WIFSIGNALED(status) && WTERMSIG(status) == sig && !fs::exists(path)) {
        interrupted = true;
        CHECK(hidden_files("signals").empty());
      }
    }
    CHECK(interrupted);
  }
}

TEST_CASE("an input FIFO, /dev/zero, a folder, a symlink loop or a binary file: exit 2 at once, one line") {
  REQUIRE(::mkfifo("in.fifo", 0644) == 0);  // no writer: reading would wait forever
  fs::create_directories("in_folder");
  fs::create_symlink("in_loop_b.txt", "in_loop_a.txt");
  fs::create_symlink("in_loop_a.txt", "in_loop_b.txt");
  write("elf.txt", std::string("\x7f" "ELF\2\1\1\0\0\0\0\0\0\0\0\0secret", 22));
  write("esc.txt", "1\n\x1b]0;secret\x07\n2\n");
  write("curve.csv", "step,loss\n0,0.9166666666666666\n");  // L_0 = (1 + 1/2 + 1/3) / 2
  const std::string method = " --method sgd --lr 0.5 --steps 3";
  const struct {
    std::string args, expect;
  } cases[] = {
      {"loss --spectrum file:in.fifo" + method, "--spectrum: 'in.fifo' is a FIFO, not a regular file (spectrum file)"},
      {"loss --spectrum file:/dev/zero" + method, "'/dev/zero' is a character device, not a regular file"},
      {"loss --spectrum powerlaw:d=3,alpha=1 --init file:/dev/zero" + method, "--init: '/dev/zero' is a character"},
      {"loss --spectrum file:in_folder" + method, "'in_folder' is a folder, not a file"},
      {"loss --spectrum file:in_loop_a.txt" + method, "cannot read file 'in_loop_a.txt': a loop of symbolic links"},
      {"loss --spectrum file:elf.txt" + method, "'elf.txt' is a binary file, not text: byte 1 is 0x7F"},
      // no NUL byte, but a terminal escape sequence: not echoed either
      {"loss --spectrum file:esc.txt" + method, "'esc.txt' is a binary file, not text: byte 3 is 0x1B"},
      {"check --input esc.txt --spectrum powerlaw:d=3,alpha=1 --method sgd --lr 0.5",
       "--input: 'esc.txt' is a binary file, not text: byte 3 is 0x1B"},
      {"check --input in.fifo --spectrum powerlaw:d=3,alpha=1 --method sgd --lr 0.5", "--input: 'in.fifo' is a FIFO"},
      {"check --input in_loop_a.txt --spectrum powerlaw:d=3,alpha=1 --method sgd --lr 0.5", "--input: cannot read"},
      {"check --input /dev/zero --spectrum powerlaw:d=3,alpha=1 --method sgd --lr 0.5", "character device"},
  };
  for (const auto& c : cases) {
    const auto start = std::chrono::steady_clock::now();
    // timeout: a regression that reads forever fails (exit 124) instead of hanging.
    const Run r = cesr_shell("timeout 20 ", c.args + " --output never.csv", ">/dev/null");
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    INFO(c.args, " -> ", r.err);
    CHECK(r.code == 2);
    CHECK(r.err.find(c.expect) != std::string::npos);
    CHECK(count_lines(r.err) == 1);
    CHECK(r.err.find("secret") == std::string::npos);  // the binary content is not echoed
    CHECK(seconds < 5);
    CHECK_FALSE(fs::exists("never.csv"));
  }
  CHECK(cesr_run("check --input curve.csv --spectrum powerlaw:d=3,alpha=1 --method sgd --lr 0.5").code == 0);
}

TEST_CASE("read_text_file: the size limit, also for files whose size reads as 0") {
  write("hundred.txt", std::string(100, '1'));
  CHECK(cesr::read_text_file("hundred.txt", "test file", 100) == std::string(100, '1'));
  CHECK_THROWS_WITH_AS(cesr::read_text_file("hundred.txt", "test file", 99),
                       "'hundred.txt' has 100 bytes, more than the limit of 99 bytes (test file)",
                       std::invalid_argument);
  write("big.txt", std::string(3 << 20, '1'));
  CHECK_THROWS_WITH_AS(cesr::read_text_file("big.txt", "spectrum file", std::size_t{2} << 20),
                       "'big.txt' has 3145728 bytes, more than the limit of 2 MiB (spectrum file)",
                       std::invalid_argument);
  CHECK(cesr::default_max_input_bytes == std::size_t{256} << 20);
  // /proc files have size 0 for stat: the read itself stops at the limit.
  CHECK_THROWS_WITH_AS(cesr::read_text_file("/proc/self/status", "status", 64),
                       "'/proc/self/status' has more than the limit of 64 bytes (status)", std::invalid_argument);
  CHECK_THROWS_WITH_AS(cesr::read_text_file("no_such.txt", "spectrum file"),
                       "cannot read file 'no_such.txt': No such file or directory (spectrum file)",
                       std::invalid_argument);
  write("empty.txt", "");
  CHECK(cesr::read_text_file("empty.txt", "x").empty());
}

TEST_CASE("input files read a UTF-8 byte-order mark and a leading '+' as the command line does") {
  const std::string bom = "\xEF\xBB\xBF";
  // spectrum {1, 1/2, 1/4}, init {1, 2, 3}: once plain, once with a BOM and '+' signs
  write("plain_spec.txt", "1\n0.5\n0.25\n");
  write("bom_spec.txt", bom + "+1\n+0.5\n+2.5e-1\n");
  write("plain_init.txt", "1\n2\n3\n");
  write("bom_init.txt", bom + "+1\n+2\n3\n");
  const std::string method = " --method sgd --lr 0.5 --batch 2 --steps 6";
  const Run plain = cesr_run("loss --spectrum file:plain_spec.txt --init file:plain_init.txt" + method);
  const Run marked = cesr_run("loss --spectrum file:bom_spec.txt --init file:bom_init.txt" + method);
  REQUIRE(plain.code == 0);
  CHECK(marked.code == 0);
  CHECK(marked.err.empty());
  CHECK(marked.out == plain.out);
  // L_0 = (1 * 1 + 0.5 * 2 + 0.25 * 3) / 2 = 1.375: the '+' and the BOM did not shift a value
  CHECK(plain.out.find("0,1.3750000000000000e+00\n") != std::string::npos);
  // "+-1" and "++1" stay malformed
  write("bad_sign.txt", "+-1\n");
  CHECK(cesr_run("loss --spectrum file:bad_sign.txt" + method).code == 2);
  write("bad_sign2.txt", "++1\n");
  CHECK(cesr_run("loss --spectrum file:bad_sign2.txt" + method).code == 2);

  // a loss curve (check --input) whose header starts with a BOM and whose steps carry '+'
  write("bom_curve.csv", bom + "step,loss\n+0,1.375\n");
  const Run check = cesr_run("check --input bom_curve.csv --spectrum file:plain_spec.txt --init file:plain_init.txt "
                             "--method sgd --lr 0.5 --format csv");
  INFO(check.err);
  CHECK(check.code == 0);
  CHECK(check.out.find("\n0,1.3750000000000000e+00,") != std::string::npos);

  // a schedule file and a method file with a BOM
  write("plain_sched.csv", "step,factor\n0,1\n3,0.5\n");
  write("bom_sched.csv", bom + "step,factor\n0,+1\n3,0.5\n");
  const Run s1 = cesr_run("loss --spectrum file:plain_spec.txt --method sgd --lr 0.5 --steps 6 --lr-schedule "
                          "file:plain_sched.csv");
  const Run s2 = cesr_run("loss --spectrum file:plain_spec.txt --method sgd --lr 0.5 --steps 6 --lr-schedule "
                          "file:bom_sched.csv");
  REQUIRE(s1.code == 0);
  CHECK(s2.code == 0);
  CHECK(s2.out == s1.out);
  const std::string sgd_json = R"({"P": [[1]], "q": [0.5], "r": [1], "o": [1]})";  // SGD, lr 0.5
  write("plain_method.json", sgd_json);
  write("bom_method.json", bom + sgd_json);
  const Run m1 = cesr_run("loss --spectrum file:plain_spec.txt --method custom --method-file plain_method.json "
                          "--steps 6");
  const Run m2 = cesr_run("loss --spectrum file:plain_spec.txt --method custom --method-file bom_method.json "
                          "--steps 6");
  INFO(m1.err, m2.err);
  REQUIRE(m1.code == 0);
  CHECK(m2.code == 0);
  CHECK(m2.out == m1.out);
  CHECK(m1.out == cesr_run("loss --spectrum file:plain_spec.txt --method sgd --lr 0.5 --steps 6").out);
}
