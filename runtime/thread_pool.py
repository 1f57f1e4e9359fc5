"""The native thread pool: persistent worker threads that split a kernel's parallel loop, with no Python per kernel.

A compiled program calls ``parallel_for(ctx, kernel, buffers, extent, tasks)``
for every kernel whose schedule splits its outermost loop: ``[0, extent)`` is
cut into ``tasks`` equal chunks (at most 40), and the call returns when every
chunk is done. The pool is LLVM IR (``POOL_IR``) compiled like any kernel and
loaded into this process, so a whole model run (``tosac_host_run``) stays one
native call.

Thread ``t`` of ``T`` (the caller is 0) first claims its own chunks ``t, t +
T, ...`` — every kernel splits its rows the same way, so a thread mostly reads
what it wrote in the previous kernel, from its own cache — then any chunk
still unclaimed. On a loaded machine a worker that is not running claims
nothing and the running threads do its share: with a fixed assignment the
caller waited for a descheduled worker's time slice at every kernel.

Synchronisation, and why it is safe:
- a job's fields (kernel, buffers, extent, tasks) are written, then the 64-bit
  ``word`` = job number (24 bits) | claimed chunks (40 bits, those past
  ``tasks`` set from the start) is stored with release; a chunk is claimed by
  a compare-and-swap (acquire) setting its bit, so a thread claims a chunk of
  job ``g`` only while ``word`` still says job ``g``: a worker late from an
  older job fails its swap and never reads the new job's fields half-written,
  and it reads them only after claiming (the job cannot end before that chunk);
- every claimed chunk increments ``done`` (release) when it has run; the
  caller returns when ``done == tasks``, so a job's fields are never rewritten
  while a claimed chunk may still read them;
- job announcements increment ``seq``; a worker spins a while on it, then
  sleeps on a futex; it counts itself in ``sleepers`` first, so the caller
  either sees it and wakes it or the futex sees the new ``seq`` and returns;
- ``busy`` is a try-lock: a second caller (another Python thread running a
  model on the same pool) does not wait, it runs its kernel on its own thread.

Pools are per process and per size (``shared_pool``); a forked child gets new
ones (the parent's worker threads do not exist there).
"""
from __future__ import annotations

import ctypes
import os
import platform
import threading

from tosac.errors import UnsupportedError
from tosac.runtime.jit import load_functions
from tosac.runtime.objects import compile_object
from tosac.targets import host_target

MAX_THREADS = 256
SPINS_BEFORE_SLEEP = 4096          # ~0.1 ms of pause (25-35 ns each): kernels of one run never wait for a wake-up,
                                   # an idle pool soon stops taking a core from other work

# What the pool calls: a kernel, ``void kernel(void *buffers[], int64 begin, int64 end)``.
PARALLEL_FOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                ctypes.c_int64)
_SYS_FUTEX = {"x86_64": 202, "aarch64": 98, "arm": 240}
_SPIN_HINT = {"x86_64": ("llvm.x86.sse2.pause", ""), "aarch64": ("llvm.aarch64.hint", "i32 1"),   # pause / yield
              "arm": ("llvm.arm.hint", "i32 1")}

def _pool_ir(arch: str) -> str:
    """The pool's LLVM IR for ``arch`` (the futex system call number and the spin-wait hint differ)."""
    hint, hint_args = _SPIN_HINT[arch]
    return POOL_IR.replace("SYS_FUTEX", str(_SYS_FUTEX[arch])).replace("SPINS", str(SPINS_BEFORE_SLEEP)).replace(
        "HINT_ARGS", hint_args).replace("HINT", hint)


