#include "proto/overrides.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include <google/protobuf/descriptor.h>

namespace moesim {
namespace {

namespace gp = google::protobuf;

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string FieldList(const gp::Descriptor* d) {
  std::string out;
  for (int i = 0; i < d->field_count(); ++i) {
    out += (i == 0 ? "" : ", ") + d->field(i)->name();
  }
  return out;
}

bool ParseInt(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, *out);
  return ec == std::errc() && ptr == end;
}

bool ParseDouble(const std::string& s, double* out) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
  char* end = nullptr;
  *out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && std::isfinite(*out);
}

}  // namespace

Status ApplyOverride(const std::string& assignment, gp::Message* message, std::string* path_out) {
  const std::string where = "--set " + assignment + ": ";
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    return Status::InvalidInput("--set \"" + assignment + "\": expected PATH=VALUE");
  }
  const std::string path = assignment.substr(0, eq);
  const std::string value = assignment.substr(eq + 1);
  *path_out = path;

  gp::Message* msg = message;
  size_t start = 0;
  while (true) {
    size_t end = path.find('.', start);
    const bool last = end == std::string::npos;
    if (last) end = path.size();
    const std::string name = path.substr(start, end - start);
    const gp::Descriptor* desc = msg->GetDescriptor();
    const gp::FieldDescriptor* field = desc->FindFieldByName(name);
    if (field == nullptr) {
      const std::string parent = start == 0 ? "the scenario" : path.substr(0, start - 1);
      return Status::InvalidInput(where + parent + " has no field \"" + name +
                                  "\" (fields: " + FieldList(desc) + ")");
    }
    const gp::Reflection* refl = msg->GetReflection();
    if (field->is_repeated()) {
      return Status::InvalidInput(where + path.substr(0, end) +
                                  " is a repeated field; --set takes scalar fields only");
    }
    if (!last) {
      if (field->cpp_type() != gp::FieldDescriptor::CPPTYPE_MESSAGE) {
        return Status::InvalidInput(where + path.substr(0, end) + " is a " +
                                    field->cpp_type_name() + ", not a message");
      }
      msg = refl->MutableMessage(msg, field);
      start = end + 1;
      continue;
    }
    // An empty value clears a number, bool or enum back to unset (an optional field: not given),
    // e.g. `--set training.first_stage_layers=`.
    if (value.empty() && field->cpp_type() != gp::FieldDescriptor::CPPTYPE_STRING &&
        field->cpp_type() != gp::FieldDescriptor::CPPTYPE_MESSAGE) {
      refl->ClearField(msg, field);
      return Status::Ok();
    }
    switch (field->cpp_type()) {
      case gp::FieldDescriptor::CPPTYPE_INT64:
      case gp::FieldDescriptor::CPPTYPE_INT32: {
        int64_t v = 0;
        if (!ParseInt(value, &v)) {
          return Status::InvalidInput(where + "\"" + value + "\" is not an integer");
        }
        if (field->cpp_type() == gp::FieldDescriptor::CPPTYPE_INT64) {
          refl->SetInt64(msg, field, v);
        } else {
          if (v < INT32_MIN || v > INT32_MAX) {
            return Status::InvalidInput(where + "\"" + value + "\" is out of range");
          }
          refl->SetInt32(msg, field, static_cast<int32_t>(v));
        }
        return Status::Ok();
      }
      case gp::FieldDescriptor::CPPTYPE_DOUBLE:
      case gp::FieldDescriptor::CPPTYPE_FLOAT: {
        double v = 0;
        if (!ParseDouble(value, &v)) {
          return Status::InvalidInput(where + "\"" + value + "\" is not a number");
        }
        if (field->cpp_type() == gp::FieldDescriptor::CPPTYPE_DOUBLE) {
          refl->SetDouble(msg, field, v);
        } else {
          refl->SetFloat(msg, field, static_cast<float>(v));
        }
        return Status::Ok();
      }
      case gp::FieldDescriptor::CPPTYPE_BOOL: {
        if (value == "true" || value == "1") {
          refl->SetBool(msg, field, true);
        } else if (value == "false" || value == "0") {
          refl->SetBool(msg, field, false);
        } else {
          return Status::InvalidInput(where + "\"" + value + "\" is not true or false");
        }
        return Status::Ok();
      }
      case gp::FieldDescriptor::CPPTYPE_ENUM: {
        const gp::EnumDescriptor* e = field->enum_type();
        const gp::EnumValueDescriptor* v = e->FindValueByName(Upper(value));
        if (v == nullptr || v->number() == 0) {
          std::string names;
          for (int i = 0; i < e->value_count(); ++i) {
            if (e->value(i)->number() == 0) continue;
            names += (names.empty() ? "" : ", ") + e->value(i)->name();
          }
          return Status::InvalidInput(where + "\"" + value + "\" is not one of " + names);
        }
        refl->SetEnum(msg, field, v);
        return Status::Ok();
      }
      case gp::FieldDescriptor::CPPTYPE_STRING:
        refl->SetString(msg, field, value);
        return Status::Ok();
      case gp::FieldDescriptor::CPPTYPE_MESSAGE:
        return Status::InvalidInput(where + path + " is a message; set one of its fields (" +
                                    FieldList(field->message_type()) + ")");
      default:  // the schema has no unsigned fields
        break;
    }
    return Status::Internal(where + "unhandled field type");
  }
}

}  // namespace moesim
