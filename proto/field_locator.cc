#include "proto/field_locator.h"

#include <vector>

#include <google/protobuf/message.h>

namespace moesim {
namespace {

namespace gp = google::protobuf;

void FindUnknownEnums(const gp::Message& msg, const std::string& prefix, const FieldLocator& where,
                      std::vector<std::string>* out) {
  const gp::Reflection* refl = msg.GetReflection();
  std::vector<const gp::FieldDescriptor*> fields;
  refl->ListFields(msg, &fields);
  for (const gp::FieldDescriptor* f : fields) {
    const std::string path = prefix + f->name();
    const int n = f->is_repeated() ? refl->FieldSize(msg, f) : 1;
    for (int i = 0; i < n; ++i) {
      const std::string at = f->is_repeated() ? path + "[" + std::to_string(i) + "]" : path;
      if (f->cpp_type() == gp::FieldDescriptor::CPPTYPE_MESSAGE) {
        FindUnknownEnums(
            f->is_repeated() ? refl->GetRepeatedMessage(msg, f, i) : refl->GetMessage(msg, f),
            at + ".", where, out);
        continue;
      }
      if (f->cpp_type() != gp::FieldDescriptor::CPPTYPE_ENUM) continue;
      const int v =
          f->is_repeated() ? refl->GetRepeatedEnumValue(msg, f, i) : refl->GetEnumValue(msg, f);
      const gp::EnumDescriptor* e = f->enum_type();
      if (e->FindValueByNumber(v) != nullptr) continue;
      std::string names;
      for (int k = 0; k < e->value_count(); ++k) {
        names += (k ? ", " : "") + e->value(k)->name();
      }
      out->push_back(where.Where(at) + ": " + at + "=" + std::to_string(v) + " is not a value of " +
                     e->name() + " (" + names + ")");
    }
  }
}

}  // namespace

Status CheckEnumValues(const gp::Message& msg, const FieldLocator& where) {
  std::vector<std::string> unknown;
  FindUnknownEnums(msg, "", where, &unknown);
  std::string message;
  for (const std::string& u : unknown) message += (message.empty() ? "" : "\n") + u;
  return unknown.empty() ? Status::Ok() : Status::InvalidInput(message);
}

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
