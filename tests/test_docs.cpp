// The docs never drift from the code: scripts/regen_docs.sh --check reruns
// every cesr command recorded in docs/ and fails on any difference. Also: the
// script itself notices stale regions and failing commands, and every local
// link in docs/ points to a file that exists.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <string>

namespace fs = std::filesystem;

namespace {

const fs::path source_dir{CESR_SOURCE_DIR};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void spit(const fs::path& p, const std::string& text) {
  std::ofstream out(p);
  out << text;
}

struct Result {
  int status;
  std::string err;
};

Result regen(const std::string& args, const fs::path& scratch) {
  const fs::path err = scratch / "regen.err";
  const std::string cmd = "bash " + (source_dir / "scripts" / "regen_docs.sh").string() + " --cesr " +
                          std::string(CESR_BINARY) + " " + args + " > " + (scratch / "regen.out").string() +
                          " 2> " + err.string();
  const int raw = std::system(cmd.c_str());
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, slurp(err)};
}

fs::path scratch_dir() {
  const fs::path dir = fs::temp_directory_path() / ("cesr_test_docs_" + std::to_string(std::random_device{}()));
  fs::create_directories(dir);
  return dir;
}

}  // namespace

TEST_CASE("docs/ is what cesr makes today (scripts/regen_docs.sh --check)") {
  const fs::path scratch = scratch_dir();
  const Result r = regen("--check", scratch);
  INFO(r.err);
  CHECK(r.status == 0);
  fs::remove_all(scratch);
}

TEST_CASE("the script regenerates regions, and --check catches stale ones and failing commands") {
  const fs::path scratch = scratch_dir();
  const fs::path docs = scratch / "docs";
  fs::create_directories(docs);
  const std::string marker = "<!-- cesr-code: steps --method sgd --lr 0.1 --target 1e-3 --relative -->\n";
  spit(docs / "page.md", "# Page\n\n" + marker + "stale output\n<!-- /cesr -->\n\nAfter.\n");

  Result r = regen("--check --docs " + docs.string(), scratch);
  CHECK(r.status == 1);
  CHECK(r.err.find("out of date") != std::string::npos);
  CHECK(slurp(docs / "page.md").find("stale output") != std::string::npos);  // check mode writes nothing

  r = regen("--docs " + docs.string(), scratch);
  REQUIRE(r.status == 0);
  const std::string page = slurp(docs / "page.md");
  CHECK(page.find("stale output") == std::string::npos);
  CHECK(page.find("```\n$ cesr steps --method sgd --lr 0.1 --target 1e-3 --relative\n{\"steps\": ") !=
        std::string::npos);
  CHECK(page.find("<!-- /cesr -->\n\nAfter.\n") != std::string::npos);
  CHECK(regen("--check --docs " + docs.string(), scratch).status == 0);

  // The check compares numbers to a relative 1e-9 (so the portable and the
  // native build both pass), not bit for bit: a change in the 16th digit of
  // the loss passes, one in the 8th fails; so does changed text, while the
  // width of a blank run does not matter.
  {
    const std::string good = slurp(docs / "page.md");
    const std::string key = "\"loss\": ";
    const std::size_t at = good.find(key);
    REQUIRE(at != std::string::npos);
    const std::size_t begin = at + key.size(), end = good.find(',', begin);
    const double loss = std::stod(good.substr(begin, end - begin));
    const auto with_loss = [&](double factor) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.16e", loss * factor);
      return good.substr(0, begin) + buf + good.substr(end);
    };
    spit(docs / "page.md", with_loss(1 + 3e-15));
    CHECK(regen("--check --docs " + docs.string(), scratch).status == 0);
    spit(docs / "page.md", with_loss(1 + 1e-7));
    r = regen("--check --docs " + docs.string(), scratch);
    CHECK(r.status == 1);
    CHECK(r.err.find("\"loss\"") != std::string::npos);  // the line that differs is shown
    CHECK(regen("--check --rtol 1e-6 --docs " + docs.string(), scratch).status == 0);
    std::string blanks = good;
    blanks.replace(blanks.find("\"reached\":"), 10, "\"reached\":   ");
    spit(docs / "page.md", blanks);
    CHECK(regen("--check --docs " + docs.string(), scratch).status == 0);
    std::string renamed = good;
    renamed.replace(renamed.find("\"reached\""), 9, "\"reachd\"");
    spit(docs / "page.md", renamed);
    CHECK(regen("--check --docs " + docs.string(), scratch).status == 1);
    spit(docs / "page.md", good);
  }

  // A figure that no command makes any more is reported.
  fs::create_directories(docs / "figures");
  spit(docs / "figures" / "orphan.svg", "<svg/>");
  CHECK(regen("--check --docs " + docs.string(), scratch).status == 1);
  fs::remove(docs / "figures" / "orphan.svg");

  // A command that fails stops the script with its message.
  spit(docs / "bad.md", "<!-- cesr: loss --method sgd --lr -1 --steps 3 -->\n<!-- /cesr -->\n");
  r = regen("--docs " + docs.string(), scratch);
  CHECK(r.status != 0);
  CHECK(r.err.find("bad.md:1") != std::string::npos);
  CHECK(r.err.find("--lr") != std::string::npos);

  // An unterminated region is an error.
  spit(docs / "bad.md", "<!-- cesr: loss --method sgd --lr 0.1 --steps 3 -->\nno end\n");
  CHECK(regen("--docs " + docs.string(), scratch).status != 0);

  // cesr-code[N]: a command expected to exit N, its standard error in the block.
  spit(docs / "bad.md", "<!-- cesr-code[1]: steps --method sgd --lr 0.1 --target 1e-30 --max-steps 3 --horizon stepping -->\n<!-- /cesr -->\n");
  r = regen("--docs " + docs.string(), scratch);
  REQUIRE(r.status == 0);
  CHECK(slurp(docs / "bad.md").find("\"reached\": false") != std::string::npos);
  CHECK(slurp(docs / "bad.md").find("cesr steps: target not reached within --max-steps 3") != std::string::npos);
  spit(docs / "bad.md", "<!-- cesr-code[1]: steps --method sgd --lr 0.1 --target 1e-3 --relative -->\n<!-- /cesr -->\n");
  r = regen("--docs " + docs.string(), scratch);
  CHECK(r.status != 0);
  CHECK(r.err.find("exited 0, expected 1") != std::string::npos);
  fs::remove_all(scratch);
}

TEST_CASE("every local link and image in docs/ exists") {
  const std::regex link(R"re(\]\(([^)#\s]+)(#[^)]*)?\))re");
  int links = 0;
  for (const auto& entry : fs::directory_iterator(source_dir / "docs")) {
    if (entry.path().extension() != ".md") continue;
    const std::string text = slurp(entry.path());
    for (auto it = std::sregex_iterator(text.begin(), text.end(), link); it != std::sregex_iterator(); ++it) {
      const std::string target = (*it)[1].str();
      if (target.find("://") != std::string::npos || target.rfind("mailto:", 0) == 0) continue;
      ++links;
      INFO(entry.path().filename().string() << " links to " << target);
      CHECK(fs::exists(entry.path().parent_path() / target));
    }
  }
  CHECK(links > 0);
}
