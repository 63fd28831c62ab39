#include "gui/scenario_doc.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include "proto/moesim.pb.h"
#include "proto/scenario_loader.h"

namespace moesim::gui {

namespace gp = google::protobuf;

ScenarioDoc::ScenarioDoc() : base_{DefaultScenarioText(), "<default>", "."} {}

Status ScenarioDoc::Open(const std::string& path) {
  auto text = ReadScenarioText(path);
  if (!text.ok()) return text.status();
  path_ = path;
  base_ = std::move(*text);
  overrides_.clear();
  return Status::Ok();
}

void ScenarioDoc::SetOverride(const std::string& path, const std::string& value) {
  // Earlier assignments of the path are dropped rather than edited in place: a point loaded from
  // a chart may assign a path twice, and the last assignment is the one the loader keeps.
  std::erase_if(overrides_, [&](const std::string& o) {
    return o.size() > path.size() && o.compare(0, path.size(), path) == 0 && o[path.size()] == '=';
  });
  overrides_.push_back(path + "=" + value);
}

std::string ScenarioDoc::OverrideValue(const std::string& path) const {
  std::string v;
  for (const std::string& o : overrides_) {
    if (o.size() > path.size() && o.compare(0, path.size(), path) == 0 && o[path.size()] == '=') {
      v = o.substr(path.size() + 1);
    }
  }
  return v;
}

Status ScenarioDoc::SetRepeatedField(const std::string& path, const std::string& elements_text) {
  pb::Scenario msg;
  if (!gp::TextFormat::ParseFromString(base_.text, &msg)) {
    return Status::InvalidInput(base_.source_name + ": cannot parse");
  }
  gp::Message* parent = &msg;
  const gp::FieldDescriptor* field = nullptr;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string name = path.substr(start, dot == std::string::npos ? dot : dot - start);
    field = parent->GetDescriptor()->FindFieldByName(name);
    if (field == nullptr) return Status::InvalidInput(path + ": no such field");
    if (dot == std::string::npos) break;
    if (field->is_repeated() || field->cpp_type() != gp::FieldDescriptor::CPPTYPE_MESSAGE) {
      return Status::InvalidInput(path + ": " + name + " is not a message");
    }
    parent = parent->GetReflection()->MutableMessage(parent, field);
    start = dot + 1;
  }
  if (!field->is_repeated()) return Status::InvalidInput(path + " is not a repeated field");
  // Parsed into a scratch copy first so that a typo leaves the document as it was.
  std::unique_ptr<gp::Message> scratch(parent->New());
  struct Collector : gp::io::ErrorCollector {
    std::string first;
    void AddError(int line, gp::io::ColumnNumber column, const std::string& message) override {
      if (first.empty()) {
        first = std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " + message;
      }
    }
  } errors;
  gp::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(elements_text, scratch.get())) {
    return Status::InvalidInput(path + ":" + errors.first);
  }
  const gp::Reflection* from = scratch->GetReflection();
  for (int i = 0; i < scratch->GetDescriptor()->field_count(); ++i) {
    const gp::FieldDescriptor* f = scratch->GetDescriptor()->field(i);
    if (f != field &&
        (f->is_repeated() ? from->FieldSize(*scratch, f) > 0 : from->HasField(*scratch, f))) {
      return Status::InvalidInput(path + ": only " + field->name() +
                                  " { ... } elements belong here");
    }
  }
  parent->GetReflection()->ClearField(parent, field);
  parent->MergeFrom(*scratch);
  std::string text;
  gp::TextFormat::PrintToString(msg, &text);
  base_.text = text;
  const std::string suffix = " (edited)";
  if (base_.source_name.size() < suffix.size() ||
      base_.source_name.compare(base_.source_name.size() - suffix.size(), suffix.size(), suffix) !=
          0) {
    base_.source_name += suffix;
  }
  return Status::Ok();
}

Expected<Scenario> ScenarioDoc::Load() const {
  return LoadScenarioFromText(base_.text, base_.source_name, overrides_, base_.base_dir);
}

}  // namespace moesim::gui
