// A command line that helps (issue 12): "did you mean" for unknown options,
// --method/--methods and --batch/--batches accepted alike, one batch-list rule,
// one --digits rule, the progress line of long runs (stderr only, --progress,
// --quiet) and an interrupted frontier that keeps the rows it finished.
#include <doctest/doctest.h>

#include "cesr_run.hpp"

#include "cesr/progress.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>

namespace {

namespace fs = std::filesystem;
const cesr_test::ScratchWorkingDirectory scratch("cesr_test_cli_help");
using cesr_test::Run;
Run run(const std::string& args) { return cesr_test::run_cesr(args); }
std::size_t lines(const std::string& s) { return std::size_t(std::count(s.begin(), s.end(), '\n')); }
bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

/// Exit 2 with one line on stderr that contains `expect`.
void usage(const std::string& args, const std::string& expect) {
  const Run r = run(args);
  INFO(args, " -> ", r.err);
  CHECK(r.code == 2);
  CHECK(lines(r.err) == 1);
  CHECK(has(r.err, expect));
  CHECK(r.out.empty());
}

const std::string small = " --spectrum loguniform:d=5,kappa=10";

/// `cesr ARGS` under `timeout -s TERM SECONDS` (exit 124 when it was stopped).
Run stopped_after(const std::string& seconds, const std::string& args) {
  const std::string cmd = "timeout -s TERM " + seconds + " " + std::string(CESR_BINARY) + " " + args +
                          " >/dev/null 2>stopped_stderr.txt </dev/null";
  const int status = std::system(cmd.c_str());
  Run r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = cesr_test::slurp("stopped_stderr.txt");
  fs::remove("stopped_stderr.txt");
  return r;
}

}  // namespace

TEST_CASE("an unknown option gets the nearest names; a stray value is named") {
  usage("loss --method sgd --lrr 0.1 --steps 3" + small, "unknown option --lrr (did you mean --lr?)");
  // the unknown option explains the missing required one: named first
  usage("loss --method sgd --lr 0.1 --step 3" + small, "unknown option --step (did you mean --steps?)");
  usage("frontier --spectrm loguniform:d=5,kappa=10", "did you mean --spectrum?");
  usage("rate --method hb --lr 0.1 --momentun 0.9" + small, "did you mean --momentum?");
  usage("rate --method sgd --lr 0.1 --zzzzzzzz 1" + small, "unknown option --zzzzzzzz (see cesr rate --help)");
  usage("loss --method sgd --lr 0.1 --steps 3 extra" + small, "unexpected argument 'extra'");
}

TEST_CASE("--method/--methods and --batch/--batches are accepted alike; a list where one value goes is refused") {
  const Run one = run("rate --method hb --lr 0.1 --momentum 0.9 --batch 4" + small);
  const Run alias = run("rate --methods hb --lr 0.1 --momentum 0.9 --batches 4" + small);
  REQUIRE(one.code == 0);
  CHECK(alias.code == 0);
  CHECK(alias.out == one.out);
  const std::string f = "frontier" + small + " --format csv --threads 1";
  const Run lists = run(f + " --methods sgd --batches 2,8");
  const Run singular = run(f + " --method sgd --batch 2,8");
  REQUIRE(lists.code == 0);
  CHECK(singular.out == lists.out);
  usage("loss --method sgd,hb --lr 0.1 --steps 3" + small, "--method takes one method, got the list 'sgd,hb'");
  usage("loss --method sgd --lr 0.1 --steps 3 --batch 4,8" + small,
        "--batch: takes one value, got the list '4,8' (for several: --batches 4,8)");
  usage("rate --method sgd --lr 0.1 --batch 1:8:x2" + small, "--batch: takes one value, got the list '1:8:x2'");
}

TEST_CASE("one batch-list rule: loss --batches and frontier --batches read lists and ranges alike, each size once") {
  usage("loss --method sgd --lr 0.1 --steps 3 --batches 4,4" + small, "--batches '4,4': a batch size is listed twice");
  usage("loss --method sgd --lr 0.1 --steps 3 --compare-batches 4,4" + small, "a batch size is listed twice");
  usage("frontier" + small + " --batches 4,4", "--batches '4,4': a batch size is listed twice");
  usage("loss --method sgd --lr 0.1 --steps 3 --batches 0,2" + small, "--batches '0,2': '0' is not a whole number >= 1");
  const std::string loss = "loss --method sgd --lr 0.1 --steps 4" + small;
  const Run range = run(loss + " --batches 1:4:x2");
  const Run list = run(loss + " --compare-batches 1,2,4");
  REQUIRE(list.code == 0);
  CHECK(range.code == 0);
  CHECK(range.out == list.out);
  CHECK(lines(list.out) == 1 + 3 * 5);  // header, three curves of steps 0..4
}

