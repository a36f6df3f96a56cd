// A small pool of helper threads for the chunked O(d) kernels
// (include/cesr/parallel.hpp). One job at a time: a caller that finds the
// pool busy (another thread's kernel) runs its chunks itself, which gives the
// same result.
#include "cesr/parallel.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace cesr {

namespace {

std::atomic<unsigned> default_threads{0};  // 0: hardware concurrency
thread_local unsigned scoped_threads = 0;  // 0: the default
thread_local const std::atomic<unsigned>* scoped_extra = nullptr;

unsigned hardware() { return std::max(1u, std::thread::hardware_concurrency()); }

class Pool {
 public:
  ~Pool() {
    {
      std::lock_guard lock(mutex_);
      quit_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
  }

  // Runs the job on the caller and up to `helpers` pool threads; false when
  // the pool is busy (the caller then runs it alone).
  bool run(std::size_t chunks, std::size_t n, unsigned helpers,
           const std::function<void(std::size_t, std::size_t, std::size_t)>& body) {
    std::unique_lock busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    {
      std::lock_guard lock(mutex_);
      while (workers_.size() < helpers) {
        const std::size_t id = workers_.size();
        workers_.emplace_back([this, id] { loop(id); });
      }
      body_ = &body;
      n_ = n;
      chunks_ = chunks;
      next_ = 0;
      helpers_ = helpers;
      running_ = helpers;
      ++generation_;
    }
    wake_.notify_all();
    work();
    std::unique_lock lock(mutex_);
    done_.wait(lock, [&] { return running_ == 0; });
    body_ = nullptr;
    return true;
  }

 private:
  void work() {
    for (;;) {
      const std::size_t c = next_.fetch_add(1);
      if (c >= chunks_) return;
      const std::size_t begin = c * parallel_chunk;
      (*body_)(c, begin, std::min(n_, begin + parallel_chunk));
    }
  }

  void loop(std::size_t id) {
    std::uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return quit_ || (generation_ != seen && id < helpers_); });
        if (quit_) return;
        seen = generation_;
      }
      work();
      {
        std::lock_guard lock(mutex_);
        --running_;
      }
      done_.notify_all();
    }
  }

  std::mutex busy_;   // one job at a time
  std::mutex mutex_;  // the job's fields below
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(std::size_t, std::size_t, std::size_t)>* body_ = nullptr;
  std::size_t n_ = 0, chunks_ = 0;
  std::atomic<std::size_t> next_{0};
  std::size_t helpers_ = 0, running_ = 0;
  std::uint64_t generation_ = 0;
  bool quit_ = false;
};

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

unsigned kernel_threads() {
  unsigned t = scoped_threads ? scoped_threads : default_threads.load();
  if (t == 0) t = hardware();
  if (scoped_extra) t += scoped_extra->load();
  return std::max(1u, t);
}

void set_default_kernel_threads(unsigned threads) {
  if (threads > 4096) throw std::invalid_argument(fmt::format("--threads must be <= 4096, got {}", threads));
  default_threads = threads;
}

KernelThreads::KernelThreads(unsigned threads, const std::atomic<unsigned>* extra)
    : saved_threads_(scoped_threads), saved_extra_(scoped_extra) {
  scoped_threads = std::max(1u, threads);
  scoped_extra = extra;
}

KernelThreads::~KernelThreads() {
  scoped_threads = saved_threads_;
  scoped_extra = saved_extra_;
}

void for_each_chunk(std::size_t n, const std::function<void(std::size_t, std::size_t, std::size_t)>& body) {
  const std::size_t chunks = chunk_count(n);
  const unsigned threads = n >= parallel_min ? std::min<std::size_t>(kernel_threads(), chunks) : 1;
  if (threads > 1 && pool().run(chunks, n, std::min(threads - 1, 63u), body)) return;
  for (std::size_t c = 0; c < chunks; ++c) {
    const std::size_t begin = c * parallel_chunk;
    body(c, begin, std::min(n, begin + parallel_chunk));
  }
}

}  // namespace cesr
