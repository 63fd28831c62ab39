#include "proto/field_locator.h"

#include <vector>

namespace moesim {

std::string FieldLocator::Where(const std::string& path) const {
  if (auto it = overridden_.find(path); it != overridden_.end()) {
    return source_ + " (--set " + it->second + ")";
  }
  for (const auto& [p, assignment] : overridden_) {
    if (p.rfind(path + ".", 0) == 0) return source_ + " (--set " + assignment + ")";
  }
  bool exact = false;
  const int line = Line(path, &exact);
  if (line < 0) return source_;
  return source_ + ":" + std::to_string(line + 1);
}

bool FieldLocator::WasWritten(const std::string& path) const {
  if (overridden_.count(path) != 0) return true;
  bool exact = false;
  Line(path, &exact);
  return exact;
}

int FieldLocator::Line(const std::string& path, bool* exact) const {
  *exact = false;
  const google::protobuf::Descriptor* desc = root_;
  const google::protobuf::TextFormat::ParseInfoTree* tree = tree_.get();
  int best_line = -1;
  size_t start = 0;
  while (tree != nullptr && desc != nullptr && start <= path.size()) {
    size_t end = path.find('.', start);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(start, end - start);
    int index = -1;
    if (const size_t br = part.find('['); br != std::string::npos) {
      index = std::stoi(part.substr(br + 1));
      part = part.substr(0, br);
    }
    const google::protobuf::FieldDescriptor* field = desc->FindFieldByName(part);
    if (field == nullptr) break;
    if (field->is_repeated() && index < 0) index = 0;
    const auto loc = tree->GetLocation(field, index);
    if (loc.line >= 0) best_line = loc.line;
    if (end == path.size()) *exact = loc.line >= 0;
    if (end == path.size() || field->message_type() == nullptr) break;
    tree = tree->GetTreeForNested(field, index);
    desc = field->message_type();
    start = end + 1;
  }
  return best_line;
}

}  // namespace moesim
