#include "cesr/stop.hpp"

namespace cesr {

namespace {
thread_local const std::atomic<bool>* current = nullptr;
}  // namespace

const std::atomic<bool>* stop_flag() { return current; }

StopScope::StopScope(const std::atomic<bool>* flag) : previous_(current) { current = flag; }

StopScope::~StopScope() { current = previous_; }

}  // namespace cesr
