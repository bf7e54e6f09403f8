#include "thread_pool.h"

#include <immintrin.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace aefast {
namespace {

constexpr std::uint64_t kCountMask = 0xffffffffu;

std::atomic<std::uint64_t> forks_seen{0};

void count_fork_in_child() { forks_seen.fetch_add(1, std::memory_order_relaxed); }

// Registered when the library is loaded, before any pool exists.
const int fork_handler_registered = pthread_atfork(nullptr, nullptr, count_fork_in_child);

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

std::uint64_t fork_generation() {
  (void)fork_handler_registered;
  return forks_seen.load(std::memory_order_relaxed);
}

std::size_t usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return std::size_t(CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());  // > CPU_SETSIZE CPUs, or not Linux
}

struct ThreadPool::Shared {
  std::vector<std::thread> workers;
  std::mutex job_mutex;  // held by the caller whose job the pool is serving
  const std::function<void(std::size_t, std::size_t)>* task = nullptr;
  // (job generation << 32) | unclaimed task count. Claiming decrements it; the claimed
  // task's index is the count before the decrement minus one. A successful claim keeps
  // the job open (it cannot finish before the task does), so task is that job's.
  std::atomic<std::uint64_t> claim{0};
  std::atomic<std::size_t> done{0};  // tasks of the current job that have finished
  std::size_t count = 0;             // tasks in the current job (read only by the caller)
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> sleepers{0};  // workers inside (or entering) wake.wait
  std::atomic<bool> caller_sleeping{false};
  std::mutex sleep_mutex;
  std::condition_variable wake, finished;
};

ThreadPool::ThreadPool(std::size_t threads) : shared_(nullptr), size_(threads), generation_(fork_generation()) {
  if (threads < 1 || threads > kMaxThreads)
    throw std::invalid_argument("threads must be in 1.." + std::to_string(kMaxThreads) + ", got " +
                                std::to_string(threads));
  shared_ = new Shared;
  try {
    shared_->workers.reserve(threads - 1);
    for (std::size_t slot = 1; slot < threads; ++slot)
      shared_->workers.emplace_back([this, slot] { worker_loop(slot); });
  } catch (const std::system_error& e) {  // out of threads, memory for a stack, or address space
    const std::size_t started = shared_->workers.size();
    stop_and_join();
    delete shared_;
    throw std::runtime_error("could not start a pool of " + std::to_string(threads) + " threads: the OS refused worker " +
                             std::to_string(started + 1) + " of " + std::to_string(threads - 1) + " (" + e.what() +
                             "); ask for fewer threads");
  } catch (...) {
    stop_and_join();
    delete shared_;
    throw;
  }
}

ThreadPool::~ThreadPool() {
  if (inherited()) return;  // forked child: no workers here, and the copied locks must not be touched (leaked)
  stop_and_join();
  delete shared_;
}

void ThreadPool::stop_and_join() {
  {
    std::lock_guard<std::mutex> lock(shared_->sleep_mutex);
    shared_->stop.store(true);
  }
  shared_->wake.notify_all();
  for (std::thread& t : shared_->workers) t.join();
}

void ThreadPool::drain(std::size_t slot) {
  Shared& s = *shared_;
  std::uint64_t claim = s.claim.load(std::memory_order_acquire);
  while (claim & kCountMask) {
    if (!s.claim.compare_exchange_weak(claim, claim - 1, std::memory_order_acq_rel, std::memory_order_acquire))
      continue;
    const std::size_t count = s.count;  // read while the claimed task keeps this job open
    (*s.task)(std::size_t(claim & kCountMask) - 1, slot);
    // seq_cst with caller_sleeping (Dekker): either the caller sees this increment before it sleeps, or this
    // thread sees caller_sleeping and wakes it.
    const std::size_t finished = s.done.fetch_add(1) + 1;
    if (finished == count && slot != 0 && s.caller_sleeping.load()) {
      std::lock_guard<std::mutex> lock(s.sleep_mutex);  // the caller checks done under this mutex
      s.finished.notify_one();
    }
    claim = s.claim.load(std::memory_order_acquire);
  }
}

void ThreadPool::run(std::size_t count, const std::function<void(std::size_t, std::size_t)>& task) {
  if (size_ == 1 || count <= 1 || inherited()) {
    for (std::size_t i = 0; i < count; ++i) task(i, 0);
    return;
  }
  Shared& s = *shared_;
  std::unique_lock<std::mutex> job(s.job_mutex, std::try_to_lock);
  if (!job.owns_lock()) {
    for (std::size_t i = 0; i < count; ++i) task(i, 0);
    return;
  }
  // No task of the previous job is claimable and all have finished, so nobody reads these now.
  s.task = &task;
  s.count = count;
  s.done.store(0, std::memory_order_relaxed);
  const std::uint64_t generation = (s.claim.load(std::memory_order_relaxed) >> 32) + 1;
  s.claim.store((generation << 32) | count);  // seq_cst: ordered before the sleepers check below
  if (s.sleepers.load() > 0) {
    { std::lock_guard<std::mutex> lock(s.sleep_mutex); }
    s.wake.notify_all();
  }
  drain(0);
  auto all_done = [&] { return s.done.load() == count; };
  if (!spin_until(all_done)) {
    std::unique_lock<std::mutex> lock(s.sleep_mutex);
    s.caller_sleeping.store(true);
    s.finished.wait(lock, all_done);
    s.caller_sleeping.store(false);
  }
  s.task = nullptr;
}

void ThreadPool::worker_loop(std::size_t slot) {
  Shared& s = *shared_;
  auto has_work = [&] { return s.stop.load(std::memory_order_relaxed) || (s.claim.load() & kCountMask) != 0; };
  for (;;) {
    if (!spin_until(has_work)) {
      std::unique_lock<std::mutex> lock(s.sleep_mutex);
      s.sleepers.fetch_add(1);  // seq_cst: either run() sees it, or this thread sees run()'s claim store
      s.wake.wait(lock, has_work);
      s.sleepers.fetch_sub(1);
    }
    if (s.stop.load()) return;
    drain(slot);
  }
}

}  // namespace aefast
