#include "proto/pipeline_layout.h"

#include <algorithm>

#include "common/limits.h"
#include "proto/scenario.h"

namespace moesim {
namespace {

std::string Col(int64_t column) { return "column " + std::to_string(column) + ": "; }

std::string Shown(char c) { return std::string("'") + c + "'"; }

// The parse tree: a symbol, or a group of items, each with its repeat count.
struct Item {
  char symbol = 0;  // 'E', 't', 'm', 'L', '|'; 0 for a group
  int64_t column = 0;
  int64_t repeat = 1;
  int64_t size = 1;  // symbols it expands to, within kMaxPipelineLayoutSymbols
  std::vector<Item> children;
};

class Parser {
 public:
  explicit Parser(const std::string& text) : s_(text) {}

  // The top-level items; error() is set when parsing failed.
  std::vector<Item> Parse() {
    std::vector<Item> items = Sequence(0);
    if (error_.empty() && pos_ < s_.size()) {
      Fail(pos_, "unexpected ')' with no '(' open");
    }
    return items;
  }
  const std::string& error() const { return error_; }

 private:
  void Fail(size_t pos, const std::string& what) {
    if (error_.empty()) error_ = Col(static_cast<int64_t>(pos) + 1) + what;
  }

  // item* up to the end or a ')' (left for the caller).
  std::vector<Item> Sequence(int64_t depth) {
    std::vector<Item> items;
    int64_t total = 0;
    while (error_.empty() && pos_ < s_.size() && s_[pos_] != ')') {
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      Item item = ParseItem(depth);
      if (!error_.empty()) break;
      total += item.size;  // both within the limit: no overflow
      if (total > limits::kMaxPipelineLayoutSymbols) {
        Fail(static_cast<size_t>(item.column - 1),
             "the layout expands to more than " +
                 std::to_string(limits::kMaxPipelineLayoutSymbols) +
                 " layers and boundaries, the limit (docs/limits.md)");
        break;
      }
      // Zero copies expand to nothing: dropped, so that every item walked yields a symbol and
      // walking the expansion costs at most its symbols x the nesting depth.
      if (item.size > 0) items.push_back(std::move(item));
    }
    return items;
  }

  Item ParseItem(int64_t depth) {
    Item item;
    item.column = static_cast<int64_t>(pos_) + 1;
    const char c = s_[pos_];
    if (c == 'E' || c == 't' || c == 'm' || c == 'L' || c == '|') {
      item.symbol = c;
      ++pos_;
      if (pos_ < s_.size() && s_[pos_] == '*') Repeat(&item);
      return item;
    }
    if (c == '(') {
      if (depth + 1 > limits::kMaxPipelineLayoutDepth) {
        Fail(pos_, "groups nest deeper than " + std::to_string(limits::kMaxPipelineLayoutDepth) +
                       " levels, the limit (docs/limits.md)");
        return item;
      }
      ++pos_;
      item.children = Sequence(depth + 1);
      if (!error_.empty()) return item;
      if (pos_ >= s_.size()) {
        Fail(pos_, "expected ')' to close the '(' at column " + std::to_string(item.column));
        return item;
      }
      ++pos_;  // ')'
      item.size = 0;
      for (const Item& child : item.children) item.size += child.size;
      if (pos_ >= s_.size() || s_[pos_] != '*') {
        Fail(pos_, "expected '*' and a repeat count after the group opened at column " +
                       std::to_string(item.column));
        return item;
      }
      Repeat(&item);
      return item;
    }
    if (c == '*') {
      Fail(pos_, "unexpected '*': a repeat count follows one symbol or a group, once");
    } else if (c == ')') {
      Fail(pos_, "unexpected ')' with no '(' open");
    } else {
      const bool printable = c > ' ' && c < 127;
      Fail(pos_, std::string("unexpected ") +
                     (printable ? Shown(c) : "character code " + std::to_string(c & 0xff)) +
                     ": expected E (embedding), t (transformer layer), m (MTP layer), L (loss), "
                     "'|' (next virtual stage), '(' or ','");
    }
    return item;
  }

