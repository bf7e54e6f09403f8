"""`--distribute none|mirrored|multiworker`: where the training steps run (TensorFlow backend only).

  none         Keras' default: one process, one device.
  mirrored     tf.distribute.MirroredStrategy over every local GPU (without GPUs: every logical CPU device, which is
               one unless the process configured more, as the tests do).
  multiworker  tf.distribute.MultiWorkerMirroredStrategy configured by the TF_CONFIG environment variable; the chief
               (task "chief", else worker 0) writes the run directory, the other workers write nothing.

The global batch is the user's --batch-size, split evenly across all replicas: each step every replica takes its own
slice of the same global batch the single-process loop would use (same epoch permutation), so the all-reduced
gradient is that batch's mean gradient up to float summation order.
"""
from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass

import numpy as np

from ..errors import TrainingError
from .config import ConfigError

# A dead peer is detected by TensorFlow's coordination-service heartbeats or its collective health-check thread,
# whichever comes first; both abort pending collectives with UNAVAILABLE. The health check's defaults (every 30 s,
# 10 s timeout, 3 tries) could let a survivor wait about 2 minutes; these bound it to ~30 s (measured: the survivor
# exits ~12 s after a kill), with a 10 s answer time so that a peer slowed by a loaded machine is not declared dead.
HEALTH_CHECK_INTERVAL_S = 5
HEALTH_CHECK_TIMEOUT_S = 10
HEALTH_CHECK_RETRIES = 2
# How long a worker waits at start-up for all the others to join before it gives up.
CLUSTER_START_TIMEOUT_S = int(os.environ.get("AEFAST_CLUSTER_TIMEOUT", "300"))


@dataclass
class Placement:
    kind: str                 # none | mirrored | multiworker
    strategy: object | None   # the tf.distribute.Strategy; None for "none"
    replicas: int             # replicas in sync over the whole job
    local_replicas: int       # replicas in this process
    worker: int               # this process's index among the workers (0 for none/mirrored)
    workers: int
    chief: bool               # this process writes the run directory

    def jit_compile(self, requested: bool, device_kind: str) -> bool:
        """XLA under a strategy on CPU is off: TensorFlow cannot compile the gradient all-reduce (CollectiveReduceV2)
        into an XLA CPU cluster ("tf2xla conversion failed"). Single-process and GPU runs keep the request."""
        return requested and (self.strategy is None or device_kind != "cpu")

    def scope(self):
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def describe(self) -> str:
        if self.strategy is None:
            return ""
        role = "chief" if self.chief else "non-chief (writes nothing)"
        return f", {self.kind}: {self.replicas} replicas on {self.workers} worker(s), this one worker " \
               f"{self.worker} {role}"


def tf_config() -> dict:
    """The parsed TF_CONFIG; ConfigError saying what is missing."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ConfigError("--distribute multiworker needs the TF_CONFIG environment variable "
                          '({"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}); '
                          "see docs/scale.md")
    try:
        conf = json.loads(raw)
        workers = conf["cluster"]["worker"]
        task = conf["task"]
        kind, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"TF_CONFIG is not a valid cluster description ({type(e).__name__}: {e}); expected "
                          '{"cluster": {"worker": [...]}, "task": {"type": "worker", "index": i}}') from None
    if kind not in ("chief", "worker") or not isinstance(workers, list):
        raise ConfigError(f"TF_CONFIG task type must be 'chief' or 'worker', got {kind!r}")
    return conf


def _is_chief(conf: dict) -> bool:
    task = conf["task"]
    if "chief" in conf["cluster"]:
        return task["type"] == "chief"
    return task["type"] == "worker" and int(task["index"]) == 0


def _bound_failure_detection() -> None:
    """Shorten the health-check knobs of TensorFlow's collective strategy (class attributes, read at creation)."""
    from tensorflow.python.distribute import collective_all_reduce_strategy as cars

    ext = cars.CollectiveAllReduceExtended
    for name, value in (("_check_health_interval", HEALTH_CHECK_INTERVAL_S),
                        ("_check_health_timeout", HEALTH_CHECK_TIMEOUT_S),
                        ("_check_health_retry_limit", HEALTH_CHECK_RETRIES),
                        ("_check_health_initial_timeout", CLUSTER_START_TIMEOUT_S)):
        if hasattr(ext, name):
            setattr(ext, name, value)