TEST_CASE("one --digits rule: at most the significant digits of the precision, everywhere") {
  usage("loss --method sgd --lr 0.1 --steps 3 --format markdown --digits 30" + small,
        "--digits must be in 1..17 (the significant digits of a value in double), got 30");
  usage("frontier" + small + " --digits 18", "--digits must be in 1..17 (the significant digits of a value in double)");
  usage("loss --method sgd --lr 0.1 --steps 3 --digits 0" + small, "--digits must be in 1..17");
  // quad holds 36 digits: 30 are printed, all of them computed (not padding)
  const Run quad = run("loss --method sgd --lr 0.1 --steps 1 --format markdown --digits 30 --precision quad" + small);
  INFO(quad.err);
  REQUIRE(quad.code == 0);
  const Run digits36 = run("loss --method sgd --lr 0.1 --steps 1 --precision quad" + small);
  // L_0 = (1 + 10^-1/4 + 10^-1/2 + 10^-3/4 + 10^-1) / 2: the 36-digit CSV value rounded to 30 digits
  // agrees with the table in its first 29 digits (the 30th is rounded), and the table has exactly 30
  const std::string full = digits36.out.substr(digits36.out.find("\n0,") + 3, 37);
  CHECK(full.rfind("1.0781985161055396560403352168", 0) == 0);
  CHECK(has(quad.out, "| 1.07819851610553965604033521686e+00 |"));
  usage("loss --method sgd --lr 0.1 --steps 3 --digits 37 --precision quad" + small, "1..36");
}