  // At '*': reads the count and scales item.size, refusing past the limits before any expansion.
  void Repeat(Item* item) {
    const size_t star = pos_++;
    if (pos_ >= s_.size() || s_[pos_] < '0' || s_[pos_] > '9') {
      Fail(pos_,
           "expected a repeat count (digits) after the '*' at column " + std::to_string(star + 1));
      return;
    }
    int64_t n = 0;
    const size_t digits = pos_;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      n = n * 10 + (s_[pos_] - '0');
      ++pos_;
      if (n > limits::kMaxPipelineLayoutRepeat) {
        Fail(digits, "repeat count " + s_.substr(digits, pos_ - digits) +
                         "... exceeds the limit of " +
                         std::to_string(limits::kMaxPipelineLayoutRepeat) + " (docs/limits.md)");
        return;
      }
    }
    item->repeat = n;
    // size <= kMaxPipelineLayoutSymbols and n <= kMaxPipelineLayoutRepeat: both < 2^31.
    item->size *= n;
    if (item->size > limits::kMaxPipelineLayoutSymbols) {
      Fail(static_cast<size_t>(item->column - 1),
           "repeated " + std::to_string(n) + " times this expands to " +
               std::to_string(item->size) + " layers and boundaries, past the limit of " +
               std::to_string(limits::kMaxPipelineLayoutSymbols) + " (docs/limits.md)");
    }
    if (pos_ < s_.size() && s_[pos_] == '*') {
      Fail(pos_, "unexpected '*': a repeat count follows one symbol or a group, once");
    }
  }

  const std::string& s_;
  size_t pos_ = 0;
  std::string error_;
};

// Walks the expansion symbol by symbol (bounded by kMaxPipelineLayoutSymbols), building the
// segments and checking the order Megatron-LM requires.
class Expander {
 public:
  Expander() { out_.segments.emplace_back(); }

  void Walk(const std::vector<Item>& items) {
    for (const Item& item : items) {
      for (int64_t r = 0; r < item.repeat && error_.empty(); ++r) {
        if (item.symbol == 0) {
          Walk(item.children);
        } else {
          Symbol(item.symbol, item.column);
        }
      }
      if (!error_.empty()) return;
    }
  }

  Expected<ParsedPipelineLayout> Finish(int64_t end_column) {
    if (error_.empty() && !seen_embedding_) {
      error_ = Col(1) + "no 'E': the embedding must open the first virtual stage";
    }
    if (error_.empty() && !seen_head_) {
      error_ = Col(end_column) + "no 'L': the loss (head) must close the last virtual stage";
    }
    if (!error_.empty()) return Status::InvalidInput(error_);
    return std::move(out_);
  }

 private:
  void Symbol(char c, int64_t column) {
    if (seen_head_ && c == 'L') {
      error_ = Col(column) + "a second 'L': the loss appears once";
      return;
    }
    if (seen_head_) {
      error_ = Col(head_column_) + "'L' (loss) must be the last symbol, but " + Shown(c) +
               " at column " + std::to_string(column) + " follows it";
      return;
    }
    PipelineChunk& seg = out_.segments.back();
    switch (c) {
      case 'E':
        if (seen_embedding_) {
          error_ = Col(column) + "a second 'E': the embedding appears once";
        } else if (symbols_ > 0) {
          error_ =
              Col(column) + "'E' (embedding) must be the first symbol of the first virtual stage";
        }
        seg.embedding = true;
        seen_embedding_ = true;
        break;
      case 't':
        if (out_.mtp_layers > 0) {
          error_ = Col(column) + "transformer layer 't' after an MTP layer 'm' (column " +
                   std::to_string(out_.first_mtp_column) + "): MTP layers follow every 't'";
        }
        ++seg.num_layers;
        ++out_.num_layers;
        break;
      case 'm':
        if (out_.mtp_layers == 0) out_.first_mtp_column = column;
        ++seg.mtp_layers;
        ++out_.mtp_layers;
        break;
      case 'L':
        seg.head = true;
        seen_head_ = true;
        head_column_ = column;
        break;
      case '|': {
        PipelineChunk next;
        next.first_layer = out_.num_layers;
        out_.segments.push_back(next);
        break;
      }
      default:
        break;
    }
    ++symbols_;
  }

  ParsedPipelineLayout out_;
  std::string error_;
  int64_t symbols_ = 0;
  bool seen_embedding_ = false, seen_head_ = false;
  int64_t head_column_ = 0;
};

}  // namespace

int64_t PipelineLayout::LayersOnRank(int64_t rank) const {
  int64_t n = 0;
  for (int64_t c = 0; c < chunks; ++c) n += At(rank, c).num_layers;
  return n;
}

Expected<ParsedPipelineLayout> ParsePipelineLayout(const std::string& text) {
  if (static_cast<int64_t>(text.size()) > limits::kMaxPipelineLayoutChars) {
    return Status::InvalidInput(std::to_string(text.size()) + " characters exceed the limit of " +
                                std::to_string(limits::kMaxPipelineLayoutChars) +
                                " (docs/limits.md)");
  }
  Parser parser(text);
  const std::vector<Item> items = parser.Parse();
  if (!parser.error().empty()) return Status::InvalidInput(parser.error());
  Expander expander;
  expander.Walk(items);
  return expander.Finish(static_cast<int64_t>(text.size()) + 1);
}

