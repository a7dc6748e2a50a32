//! The rayon pool the kernels run on, one worker pinned to each CPU where that is safe.
//!
//! After an idle spell (a round's client training, say) the first worker to wake splits the
//! kernel's work and wakes the second; on a 2-vCPU KVM guest Linux often queued that second
//! worker on the first one's CPU, where it waited 1.6–4.5 ms for the load balancer while the other
//! vCPU idled: a TrimmedMean of 50 × 1M took 15–17 ms instead of 10.5. A worker pinned to its
//! own CPU started within 0.13 ms (docs/benchmarks.md, the twelfth pass). Pinning is done only where it cannot pile work onto a few CPUs:
//! on Linux, with exactly one worker per CPU this process may run on (a sweep's workers, which
//! run fewer threads than that, are left to the scheduler), and `VELOCITY_PIN_THREADS=0` turns it
//! off.

/// The environment variable that turns pinning off (`0`) or leaves it to this module (`auto`).
pub const PIN_ENV: &str = "VELOCITY_PIN_THREADS";

/// Whether `VELOCITY_PIN_THREADS` allows pinning: `auto`, `1` or unset allow it, `0` does not;
/// any other value is an error that names the accepted ones.
pub fn pinning_allowed() -> Result<bool, String> {
    let Some(raw) = std::env::var_os(PIN_ENV) else { return Ok(true) };
    let given = raw.to_string_lossy();
    match given.trim().to_ascii_lowercase().as_str() {
        "" | "auto" | "1" => Ok(true),
        "0" => Ok(false),
        _ => Err(format!("{PIN_ENV}: expected 'auto', '1' or '0', got {given:?}")),
    }
}

static PINNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Build the global pool once, before the first kernel runs (its size from `RAYON_NUM_THREADS`
/// or the CPUs, read then, as rayon's own lazy pool would: a sweep's worker sets the variable
/// after importing the package), pinning each worker to a CPU of its own when that is safe (see
/// the module's doc). A pool that rayon has already built is left as it is.
pub fn init_pool() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let cpus = if pinning_allowed().unwrap_or(false) { allowed_cpus() } else { Vec::new() };
        let pin_to = cpus.clone();
        let built = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("velocity-{i}"))
            .start_handler(move |i| {
                // the pool's size is known here: rayon has read RAYON_NUM_THREADS or counted the CPUs
                if one_per_cpu(&pin_to) {
                    pin_current_thread(pin_to[i]);
                }
            })
            .build_global()
            .is_ok();
        if built && one_per_cpu(&cpus) {
            // a worker runs its start handler before any job: once each has run this one, all
            // are pinned (the threads start on their own time, after `build_global` returns)
            rayon::broadcast(|_| ());
            PINNED.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
}

/// Whether the global pool has exactly one worker for each of `cpus`, and more than one.
fn one_per_cpu(cpus: &[usize]) -> bool {
    cpus.len() > 1 && cpus.len() == rayon::current_num_threads()
}

/// Whether `init_pool` pinned the workers.
pub fn pinned() -> bool {
    PINNED.load(std::sync::atomic::Ordering::Relaxed)
}

/// The CPUs this process may run on, in increasing order (none where that cannot be read).
#[cfg(target_os = "linux")]
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `set` is a plain bit set that sched_getaffinity fills for this process.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&cpu| libc::CPU_ISSET(cpu, &set)).collect()
    }
}

#[cfg(not(target_os = "linux"))]
fn allowed_cpus() -> Vec<usize> {
    Vec::new()
}

/// Keep the calling thread on `cpu` (a failure leaves it where the scheduler puts it).
#[cfg(target_os = "linux")]
fn pin_current_thread(cpu: usize) {
    // SAFETY: as above; pid 0 is the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

#[cfg(not(target_os = "linux"))]
fn pin_current_thread(_cpu: usize) {}
