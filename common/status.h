// status.h
//
// Status and Expected<T>: how every moesim library reports failure. Libraries never exit() or
// throw across their API; they return a Status (or an Expected<T> that holds either a value or a
// non-OK Status). Only cli/ turns a Status into an exit code: kInvalidInput -> 2, kInternal -> 1.
//
// A message is written for the user: it names the file, line and field path where there is one,
// e.g. "a.textproto:14: sharding.mesh.expert=12 does not divide model.moe.num_experts=64".
// Thread safety: values; no shared state.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace moesim {

class Status {
 public:
  enum class Code { kOk = 0, kInvalidInput = 2, kInternal = 1 };

  Status() = default;
  static Status Ok() { return Status(); }
  static Status InvalidInput(std::string message) {
    return Status(Code::kInvalidInput, std::move(message));
  }
  static Status Internal(std::string message) {
    return Status(Code::kInternal, std::move(message));
  }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // Exit code for the CLI: 0 ok, 2 bad input, 1 internal error.
  int exit_code() const { return static_cast<int>(code_); }

  // Returns this status with `prefix` put before the message (e.g. a file name).
  Status WithPrefix(const std::string& prefix) const;

  // How cli/ reports it: writes "<program>: <message>\n" to std::cerr in one write and flushes.
  // One write, because mpirun forwards a rank's output in the pieces it was written: a line
  // written piece by piece (std::cerr) can have other output (mpirun's banners) land inside it.
  void PrintTo(const std::string& program) const;

 private:
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// Holds a T or a non-OK Status. REQUIRES: constructed from a Status only when it is not ok.
template <typename T>
class Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Expected(Status status) : v_(std::move(status)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace moesim

// Returns early from a function returning Status or Expected<U> when `expr` is not ok.
#define MOESIM_RETURN_IF_ERROR(expr)            \
  do {                                          \
    const ::moesim::Status _moesim_st = (expr); \
    if (!_moesim_st.ok()) return _moesim_st;    \
  } while (0)
