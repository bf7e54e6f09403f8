// A small pool of std::thread workers, started once and reused for every job.
// (No OpenMP: its runtime clashes with TensorFlow's and numba's in one process.)
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
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

 private:
  void worker_loop(std::size_t slot);
  void drain(std::size_t slot);

  std::vector<std::thread> workers_;
  std::mutex job_mutex_;  // held by the caller whose job the pool is serving
  std::mutex state_mutex_;
  std::condition_variable wake_, finished_;
  const std::function<void(std::size_t, std::size_t)>* task_ = nullptr;
  std::size_t count_ = 0;
  std::atomic<std::size_t> next_{0};
  std::size_t generation_ = 0;    // bumped per job, under state_mutex_
  std::size_t workers_done_ = 0;  // workers that finished the current job
  bool stop_ = false;
};

}  // namespace aefast
