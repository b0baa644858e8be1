//! Child processes that die with rtclab: coturn here, headless Chromium in `rtclab-runner`.
//!
//! Dropping a child's handle kills it on every exit that runs destructors; a `kill -9` of rtclab
//! runs none, and turnserver and Chromium were left running, reparented to PID 1 (issue 18,
//! finding 6). On Linux the kernel can send the child a signal when its parent dies
//! (`PR_SET_PDEATHSIG`, prctl(2)).

/// Makes the process `cmd` will start get SIGKILL when rtclab dies (Linux; elsewhere nothing).
///
/// The "parent" the kernel watches is the *thread* that forks: rtclab starts its children from
/// tokio worker threads (or a test's runtime thread), which live as long as the runtime, i.e. as
/// long as the child is used. If rtclab died between fork and prctl (the child was already
/// reparented), the child exits at once.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the hook runs in the forked child before exec, where only async-signal-safe
        // calls are allowed: prctl, getppid and _exit are, and the hook neither allocates nor
        // takes locks.
        unsafe {
            cmd.pre_exec(move || set_death_signal(parent));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

#[cfg(target_os = "linux")]
fn set_death_signal(parent: libc::pid_t) -> std::io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and touches no memory of ours;
    // getppid and _exit have no preconditions.
    unsafe {
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        if libc::getppid() != parent {
            libc::_exit(1);
        }
    }
    Ok(())
}