PipelineLayout EvenPipelineLayout(int64_t num_layers, int64_t ranks, int64_t chunks) {
  PipelineLayout out;
  out.ranks = ranks;
  out.chunks = chunks;
  const int64_t n = ranks * chunks;
  const int64_t per = n > 0 ? num_layers / n : 0;
  out.stages.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    PipelineChunk& c = out.stages[static_cast<size_t>(i)];
    c.first_layer = i * per;
    c.num_layers = per;
    c.embedding = i == 0;
    c.head = i == n - 1;
  }
  return out;
}

PipelineLayout LayoutFromSegments(const ParsedPipelineLayout& parsed, int64_t ranks) {
  PipelineLayout out;
  out.ranks = ranks;
  out.chunks = static_cast<int64_t>(parsed.segments.size()) / ranks;
  out.stages = parsed.segments;
  return out;
}

Expected<PipelineLayout> FirstLastPipelineLayout(int64_t num_layers, int64_t ranks, int64_t chunks,
                                                 std::optional<int64_t> first,
                                                 std::optional<int64_t> last) {
  const auto chunk_text = [&](int64_t n) {
    return std::to_string(n) + " layers do not split evenly over the " + std::to_string(chunks) +
           " model chunks of a rank (training.virtual_stages)";
  };
  if (first && *first % chunks != 0)
    return Status::InvalidInput("the first stage's " + chunk_text(*first));
  if (last && *last % chunks != 0)
    return Status::InvalidInput("the last stage's " + chunk_text(*last));
  const int64_t f = first.value_or(0), l = last.value_or(0);
  if (f + l > num_layers) {
    return Status::InvalidInput("the first and last stages' " + std::to_string(f + l) +
                                " layers exceed model.num_layers=" + std::to_string(num_layers));
  }
  const int64_t middle_ranks = ranks - (first ? 1 : 0) - (last ? 1 : 0);
  const int64_t rest = num_layers - f - l;
  if (middle_ranks <= 0 && rest != 0) {
    return Status::InvalidInput("the first and last stages hold " + std::to_string(f + l) +
                                " of model.num_layers=" + std::to_string(num_layers) +
                                " layers and no middle stage is left for the other " +
                                std::to_string(rest));
  }
  if (middle_ranks > 0 && rest % (middle_ranks * chunks) != 0) {
    return Status::InvalidInput(
        "the other " + std::to_string(rest) + " of model.num_layers=" + std::to_string(num_layers) +
        " layers do not split evenly over the " + std::to_string(middle_ranks) + " middle stages" +
        (chunks > 1 ? " x " + std::to_string(chunks) + " model chunks" : std::string()));
  }
  const int64_t per_middle = middle_ranks > 0 ? rest / (middle_ranks * chunks) : 0;
  PipelineLayout out;
  out.ranks = ranks;
  out.chunks = chunks;
  out.stages.resize(static_cast<size_t>(ranks * chunks));
  int64_t next = 0;
  for (int64_t i = 0; i < ranks * chunks; ++i) {
    const int64_t rank = i % ranks;
    PipelineChunk& c = out.stages[static_cast<size_t>(i)];
    c.first_layer = next;
    c.num_layers = rank == 0 && first          ? f / chunks
                   : rank == ranks - 1 && last ? l / chunks
                                               : per_middle;
    c.embedding = i == 0;
    c.head = i == ranks * chunks - 1;
    next += c.num_layers;
  }
  return out;
}

std::string DescribeRank(const PipelineLayout& layout, int64_t rank) {
  std::string out;
  for (int64_t c = 0; c < layout.chunks; ++c) {
    const PipelineChunk& ch = layout.At(rank, c);
    std::string s = (ch.embedding ? "E," : "") + std::to_string(ch.num_layers) +
                    (ch.mtp_layers > 0 ? ",m" + std::to_string(ch.mtp_layers) : "") +
                    (ch.head ? ",L" : "");
    out += (c > 0 ? " | " : "") + s;
  }
  return out;
}

int64_t PipelineChunksPerRank(const Scenario& sc) {
  const int64_t ranks = sc.sharding.mesh[MeshAxis::kPipeline];
  return sc.training.pipeline_schedule == PipelineSchedule::kInterleaved && ranks > 1
             ? sc.training.virtual_stages
             : 1;
}

PipelineLayout ScenarioPipelineLayout(const Scenario& sc) {
  PipelineLayout out =
      !sc.training.pipeline_layout.stages.empty()
          ? sc.training.pipeline_layout
          : EvenPipelineLayout(sc.model.num_layers, sc.sharding.mesh[MeshAxis::kPipeline],
                               PipelineChunksPerRank(sc));
  // The MTP modules run after the loss, on the last virtual stage (validated for a layout).
  if (!out.stages.empty()) out.stages.back().mtp_layers = sc.model.mtp_depth;
  return out;
}

}  // namespace moesim