POOL_IR = r"""
%Pool = type { i32, i32, i32, i32, i64, ptr, ptr, i64, i64, i64, ptr, ptr, i64, i64, i64 }
; 0 seq, 1 stop, 2 busy, 3 sleepers, 4 done, 5 kernel, 6 buffers, 7 extent, 8 word (job | claimed chunks),
; 9 threads, 10 thread ids (pthread_t[threads]), 11 worker arguments (%Worker[threads]), 12 job number, 13 tasks,
; 14 workers created + 1
%Worker = type { ptr, i64 }                            ; pool, thread index
declare ptr @calloc(i64, i64)
declare void @free(ptr)
declare i32 @pthread_create(ptr, ptr, ptr, ptr)
declare i32 @pthread_join(i64, ptr)
declare i32 @sched_yield()
declare i64 @syscall(i64, ...)
declare i64 @llvm.cttz.i64(i64, i1)
declare void @HINT(HINT_ARGS)

define internal void @spin_hint() {
  call void @HINT(HINT_ARGS)
  ret void
}

; Chunks index, index + threads, ... as bits of a claimed-chunks mask.
define internal i64 @own_chunks(i64 %index, i64 %threads) {
entry:
  br label %head
head:
  %c = phi i64 [ %index, %entry ], [ %c1, %body ]
  %mask = phi i64 [ 0, %entry ], [ %mask1, %body ]
  %more = icmp ult i64 %c, 40
  br i1 %more, label %body, label %done
body:
  %bit = shl i64 1, %c
  %mask1 = or i64 %mask, %bit
  %c1 = add i64 %c, %threads
  br label %head
done:
  ret i64 %mask
}

; Claim and run chunks of job `job` (this thread's own first) until none is unclaimed or another job started.
define internal void @work(ptr %p, i64 %job, i64 %own) {
entry:
  %word_at = getelementptr %Pool, ptr %p, i32 0, i32 8
  %done_at = getelementptr %Pool, ptr %p, i32 0, i32 4
  br label %look
look:
  %w = load atomic i64, ptr %word_at acquire, align 8
  %w_job = lshr i64 %w, 40
  %same = icmp eq i64 %w_job, %job
  br i1 %same, label %check, label %out
check:
  %claimed = and i64 %w, 1099511627775
  %free = xor i64 %claimed, 1099511627775
  %none = icmp eq i64 %free, 0
  br i1 %none, label %out, label %pick
pick:
  %mine = and i64 %free, %own
  %have_mine = icmp ne i64 %mine, 0
  %choice = select i1 %have_mine, i64 %mine, i64 %free
  %chunk = call i64 @llvm.cttz.i64(i64 %choice, i1 true)
  %bit = shl i64 1, %chunk
  %w1 = or i64 %w, %bit
  %cx = cmpxchg ptr %word_at, i64 %w, i64 %w1 acq_rel acquire
  %ok = extractvalue { i64, i1 } %cx, 1
  br i1 %ok, label %run, label %look
run:
  %kernel_at = getelementptr %Pool, ptr %p, i32 0, i32 5
  %kernel = load ptr, ptr %kernel_at
  %buffers_at = getelementptr %Pool, ptr %p, i32 0, i32 6
  %buffers = load ptr, ptr %buffers_at
  %extent_at = getelementptr %Pool, ptr %p, i32 0, i32 7
  %extent = load i64, ptr %extent_at
  %tasks_at = getelementptr %Pool, ptr %p, i32 0, i32 13
  %tasks = load i64, ptr %tasks_at
  %sum = add i64 %extent, %tasks
  %sum1 = sub i64 %sum, 1
  %size = udiv i64 %sum1, %tasks
  %begin = mul i64 %chunk, %size
  %inside = icmp ult i64 %begin, %extent
  br i1 %inside, label %call, label %count
call:
  %stop = add i64 %begin, %size
  %short = icmp ult i64 %stop, %extent
  %end = select i1 %short, i64 %stop, i64 %extent
  call void %kernel(ptr %buffers, i64 %begin, i64 %end)
  br label %count
count:
  %d = atomicrmw add ptr %done_at, i64 1 release
  br label %look
out:
  ret void
}

define internal ptr @worker(ptr %arg) {
entry:
  %p = load ptr, ptr %arg
  %index_at = getelementptr %Worker, ptr %arg, i32 0, i32 1
  %index = load i64, ptr %index_at
  %threads_at = getelementptr %Pool, ptr %p, i32 0, i32 9
  %threads = load i64, ptr %threads_at
  %own = call i64 @own_chunks(i64 %index, i64 %threads)
  %seq_at = getelementptr %Pool, ptr %p, i32 0, i32 0
  %stop_at = getelementptr %Pool, ptr %p, i32 0, i32 1
  %sleepers_at = getelementptr %Pool, ptr %p, i32 0, i32 3
  %word_at = getelementptr %Pool, ptr %p, i32 0, i32 8
  br label %outer
outer:
  %seen = phi i32 [ 0, %entry ], [ %now, %work ]
  br label %spin
spin:
  %i = phi i64 [ 0, %outer ], [ %i1, %pause ], [ 0, %sleep ]
  %now = load atomic i32, ptr %seq_at acquire, align 4
  %changed = icmp ne i32 %now, %seen
  br i1 %changed, label %got, label %idle
idle:
  %i1 = add i64 %i, 1
  %long = icmp ugt i64 %i1, SPINS
  br i1 %long, label %sleep, label %pause
pause:
  call void @spin_hint()
  br label %spin
sleep:
  %s0 = atomicrmw add ptr %sleepers_at, i32 1 seq_cst
  %seen64 = zext i32 %seen to i64
  %r = call i64 (i64, ...) @syscall(i64 SYS_FUTEX, ptr %seq_at, i64 128, i64 %seen64, ptr null)  ; FUTEX_WAIT_PRIVATE
  %s1 = atomicrmw sub ptr %sleepers_at, i32 1 seq_cst
  br label %spin
got:
  %stop = load atomic i32, ptr %stop_at acquire, align 4
  %stopping = icmp ne i32 %stop, 0
  br i1 %stopping, label %exit, label %work
work:
  %w = load atomic i64, ptr %word_at acquire, align 8
  %job = lshr i64 %w, 40
  call void @work(ptr %p, i64 %job, i64 %own)
  br label %outer
exit:
  ret ptr null
}

define internal void @announce(ptr %p) {
  %seq_at = getelementptr %Pool, ptr %p, i32 0, i32 0
  %sleepers_at = getelementptr %Pool, ptr %p, i32 0, i32 3
  %old = atomicrmw add ptr %seq_at, i32 1 seq_cst
  %sleeping = load atomic i32, ptr %sleepers_at seq_cst, align 4
  %any = icmp ne i32 %sleeping, 0
  br i1 %any, label %wake, label %done
wake:
  %r = call i64 (i64, ...) @syscall(i64 SYS_FUTEX, ptr %seq_at, i64 129, i64 2147483647)  ; FUTEX_WAKE_PRIVATE
  br label %done
done:
  ret void
}

; A pool of `threads` threads: the caller and threads - 1 workers (fewer when the system refuses to create them:
; their chunks are then claimed by the others).
define ptr @tosac_pool_create(i64 %threads) {
entry:
  %p = call ptr @calloc(i64 1, i64 128)
  %tids = call ptr @calloc(i64 %threads, i64 8)
  %args = call ptr @calloc(i64 %threads, i64 16)
  %threads_at = getelementptr %Pool, ptr %p, i32 0, i32 9
  store i64 %threads, ptr %threads_at
  %tids_at = getelementptr %Pool, ptr %p, i32 0, i32 10
  store ptr %tids, ptr %tids_at
  %args_at = getelementptr %Pool, ptr %p, i32 0, i32 11
  store ptr %args, ptr %args_at
  br label %head
head:
  %t = phi i64 [ 1, %entry ], [ %t1, %created ]
  %more = icmp ult i64 %t, %threads
  br i1 %more, label %body, label %done
body:
  %arg = getelementptr %Worker, ptr %args, i64 %t
  store ptr %p, ptr %arg
  %index_at = getelementptr %Worker, ptr %arg, i32 0, i32 1
  store i64 %t, ptr %index_at
  %tid = getelementptr i64, ptr %tids, i64 %t
  %rc = call i32 @pthread_create(ptr %tid, ptr null, ptr @worker, ptr %arg)
  %ok = icmp eq i32 %rc, 0
  %t1 = add i64 %t, 1
  br i1 %ok, label %created, label %done
created:
  br label %head
done:
  %made = phi i64 [ %t, %head ], [ %t, %body ]
  %made_at = getelementptr %Pool, ptr %p, i32 0, i32 14
  store i64 %made, ptr %made_at            ; the threads that exist, for joining
  ret ptr %p
}

define i64 @tosac_pool_threads(ptr %p) {
  %threads_at = getelementptr %Pool, ptr %p, i32 0, i32 9
  %threads = load i64, ptr %threads_at
  ret i64 %threads
}

; Run kernel(buffers, begin, end) over [0, extent) in `tasks` chunks; on the caller's thread alone when the pool
; is null, has one thread, or is busy with another caller's job.
define void @tosac_parallel_for(ptr %p, ptr %kernel, ptr %buffers, i64 %extent, i64 %tasks_asked) {
entry:
  %no_pool = icmp eq ptr %p, null
  br i1 %no_pool, label %serial, label %check
check:
  %threads_at = getelementptr %Pool, ptr %p, i32 0, i32 9
  %threads = load i64, ptr %threads_at
  %one = icmp ule i64 %threads, 1
  %few = icmp ule i64 %tasks_asked, 1
  %small = icmp ule i64 %extent, 1
  %a = or i1 %one, %few
  %b = or i1 %a, %small
  br i1 %b, label %serial, label %lock
lock:
  %busy_at = getelementptr %Pool, ptr %p, i32 0, i32 2
  %cx = cmpxchg ptr %busy_at, i32 0, i32 1 acquire monotonic
  %locked = extractvalue { i32, i1 } %cx, 1
  br i1 %locked, label %parallel, label %serial
parallel:
  %big = icmp ugt i64 %tasks_asked, 40
  %tasks = select i1 %big, i64 40, i64 %tasks_asked
  %kernel_at = getelementptr %Pool, ptr %p, i32 0, i32 5
  store ptr %kernel, ptr %kernel_at
  %buffers_at = getelementptr %Pool, ptr %p, i32 0, i32 6
  store ptr %buffers, ptr %buffers_at
  %extent_at = getelementptr %Pool, ptr %p, i32 0, i32 7
  store i64 %extent, ptr %extent_at
  %tasks_at = getelementptr %Pool, ptr %p, i32 0, i32 13
  store i64 %tasks, ptr %tasks_at
  %done_at = getelementptr %Pool, ptr %p, i32 0, i32 4
  store atomic i64 0, ptr %done_at monotonic, align 8
  %job_at = getelementptr %Pool, ptr %p, i32 0, i32 12
  %last = load i64, ptr %job_at
  %next = add i64 %last, 1
  %job = and i64 %next, 16777215
  store i64 %job, ptr %job_at
  %job_bits = shl i64 %job, 40
  %real = shl i64 1, %tasks
  %real_mask = sub i64 %real, 1
  %absent = xor i64 %real_mask, 1099511627775        ; chunks past `tasks` count as claimed
  %word = or i64 %job_bits, %absent
  %word_at = getelementptr %Pool, ptr %p, i32 0, i32 8
  store atomic i64 %word, ptr %word_at release, align 8
  call void @announce(ptr %p)
  %own = call i64 @own_chunks(i64 0, i64 %threads)
  call void @work(ptr %p, i64 %job, i64 %own)
  br label %wait
wait:
  %i = phi i64 [ 0, %parallel ], [ %i1, %pause ], [ 0, %yield ]
  %d = load atomic i64, ptr %done_at acquire, align 8
  %all = icmp eq i64 %d, %tasks
  br i1 %all, label %finish, label %idle
idle:
  %i1 = add i64 %i, 1
  %long = icmp ugt i64 %i1, 4096
  br i1 %long, label %yield, label %pause
pause:
  call void @spin_hint()
  br label %wait
yield:
  %y = call i32 @sched_yield()
  br label %wait
finish:
  store atomic i32 0, ptr %busy_at release, align 4
  ret void
serial:
  call void %kernel(ptr %buffers, i64 0, i64 %extent)
  ret void
}

; `runs` back-to-back parallel_for calls: one kernel timed without a foreign call per run (tosac profile).
define void @tosac_pool_repeat(ptr %p, ptr %kernel, ptr %buffers, i64 %extent, i64 %tasks, i64 %runs) {
entry:
  br label %head
head:
  %i = phi i64 [ 0, %entry ], [ %i1, %body ]
  %more = icmp ult i64 %i, %runs
  br i1 %more, label %body, label %done
body:
  call void @tosac_parallel_for(ptr %p, ptr %kernel, ptr %buffers, i64 %extent, i64 %tasks)
  %i1 = add i64 %i, 1
  br label %head
done:
  ret void
}

; Stop and join the workers, then free the pool (no job may be running).
define void @tosac_pool_destroy(ptr %p) {
entry:
  %stop_at = getelementptr %Pool, ptr %p, i32 0, i32 1
  store atomic i32 1, ptr %stop_at release, align 4
  call void @announce(ptr %p)
  %made_at = getelementptr %Pool, ptr %p, i32 0, i32 14
  %made = load i64, ptr %made_at
  %tids_at = getelementptr %Pool, ptr %p, i32 0, i32 10
  %tids = load ptr, ptr %tids_at
  br label %head
head:
  %t = phi i64 [ 1, %entry ], [ %t1, %body ]
  %more = icmp ult i64 %t, %made
  br i1 %more, label %body, label %done
body:
  %tid_at = getelementptr i64, ptr %tids, i64 %t
  %tid = load i64, ptr %tid_at
  %rc = call i32 @pthread_join(i64 %tid, ptr null)
  %t1 = add i64 %t, 1
  br label %head
done:
  %args_at = getelementptr %Pool, ptr %p, i32 0, i32 11
  %args = load ptr, ptr %args_at
  call void @free(ptr %args)
  call void @free(ptr %tids)
  call void @free(ptr %p)
  ret void
}
"""


