// field_locator.h (internal to proto/)
//
// FieldLocator answers "where did this field come from?" for error messages: "file:LINE" when
// the field was written in the file, "file (--set PATH=VALUE)" when an override set it, and the
// line of the nearest enclosing message that was written otherwise.
#pragma once

#include <map>
#include <memory>
#include <string>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/text_format.h>

namespace moesim {

class FieldLocator {
 public:
  FieldLocator(std::string source, const google::protobuf::Descriptor* root,
               std::unique_ptr<google::protobuf::TextFormat::ParseInfoTree> tree)
      : source_(std::move(source)), root_(root), tree_(std::move(tree)) {}

  void MarkOverridden(const std::string& path, const std::string& assignment) {
    overridden_[path] = assignment;
  }
  // "file:12" / "file (--set a.b=3)" / "file". `path` is dotted, with [i] for repeated fields:
  // "sharding.rules[1].dim".
  std::string Where(const std::string& path) const;
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  const google::protobuf::Descriptor* root_;
  std::unique_ptr<google::protobuf::TextFormat::ParseInfoTree> tree_;
  std::map<std::string, std::string> overridden_;
};

}  // namespace moesim
