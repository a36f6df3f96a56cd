#include "cesr/progress.hpp"

#include <fmt/format.h>

#include <cmath>
#include <exception>

#include <unistd.h>

namespace cesr {

namespace {
thread_local std::atomic<std::uint64_t>* current = nullptr;
}  // namespace

std::atomic<std::uint64_t>* work_counter() { return current; }

WorkScope::WorkScope(std::atomic<std::uint64_t>* counter) : previous_(current) { current = counter; }

WorkScope::~WorkScope() { current = previous_; }

std::string duration_text(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds)) return "?";
  if (seconds < 10) return fmt::format("{:.1f} s", seconds);
  const auto s = static_cast<std::uint64_t>(std::llround(seconds));
  if (s < 60) return fmt::format("{} s", s);
  if (s < 3600) return fmt::format("{} min {:02} s", s / 60, s % 60);
  return fmt::format("{} h {:02} min", s / 3600, (s % 3600) / 60);
}

ProgressReporter::ProgressReporter(std::string label, std::string unit, std::uint64_t total, Mode mode,
                                   std::chrono::milliseconds delay, std::FILE* out)
    : label_(std::move(label)), unit_(std::move(unit)), delay_(delay), out_(out),
      start_(std::chrono::steady_clock::now()) {
  total_ = total;
  terminal_ = out_ && ::isatty(::fileno(out_));
  enabled_ = out_ && (mode == Mode::Always || (mode == Mode::Auto && terminal_));
  if (enabled_) thread_ = std::thread([this] { loop(); });
}

ProgressReporter::~ProgressReporter() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  // Ended normally (no exception on its way): the work is all done.
  const bool ended = std::uncaught_exceptions() == 0 && !stopped_;
  if (ended && total_ > 0) done_ = total_.load();
  draw(true);
}

void ProgressReporter::set(std::uint64_t done, std::uint64_t total) {
  total_.store(total, std::memory_order_relaxed);
  done_.store(done, std::memory_order_relaxed);
}

std::string ProgressReporter::line() const {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const std::uint64_t total = total_.load(std::memory_order_relaxed);
  const std::uint64_t done = std::min(done_.load(std::memory_order_relaxed), total ? total : UINT64_MAX);
  if (total == 0)
    return fmt::format("{}: {} {} done, {} elapsed", label_, done, unit_, duration_text(elapsed));
  const double fraction = static_cast<double>(done) / static_cast<double>(total);
  // What is left at the pace so far (none before the first unit is done).
  const std::string left = done == 0 ? "time left unknown yet"
                                     : "about " + duration_text(elapsed * (1 - fraction) / fraction) + " left";
  return fmt::format("{}: {:.0f}% ({}/{} {}), {} elapsed, {}", label_, std::floor(100 * fraction), done, total, unit_,
                     duration_text(elapsed), left);
}

void ProgressReporter::draw(bool final) {
  if (final) {
    // A terminal line is cleared; a log keeps its last line, and gets one at
    // the end only when it got lines before.
    if (!shown_) return;
    if (terminal_) std::fputs("\r\033[K", out_);
    else if (std::uncaught_exceptions() == 0 && !stopped_)
      std::fputs(fmt::format("{}: done, {} {} in {}\n", label_, done_.load(), unit_,
                             duration_text(std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
                                               .count()))
                     .c_str(),
                 out_);
    else std::fputs((line() + ", stopped\n").c_str(), out_);
    std::fflush(out_);
    return;
  }
  shown_ = true;
  if (terminal_) std::fputs(("\r" + line() + "\033[K").c_str(), out_);
  else std::fputs((line() + "\n").c_str(), out_);
  std::fflush(out_);
}

void ProgressReporter::loop() {
  std::unique_lock lock(mutex_);
  if (wake_.wait_for(lock, delay_, [this] { return stopping_; })) return;  // a short run shows nothing
  const auto period = terminal_ ? std::chrono::milliseconds(250) : std::chrono::milliseconds(5000);
  for (;;) {
    draw(false);
    if (wake_.wait_for(lock, period, [this] { return stopping_; })) return;
  }
}

}  // namespace cesr
