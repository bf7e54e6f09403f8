#include "thread_pool.h"

namespace aefast {

ThreadPool::ThreadPool(std::size_t threads) {
  for (std::size_t slot = 1; slot < threads; ++slot) workers_.emplace_back([this, slot] { worker_loop(slot); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::drain(std::size_t slot) {
  for (std::size_t i = next_.fetch_add(1); i < count_; i = next_.fetch_add(1)) (*task_)(i, slot);
}

void ThreadPool::run(std::size_t count, const std::function<void(std::size_t, std::size_t)>& task) {
  std::unique_lock<std::mutex> job(job_mutex_, std::try_to_lock);
  if (workers_.empty() || count <= 1 || !job.owns_lock()) {
    for (std::size_t i = 0; i < count; ++i) task(i, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    task_ = &task;
    count_ = count;
    next_.store(0);
    workers_done_ = 0;
    ++generation_;
  }
  wake_.notify_all();
  drain(0);
  // Wait for every worker to leave this job, so none can touch the next job's counter with this task.
  std::unique_lock<std::mutex> lock(state_mutex_);
  finished_.wait(lock, [&] { return workers_done_ == workers_.size(); });
  task_ = nullptr;
}

void ThreadPool::worker_loop(std::size_t slot) {
  std::size_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(state_mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    drain(slot);
    {
      std::lock_guard<std::mutex> lock(state_mutex_);
      ++workers_done_;
    }
    finished_.notify_one();
  }
}

}  // namespace aefast
