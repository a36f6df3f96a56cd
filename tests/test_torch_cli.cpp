// PyTorch's own optimizers held against cesr: the curves in tests/data/torch/
// were made by scripts/torch_reference.py with torch.optim.SGD and
// torch.optim.swa_utils.AveragedModel (20,000 runs; settings.json), and
// `cesr check` must accept each with the matching registry method and reject
// the plausible wrong models a new user would try.
#include <doctest/doctest.h>

#include "cesr_run.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

namespace {

using cesr_test::Run;
using cesr_test::run_cesr;

const std::string problem = " --spectrum powerlaw:d=20,alpha=1.5 --batch 4 ";

Run check(const std::string& file, const std::string& method) {
  return run_cesr("check --input " + std::string(CESR_SOURCE_DIR) + "/tests/data/torch/" + file + problem + method);
}

}  // namespace

TEST_CASE("torch.optim.SGD curves agree with torch-sgd, and not with the wrong models") {
  struct Case {
    const char* file;
    const char* right;
    std::vector<const char*> wrong;
  };
  const Case cases[] = {
      {"sgd_momentum_dampening.csv", "--method torch-sgd --lr 0.05 --momentum 0.9 --dampening 0.5",
       {"--method torch-sgd --lr 0.05 --momentum 0.9",           // dampening ignored
        "--method hb --lr 0.025 --momentum 0.9"}},               // heavy ball with the damped step: first step differs
      {"sgd_nesterov.csv", "--method torch-sgd --lr 0.05 --momentum 0.9 --nesterov",
       {"--method nag --lr 0.05 --momentum 0.9"}},               // cesr's nag reports the pre-look-ahead point
      {"sgd_momentum_noise.csv", "--method torch-sgd --lr 0.05 --momentum 0.9 --noise 0.25",
       {"--method torch-sgd --lr 0.05 --momentum 0.9"}},         // label noise left out
      {"sgd_swa_tail.csv", "--method sgd --lr 0.2 --average tail:start=1",
       {"--method sgd --lr 0.2 --average polyak",                // AveragedModel's first update copies: e_0 is not in the mean
        "--method sgd --lr 0.2"}},
      {"sgd_momentum_warmup20_cosine.csv",
       "--method torch-sgd --lr 0.05 --momentum 0.9 --lr-schedule cosine:steps=200,warmup=20",
       {"--method torch-sgd --lr 0.05 --momentum 0.9 --lr-schedule cosine:steps=200",  // warmup left out
        "--method torch-sgd --lr 0.05 --momentum 0.9 --lr-schedule cosine:steps=200,warmup=21"}},
      {"sgd_momentum_ema.csv", "--method torch-sgd --lr 0.05 --momentum 0.9 --average ema:decay=0.9",
       {"--method torch-sgd --lr 0.05 --momentum 0.9 --average ema:decay=0.1",
        "--method torch-sgd --lr 0.05 --momentum 0.9"}},
  };
  for (const Case& c : cases) {
    const Run ok = check(c.file, c.right);
    INFO(c.file, ": ", c.right, "\n", ok.err);
    CHECK(ok.code == 0);
    CHECK(ok.err.find("cesr check: agree") != std::string::npos);
    for (const char* w : c.wrong) {
      const Run bad = check(c.file, w);
      INFO("wrong model ", w, "\n", bad.err);
      CHECK(bad.code == 1);
      CHECK(bad.err.find("cesr check: disagree") != std::string::npos);
    }
  }
}

TEST_CASE("any PyTorch scheduler: the learning rates it used, as a file schedule") {
  // LinearLR(start_factor=0.05, total_iters=20) is no built-in shape (it reaches
  // 1 at step 20, warmup=20 at step 19): pass torch's own lr per step as factors.
  cesr_test::ScratchWorkingDirectory dir("torch_lr_file");
  std::ifstream in(std::string(CESR_SOURCE_DIR) + "/tests/data/torch/sgd_momentum_warmup_cosine_lr.csv");
  std::ofstream out("factor.csv");
  std::string line;
  std::getline(in, line);  // step,lr
  out << "step,factor\n";
  while (std::getline(in, line)) {
    const auto comma = line.find(',');
    out << line.substr(0, comma) << ',' << fmt::format("{:.17g}", std::stod(line.substr(comma + 1)) / 0.05) << '\n';
  }
  out.close();
  const std::string file = "sgd_momentum_warmup_cosine.csv";
  const std::string base = "--method torch-sgd --lr 0.05 --momentum 0.9 --lr-schedule ";
  const auto in_dir = [&](const std::string& method) {
    return run_cesr("check --input " + std::string(CESR_SOURCE_DIR) + "/tests/data/torch/" + file + problem + method,
                    dir.dir);
  };
  CHECK(in_dir(base + "file:factor.csv").code == 0);
  CHECK(in_dir(base + "cosine:steps=200,warmup=20").code == 1);
}

TEST_CASE("methods without a rate are refused by rate, stability and the rate objective, naming steps") {
  for (const std::string cmd : {"rate --method schedule-free --lr 0.1 --momentum 0.9",
                                "stability --method lookahead",
                                "rate --method sgd --lr 0.1 --average polyak",
                                "tune --method schedule-free"}) {
    const Run r = run_cesr(cmd + " --spectrum loguniform:d=10,kappa=100");
    INFO(cmd, "\n", r.err);
    CHECK(r.code == 2);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK((r.err.find("steps") != std::string::npos));
  }
  // A method that is constant after its first step has a rate (its tail's).
  CHECK(run_cesr("rate --spectrum loguniform:d=10,kappa=100 --method torch-sgd --lr 0.1 --momentum 0.9 "
                 "--dampening 0.5").code == 0);
}

TEST_CASE("cesr methods lists the registry; flags and errors come from it") {
  const Run table = run_cesr("methods");
  REQUIRE(table.code == 0);
  for (const char* name : {"sgd", "hb", "nag", "asgd", "torch-sgd", "qhm", "schedule-free", "lookahead", "custom"})
    CHECK(table.out.find(std::string("\n") + name + " ") != std::string::npos);
  const Run json = run_cesr("methods --format json");
  REQUIRE(json.code == 0);
  for (const char* key : {"\"name\"", "\"states\"", "\"constant\"", "\"description\"", "\"hyperparameters\"",
                          "\"default\"", "\"range\"", "\"tuned\""})
    CHECK(json.out.find(key) != std::string::npos);
  // A hyperparameter of another row is refused naming the flag and the method.
  const Run extra = run_cesr("loss --method sgd --lr 0.1 --small-const 0.7 --steps 3");
  CHECK(extra.code == 2);
  CHECK(extra.err.find("--small-const 0.7 does not apply to method sgd") != std::string::npos);
  const Run unknown = run_cesr("loss --method adam --lr 0.1 --steps 3");
  CHECK(unknown.code == 2);
  CHECK(unknown.err.find("--method: unknown method 'adam' (expected one of sgd, hb, nag") != std::string::npos);
  const Run range = run_cesr("loss --method qhm --lr 0.1 --momentum 0.9 --nu 2 --steps 3");
  CHECK(range.code == 2);
  CHECK(range.err.find("--nu must be in [0, 1], got 2") != std::string::npos);
  const Run k4avg = run_cesr("loss --method lookahead --lr 0.1 --inner torch-sgd --momentum 0.5 --average polyak "
                             "--steps 3");
  CHECK(k4avg.code == 0);  // 3 + 1 = 4 states
}
