// Data-parallel O(d) kernels whose results do not depend on the thread count.
//
// A loop over the d directions is cut into chunks of `parallel_chunk`
// directions -- a size fixed here, never derived from the number of threads --
// each chunk is reduced on its own (vectorised as before), and the partial
// results are combined in chunk order by the caller. Which thread runs which
// chunk changes nothing, so the output is bitwise the same for 1 or N
// threads. Below one chunk the loop is exactly the serial one.
//
// The number of threads a kernel may use is per calling thread: the process
// default (hardware concurrency, or what `--threads` set), or a scoped value
// (the frontier's workers use one thread each while every core has a worker).
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <vector>

namespace cesr {

/// Directions per chunk of a parallel kernel.
inline constexpr std::size_t parallel_chunk = std::size_t{1} << 15;
/// Loops shorter than this run on the calling thread alone (the chunks are the
/// same either way; a wake-up of the helper threads costs more than it saves).
inline constexpr std::size_t parallel_min = std::size_t{1} << 16;

/// Number of chunks of a loop of n directions (1 for n <= parallel_chunk, 0 for n = 0).
inline std::size_t chunk_count(std::size_t n) { return (n + parallel_chunk - 1) / parallel_chunk; }

/// The threads O(d) kernels called from this thread may use (>= 1).
unsigned kernel_threads();
/// Sets the process default (0: hardware concurrency). Throws
/// std::invalid_argument "--threads must be <= 4096" beyond that.
void set_default_kernel_threads(unsigned threads);

/// For its lifetime, kernels called from this thread use `threads` threads
/// plus `extra->load()` (when given: the frontier hands the cores of its
/// finished workers to the ones still running).
class KernelThreads {
 public:
  explicit KernelThreads(unsigned threads, const std::atomic<unsigned>* extra = nullptr);
  ~KernelThreads();
  KernelThreads(const KernelThreads&) = delete;
  KernelThreads& operator=(const KernelThreads&) = delete;

 private:
  unsigned saved_threads_;
  const std::atomic<unsigned>* saved_extra_;
};

/// Runs body(chunk, begin, end) for every chunk of [0, n) (chunk c covers
/// [c parallel_chunk, min(n, (c + 1) parallel_chunk))), on up to
/// kernel_threads() threads when n >= parallel_min, else in order on the
/// calling thread. The body must not throw; chunks must be independent.
void for_each_chunk(std::size_t n, const std::function<void(std::size_t, std::size_t, std::size_t)>& body);

/// The results of chunk(begin, end) (a T) for every chunk of [0, n), run by
/// for_each_chunk, combined in chunk order by add(total, part) from a
/// value-initialised T: the same bits for any thread count. One chunk (or
/// none): chunk(0, n) on the calling thread.
template <class T, class Chunk, class Add>
T chunked_reduce(std::size_t n, const Chunk& chunk, const Add& add) {
  const std::size_t chunks = chunk_count(n);
  if (chunks <= 1) return chunk(std::size_t{0}, n);
  std::vector<T> parts(chunks);
  for_each_chunk(n, [&](std::size_t c, std::size_t begin, std::size_t end) { parts[c] = chunk(begin, end); });
  T total{};
  for (const T& part : parts) add(total, part);
  return total;
}

}  // namespace cesr
