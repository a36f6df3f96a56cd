// Progress of long runs: the library's long loops count the work they have
// done into a counter the front end installs for the current thread (like the
// cooperative stop flag, cesr/stop.hpp), and a reporter shows it on standard
// error with the elapsed time and an estimate of what is left.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

namespace cesr {

/// The counter the current thread's calls add their work to (nullptr: none).
/// Units: time steps (loss, steps, check), steps of one run (simulate),
/// hyperparameter points (tune).
std::atomic<std::uint64_t>* work_counter();

/// Installs `counter` for the current thread while in scope (restores the
/// previous one). Worker threads started by a call install their caller's.
class WorkScope {
 public:
  explicit WorkScope(std::atomic<std::uint64_t>* counter);
  ~WorkScope();
  WorkScope(const WorkScope&) = delete;
  WorkScope& operator=(const WorkScope&) = delete;

 private:
  std::atomic<std::uint64_t>* previous_;
};

/// Adds `units` of finished work to the current thread's counter, if any.
inline void count_work(std::uint64_t units) {
  if (auto* c = work_counter()) c->fetch_add(units, std::memory_order_relaxed);
}

/// A progress line on standard error ("cesr loss: 42% (4200/10000 steps),
/// 3.1 s elapsed, about 4.3 s left"), never on standard output. Shown when
/// `mode` is Always, or Auto when standard error is a terminal, and only once
/// the run has lasted `delay` (2 s); refreshed in place on a terminal
/// (carriage return), as whole lines every 5 s otherwise. Thread-safe: any
/// thread may call set() or add to counter(). The destructor stops the
/// display and clears a terminal line.
class ProgressReporter {
 public:
  enum class Mode { Auto, Always, Never };

  /// `label` starts the line ("cesr loss"); `unit` names the work ("steps");
  /// `total` units make the whole run (0: unknown, no estimate of what is left).
  ProgressReporter(std::string label, std::string unit, std::uint64_t total, Mode mode,
                   std::chrono::milliseconds delay = std::chrono::milliseconds(2000), std::FILE* out = stderr);
  ~ProgressReporter();
  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

  /// The counter to install with WorkScope (or to add to directly).
  std::atomic<std::uint64_t>& counter() { return done_; }
  /// Sets the work done and the total (for callbacks that report both).
  void set(std::uint64_t done, std::uint64_t total);
  /// The run was stopped before its end: the last line says so.
  void mark_stopped() { stopped_ = true; }
  /// Whether lines are being drawn at all (the mode and the terminal allow it).
  bool enabled() const { return enabled_; }
  /// The line as it would be printed now (for tests).
  std::string line() const;

 private:
  void loop();
  void draw(bool final);

  std::string label_, unit_;
  std::atomic<std::uint64_t> done_{0}, total_{0};
  bool enabled_ = false, terminal_ = false;
  std::chrono::milliseconds delay_;
  std::FILE* out_;
  std::chrono::steady_clock::time_point start_;
  bool shown_ = false;
  std::atomic<bool> stopped_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

/// Seconds as a short text: "0.4 s", "12 s", "3 min 05 s", "2 h 07 min".
std::string duration_text(double seconds);

}  // namespace cesr