class ThreadPool:
    """``threads`` native threads (the caller's included) that run kernels' parallel loops."""

    def __init__(self, threads: int):
        functions = _library()
        self._destroy = functions["tosac_pool_destroy"]
        self.handle = ctypes.c_void_p(functions["tosac_pool_create"](threads))
        self.threads = int(functions["tosac_pool_threads"](self.handle))
        self.parallel_for_address = ctypes.cast(functions["tosac_parallel_for"], ctypes.c_void_p).value
        self._parallel_for = functions["tosac_parallel_for"]

    def parallel_for(self, kernel: int, buffers: int, extent: int, tasks: int) -> None:
        """Run ``kernel`` (an address) over ``[0, extent)`` in ``tasks`` chunks on this pool's threads."""
        self._parallel_for(self.handle, kernel, buffers, extent, tasks)

    def close(self) -> None:
        """Stop and join the workers (no job may be running); a shared pool lives until the process ends."""
        if self.handle:
            self._destroy(self.handle)
            self.handle = ctypes.c_void_p(None)


_POOLS: dict[int, ThreadPool] = {}
_LIBRARIES: dict[str, dict] = {}
_LOCK = threading.RLock()


def shared_pool(threads: int) -> ThreadPool | None:
    """The process's pool of ``threads`` threads (created on first use); None for one thread."""
    threads = max(1, min(int(threads), MAX_THREADS))
    if threads == 1:
        return None
    with _LOCK:
        pool = _POOLS.get(threads)
        if pool is None:
            pool = _POOLS[threads] = ThreadPool(threads)
        return pool


