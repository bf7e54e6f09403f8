// A small pool of std::thread workers, started once and reused for every job.
// (No OpenMP: its runtime clashes with TensorFlow's and numba's in one process.)
//
// Latency matters more than idle CPU here (a batch-1 forward is ~4 jobs of ~10-25 us each):
// idle workers spin for kSpin before they sleep on a condition variable, and the caller
// spins the same way while the last tasks finish. Tasks are claimed from one atomic word, so a
// worker that is slow to wake (busy machine) never delays a job: the caller claims every task
// nobody else took, and waits only for tasks that were actually claimed.
//
// fork(): a child process gets a copy of the pool's memory but none of its worker threads, and
// its mutexes / condition variables are copied in whatever state the parent's threads had them
// (locked, or counting waiters that do not exist in the child: pthread_cond_destroy then waits
// for them forever). So everything the workers share lives in one heap block, and a pool that
// finds itself in a forked child never locks, waits on, destroys or joins any of it: run() runs
// its tasks inline and the destructor leaks the block (a few hundred bytes) on purpose.
#pragma once
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>

namespace aefast {

// How many times this process image has been forked into a child (counted by a pthread_atfork
// child handler): an object that saves it at construction knows, with one atomic load, whether it
// now lives in a forked child.
std::uint64_t fork_generation();

// The CPUs this process may run on (its sched_getaffinity mask; hardware_concurrency if that
// fails), at least 1.
std::size_t usable_cpus();

class ThreadPool {
 public:
  // The most threads a pool may have: more is a typo or abuse (each worker is an OS thread with
  // its own stack), never a speed-up for these compute-bound jobs.
  static constexpr std::size_t kMaxThreads = 256;

  // threads in [1, kMaxThreads]: the caller plus threads - 1 workers. Throws std::runtime_error
  // naming the thread count when a worker cannot be started (the ones already started are
  // stopped and joined first), std::invalid_argument for a count outside that range.
  explicit ThreadPool(std::size_t threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  std::size_t size() const { return size_; }

  // True in a process forked after this pool was built (see the top of this file).
  bool inherited() const { return fork_generation() != generation_; }

  // Calls task(index, slot) for every index in [0, count) and returns when all are
  // done. slot in [0, size()) is distinct among tasks running at the same time
  // (for per-slot scratch). The pool serves one job at a time: a caller that finds
  // it busy with another caller's job (or a pool inherited through fork) runs its
  // whole job inline with slot 0.
  void run(std::size_t count, const std::function<void(std::size_t, std::size_t)>& task);

  // How long an idle worker (or a caller waiting for the last tasks) spins before sleeping.
  static constexpr std::chrono::microseconds kSpin{200};

 private:
  struct Shared;  // the workers and everything they touch (thread_pool.cpp); leaked in a forked child

  void worker_loop(std::size_t slot);
  // Claims and runs tasks of the current job until none is left unclaimed.
  void drain(std::size_t slot);
  // Stops and joins the workers started so far (only in the process that started them).
  void stop_and_join();

  Shared* shared_;
  std::size_t size_;
  std::uint64_t generation_;  // fork_generation() when the pool was built
};

}  // namespace aefast
