// A small pool of std::thread workers, started once and reused for every job.
// (No OpenMP: its runtime clashes with TensorFlow's and numba's in one process.)
//
// Latency matters more than idle CPU here (a batch-1 forward is ~4 jobs of ~10-25 us each):
// idle workers spin for kSpin before they sleep on a condition variable, and the caller
// spins the same way while the last tasks finish. Tasks are claimed from one atomic word, so a
// worker that is slow to wake (busy machine) never delays a job: the caller claims every task
// nobody else took, and waits only for tasks that were actually claimed.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace aefast {

class ThreadPool {
 public:
  // threads >= 1: the caller plus threads - 1 workers.
  explicit ThreadPool(std::size_t threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  std::size_t size() const { return workers_.size() + 1; }

  // Calls task(index, slot) for every index in [0, count) and returns when all are
  // done. slot in [0, size()) is distinct among tasks running at the same time
  // (for per-slot scratch). The pool serves one job at a time: a caller that finds
  // it busy with another caller's job runs its whole job inline with slot 0.
  void run(std::size_t count, const std::function<void(std::size_t, std::size_t)>& task);

  // How long an idle worker (or a caller waiting for the last tasks) spins before sleeping.
  static constexpr std::chrono::microseconds kSpin{200};

 private:
  void worker_loop(std::size_t slot);
  // Claims and runs tasks of the current job until none is left unclaimed.
  void drain(std::size_t slot);

  std::vector<std::thread> workers_;
  std::mutex job_mutex_;  // held by the caller whose job the pool is serving
  const std::function<void(std::size_t, std::size_t)>* task_ = nullptr;
  // (job generation << 32) | unclaimed task count. Claiming decrements it; the claimed
  // task's index is the count before the decrement minus one. A successful claim keeps
  // the job open (it cannot finish before the task does), so task_ is that job's.
  std::atomic<std::uint64_t> claim_{0};
  std::atomic<std::size_t> done_{0};  // tasks of the current job that have finished
  std::size_t count_ = 0;             // tasks in the current job (read only by the caller)
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> sleepers_{0};  // workers inside (or entering) wake_.wait
  std::atomic<bool> caller_sleeping_{false};
  std::mutex sleep_mutex_;
  std::condition_variable wake_, finished_;
};

}  // namespace aefast
