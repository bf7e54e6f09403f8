#include "thread_pool.h"

#include <immintrin.h>

namespace aefast {
namespace {

constexpr std::uint64_t kCountMask = 0xffffffffu;

// Spins (with pause) until done() is true or the spin budget runs out; returns done().
// Yields about every microsecond: on a machine with more runnable threads than cores the
// thread we wait for may need this core, and spinning would only delay it.
template <typename Done>
bool spin_until(Done done) {
  const auto deadline = std::chrono::steady_clock::now() + ThreadPool::kSpin;
  for (;;) {
    for (int i = 0; i < 32; ++i) {
      if (done()) return true;
      _mm_pause();
    }
    if (std::chrono::steady_clock::now() >= deadline) return done();
    std::this_thread::yield();
  }
}

}  // namespace

ThreadPool::ThreadPool(std::size_t threads) {
  for (std::size_t slot = 1; slot < threads; ++slot) workers_.emplace_back([this, slot] { worker_loop(slot); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(sleep_mutex_);
    stop_.store(true);
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::drain(std::size_t slot) {
  std::uint64_t claim = claim_.load(std::memory_order_acquire);
  while (claim & kCountMask) {
    if (!claim_.compare_exchange_weak(claim, claim - 1, std::memory_order_acq_rel, std::memory_order_acquire))
      continue;
    const std::size_t count = count_;  // read while the claimed task keeps this job open
    (*task_)(std::size_t(claim & kCountMask) - 1, slot);
    // seq_cst with caller_sleeping_ (Dekker): either the caller sees this increment before it sleeps, or this
    // thread sees caller_sleeping_ and wakes it.
    const std::size_t finished = done_.fetch_add(1) + 1;
    if (finished == count && slot != 0 && caller_sleeping_.load()) {
      std::lock_guard<std::mutex> lock(sleep_mutex_);  // the caller checks done_ under this mutex
      finished_.notify_one();
    }
    claim = claim_.load(std::memory_order_acquire);
  }
}

void ThreadPool::run(std::size_t count, const std::function<void(std::size_t, std::size_t)>& task) {
  std::unique_lock<std::mutex> job(job_mutex_, std::try_to_lock);
  if (workers_.empty() || count <= 1 || !job.owns_lock()) {
    for (std::size_t i = 0; i < count; ++i) task(i, 0);
    return;
  }
  // No task of the previous job is claimable and all have finished, so nobody reads these now.
  task_ = &task;
  count_ = count;
  done_.store(0, std::memory_order_relaxed);
  const std::uint64_t generation = (claim_.load(std::memory_order_relaxed) >> 32) + 1;
  claim_.store((generation << 32) | count);  // seq_cst: ordered before the sleepers_ check below
  if (sleepers_.load() > 0) {
    { std::lock_guard<std::mutex> lock(sleep_mutex_); }
    wake_.notify_all();
  }
  drain(0);
  auto all_done = [&] { return done_.load() == count; };
  if (!spin_until(all_done)) {
    std::unique_lock<std::mutex> lock(sleep_mutex_);
    caller_sleeping_.store(true);
    finished_.wait(lock, all_done);
    caller_sleeping_.store(false);
  }
  task_ = nullptr;
}

void ThreadPool::worker_loop(std::size_t slot) {
  auto has_work = [&] { return stop_.load(std::memory_order_relaxed) || (claim_.load() & kCountMask) != 0; };
  for (;;) {
    if (!spin_until(has_work)) {
      std::unique_lock<std::mutex> lock(sleep_mutex_);
      sleepers_.fetch_add(1);  // seq_cst: either run() sees it, or this thread sees run()'s claim_ store
      wake_.wait(lock, has_work);
      sleepers_.fetch_sub(1);
    }
    if (stop_.load()) return;
    drain(slot);
  }
}

}  // namespace aefast