def repeat_kernel(pool: ThreadPool | None, kernel: int, buffers, extent: int, tasks: int, runs: int) -> None:
    """``runs`` back-to-back ``parallel_for`` calls of ``kernel`` in native code (on the caller's thread alone
    when ``pool`` is None): one kernel timed without a foreign call per run."""
    handle = pool.handle if pool is not None else None
    _library()["tosac_pool_repeat"](handle, kernel, buffers, extent, tasks, runs)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _library() -> dict:
    """The pool's functions, compiled (cached like every object) and loaded once per process."""
    arch = platform.machine()
    if arch not in _SYS_FUTEX:
        raise UnsupportedError(f"no native thread pool for {arch} in this version")
    with _LOCK:
        if arch not in _LIBRARIES:
            code = compile_object(_pool_ir(arch), host_target())
            _LIBRARIES[arch] = load_functions(code, {
                "tosac_pool_create": ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_int64),
                "tosac_pool_threads": ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p),
                "tosac_pool_destroy": ctypes.CFUNCTYPE(None, ctypes.c_void_p),
                "tosac_parallel_for": PARALLEL_FOR,
                "tosac_pool_repeat": ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                                      ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)})
        return _LIBRARIES[arch]


def _forget_after_fork() -> None:
    """A forked child has none of the parent's worker threads: it makes pools of its own."""
    _POOLS.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