TEST_CASE("ProgressReporter: the line, the estimate of what is left, thread-safe counting, nothing when disabled") {
  {
    cesr::ProgressReporter p("cesr test", "rows", 200, cesr::ProgressReporter::Mode::Never);
    CHECK_FALSE(p.enabled());
    CHECK(has(p.line(), "cesr test: 0% (0/200 rows)"));
    CHECK(has(p.line(), "time left unknown yet"));
    // four threads count 25 units each through WorkScope, as the library's loops do
    std::vector<std::thread> pool;
    for (int t = 0; t < 4; ++t)
      pool.emplace_back([&] {
        const cesr::WorkScope scope(&p.counter());
        for (int i = 0; i < 25; ++i) cesr::count_work(1);
      });
    for (auto& t : pool) t.join();
    CHECK(p.counter().load() == 100);
    CHECK(has(p.line(), "cesr test: 50% (100/200 rows)"));
    CHECK(has(p.line(), " left"));
    p.set(150, 300);
    CHECK(has(p.line(), "50% (150/300 rows)"));
  }
  cesr::count_work(5);  // no counter installed: nothing happens
  cesr::ProgressReporter unknown("cesr tune", "points", 0, cesr::ProgressReporter::Mode::Never);
  unknown.counter() += 7;
  CHECK(has(unknown.line(), "cesr tune: 7 points done,"));
  CHECK(cesr::duration_text(3.25) == "3.2 s");
  CHECK(cesr::duration_text(125) == "2 min 05 s");
  CHECK(cesr::duration_text(7500) == "2 h 05 min");
  // Always, but the run ends before the delay: no line at all
  std::FILE* log = std::tmpfile();
  {
    cesr::ProgressReporter quick("cesr quick", "steps", 10, cesr::ProgressReporter::Mode::Always,
                                 std::chrono::milliseconds(2000), log);
  }
  CHECK(std::ftell(log) == 0);
  // Always and longer than the delay: whole lines (not a terminal), then "done"
  {
    cesr::ProgressReporter slow("cesr slow", "steps", 10, cesr::ProgressReporter::Mode::Always,
                                std::chrono::milliseconds(50), log);
    slow.counter() += 4;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  std::rewind(log);
  char buffer[512] = {};
  const std::size_t n = std::fread(buffer, 1, sizeof buffer - 1, log);
  std::fclose(log);
  const std::string text(buffer, n);
  INFO(text);
  CHECK(has(text, "cesr slow: 40% (4/10 steps)"));
  CHECK(has(text, "cesr slow: done, 10 steps in"));
  CHECK(!has(text, "\r"));
}

TEST_CASE("--progress shows elapsed and time left on stderr only; --quiet and short runs show nothing") {
  // about 3-10 s on a loaded machine: long enough for the 2 s delay
  const std::string loss =
      "loss --spectrum loguniform:d=2000,kappa=1e4 --method sgd --lr 0.01 --batch 8 --steps 12000000 --every 6000000 "
      "--horizon stepping --precision double";  // (automatic precision would add a long-double run)
  const Run quiet = run(loss + " --quiet");
  const Run shown = run(loss + " --progress");
  REQUIRE(quiet.code == 0);
  CHECK(shown.code == 0);
  CHECK(shown.out == quiet.out);  // never on standard output
  CHECK(quiet.err.empty());
  INFO(shown.err);
  CHECK(has(shown.err, "cesr loss: "));
  CHECK(has(shown.err, "/12000000 steps), "));
  CHECK(has(shown.err, " elapsed, about "));
  CHECK(has(shown.err, "cesr loss: done, 12000000 steps in "));
  const Run brief = run("loss --method sgd --lr 0.1 --steps 3 --progress" + small);
  CHECK(brief.code == 0);
  CHECK(brief.err.empty());
  usage("loss --method sgd --lr 0.1 --steps 3 --progress --quiet" + small, "--progress and --quiet: give one of them");
  for (const char* command : {"tune", "frontier", "window", "simulate", "steps", "loss", "check"}) {
    const Run help = run(std::string(command) + " --help");
    INFO(command);
    CHECK(has(help.out, "--progress"));
    CHECK(has(help.out, "--quiet"));
  }
}

TEST_CASE("an interrupted frontier writes the rows it finished, marked incomplete, and ends by the signal") {
  // 3 methods x 21 batches on one thread: about 14 s; SIGTERM after 2 s. timeout
  // signals the child and then its process group: the one request arrives twice
  // within microseconds, which must not count as a second ("end at once").
  const std::string frontier =
      "frontier --spectrum loguniform:d=5000,kappa=1e6 --batches 1:1048576:x2 --threads 1 --search-mode global --output ";
  const Run csv = stopped_after("2", frontier + "part.csv --format csv");
  INFO(csv.err);
  CHECK(csv.code == 124);  // timeout: the child ended by SIGTERM
  CHECK(has(csv.err, "cesr frontier: incomplete: interrupted after "));
  REQUIRE(fs::exists("part.csv"));
  const std::string text = cesr_test::slurp("part.csv");
  CHECK(text.rfind("problem,spectrum,init,method,batch,", 0) == 0);
  const std::size_t rows = lines(text) - 2;  // header and the note
  CHECK(rows >= 1);
  CHECK(rows < 63);
  CHECK(has(text, "\n# incomplete: interrupted after " + std::to_string(rows) + " of 63 rows\n"));
  CHECK(text.substr(text.size() - 1) == "\n");
  for (const auto& e : fs::directory_iterator(".")) CHECK(e.path().filename().string().rfind(".part", 0) != 0);

  const Run json = stopped_after("2", frontier + "part.json --format json");
  CHECK(json.code == 124);
  // one shape for every run: a list of problem objects, the one stopped marked incomplete
  const auto list = nlohmann::json::parse(cesr_test::slurp("part.json"));
  REQUIRE(list.is_array());
  REQUIRE(list.size() == 1);
  const auto& doc = list.at(0);
  CHECK(doc.at("complete") == false);
  CHECK(doc.at("rows").size() >= 1);
  CHECK(doc.at("rows").size() < 63);
}

TEST_CASE("an interrupted window writes the kappas it finished, marked incomplete") {
  // tens of seconds of work (d = 60000: ~20 s on one thread with the AVX-512 kernels); SIGTERM after 4 s
  const Run r = stopped_after("4", "window --kappas 1e2,1e4,1e6,1e8,1e10,1e12 --d 60000 --threads 1 --format csv "
                                   "--output window.csv");
  INFO(r.err);
  CHECK(r.code == 124);
  REQUIRE(fs::exists("window.csv"));
  const std::string text = cesr_test::slurp("window.csv");
  CHECK(text.rfind("kappa,sqrt_kappa,", 0) == 0);
  const std::size_t rows = lines(text) - 2;
  CHECK(rows < 6);
  CHECK(has(text, "# incomplete: interrupted after " + std::to_string(rows) + " of 6 kappas\n"));
  CHECK(has(r.err, "cesr window: incomplete: interrupted after " + std::to_string(rows) + " of 6 kappas"));

  // JSON: the same shape as a complete run's (a list of kappa rows), the
  // kappa stopped last, marked "complete": false.
  const Run json = stopped_after("4", "window --kappas 1e2,1e4,1e6,1e8,1e10,1e12 --d 60000 --threads 1 --format json "
                                      "--output window.json");
  CHECK(json.code == 124);
  const auto list = nlohmann::json::parse(cesr_test::slurp("window.json"));
  REQUIRE(list.is_array());
  REQUIRE(list.size() >= 1);
  REQUIRE(list.size() <= 6);
  const auto& last = list.back();
  CHECK(last.at("complete") == false);
  const std::size_t done = list.size() - 1;
  CHECK(last.at("note") == "incomplete: interrupted after " + std::to_string(done) + " of 6 kappas");
  const double stopped_kappa[] = {1e2, 1e4, 1e6, 1e8, 1e10, 1e12};
  CHECK(last.at("kappa").get<double>() == stopped_kappa[done]);
  for (std::size_t i = 0; i < done; ++i) {
    CHECK(list.at(i).at("kappa").get<double>() == stopped_kappa[i]);
    CHECK(!list.at(i).contains("complete"));
    CHECK(list.at(i).contains("window_ratio"));
  }
  const Run full = run("window --kappas 1e2,1e3 --d 200 --format json");
  REQUIRE(full.code == 0);
  const auto whole = nlohmann::json::parse(full.out);
  REQUIRE(whole.is_array());
  CHECK(whole.size() == 2);
}