def make_placement(kind: str) -> Placement:
    """Create the strategy (first thing TensorFlow does in the process: MultiWorkerMirroredStrategy needs that)."""
    if kind == "none":
        return Placement("none", None, 1, 1, 0, 1, True)
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ConfigError(f"--distribute {kind} needs the TensorFlow backend of Keras, "
                          f"not {keras.backend.backend()!r}")
    import tensorflow as tf

    if kind == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or \
                  [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
        n = strategy.num_replicas_in_sync
        return Placement("mirrored", strategy, n, n, 0, 1, True)
    if kind != "multiworker":
        raise ConfigError(f"distribute must be one of none, mirrored, multiworker, got {kind!r}")
    conf = tf_config()
    _bound_failure_detection()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # all-reduce: ring over gRPC on CPUs, NCCL on GPUs
    workers = len(conf["cluster"].get("worker", [])) + len(conf["cluster"].get("chief", []))
    index = int(conf["task"]["index"]) + (1 if conf["task"]["type"] == "worker" and "chief" in conf["cluster"]
                                          else 0)
    local = len(strategy.extended.worker_devices)
    if strategy.num_replicas_in_sync != local * workers:
        raise ConfigError(f"every worker must have the same number of devices: this one has {local}, the job "
                          f"{strategy.num_replicas_in_sync} replicas over {workers} workers")
    return Placement("multiworker", strategy, strategy.num_replicas_in_sync, local, index, workers, _is_chief(conf))


def check_batch(placement: Placement, batch_size: int) -> None:
    if batch_size % placement.replicas:
        raise ConfigError(f"batch_size {batch_size} must be a multiple of the {placement.replicas} replicas "
                          f"of --distribute {placement.kind} (the global batch is split evenly)")


def epoch_dataset(placement: Placement, batch: np.ndarray, batch_size: int):
    """This worker's share of an epoch for model.fit: batch is the whole epoch, (steps * batch_size, 784), in step
    order. Worker w feeds its local replicas, in turn, consecutive per-replica slices of each global batch."""
    import tensorflow as tf

    per_replica = batch_size // placement.replicas
    share = placement.local_replicas * per_replica
    steps = len(batch) // batch_size
    mine = batch.reshape(steps, batch_size, -1)[:, placement.worker * share:(placement.worker + 1) * share]
    mine = np.ascontiguousarray(mine.reshape(steps * share, -1))

    def make(_context):
        ds = tf.data.Dataset.from_tensor_slices((mine, mine)).batch(per_replica)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return ds.with_options(options)

    return placement.strategy.distribute_datasets_from_function(make), steps


def fit_epoch(placement: Placement, model, batch: np.ndarray, batch_size: int, verbose: int, callbacks) -> float:
    """model.fit over one epoch (`batch`, in step order) under the strategy -> the epoch's mean training loss."""
    dataset, steps = epoch_dataset(placement, batch, batch_size)
    # Keras 3.15 builds the model symbolically before fit by strategy.reduce("MEAN", (x, y)) over a first batch,
    # which MultiWorkerMirroredStrategy cannot do for a tuple (ValueError "Attempt to convert a value (PerReplica").
    # Our model is already built, so we skip that step: a model without its own `_distribute_strategy` defers it,
    # and inside strategy.scope() Keras's `distribute_strategy` still resolves to ours for the training steps.
    model._distribute_strategy = None
    _vector_logs(model)
    with placement.scope():
        history = model.fit(dataset, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=verbose,
                            callbacks=callbacks).history
    return float(np.ravel(history["loss"][-1])[0])


def _vector_logs(model) -> None:
    """Keras 3.15 reduces each step's logs across workers with strategy.reduce("MEAN", value, axis=0), which fails
    for scalars ("Invalid reduction dimension 0 for input with 0 dimensions"): return them as shape (1,), so the
    reduction is the mean over all replicas (the global batch's loss)."""
    import tensorflow as tf

    if getattr(model, "_aefast_vector_logs", False):
        return
    step = type(model).train_step

    def train_step(data):
        return {name: tf.reshape(value, [1]) for name, value in step(model, data).items()}

    model.train_step = train_step
    model._aefast_vector_logs = True


@contextlib.contextmanager
def peer_failures(placement: Placement):
    """Turn TensorFlow's collective errors (a worker died or is unreachable) into one clear TrainingError."""
    if placement.kind != "multiworker":
        yield
        return
    import tensorflow as tf

    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
            tf.errors.InternalError, tf.errors.AbortedError, tf.errors.FailedPreconditionError) as e:
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise TrainingError(f"multi-worker training failed on worker {placement.worker}: another worker stopped "
                            f"or became unreachable ({type(e).__name__}: {first}); the job cannot continue. "
                            "Restart every worker with --resume RUN_DIR to continue from the last checkpoint") \
            from None
