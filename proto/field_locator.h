// field_locator.h
//
// FieldLocator answers "where did this field come from?" for error messages: "file:LINE" when
// the field was written in the file, "file (--set PATH=VALUE)" when an override set it, and the
// line of the nearest enclosing message that was written otherwise. Used by every reader of
// protobuf text files: scenarios (proto/), hardware profiles (calib/) and topology files
// (topologies/). `root` is the file's message type.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/text_format.h>

#include "common/status.h"

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
  // An override of `path` or of a field inside it counts as its location.
  std::string Where(const std::string& path) const;
  // True when `path` itself was written in the file or set by an override (so a zero there is
  // a value given, not a field left out).
  bool WasWritten(const std::string& path) const;
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  const google::protobuf::Descriptor* root_;
  std::unique_ptr<google::protobuf::TextFormat::ParseInfoTree> tree_;
  std::map<std::string, std::string> overridden_;
  // Line (0-based) of `path` or of its nearest written ancestor; *exact = whether `path` itself.
  int Line(const std::string& path, bool* exact) const;
};

// Every enum field of `msg` (nested and repeated ones too) that holds a number outside its enum:
// the text format accepts a number for an enum field ("axes: 7") and keeps it, so each reader of
// a text file calls this before it reads an enum. One message per field, in field order:
// "file:LINE: sharding.rules[0].axes[0]=7 is not a value of Axis (AXIS_UNSPECIFIED, DATA, ...)".
// Ok when every enum value is known, else kInvalidInput with one such line per field.
Status CheckEnumValues(const google::protobuf::Message& msg, const FieldLocator& where);

}  // namespace moesim
