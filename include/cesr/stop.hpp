// Cooperative stop of long library calls. A front end (the Python bindings on
// Ctrl-C) installs a flag for the calls of the current thread with StopScope;
// the long loops (time stepping, tuning, simulation runs) poll it and throw
// Stopped, which no library code catches. Worker threads started by a call
// poll the flag of the thread that started them.
#pragma once

#include <atomic>
#include <exception>

namespace cesr {

/// Thrown from a polled loop once the flag is set (not a std::runtime_error,
/// so no "this point failed, try the next" handler swallows it).
struct Stopped : std::exception {
  const char* what() const noexcept override { return "cesr: stopped on request"; }
};

/// The flag polled by the current thread's calls (nullptr: never stop).
const std::atomic<bool>* stop_flag();

/// Installs `flag` for the current thread while in scope (restores the previous one).
class StopScope {
 public:
  explicit StopScope(const std::atomic<bool>* flag);
  ~StopScope();
  StopScope(const StopScope&) = delete;
  StopScope& operator=(const StopScope&) = delete;

 private:
  const std::atomic<bool>* previous_;
};

/// Throws Stopped when the current thread's flag is set.
inline void throw_if_stopped() {
  if (const auto* f = stop_flag(); f && f->load(std::memory_order_relaxed)) throw Stopped();
}

}  // namespace cesr
