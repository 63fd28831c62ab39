// Golden files: the JSON of every shipped scenario (`moesim simulate` at the analytical network
// level and `moesim cost`) and of every validation set (`moesim validate`) must equal, byte for
// byte, the file under tests/golden/ that was written from it. A change that means to move a
// result regenerates the files (scripts/update-golden.sh) in the same commit and says why in its
// message; one that does not mean to fails here with the first differing line and JSON field.
//
// The commands run from the source root with paths relative to it, as a user runs them, so the
// JSON holds no machine-dependent field (no absolute path, date, timing or thread count): nothing
// is stripped before the comparison. With MOESIM_UPDATE_GOLDEN=1 in the environment the tests
// write the files instead of comparing (what scripts/update-golden.sh runs), so the list of
// commands and where their goldens live has one owner, this file.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/run_command.h"
#include "tests/shipped_files.h"

namespace moesim::test_cli {
namespace {

namespace fs = std::filesystem;

// One golden: the moesim arguments that produce it and the file it lives in, both relative to the
// source root.
struct Golden {
  std::string args;  // e.g. "simulate scenarios/x/y.textproto --network analytical --json -"
  std::string file;  // e.g. "tests/golden/simulate/x/y.json"
};

// How GoogleTest names a parameter in its messages.
void PrintTo(const Golden& golden, std::ostream* os) { *os << golden.file; }

// `path` without its first directory and its extension: "scenarios/a/b.textproto" -> "a/b".
std::string Stem(const std::string& path) {
  const fs::path p(path);
  fs::path rest;
  for (auto it = std::next(p.begin()); it != p.end(); ++it) rest /= *it;
  return rest.replace_extension().string();
}

std::vector<Golden> AllGoldens() {
  std::vector<Golden> out;
  for (const std::string& sc : ShippedScenarios()) {
    out.push_back({"simulate " + sc + " --network analytical --json -",
                   "tests/golden/simulate/" + Stem(sc) + ".json"});
    out.push_back({"cost " + sc + " --json -", "tests/golden/cost/" + Stem(sc) + ".json"});
  }
  for (const std::string& set : ShippedValidationSets()) {
    out.push_back({"validate " + set + " --network analytical --json -",
                   "tests/golden/validate/" + Stem(set) + ".json"});
  }
  return out;
}

std::string GoldenName(const testing::TestParamInfo<Golden>& info) {
  std::string name = info.param.file.substr(std::string("tests/golden/").size());
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

bool UpdateMode() {
  const char* v = std::getenv("MOESIM_UPDATE_GOLDEN");
  return v != nullptr && std::string(v) == "1";
}

std::optional<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The first line where `golden` and `actual` differ, as "line N:\n  golden: ...\n  actual: ...".
std::string FirstDifferingLine(const std::string& golden, const std::string& actual) {
  const std::vector<std::string> g = Lines(golden), a = Lines(actual);
  const size_t n = std::max(g.size(), a.size());
  for (size_t i = 0; i < n; ++i) {
    const std::string gl = i < g.size() ? g[i] : "<end of file>";
    const std::string al = i < a.size() ? a[i] : "<end of output>";
    if (gl != al) {
      return "line " + std::to_string(i + 1) + ":\n  golden: " + gl + "\n  actual: " + al;
    }
  }
  return "the same lines; they differ in line endings or the final newline";
}

// The first JSON field (in document order, a depth-first walk) whose value differs, as
// "/path/to/field: golden G, actual A"; empty when both parse and are equal as JSON values.
std::string FirstDifferingField(const nlohmann::json& g, const nlohmann::json& a,
                                const std::string& path) {
  const std::string where = path.empty() ? "/" : path;
  if (g.type() != a.type()) {
    return where + ": golden " + g.dump() + ", actual " + a.dump();
  }
  if (g.is_object()) {
    for (const auto& [key, value] : g.items()) {
      if (!a.contains(key)) return path + "/" + key + ": in the golden only";
      std::string d = FirstDifferingField(value, a.at(key), path + "/" + key);
      if (!d.empty()) return d;
    }
    for (const auto& [key, value] : a.items()) {
      if (!g.contains(key)) return path + "/" + key + ": in the output only";
    }
    return "";
  }
  if (g.is_array()) {
    const size_t n = std::min(g.size(), a.size());
    for (size_t i = 0; i < n; ++i) {
      std::string d = FirstDifferingField(g[i], a[i], path + "/" + std::to_string(i));
      if (!d.empty()) return d;
    }
    if (g.size() != a.size()) {
      return where + ": golden has " + std::to_string(g.size()) + " elements, actual " +
             std::to_string(a.size());
    }
    return "";
  }
  if (g != a) return where + ": golden " + g.dump() + ", actual " + a.dump();
  return "";
}

std::string DescribeDifference(const std::string& golden, const std::string& actual) {
  std::string out = "first differing " + FirstDifferingLine(golden, actual);
  const auto g = nlohmann::json::parse(golden, nullptr, /*allow_exceptions=*/false);
  const auto a = nlohmann::json::parse(actual, nullptr, /*allow_exceptions=*/false);
  if (g.is_discarded() || a.is_discarded()) return out + "\n(not both valid JSON)";
  const std::string field = FirstDifferingField(g, a, "");
  return out + "\nfirst differing field " + (field.empty() ? "(none: same JSON values)" : field);
}

class GoldenJson : public testing::TestWithParam<Golden> {};

TEST_P(GoldenJson, MatchesByteForByte) {
  const Golden& golden = GetParam();
  const std::string command = "cd " + std::string(MOESIM_SOURCE_DIR) + " && " +
                              std::string(MOESIM_BINARY_DIR) + "/moesim " + golden.args;
  const RunResult r = RunCommand(command);
  ASSERT_EQ(r.exit_code, 0) << command << "\n" << r.out;
  ASSERT_FALSE(r.out.empty()) << command;
  const fs::path file = fs::path(MOESIM_SOURCE_DIR) / golden.file;
  if (UpdateMode()) {
    fs::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << r.out;
    ASSERT_TRUE(out.good()) << "could not write " << file;
    return;
  }
  const std::optional<std::string> expected = ReadFile(file);
  ASSERT_TRUE(expected.has_value())
      << golden.file << " is missing; write it with scripts/update-golden.sh";
  if (*expected == r.out) return;
  ADD_FAILURE() << "`moesim " << golden.args << "` (run from the source root) differs from "
                << golden.file << "\n"
                << DescribeDifference(*expected, r.out) << "\n"
                << "If the change means to move this result, update the goldens in the same "
                   "commit and say why in its message:\n"
                << "  BUILD_DIR=" << MOESIM_BINARY_DIR << " scripts/update-golden.sh\n"
                << "(this file alone: " << command << " > " << golden.file << ")";
}

INSTANTIATE_TEST_SUITE_P(Shipped, GoldenJson, testing::ValuesIn(AllGoldens()), GoldenName);

// Every file under tests/golden/ belongs to a shipped scenario or validation set: a golden left
// behind by a removed or renamed input fails here.
TEST(GoldenFiles, NoneWithoutItsInput) {
  std::set<std::string> expected;
  for (const Golden& g : AllGoldens()) expected.insert(g.file);
  const fs::path root = fs::path(MOESIM_SOURCE_DIR) / "tests/golden";
  ASSERT_TRUE(fs::is_directory(root)) << root;
  size_t files = 0;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (!e.is_regular_file()) continue;
    ++files;
    const std::string rel = fs::relative(e.path(), MOESIM_SOURCE_DIR).string();
    EXPECT_TRUE(expected.count(rel) == 1)
        << rel << " matches no shipped scenario or validation set; delete it "
        << "(scripts/update-golden.sh rewrites tests/golden/ from scratch)";
  }
  EXPECT_GE(files, expected.size());
}

// The comparison's own messages: a changed number is reported at its line and its JSON field.
TEST(GoldenFiles, DifferenceNamesTheLineAndTheField) {
  const std::string golden = "{\n  \"a\": {\n    \"b\": [1, 2.5]\n  },\n  \"c\": 3\n}\n";
  const std::string actual = "{\n  \"a\": {\n    \"b\": [1, 2.6]\n  },\n  \"c\": 3\n}\n";
  const std::string d = DescribeDifference(golden, actual);
  EXPECT_NE(d.find("line 3:\n  golden:     \"b\": [1, 2.5]\n  actual:     \"b\": [1, 2.6]"),
            std::string::npos)
      << d;
  EXPECT_NE(d.find("field /a/b/1: golden 2.5, actual 2.6"), std::string::npos) << d;
  EXPECT_NE(DescribeDifference("{\"x\": 1}\n", "{\"x\": 1}").find("final newline"),
            std::string::npos);
  EXPECT_NE(DescribeDifference("{\"x\": 1}", "{\"y\": 1}").find("/x: in the golden only"),
            std::string::npos);
}

}  // namespace
}  // namespace moesim::test_cli
